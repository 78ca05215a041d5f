#!/usr/bin/env python3
"""Renders docs/PERFORMANCE.md and a gnuplot PNG from the JSON of one scripts/bench run.

Every ratio compares two benchmarks from the same run of the same binary. Benchmarks are named
"<operation>/<implementation>[/<size>]"; the median of the repetitions is used."""
import json, os, platform, re, subprocess, sys
from collections import defaultdict

def load(path):
    with open(path) as f:
        doc = json.load(f)
    rows = {}
    for b in doc["benchmarks"]:
        if b.get("aggregate_name", "median") != "median" or b.get("error_occurred"):
            continue
        name = b["run_name"] if "run_name" in b else b["name"]
        # UseManualTime/UseRealTime append a suffix that the other tables do not expect.
        for suffix in ("/manual_time", "/real_time"):
            name = name.removesuffix(suffix)
        name = re.sub(r"/iterations:\d+", "", name)
        rows[name] = b
    return doc["context"], rows

def ns(b):
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]
    return b["real_time"] * scale

def split(name):
    parts = name.split("/")
    return parts[0], parts[1], (parts[2] if len(parts) > 2 else "")

def human_size(s):
    if not s: return ""
    n = int(s)
    for unit, f in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= f and n % f == 0: return f"{n // f} {unit}"
    return f"{n} B"

def fmt_time(t):
    for unit, f in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if t >= f: return f"{t / f:.2f} {unit}"
    return f"{t:.0f} ns"

def table(rows, ops, impls, baseline, size_scale=1):
    """One line per (operation, size): time per implementation and throughput ratio vs baseline."""
    by = defaultdict(dict)
    for name, b in rows.items():
        op, impl, size = split(name)
        if op in ops: by[(op, size)][impl] = b
    lines = ["| operation | size | " + " | ".join(impls) + f" | peerproto / {baseline} |",
             "|---|---|" + "---|" * (len(impls) + 1)]
    ratios = {}
    for (op, size) in sorted(by, key=lambda k: (ops.index(k[0]), int(k[1] or 0))):
        cells = by[(op, size)]
        times = [fmt_time(ns(cells[i])) if i in cells else "n/a" for i in impls]
        ratio = ns(cells[baseline]) / ns(cells["peerproto"]) if baseline in cells and "peerproto" in cells else None
        ratios[(op, size)] = ratio
        lines.append(f"| {op} | {human_size(str(int(size) * size_scale) if size else size)} | " + " | ".join(times) + (f" | {ratio:.0%} |" if ratio and ratio >= 0.1 else f" | {ratio:.2%} |" if ratio else " | n/a |"))
    return "\n".join(lines), ratios

def plot(rows, outdir):
    data = os.path.join(outdir, "performance-aead.dat")
    impls = ["peerproto", "cryptopp", "libsodium", "openssl"]
    sizes = sorted({int(split(n)[2]) for n in rows if n.startswith("seal/")})
    with open(data, "w") as f:
        f.write("size " + " ".join(impls) + "\n")
        for s in sizes:
            vals = []
            for i in impls:
                b = rows.get(f"seal/{i}/{s}")
                vals.append(f"{s / ns(b) * 1e9 / (1 << 20):.1f}" if b else "NaN")
            f.write(f"{s} " + " ".join(vals) + "\n")
    png = os.path.join(outdir, "performance-aead.png")
    script = f"""set terminal pngcairo size 900,500
set output '{png}'
set title 'AES-256-GCM seal throughput (one run, same binary)'
set xlabel 'message size (bytes)'
set ylabel 'MiB/s'
set logscale x 2
set xtics ('64 B' 64, '1 KiB' 1024, '64 KiB' 65536, '1 MiB' 1048576)
set key top left
set grid
plot for [i=2:5] '{data}' using 1:i with linespoints title columnheader(i)
"""
    try:
        subprocess.run(["gnuplot"], input=script.encode(), check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"report: gnuplot failed ({e}); no plot", file=sys.stderr)
    os.remove(data)

def node_table(rows):
    """Round trips per second of the node and of the Beast echo server, per transport, mode and
    number of connections, with the server thread's CPU time per message and the p99 latency of
    each. Returns the table and, per (transport_mode, connections), the node/echo ratios of
    throughput, CPU per message and p99."""
    lines = ["| transport and mode | connections | node --threads | peerproto-node | Beast echo | node / echo | node CPU per message | "
             "echo CPU per message | node p50 | node p99 | echo p99 |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    ratios = {}
    impls = {"peerproto": 1, "peerproto_2threads": 2}
    for name in sorted((n for n in rows if split(n)[1] in impls and not n.startswith("chunked")),
                       key=lambda n: (split(n)[0], split(n)[2], impls[split(n)[1]])):
        op, impl, conns = split(name)
        threads = impls[impl]
        node, echo = rows[name], rows.get(f"{op}/echo/{conns}") or {}
        rate, base = node.get("items_per_second", 0), echo.get("items_per_second", 0)
        cpu, echo_cpu = node.get("server_cpu_us"), echo.get("server_cpu_us")
        p99, echo_p99 = node.get("p99_us"), echo.get("p99_us")
        ratios[(op, conns, threads)] = {"throughput": rate / base if base else None,
                                        "cpu": cpu / echo_cpu if cpu and echo_cpu else None,
                                        "p99": p99 / echo_p99 if p99 and echo_p99 else None}
        r = ratios[(op, conns, threads)]["throughput"]
        us = lambda v: f"{v:.1f} µs" if v is not None else "n/a"
        lines.append(f"| {op.replace('_', ' ')} | {conns} | {threads} | {rate:,.0f}/s | {base:,.0f}/s | {f'{r:.0%}' if r else 'n/a'} | "
                     f"{us(cpu)} | {us(echo_cpu)} | {node.get('p50_us', 0):.0f} µs | {p99 or 0:.0f} µs | {echo_p99 or 0:.0f} µs |")
    for name in sorted(n for n in rows if n.startswith("chunked")):
        b = rows[name]
        lines.append(f"| {split(name)[0].replace('_', ' ')} transfer, {human_size(split(name)[2])} | 1 | 1 | "
                     f"{b.get('bytes_per_second', 0) / (1 << 20):.1f} MiB/s | | | | | | | |")
    return "\n".join(lines), ratios


def main(results, outdir):
    ctx, crypto = load(os.path.join(results, "crypto.json"))
    _, framing = load(os.path.join(results, "framing.json"))
    _, node = load(os.path.join(results, "node.json"))
    node_tab, nr = node_table(node)
    cpu = ctx.get("cpu_scaling_enabled")
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip(); break
    except OSError:
        pass
    mem = ""
    try:
        mem = f"{int(open('/proc/meminfo').readline().split()[1]) // (1 << 20)} GiB"
    except OSError:
        pass
    cxx = subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]

    crypto_tab, cr = table(crypto, ["seal", "open", "ed25519_sign", "ed25519_verify", "x25519", "sha256", "hkdf"],
                           ["peerproto", "cryptopp", "libsodium", "openssl"], "cryptopp")
    parse_tab, pr = table(framing, ["parse_validate"], ["peerproto", "boost_json_parse"], "boost_json_parse")
    ser_tab, sr = table(framing, ["serialize"], ["peerproto", "boost_json_serialize"], "boost_json_serialize")
    chunk_tab, _ = table(framing, ["chunk_split_reassemble"], ["peerproto", "memcpy"], "memcpy", size_scale=1 << 20)
    own = [n for n in framing if split(n)[0] in ("canonicalize", "sign_serialize", "parse_verify", "seal_envelope", "open_envelope")]
    own_lines = ["| operation | payload | time | throughput |", "|---|---|---|---|"]
    for n in sorted(own, key=lambda n: (split(n)[0], int(split(n)[2] or 0))):
        b = framing[n]
        own_lines.append(f"| {split(n)[0]} | {human_size(split(n)[2])} | {fmt_time(ns(b))} | "
                         f"{b.get('bytes_per_second', 0) / (1 << 20):.0f} MiB/s |")

    def target(label, ratio, goal, cmp):
        ok = ratio is not None and cmp(ratio, goal)
        return f"| {label} | {ratio:.1%} | {goal} | {'met' if ok else 'missed'} |" if ratio is not None else f"| {label} | n/a | {goal} | not measured |"
    sign_r, verify_r = cr.get(("ed25519_sign", "")), cr.get(("ed25519_verify", ""))
    # Sessionless signed messages from outside (scripts/load) against 1 / (verify + sign) of this run.
    bound_target = "| sessionless signed messages (scripts/load) vs the crypto bound 1 / (verify + sign) | n/a | ≥ 70% | not measured |"
    verify_b, sign_b = crypto.get("ed25519_verify/peerproto"), crypto.get("ed25519_sign/peerproto")
    bound_targets = [bound_target]
    if os.path.exists(os.path.join(results, "load.json")) and verify_b and sign_b:
        loads = json.load(open(os.path.join(results, "load.json")))
        bound = 1e9 / (ns(verify_b) + ns(sign_b))
        bound_targets = []
        for threads in sorted({r.get("threads", 1) for r in loads}):
            best = max((r for r in loads if r.get("threads", 1) == threads), key=lambda r: r["per_second"])
            bound_targets.append(
                f"| sessionless signed messages (scripts/load), --threads {threads}, {best['connections']} connections, "
                f"vs the crypto bound 1 / (verify + sign) = {bound:,.0f}/s | {best['per_second'] / bound:.1%} | ≥ 70% | "
                f"{'met' if best['per_second'] / bound >= 0.70 else 'missed'} |")
    def times(label, ratio, most):
        if ratio is None:
            return f"| {label} | n/a | ≤ {most:g}× | not measured |"
        return f"| {label} | {ratio:.2f}× | ≤ {most:g}× | {'met' if ratio <= most else 'missed'} |"
    chunked_targets = []
    for t in ("http", "ws"):
        b = node.get(f"chunked_{t}/peerproto/{8 << 20}")
        rate = b.get("bytes_per_second", 0) / (1 << 20) if b else None
        chunked_targets.append(f"| chunked transfer through the node over {t}, 8 MiB | {rate:.1f} MiB/s | ≥ 150 MiB/s | "
                               f"{'met' if rate >= 150 else 'missed'} |" if rate else
                               f"| chunked transfer through the node over {t} | n/a | ≥ 150 MiB/s | not measured |")
    # Outbox to inbox over WebSocket, W messages under way against one, same run (SPEC SND-6).
    outbox = {w: node.get(f"outbox_ws/in_flight/{w}") for w in (1, 64)}
    outbox_ratio = (outbox[64]["items_per_second"] / outbox[1]["items_per_second"]) if all(outbox.values()) else None
    outbox_target = (f"| outbox to inbox over ws, 64 messages under way vs 1 (`outbox_ws/in_flight`) | {outbox_ratio:.2f}× | ≥ 4× | "
                     f"{'met' if outbox_ratio >= 4 else 'missed'} |" if outbox_ratio else
                     "| outbox to inbox over ws, 64 messages under way vs 1 (`outbox_ws/in_flight`) | n/a | ≥ 4× | not measured |")
    outbox_tab = "Not measured."
    if outbox_ratio:
        outbox_tab = "\n".join(["| messages under way | messages per second | time for 2,000 | ratio |", "|---|---|---|---|"] + [
            f"| {w} | {outbox[w]['items_per_second']:,.0f}/s | {fmt_time(ns(outbox[w]))} | "
            f"{outbox[w]['items_per_second'] / outbox[1]['items_per_second']:.2f} |" for w in (1, 64)])
    # Sustained sessionless signed traffic (scripts/load --sustained), default nonce cache.
    sustained_target = "| sustained sessionless signed traffic, 10 min, rate limits raised | n/a | ≥ 5,000/s, no refusals | not measured |"
    sustained = None
    if os.path.exists(os.path.join(results, "sustained.json")):
        sustained = json.load(open(os.path.join(results, "sustained.json")))[0]
        ok = sustained["lowest_per_second"] >= 5000 and sustained["refused"] == 0 and sustained["seconds"] >= 600
        sustained_target = (f"| sustained sessionless signed traffic, {sustained['seconds'] // 60} min, rate limits raised | "
                            f"{sustained['per_second']:,.0f}/s (lowest 10 s: {sustained['lowest_per_second']:,.0f}/s), "
                            f"{sustained['refused']} refused, peak RSS {sustained['peak_rss_kib'] / 1024:.0f} MiB | "
                            f"≥ 5,000/s, no refusals | {'met' if ok else 'missed'} |")
    peak = framing.get("chunk_reassembly_peak/peerproto/64", {}).get("peak_over_payload")
    peak_target = (f"| peak heap memory of the receiving side of a 64 MiB transfer, in process | {peak:.2f}× the payload | "
                   f"≤ 2.5× the payload | {'met' if peak <= 2.5 else 'missed'} |" if peak else
                   "| peak memory of a 64 MiB transfer | n/a | ≤ 2.5× the payload | not measured |")
    chunk = framing.get("chunk_split_reassemble/peerproto/64")
    chunk_rate = 64 / (ns(chunk) / 1e9) if chunk else None  # MiB/s
    chunk_target = (f"| chunk split + reassemble in process, 64 MiB | {chunk_rate:.0f} MiB/s | ≥ 300 MiB/s | "
                    f"{'met' if chunk_rate >= 300 else 'missed'} |" if chunk_rate else
                    "| chunk split + reassemble in process, 64 MiB | n/a | ≥ 300 MiB/s | not measured |")
    targets = "\n".join([
        "| target | measured | goal | |", "|---|---|---|---|",
    ] + [target(f"{op} at {human_size(s)} (keyed context) vs raw Crypto++ GCM", cr.get((op, s)), "≥ 90%", lambda r, g: r >= 0.90)
         for op in ("seal", "open") for s in ("64", "1024", "1048576")] + [
        target("Ed25519 sign vs raw Crypto++", sign_r, "within 5%", lambda r, g: abs(1 - r) <= 0.05),
        target("Ed25519 verify vs raw Crypto++", verify_r, "within 5%", lambda r, g: abs(1 - r) <= 0.05),
    ] + [target(f"parse + validate vs boost::json::parse, {human_size(s)}", pr.get(("parse_validate", s)), "≥ 60%",
                lambda r, g: r >= 0.60) for s in ("100", "1024", "16384", "1048576")] + [
         target(f"canonical serialization vs boost::json::serialize, {human_size(s)}", sr.get(("serialize", s)), "≥ 50%",
                lambda r, g: r >= 0.50) for s in ("100", "1024")
    ] + [target(f"node {t.split('_')[0]} encrypted throughput vs Beast echo, {c} connection{'s' if c != '1' else ''}, --threads {n}",
                nr.get((t, c, n), {}).get("throughput"), "≥ 70%", lambda r, g: r >= 0.70)
         for n in (1, 2) for t in ("http_encrypted", "ws_encrypted") for c in ("1", "4")]
      + [times(f"node {t.split('_')[0]} encrypted server CPU per message vs Beast echo, {c} connection{'s' if c != '1' else ''}, --threads {n}",
               nr.get((t, c, n), {}).get("cpu"), 1.5) for n in (1, 2) for t in ("http_encrypted", "ws_encrypted") for c in ("1", "4")]
      + [times(f"node {t.split('_')[0]} encrypted p99 vs Beast echo p99, {c} connection{'s' if c != '1' else ''}, --threads {n}",
               nr.get((t, c, n), {}).get("p99"), 3.0) for n in (1, 2) for t in ("http_encrypted", "ws_encrypted") for c in ("1", "4")]
      + [chunk_target, peak_target, outbox_target] + chunked_targets + bound_targets + [sustained_target])

    load_tab = "Not run: `scripts/load` writes `load.json` beside the other results."
    if os.path.exists(os.path.join(results, "load.json")):
        lines = ["| mode | connections | node --threads | messages/s | p50 | p99 | node CPU per message | refused |",
                 "|---|---|---|---|---|---|---|---|"]
        for r in json.load(open(os.path.join(results, "load.json"))):
            lines.append(f"| {r['mode']} | {r['connections']} | {r.get('threads', 1)} | {r['per_second']:,.0f}/s | {r['p50_us']:.0f} µs | {r['p99_us']:.0f} µs | "
                         f"{r['cpu_us_per_message']:.0f} µs | {r['refused']} |")
        load_tab = "\n".join(lines)
    if sustained:
        load_tab += (f"\n\nSustained (`scripts/load --sustained {sustained['seconds']}`): one node (--threads {sustained.get('threads', 1)}) for {sustained['seconds']} s, in "
                     f"consecutive 10 s wrk runs with {sustained['connections']} connections whose envelopes are signed while the "
                     f"previous run goes, with the default nonce cache (`max_replay_entries` 1,000,000; a nonce is kept until its "
                     f"timestamp leaves the 60 s tolerance, RPL-2): {sustained['requests']:,} messages, "
                     f"{sustained['per_second']:,.0f}/s on average and {sustained['lowest_per_second']:,.0f}/s in the slowest 10 s, "
                     f"{sustained['refused']} refused, worst p99 {sustained['p99_us']:.0f} µs, node CPU "
                     f"{sustained['cpu_us_per_message']:.0f} µs per message, peak resident memory "
                     f"{sustained['peak_rss_kib'] / 1024:.0f} MiB.")

    doc = f"""# Performance

Generated by `scripts/bench` from one run; every ratio compares two benchmarks measured in the
same binary in that run, so the machine's speed cancels out. Ratios are throughput relative to
the baseline: above 100% is faster than the baseline. Each time is the median of the run's
repetitions.

Machine: {model or platform.processor()}, {ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz, {mem} memory; {cxx};
Release build (bench preset). CPU frequency scaling {'on' if cpu else 'off or unknown'}. Run on {ctx.get('date', '?')}.

## Targets

{targets}

## Crypto

peerproto's crypto layer against raw Crypto++ (what it wraps, used at its best: AES-GCM keyed
once, one Signer and Verifier), libsodium and OpenSSL. Sign and verify use a 300-byte message
(about one canonical envelope); HKDF derives the protocol's 96 bytes.

{crypto_tab}

![AES-256-GCM seal throughput](performance-aead.png)

## Framing

Envelope parse + validate (strict JSON: duplicates, UTF-8, depth; every envelope rule) against
`boost::json::parse` of the same bytes, which checks only JSON syntax:

{parse_tab}

Canonical serialization of an envelope against `boost::json::serialize` of the same value (which
neither sorts members nor formats numbers canonically):

{ser_tab}

Operations with no outside equivalent (time per envelope with a payload of the given size):

{chr(10).join(own_lines)}

Chunk split and reassembly (256 KiB chunks, canonical text, SHA-256 both ways, strict parse of
the result) against a memcpy of the same number of bytes:

{chunk_tab}

## Node

peerproto-node in-process on loopback, with `--threads 1` (one thread does everything) and
`--threads 2` (a core thread for the engine and the store, a transport thread for the
connections and signature checks), against a minimal Boost.Beast echo server on one thread run
the same way: the same blocking client, the same request bytes (a `ping` with 100 B of text,
sealed in a 1.1 session or signed in a 1.0 session), 64 round trips per connection per
iteration. The client seals or signs every request for both; only the node's replies are opened
and verified. With 4 connections, 4 client threads share the machine's cores with the server.
CPU per message is the CPU time of all the server's threads.

{node_tab}

### From one node's outbox to another's inbox

`outbox_ws/in_flight/<W>`: an application queues 2,000 messages (`status_report`, 100 B of text)
with `ctl send` at a second node, 100 requests written to its control socket at a time; the
iteration ends when the last of them is in the first node's inbox. The sender delivers over one
WebSocket in one session, with at most W messages under way (`--outbound-max-in-flight`; SPEC
SND-6). Both nodes run `--threads 1` in the benchmark's process, on the machine's cores.

{outbox_tab}

On loopback a round trip costs no waiting, so keeping messages under way can only overlap the
two nodes' CPU work; with two cores shared by both nodes and the benchmark's client the ratio is
bounded by CPU: in a profile of the W = 64 run the sender's thread is busy about 85% of the
time, a fifth of it in SQLite's writes (`pwrite`; every `ctl send` is one transaction, and
every step of a delivery is stored before the next is sent, grouped into one transaction for
the deliveries under way) and much of the rest in socket system calls. Over a network the ratio
grows with the round trip: with one under way a sender waits a round trip per message, with W
it waits one per W.

## From outside: wrk

`scripts/load`: a release node loaded by `wrk` (one client thread, keep-alive connections) with
pre-generated unique signed sessionless `ping` envelopes (100 B of text), as a user would measure
it. The node's CPU per message is its process CPU time (user + system) over the run divided by
the messages; "refused" counts any status but 200.

{load_tab}

## Where the time goes

Profiles (`perf record`) of the misses, and what would fix them:

- **AES-GCM on small messages** (met since a keyed context, `crypto::aes_gcm_key`, is made once
  per session direction and wiped with the session's keys).
- **Envelope parse + validate** (met at 100 B, the target's size; about half of
  `boost::json::parse` from 1 KiB): a direct reader (`detail::read_members_direct`) reads the
  top-level members straight from the text and builds only the payload as JSON; anything
  unusual goes to the general path; one validator checks the members either path read. From 1 KiB the payload
  dominates: it is parsed with the strict parser (UTF-8, duplicate names, depth, numbers
  checked as it goes), which builds the same `boost::json` value as `boost::json::parse` and
  checks more.
- **Canonical serialization** (met at 100 B and 1 KiB since member names, plain strings and the
  envelope's hex and base64 members are each written with one append, not one call per
  character): what remains against `boost::json::serialize` is sorting each object's members
  by UTF-16 code units and the ECMAScript form of non-integer numbers, which RFC 8785 requires
  and `boost::json::serialize` does not do.
- **Chunk split and reassembly** (64 MiB): chunks are hashed as they arrive and copied once into
  a buffer of the received size (peak heap of the receiving side: 2.0× the payload). SHA-256,
  once on each side, is about a quarter of the profile, and the kernel's page-fault path for the
  fresh pages of the sender's text, the chunk copies, the receiver's text and the parsed string
  about a third. A large string no longer costs an extra copy when serialized (the output is
  reserved with room for what closes it).
- **Chunked transfer through the node** (8 MiB in 256 KiB chunks, the largest CHK-2 allows):
  the base64 decoder was half of the profile; a table-driven decoder more than doubled the
  rate (about 35 MiB/s over HTTP before it). Each chunk is base64 twice (its `data`, then the sealed
  envelope's ciphertext), so it is encoded, parsed and decoded twice on each side, and the
  8 MiB payload is stored in the inbox (SQLite `pwrite` and `fdatasync`, about 15% of the
  profile) before the last chunk is acknowledged. Over WebSocket every message is also checked
  as UTF-8 by the WebSocket layer on both sides. The levers left: decoding the `data` member
  straight from the envelope text without building its JSON string, and a binary frame for
  chunks, which SPEC does not have.
- **The node, sessionless signed messages from outside** (scripts/load): about half of the
  node's CPU is Crypto++ (Ed25519 verify and sign, about 42 µs per message), the rest the kernel
  (loopback sockets, the WAL writes), SQLite and the node's own code. The crypto bound assumes
  one core doing nothing but verify and sign; on this two-core machine wrk and the node share
  the cores. With `--threads 2` the signature is checked on the transport thread, which pays at
  4 connections; the core thread still signs every reply and commits to SQLite, and those now
  bound it. The levers left: sign replies on the transport thread (the engine would return the
  reply unsigned, with what to sign) and take the SQLite commit off the core thread. The p99 of
  several milliseconds is the WAL checkpoint (`fdatasync`) on the request path every ~1,000
  pages: raising the interval to 10,000 pages raised throughput by 15% but p99 to 18-20 ms, so
  it was not kept.
- **Sustained sessionless load** (10 minutes, paced, the default nonce cache): the nonce cache
  keeps a nonce only while its timestamp is acceptable (RPL-2), so it holds about a minute of
  traffic and the node's resident memory levels off. The rate drops by about a tenth once nonces
  start to expire (after the first minute): each expired nonce is also a row to delete from the
  node's database, 250 rows per transaction, every second, on the core thread with the WAL
  checkpoints; the signer of the next run's envelopes also shares the two cores with the node
  and wrk.
- **The node, encrypted session messages against the echo server**: the profile is dominated by
  system calls (loopback TCP send and receive, epoll, the scheduler switching between the client
  threads and the server), as the echo server's is; what the echo server does not do is open,
  order, dispatch and seal each message, and commit the session's sequence counters to SQLite
  (one transaction per turn of the event loop: group commit helps only with several
  connections). Persisting the counters in reserved blocks does not fit this protocol as it is:
  the receiving side must refuse a reused sequence number after a restart (SES-13), and skipping
  a block on either side would break a session's contiguous numbering (ORD), so it would need a
  SPEC change. `--threads 2` does not help here: a sealed message has no signature to move off
  the core thread, so only the two posts between threads remain, and in process the four client
  threads compete with the node's two threads for the machine's two cores.
- **p99 of encrypted session messages at 4 connections with `--threads 1`**: between about 2×
  and 15× the echo's from one run to the next. Each measurement is short (about 10,000
  messages), so its p99 is the 100th-slowest message, and a WAL checkpoint (`pwrite` and
  `fdatasync` of the accumulated pages) on the only thread holds all four connections' requests
  when it falls inside the measurement. With `--threads 2` the connections keep being read and
  parsed while the core thread writes. The fix is a checkpoint off the request path (see above).
"""
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "PERFORMANCE.md"), "w") as f:
        f.write(doc)
    plot(crypto, outdir)

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: report.py RESULTS_DIR OUT_DIR")
    main(sys.argv[1], sys.argv[2])
