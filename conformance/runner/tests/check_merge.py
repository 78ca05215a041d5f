#!/usr/bin/env python3
"""merge joins the reports of a sharded run into the report one run would have written.

    check_merge.py RUN_AGAINST NODE RUNNER WORKDIR

Runs the initiator cases against the reference node in 2 shards, merges their JSON reports, and
checks the merged JSON, JUnit and HTML files; then that overlapping parts, reports about another
node and other files are refused.
"""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

run_against, node, runner, work = sys.argv[1:5]
os.makedirs(work, exist_ok=True)
failures = []
# The node's own key rotation (KR-*) changes its key for good: it has a test of its own.
select = ["--role", "initiator", "--exclude", "KR-*"]
whole = [l.split("\t")[0] for l in subprocess.run([runner, "--list", *select], capture_output=True, text=True,
                                                    check=True).stdout.splitlines() if "\t" in l]
key = os.path.join(work, "node.key")  # both parts test the same node
if os.path.exists(key):
    os.remove(key)
subprocess.run([node, "keygen", "--out", key, "--entity-id", "reference-node"], check=True, stdout=subprocess.DEVNULL)
parts = []
for i in (1, 2):
    part = os.path.join(work, f"part{i}.json")
    subprocess.run([run_against, node, runner, *select, "--shard", f"{i}/2", "--json", part], check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "PEERPROTO_NODE_KEY": key})
    parts.append(part)
merged, junit = os.path.join(work, "merged.json"), os.path.join(work, "merged.xml")
html = os.path.join(work, "merged.html")
r = subprocess.run([runner, "merge", *parts, "--json", merged, "--junit", junit, "--html", html], capture_output=True, text=True)
if r.returncode != 0 or "RESULT: PASS" not in r.stdout:
    failures.append(f"merge: exit {r.returncode}: {r.stdout} {r.stderr}")
else:
    report = json.load(open(merged))
    ids = [c["id"] for c in report["cases"]]
    if ids != whole:
        failures.append(f"merged cases {ids} are not the catalogue's {whole}")
    if report["summary"]["pass"] != len(whole) or report["summary"]["must_failures"] != 0:
        failures.append(f"merged summary {report['summary']}")
    if any(c["role"] != "initiator" for c in report["cases"]):
        failures.append("a merged case lost its role")
    cases = ET.parse(junit).getroot().findall(".//testcase")
    if len(cases) != len(whole):
        failures.append(f"merged JUnit has {len(cases)} testcases, expected {len(whole)}")
    page = open(html).read()
    if page.count("<details") != len(whole) or "RESULT: PASS" not in page:
        failures.append(f"merged HTML has {page.count('<details')} cases, expected {len(whole)}, and RESULT: PASS")
# A part about another node (a new key) is refused.
other = os.path.join(work, "other.json")
subprocess.run([run_against, node, runner, "--role", "initiator", "--cases", whole[0], "--json", other], check=True,
               stdout=subprocess.DEVNULL)
for args, says in (([parts[0], parts[0]], "in two of the reports"), ([parts[0], runner], "is not a JSON report"),
                   ([parts[0], other], "is a report about another node")):
    r = subprocess.run([runner, "merge", *args, "--json", merged], capture_output=True, text=True)
    if r.returncode != 2 or says not in r.stderr:
        failures.append(f"merge {args}: exit {r.returncode}, {r.stderr.strip()} (expected exit 2 and '{says}')")
for f in failures:
    print("FAIL:", f)
print(f"{len(whole)} cases in 2 parts merged" if not failures else f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
