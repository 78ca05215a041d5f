#!/usr/bin/env python3
"""Checks reference/openapi.json three ways:

1. the document is valid OpenAPI 3.0 (against the OpenAPI Initiative's JSON Schema of 3.0,
   openapi-3.0-schema.json beside this file);
2. a running node serves exactly this document, and its GET answers match their schemas;
3. every answer of the node to POST /message in a conformance run (the runner's saved
   transcripts) matches the response schema of its status, and the payload of every signed
   reply matches the schema x-peerproto-payloads names for its msg_type.

    check_openapi.py NODE RUNNER OPENAPI_JSON

OpenAPI 3.0 schemas are JSON Schema draft 4 plus `nullable`, which is translated here.
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import urllib.request

try:
    import jsonschema
except ImportError:
    sys.exit("check_openapi: the jsonschema module is missing: install python3-jsonschema (scripts/bootstrap does)")

here = pathlib.Path(__file__).resolve().parent
node, runner, document = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
doc = json.loads(document.read_text())

# 1. The document itself.
jsonschema.Draft4Validator(json.loads((here / "openapi-3.0-schema.json").read_text())).validate(doc)


def as_json_schema(s):
    """OpenAPI 3.0 `nullable: true` is JSON Schema's "or null"."""
    if isinstance(s, dict):
        out = {k: as_json_schema(v) for k, v in s.items() if k != "nullable"}
        if s.get("nullable"):
            out = {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(s, list):
        return [as_json_schema(v) for v in s]
    return s


schemas = as_json_schema(doc)
resolver = jsonschema.RefResolver.from_schema(schemas)
failures = []
checked = {"get": 0, "message": 0, "payload": 0}


def check(schema, value, where):
    errors = list(jsonschema.Draft4Validator(as_json_schema(schema), resolver=resolver).iter_errors(value))
    if errors:
        failures.append(f"{where}: {errors[0].message} (at {list(errors[0].absolute_path)})")


def response_schema(path, method, status, ctype="application/json"):
    r = doc["paths"][path][method]["responses"].get(str(status))
    if r is None:
        failures.append(f"{method.upper()} {path}: status {status} is not described")
        return None
    return r.get("content", {}).get(ctype, {}).get("schema")


with tempfile.TemporaryDirectory() as work:
    work = pathlib.Path(work)
    subprocess.run([node, "keygen", "--out", work / "node.key", "--entity-id", "openapi-check"], check=True, capture_output=True)
    proc = subprocess.Popen([node, "serve", "--key", work / "node.key", "--trust", "tofu", "--port", "0", "--state-dir", work / "state"],
                            stdout=subprocess.PIPE, text=True)  # stderr: shown by ctest on failure
    try:
        port = re.search(r":(\d+)$", proc.stdout.readline().strip()).group(1)
        base = f"http://127.0.0.1:{port}"

        # 2. GET answers.
        for path, ctype in [("/health", "application/json"), ("/ready", "application/json"), ("/public-key", "application/json"),
                            ("/capabilities", "application/json"), ("/openapi.json", "application/json"), ("/metrics", "text/plain")]:
            with urllib.request.urlopen(base + path) as res:
                body = res.read().decode()
                status = res.status
            schema = response_schema(path, "get", status, ctype)
            value = json.loads(body) if ctype == "application/json" else body
            if schema is not None:
                check(schema, value, f"GET {path}")
            if path == "/openapi.json" and value != doc:
                failures.append("GET /openapi.json is not reference/openapi.json")
            checked["get"] += 1

        # 3. POST /message answers, from a conformance run's transcripts.
        transcripts = work / "transcripts"
        run = subprocess.run([runner, "--target", base, "--cases", "MSG-*,ERR-*,HS-*,SES-*,CHK-*,ORD-*,ENV-*,SIG-*,VER-*",
                              "--save-transcripts", transcripts], capture_output=True, text=True)
        if run.returncode not in (0, 1):
            sys.exit(f"check_openapi: the runner did not run: {run.stdout[-2000:]}{run.stderr[-2000:]}")
        payloads = doc["x-peerproto-payloads"]
        for case in sorted(transcripts.iterdir()):
            # transcript.txt says each answer's status; the numbered files hold the full bodies in
            # the same order ("received" files are the answers to POST /message and WebSocket reads).
            statuses = [int(m.group(1)) for m in re.finditer(r"^received: HTTP (\d+)", (case / "transcript.txt").read_text(), re.M)]
            bodies = [f for f in sorted(case.glob("*-received.json"))]
            lines = (case / "transcript.txt").read_text().splitlines()
            gets = sum(1 for i, l in enumerate(lines) if l.startswith("received: HTTP") and i > 0 and lines[i - 1].startswith("sent: GET"))
            if gets or len(statuses) != len(bodies):
                continue  # a case that mixes GETs in: its bodies cannot be paired with statuses here
            for status, f in zip(statuses, bodies):
                text = f.read_text()
                if not text:
                    continue  # 400 with an empty body answers an `error` request (ERR-8)
                try:
                    value = json.loads(text)
                except ValueError:
                    continue  # a transport answer such as 431's text, described as text/plain
                schema = response_schema("/message", "post", status)
                if schema is None:
                    continue
                check(schema, value, f"{case.name}/{f.name} (HTTP {status})")
                checked["message"] += 1
                if isinstance(value, dict) and "payload" in value and value.get("msg_type") in payloads:
                    check({"$ref": payloads[value["msg_type"]]}, value["payload"], f"{case.name}/{f.name} payload")
                    checked["payload"] += 1
    finally:
        proc.terminate()
        proc.wait()

print(f"check_openapi: the document is valid OpenAPI 3.0; checked {checked['get']} GET answers, "
      f"{checked['message']} answers to POST /message and {checked['payload']} signed payloads")
if checked["message"] < 100 or checked["payload"] < 50:
    failures.append("too few answers were checked to mean anything")
for f in failures[:50]:
    print("MISMATCH", f)
sys.exit(1 if failures else 0)
