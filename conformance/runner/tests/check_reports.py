#!/usr/bin/env python3
"""Checks a runner's JSON report and JUnit XML: the JSON has the versioned schema and one entry per
case with a known verdict; the XML parses, and its test and failure counts agree with the JSON."""
import json
import sys
import xml.etree.ElementTree as ET

report, junit = sys.argv[1], sys.argv[2]
with open(report) as f:
    doc = json.load(f)
assert doc["schema"] == "peerproto.conformance.report.v1", doc["schema"]
cases = doc["cases"]
assert len(cases) > 120, f"only {len(cases)} cases"
verdicts = {"pass", "fail", "timeout", "skip", "info"}
for c in cases:
    assert c["verdict"] in verdicts, c
    assert c["level"] in {"MUST", "SHOULD", "MAY"}, c
    assert c["requirements"] and c["id"].startswith(c["requirements"][0]), c
    assert c["transcript"] or c["verdict"] == "skip", f"{c['id']} has no transcript"
summary = doc["summary"]
assert sum(summary[v] for v in verdicts) == len(cases), summary

root = ET.parse(junit).getroot()
assert root.tag == "testsuites"
tests = sum(int(s.get("tests")) for s in root.findall("testsuite"))
failures = sum(int(s.get("failures")) for s in root.findall("testsuite"))
assert tests == len(cases), (tests, len(cases))
assert failures == summary["fail"] + summary["timeout"] - summary["expected_failures"], (failures, summary)
print(f"reports agree: {len(cases)} cases, {summary['pass']} pass, {failures} failures")
