#!/usr/bin/env python3
"""--html writes one self-contained page that a real browser renders with every case in it.

    check_html.py RUN_AGAINST FAULT_NODE RUNNER WORKDIR [SCREENSHOT]

Runs a few responder and initiator cases against the fault-injection node with one initiator
fault (so the page shows a failure next to passes), writes the HTML report, checks that it
refers to nothing outside itself, renders it in headless Chromium and checks the rendered DOM
(every case, the result, the failed case open with expected and actual). With SCREENSHOT, also
saves a PNG of the page there.
"""
import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile

run_against, node, runner, work = sys.argv[1:5]
screenshot = sys.argv[5] if len(sys.argv) > 5 else os.path.join(work, "report.png")
os.makedirs(work, exist_ok=True)
page = os.path.join(work, "report.html")
cases = "HS-28/*,SND-*,ENV-5/*"
env = {**os.environ, "PEERPROTO_FAULT": "initiator_retries_refusals"}
r = subprocess.run([run_against, node, runner, "--role", "all", "--cases", cases, "--html", page], env=env,
                   capture_output=True, text=True)
if r.returncode != 1 or "FAILED SND-3/initiator-final-refusal" not in r.stdout:
    sys.exit(f"the run should fail SND-3/initiator-final-refusal only: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
ids = re.findall(r"^\[\d+/\d+\] \w+ +(\S+) ", r.stdout, re.M)
failures = []
html = open(page, encoding="utf-8").read()
for ref in re.findall(r"""(?:src|href)\s*=\s*["']?([^"' >]+)""", html) + re.findall(r"url\(([^)]*)\)", html) + re.findall(r"@import", html):
    failures.append(f"the page refers to {ref}: it must be self-contained")
if "<script" in html:
    failures.append("the page has a script; it must show everything without one")

browser = shutil.which("chromium") or shutil.which("chromium-browser")
if not browser:
    sys.exit("chromium is not installed (scripts/bootstrap installs it)")
# The browser's profile holds a Unix socket: keep it in a short temporary folder, not the build's.
profile = tempfile.mkdtemp(prefix="pp-chromium-")
atexit.register(shutil.rmtree, profile, ignore_errors=True)
flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
         "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND"]
dom = subprocess.run(flags + ["--dump-dom", "file://" + os.path.abspath(page)], capture_output=True, text=True, timeout=120)
if dom.returncode != 0 or "<body" not in dom.stdout:
    sys.exit(f"chromium did not render the page: exit {dom.returncode}\n{dom.stderr[-2000:]}")
rendered = dom.stdout
for case in ids:
    if f'id="{case}"' not in rendered:
        failures.append(f"case {case} is not on the rendered page")
if len(ids) < 10:
    failures.append(f"only {len(ids)} cases ran")
if "RESULT: FAIL" not in rendered:
    failures.append("the rendered page does not say RESULT: FAIL")
failed = re.search(r'<details id="SND-3/initiator-final-refusal" open="?"?>(.*?)</details>', rendered, re.S)
if not failed or "expected" not in failed.group(1) or "SND-3" not in failed.group(1) or "sent:" not in failed.group(1):
    failures.append("the failed case is not open with its rule, expected/actual and transcript")
shot = subprocess.run(flags + ["--window-size=1200,1600", f"--screenshot={screenshot}", "file://" + os.path.abspath(page)],
                      capture_output=True, text=True, timeout=120)
if shot.returncode != 0 or not os.path.exists(screenshot) or os.path.getsize(screenshot) < 10000:
    failures.append(f"no screenshot: exit {shot.returncode} {shot.stderr[-500:]}")
for f in failures:
    print("FAIL:", f)
print(f"{len(ids)} cases rendered by {os.path.basename(browser)}" if not failures else f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
