#!/usr/bin/env python3
"""Every run writes its reports, whatever stops it, with the exit status README.md's table gives;
and a half-built node gets a verdict on every case whose needs it meets.

    check_gates.py NODE FAULT_NODE RUNNER WORKDIR

1. Nothing listens at the target: exit 2, every case "not run", the reason at the top.
2. A server whose GET /public-key answers 404: exit 1 (a gate the node fails counts), every case
   failed at discovery with rule HTTP-6; merge of that report keeps it.
3. The reference node with trust pinned (it refuses new identities): exit 2; the cases that need
   no handshake run and pass, the others are not run, naming the need.
4. SIGINT in the middle of a run against the reference node: exit 130, the cases not started are
   "not run: the run was interrupted", the reports written.
5. Half-built nodes (faults of the fault-injection node): one that refuses every handshake, one
   without /capabilities, one without WebSocket (over HTTP, and over WebSocket). Each: exit 1, the
   need not met with the rule it breaks, every case that has the need not run and naming it,
   every other case run, and no failure but the planted one.
Each time the JSON, JUnit and HTML reports are all written.
"""
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

node, fault_node, runner, work = sys.argv[1:5]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
state_root = tempfile.mkdtemp(prefix="pp-gates-")
failures = []
started = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(name, target, *extra, interrupt_after=None):
    """Runs the runner with every report; returns (exit status, stdout, JSON report)."""
    out = {k: os.path.join(work, f"{name}.{k}") for k in ("json", "xml", "html")}
    p = subprocess.Popen([runner, "--target", target, "--json", out["json"], "--junit", out["xml"], "--html", out["html"], *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if interrupt_after:
        time.sleep(interrupt_after)
        p.send_signal(signal.SIGINT)
    try:
        stdout, stderr = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        p.kill()  # never left running
        stdout, stderr = p.communicate()
        failures.append(f"{name}: the runner did not end within 300 s")
    for k, f in out.items():
        if not os.path.exists(f):
            failures.append(f"{name}: no {k} report (exit {p.returncode}): {stdout[-1500:]} {stderr[-1500:]}")
            return p.returncode, stdout, None
    ET.parse(out["xml"])  # well-formed
    if "<details" not in open(out["html"]).read():
        failures.append(f"{name}: the HTML report lists no case")
    return p.returncode, stdout + stderr, json.load(open(out["json"]))


def expect(name, status, stdout, report, want_status, gate, verdict, reason):
    if status != want_status:
        failures.append(f"{name}: exit {status}, expected {want_status}: {stdout[-2000:]}")
    if report is None:
        return
    g = report.get("gate_failure")
    if gate is None:
        if g is not None:
            failures.append(f"{name}: gate_failure {g}, expected none")
    elif not g or any(g.get(k) != v for k, v in gate.items()):
        failures.append(f"{name}: gate_failure {g}, expected {gate}")
    cases = report["cases"]
    if len(cases) < 300 and name != "interrupted":
        failures.append(f"{name}: {len(cases)} cases in the report, expected all")
    wrong = [c for c in cases if verdict and (c["verdict"] != verdict or reason not in c.get("reason", ""))]
    if wrong:
        failures.append(f"{name}: {len(wrong)} case(s) not {verdict} with '{reason}', e.g. {wrong[0]['id']}: {wrong[0]['verdict']} {wrong[0].get('reason')}")
    print(f"{name}: exit {status}, {report['summary']}")


class NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(404)
        self.send_header("Content-Length", "9")
        self.end_headers()
        self.wfile.write(b"not found")

    def log_message(self, *args):
        pass


def start_node(name, *args, fault=None):
    d = os.path.join(state_root, name)
    os.makedirs(d)
    binary = fault_node if fault else node
    subprocess.run([binary, "keygen", "--out", f"{d}/key", "--entity-id", name], check=True, stdout=subprocess.DEVNULL)
    env = dict(os.environ, PEERPROTO_FAULT=fault) if fault else None
    with open(f"{d}/out", "w") as out, open(f"{d}/err", "w") as err:
        p = subprocess.Popen([binary, "serve", "--key", f"{d}/key", "--port", "0", "--state-dir", f"{d}/state", *args], stdout=out,
                             stderr=err, env=env)
    started.append(p)
    for _ in range(200):
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", open(f"{d}/out").read())
        if m:
            return f"http://127.0.0.1:{m.group(1)}"
        if p.poll() is not None:
            break
        time.sleep(0.1)
    sys.exit(f"{name}: the node did not start:\n{open(f'{d}/err').read()[-3000:]}")


def expect_partial(name, status, out, report, want_status, need, rule, fault, every_case=False, failing=lambda c: False):
    """The run stopped nowhere; `need` is not met (breaking `rule` when `fault`); the cases that have
    it (every responder case when `every_case`) are not run and name it; all others ran; the
    failures are exactly the cases `failing` selects."""
    if status != want_status:
        failures.append(f"{name}: exit {status}, expected {want_status}: {out[-2000:]}")
    if report is None:
        return
    if report.get("gate_failure") is not None:
        failures.append(f"{name}: gate_failure {report['gate_failure']}, expected none")
    n = next((n for n in report.get("needs", []) if n["need"] == need), None)
    if not n or n["met"] or n["node_fault"] != fault or (fault and n["rule"] != rule):
        failures.append(f"{name}: need {need}: {n}, expected not met, node_fault {fault}, rule {rule}")
    implied = {"trust": ["trust", "handshake", "session"], "handshake": ["handshake", "session"]}.get(need, [need])
    for c in report["cases"]:
        has = every_case or any(x in c["needs"] for x in implied)
        if has != (c.get("not_run_need") == need) or (has and c["verdict"] != "skip"):
            failures.append(f"{name}: {c['id']} (needs {c['needs']}): {c['verdict']}, not_run_need {c.get('not_run_need')}")
        if (c["verdict"] == "fail") != failing(c):
            failures.append(f"{name}: {c['id']}: {c['verdict']} {c.get('reason', '')[:300]}")
    print(f"{name}: exit {status}, {report['summary']}")
    for stage, s in report["stages"].items():
        print(f"    {stage}: {s['standing']}")


try:
    # 1. Unreachable.
    status, out, report = run("unreachable", f"http://127.0.0.1:{free_port()}")
    expect("unreachable", status, out, report, 2, {"step": "discovery", "node_fault": False}, "skip", "not run: discovery: cannot reach")

    # 2. Discovery refused (a server that is not a node).
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    status, out, report = run("not-a-node", f"http://127.0.0.1:{server.server_address[1]}")
    expect("not-a-node", status, out, report, 1, {"step": "discovery", "rule": "HTTP-6", "node_fault": True}, "fail", "setup failed: discovery")
    if "STOPPED AT discovery: rule HTTP-6" not in out:
        failures.append(f"not-a-node: the console does not say where the run stopped: {out[:1000]}")
    server.shutdown()
    m = subprocess.run([runner, "merge", os.path.join(work, "not-a-node.json"), "--json", os.path.join(work, "merged.json")],
                       capture_output=True, text=True)
    merged = json.load(open(os.path.join(work, "merged.json"))) if os.path.exists(os.path.join(work, "merged.json")) else {}
    if m.returncode != 1 or (merged.get("gate_failure") or {}).get("rule") != "HTTP-6":
        failures.append(f"merge of a stopped run: exit {m.returncode}, gate {merged.get('gate_failure')}: {m.stdout[-1000:]} {m.stderr}")

    # 3. A node that refuses new identities.
    pinned = start_node("pinned", "--trust", "pinned")
    status, out, report = run("pinned", pinned)
    expect_partial("pinned", status, out, report, 2, "trust", "", False)
    if report and report["stages"]["ordering and chunking"]["standing"] != "not reached: needs trust":
        failures.append(f"pinned: stage ordering and chunking: {report['stages']['ordering and chunking']}")

    # 4. Interrupted.
    tofu = start_node("tofu", "--trust", "tofu")
    status, out, report = run("interrupted", tofu, interrupt_after=3)
    expect("interrupted", status, out, report, 130, None, None, "")
    if report:
        not_run = [c for c in report["cases"] if "not run: the run was interrupted" in c.get("reason", "")]
        if not report.get("interrupted") or not not_run or len(report["cases"]) < 300:
            failures.append(f"interrupted: interrupted={report.get('interrupted')}, {len(not_run)} cases not run, {len(report['cases'])} in all")

    # 5. Half-built nodes.
    planted = lambda c: c["verdict"] == "fail" and "UNSUPPORTED_MESSAGE_TYPE" in c.get("reason", "")
    no_handshake = start_node("no-handshake", "--trust", "tofu", fault="refuses_handshakes")
    status, out, report = run("no-handshake", no_handshake)
    expect_partial("no-handshake", status, out, report, 1, "handshake", "HS-2", True, failing=planted)
    if report and not report["stages"]["handshake"]["standing"].startswith("FAILING"):
        failures.append(f"no-handshake: stage handshake: {report['stages']['handshake']}")
    no_capabilities = start_node("no-capabilities", "--trust", "tofu", fault="no_capabilities")
    status, out, report = run("no-capabilities", no_capabilities)
    expect_partial("no-capabilities", status, out, report, 1, "capabilities", "HTTP-7", True,
                   failing=lambda c: c["id"] == "HTTP-7/capabilities")
    if report and [a.split(" ")[0] for a in report["assumptions"]] != ["versions", "suites", "message_types"]:
        failures.append(f"no-capabilities: assumptions {report['assumptions']}")
    no_websocket = start_node("no-websocket", "--trust", "tofu", fault="no_websocket")
    status, out, report = run("no-websocket", no_websocket, "--cases", "WS-*,HTTP-*,JSON-1/*")
    expect_partial("no-websocket", status, out, report, 1, "websocket", "WS-1", True)
    status, out, report = run("no-websocket-ws", no_websocket, "--cases", "JSON-1/*", "--transport", "ws")
    expect_partial("no-websocket-ws", status, out, report, 1, "websocket", "WS-1", True, every_case=True)
finally:
    for p in started:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)
    shutil.rmtree(state_root, ignore_errors=True)
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
