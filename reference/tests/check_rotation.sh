#!/usr/bin/env bash
# Key rotation between two running nodes (SPEC §2.2), end to end over loopback:
#   alice sends to bob (bob pins alice's key in a peers file: policy pinned);
#   alice runs `ctl key rotate`: the statement reaches bob in alice's session, bob moves the
#   binding (audited as key_rotated), and alice signs with the new key from then on;
#   the session alice had continues; a new handshake with the new key is accepted; bob's inbox
#   keeps the messages from before the rotation;
#   both nodes restart: bob still binds the new key (persisted, over the peers file), alice refuses
#   to start with the old key, and starts with the new one;
#   GET /key-rotation serves alice's chain; `ctl key revoke` makes bob refuse alice from then on.
#
#   check_rotation.sh NODE
set -euo pipefail
node=$1
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# start NAME ARGS...: serves from $work/NAME; sets NAME_port and NAME_pid.
start() {
  local name=$1 dir=$work/$1 port=
  shift
  : >"$dir.out"
  "$node" serve --port 0 --state-dir "$dir" "$@" >"$dir.out" 2>"$dir.err" &
  local pid=$!
  pids+=($pid)
  for _ in $(seq 1 200); do
    port=$(sed -n 's/^peerproto-node listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir.out")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || fail "$name did not start: $(cat "$dir.err")"
    sleep 0.1
  done
  [ -n "$port" ] || fail "$name did not report its port"
  printf -v "${name}_port" %s "$port"
  printf -v "${name}_pid" %s "$pid"
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }
ctl() { local name=$1; shift; "$node" ctl --state-dir "$work/$name" "$@"; }
public_key_of() { awk '$1 == "public_key" {print $2}'; }
field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())[sys.argv[1]])' "$1"; }

a1=$("$node" keygen --entity-id alice --out "$work/alice-1.key" | public_key_of)
a2=$("$node" keygen --entity-id alice --out "$work/alice-2.key" | public_key_of)
"$node" keygen --entity-id bob --out "$work/bob.key" >/dev/null
echo "alice $a1" >"$work/bob.peers"

start bob --key "$work/bob.key" --trust pinned --peers "$work/bob.peers"
start alice --key "$work/alice-1.key" --trust tofu
bob_url=http://127.0.0.1:$bob_port

ctl alice send --to "$bob_url" --type status_report --payload '{"n":1}' --wait 20 >/dev/null || fail "alice could not reach bob before the rotation"
[ "$(ctl bob inbox | wc -l)" = 1 ] || fail "bob's inbox should hold alice's first message"

# The rotation: announced in alice's session with bob, then alice signs with key 2.
out=$(ctl alice key rotate "$work/alice-2.key" --wait 20) || fail "ctl key rotate failed: $out"
grep -q '"state":"delivered"' <<<"$out" || fail "the rotation did not reach bob: $out"
[ "$(field counter <<<"$out")" = 1 ] || fail "the first rotation has counter 1: $out"
grep -q '"event":"key_rotated"' "$work/bob/audit.jsonl" || fail "bob did not audit key_rotated"
ctl bob peers list | grep -q "\"public_key\":\"$a2\"" || fail "bob does not bind alice's new key: $(ctl bob peers list)"
curl -sf "http://127.0.0.1:$alice_port/public-key" | grep -q "$a2" || fail "alice does not serve her new key"
curl -sf "http://127.0.0.1:$alice_port/key-rotation" | python3 -c '
import json,sys
d=json.load(sys.stdin)
assert d["entity_id"]=="alice" and len(d["chain"])==1 and d["chain"][0]["counter"]==1, d
assert d["chain"][0]["old_key"]==sys.argv[1] and d["chain"][0]["new_key"]==sys.argv[2], d' "$a1" "$a2" ||
  fail "GET /key-rotation does not serve the chain"

# The session from before the rotation continues, and a new handshake uses key 2.
ctl alice send --to "$bob_url" --type status_report --payload '{"n":2}' --wait 20 >/dev/null || fail "alice's session did not continue after the rotation"
ctl alice sessions | grep -q '"peer_id":"bob"' || fail "alice has no session with bob"
stop "$alice_pid"
stop "$bob_pid"

# Restarts: alice cannot use the old key; bob keeps the new binding over the peers file.
if "$node" serve --key "$work/alice-1.key" --state-dir "$work/alice" --port 0 >/dev/null 2>"$work/old.err"; then
  fail "alice started with the key she rotated away from"
fi
grep -q "rotated to key" "$work/old.err" || fail "starting with the old key did not say why: $(cat "$work/old.err")"
start bob --key "$work/bob.key" --trust pinned --peers "$work/bob.peers"
start alice --key "$work/alice-2.key" --trust tofu
bob_url=http://127.0.0.1:$bob_port
grep -q "rotated its key" "$work/bob.err" || fail "bob did not warn that the peers file names alice's old key"
ctl alice send --to "$bob_url" --type status_report --payload '{"n":3}' --wait 20 >/dev/null || fail "alice could not reach bob after both restarted"
msgs=$(ctl bob inbox)
[ "$(wc -l <<<"$msgs")" = 3 ] || fail "bob's inbox should hold all three messages: $msgs"

# Revocation: bob refuses alice from then on, and alice's node stops (it has no key left).
out=$(ctl alice key revoke --wait 20) || fail "ctl key revoke failed: $out"
grep -q '"state":"delivered"' <<<"$out" || fail "the revocation did not reach bob: $out"
grep -q '"event":"key_revoked"' "$work/bob/audit.jsonl" || fail "bob did not audit key_revoked"
ctl bob peers list | grep -q '"revoked":true' || fail "bob does not list alice as revoked"
running() { [ -n "$(ps -o stat= -p "$1" | grep -v Z)" ]; }  # an exited child stays a zombie until waited for
for _ in $(seq 1 100); do running "$alice_pid" || break; sleep 0.1; done
! running "$alice_pid" || fail "alice's node still runs after revoking its key"
out=$("$node" send --key "$work/alice-2.key" --to "$bob_url" --type ping 2>&1) && fail "bob accepted a handshake from alice's revoked key: $out"
grep -q UNKNOWN_SENDER <<<"$out" || fail "bob did not refuse alice's revoked key with UNKNOWN_SENDER: $out"
if "$node" serve --key "$work/alice-2.key" --state-dir "$work/alice" --port 0 >/dev/null 2>"$work/revoked.err"; then
  fail "alice started with her revoked key"
fi
grep -q "revoked" "$work/revoked.err" || fail "starting with the revoked key did not say why: $(cat "$work/revoked.err")"
echo "rotation: ok"
