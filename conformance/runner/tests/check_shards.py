#!/usr/bin/env python3
"""--shard I/N splits the selected cases into N disjoint parts that together are the selection.

    check_shards.py RUNNER
"""
import subprocess
import sys

runner = sys.argv[1]


def listed(*args):
    out = subprocess.run([runner, "--list", *args], capture_output=True, text=True, check=True).stdout
    return [line.split("\t")[0] for line in out.splitlines() if "\t" in line]


failures = []
for selection in ([], ["--cases", "HS-*,SES-*"]):
    whole = listed(*selection)
    for n in (1, 3, 7):
        parts = [listed(*selection, "--shard", f"{i}/{n}") for i in range(1, n + 1)]
        joined = [c for p in parts for c in p]
        if sorted(joined) != sorted(whole) or len(set(joined)) != len(joined):
            failures.append(f"{selection} in {n} shards: {len(joined)} listed, {len(set(joined))} distinct, {len(whole)} expected")
        if min(len(p) for p in parts) < len(whole) // n:
            failures.append(f"{selection} in {n} shards: parts of {[len(p) for p in parts]} for {len(whole)} cases")
for bad in ("0/3", "4/3", "1/0", "x", "1/2/3"):
    r = subprocess.run([runner, "--list", "--shard", bad], capture_output=True, text=True)
    if r.returncode != 2 or "--shard takes I/N" not in r.stderr:
        failures.append(f"--shard {bad}: exit {r.returncode}, {r.stderr.strip()}")
for f in failures:
    print("FAIL", f)
print("check_shards:", "FAIL" if failures else "PASS")
sys.exit(1 if failures else 0)
