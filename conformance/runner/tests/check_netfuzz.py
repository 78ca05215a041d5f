#!/usr/bin/env python3
"""The network fuzzer finds what is planted in a node, replays its findings, and is deterministic.

    check_netfuzz.py NODE FAULT_NODE RUNNER WORKDIR

1. The same --seed makes the same inputs; another seed other inputs.
2. Against the reference node (short gap timer so held messages do not slow it), 20 s over HTTP
   and 10 s over WebSocket: no finding.
3. Against the fault-injection node with a planted fault, each fault is found by its oracle, the
   finding file replays (exit 1) while the fault is there, and not against the reference node.
4. The accepted oracle: each forgery (--forgery NAME) is found accepted by a node with the fault
   that lets it through, the finding names the rule, and it replays there but not against the
   reference node (whose runs above mixed every forgery in, and refused them all).
"""
import atexit
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

node, fault_node, runner, work = sys.argv[1:5]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
# Node state lives in a short temporary folder (the build folder may be deep), removed at the end.
state_root = tempfile.mkdtemp(prefix="pp-netfuzz-")
failures = []
started = []  # every node this test started, stopped at exit whatever happens


def start(binary, name, fault=None, trust="tofu", *extra):
    d = os.path.join(state_root, name)
    os.makedirs(d)
    subprocess.run([binary, "keygen", "--out", f"{d}/key", "--entity-id", "fuzzed-node"], check=True, stdout=subprocess.DEVNULL)
    # AddressSanitizer holds up to 256 MiB of freed memory in quarantine, which the memory oracle
    # would count as the node's growth; a small quarantine leaves the node's own growth.
    asan = ":".join(x for x in (os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=16") if x)
    env = {**os.environ, "PEERPROTO_FAULT": fault or "", "ASAN_OPTIONS": asan}
    with open(f"{d}/out", "w") as out, open(f"{d}/err", "w") as err:
        p = subprocess.Popen([binary, "serve", "--key", f"{d}/key", "--trust", trust, "--port", "0", "--state-dir", f"{d}/state",
                              "--limit", "gap_timeout_ms=300", *extra], stdout=out, stderr=err, env=env)
    started.append(p)
    for _ in range(200):
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", open(f"{d}/out").read())
        if m:
            return p, f"http://127.0.0.1:{m.group(1)}"
        if p.poll() is not None:
            break
        time.sleep(0.1)
    sys.exit(f"{name}: the node did not start (exit {p.poll()}):\n{open(f'{d}/err').read()[-3000:]}")


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@atexit.register
def stop_all():
    for p in started:
        stop(p)
    shutil.rmtree(state_root, ignore_errors=True)


def fuzz(*args, timeout=180):
    return subprocess.run([runner, "fuzz", *args], capture_output=True, text=True, errors="replace", timeout=timeout)


# 1. Deterministic under --seed.
a, b, c = (fuzz("--seed", s, "--print-inputs", "200").stdout for s in ("11", "11", "12"))
if a != b or a == c or len(a.splitlines()) != 200:
    failures.append("--seed does not fix the inputs (same seed differs, or another seed gives the same)")

# 2. The reference node: no findings.
p, url = start(node, "reference")
r = fuzz("--target", url, "--duration", "20s", "--seed", "1", "--pid", str(p.pid), "--findings", f"{work}/reference-findings")
rate = re.search(r"(\d+) executions/s", r.stdout)
if r.returncode != 0 or "RESULT: NO FINDINGS" not in r.stdout or not rate or int(rate.group(1)) < 1:
    failures.append(f"reference node: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}")
else:
    print(f"reference node: {rate.group(1)} executions/s, no findings")
reference_url = url
ws = fuzz("--target", url.replace("http://", "ws://") + "/ws", "--duration", "10s", "--seed", "2", "--findings", f"{work}/ws-findings")
if ws.returncode != 0 or "RESULT: NO FINDINGS" not in ws.stdout:
    failures.append(f"reference node over WebSocket: exit {ws.returncode}\n{ws.stdout[-3000:]}")

# 3. Planted faults, each found by its oracle and replayable.
for fault, oracle in (("unsigned_errors", "bad_reply"), ("wrong_http_status", "bad_reply"), ("exit_on_chunk", "node_down")):
    fp, furl = start(fault_node, fault, fault)
    findings = f"{work}/{fault}-findings"
    r = fuzz("--target", furl, "--duration", "60s", "--seed", "1", "--max-findings", "1", "--findings", findings)
    files = sorted(glob.glob(f"{findings}/finding-*-{oracle}.json"))
    if r.returncode != 1 or not files:
        failures.append(f"{fault}: expected a {oracle} finding: exit {r.returncode}\n{r.stdout[-3000:]}")
        stop(fp)
        continue
    finding = json.load(open(files[0]))
    if "--replay" not in finding["replay"] or finding["oracle"] != oracle:
        failures.append(f"{fault}: the finding file lacks its replay command: {finding}")
    if fp.poll() is not None:  # the node died (node_down): replay against a new one
        fp, furl = start(fault_node, fault + "-again", fault)
    again = fuzz("--target", furl, "--replay", files[0])
    if again.returncode != 1 or f"FINDING {oracle}" not in again.stdout:
        failures.append(f"{fault}: the finding does not replay: exit {again.returncode}\n{again.stdout}\n{again.stderr}")
    stop(fp)
    clean = fuzz("--target", reference_url, "--replay", files[0])
    if clean.returncode != 0:
        failures.append(f"{fault}: the finding also fails the reference node: {clean.stdout}")
    print(f"{fault}: found by {oracle} ({finding['input']['kind']}: {finding['input']['mutation'][:120]}), replayed")

# 4. Each forgery against the fault that accepts it.
pinned_p, pinned_url = start(node, "reference-pinned", trust="pinned")
short_idle = ("--limit", "session_idle_ttl_ms=2000")
idle_p, idle_url = start(node, "reference-short-idle", None, "tofu", *short_idle)
for fault, forgery, rule, trust in (("accept_any_signature", "tampered", "SIG-5", "tofu"),
                                    ("accept_any_signature", "other_key", "SIG-1", "tofu"),
                                    ("skip_replay_check", "replayed", "RPL-2", "tofu"),
                                    ("wide_timestamp_tolerance", "stale", "RPL-1", "tofu"),
                                    ("open_with_either_key", "wrong_key", "ENC-5", "tofu"),
                                    ("accept_replayed_sequence", "reused_sequence", "ORD-4", "tofu"),
                                    ("ignore_session_close", "closed_session", "SES-8", "tofu"),
                                    ("long_session_idle", "expired_session", "SES-4", "tofu"),
                                    ("pinned_binds_new_keys", "unknown_sender", "ID-5", "pinned")):
    fp, furl = start(fault_node, f"{fault}-{forgery}", fault, trust, *(short_idle if forgery == "expired_session" else ()))
    findings = f"{work}/{forgery}-findings"
    r = fuzz("--target", furl, "--duration", "30s", "--seed", "1", "--forgery", forgery, "--node-trust", trust, "--jobs", "2",
             "--max-findings", "1", "--findings", findings)
    files = sorted(glob.glob(f"{findings}/finding-*-accepted.json"))
    finding = json.load(open(files[0])) if files else {}
    if r.returncode != 1 or finding.get("rule") != rule:
        failures.append(f"{forgery} against {fault}: expected an accepted finding for {rule}: exit {r.returncode}, {finding}\n{r.stdout[-3000:]}")
        stop(fp)
        continue
    again = fuzz("--target", furl, "--replay", files[0])
    if again.returncode != 1 or "FINDING accepted" not in again.stdout:
        failures.append(f"{forgery}: the finding does not replay against {fault}: exit {again.returncode}\n{again.stdout}\n{again.stderr}")
    stop(fp)
    clean = fuzz("--target", pinned_url if trust == "pinned" else idle_url if forgery == "expired_session" else reference_url,
                 "--replay", files[0])
    if clean.returncode != 0:
        failures.append(f"{forgery}: the finding also fails the reference node: {clean.stdout}")
    print(f"{forgery}: {fault} found by accepted, {rule}: {finding['detail'][:160]}")
stop(pinned_p)
stop(idle_p)
stop(p)
for f in failures:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
