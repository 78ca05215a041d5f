#!/usr/bin/env bash
# Keys at rest, end to end through the node's commands (SPEC ID-11, ID-12):
#   encrypted  keygen --encrypt, serve with the passphrase (and a wrong one refused), change it,
#              the file never readable in the clear;
#   phrase     keygen --mnemonic prints 24 words that --from-mnemonic turns into the same key;
#              a mistyped word, a swapped word and a short phrase are clear errors;
#   pkcs11     a key generated in a SoftHSM2 token signs the node's handshakes (the conformance
#              runner checks them), and a wrong PIN, token or module is a clear error.
#
#   check_keys.sh NODE RUNNER [encrypted|phrase|pkcs11]...
set -euo pipefail
node=$1 runner=$2
shift 2
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(encrypted phrase pkcs11)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_error "what it must say" command...: the command exits 2 and says it.
expect_error() {
  local says=$1
  shift
  local out status=0
  out=$("$@" 2>&1) || status=$?
  [ "$status" -eq 2 ] || fail "$* exited $status, expected 2: $out"
  grep -qF -- "$says" <<<"$out" || fail "$* said: $out; expected: $says"
}
# serve KEYARGS...: starts the node, sets $port; fails if it does not start.
serve() {
  local dir
  dir=$(mktemp -d "$work/node.XXXX")
  "$node" serve --trust tofu --port 0 --state-dir "$dir" "$@" >"$dir/out" 2>"$dir/err" &
  pids+=($!)
  for _ in $(seq 1 200); do
    port=$(sed -n 's/^peerproto-node listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir/out")
    [ -n "$port" ] && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || fail "the node did not start: $(cat "$dir/err")"
    sleep 0.1
  done
  fail "the node did not report its port"
}
public_key_of() { awk '$1 == "public_key" {print $2}'; }

for part in "${parts[@]}"; do
  case "$part" in
  encrypted)
    echo "first pass phrase" >"$work/pass1"
    echo "second pass phrase" >"$work/pass2"
    echo "not it" >"$work/wrong"
    pub=$("$node" keygen --entity-id enc-node --out "$work/enc.key" --encrypt --passphrase-file "$work/pass1" | public_key_of)
    [ "$(stat -c %a "$work/enc.key")" = 600 ] || fail "the key file is not mode 0600"
    grep -q '"encrypted_private_key"' "$work/enc.key" || fail "the key file is not encrypted"
    ! grep -q '"private_key"' "$work/enc.key" || fail "the key file holds the private key in the clear"
    expect_error "wrong passphrase" "$node" serve --key "$work/enc.key" --passphrase-file "$work/wrong" --state-dir "$work/x" --port 0
    # Without a terminal (setsid: none to open) and no passphrase option, it says what to give.
    expect_error "no terminal to ask for passphrase for $work/enc.key on: give --passphrase-file or --passphrase-env" \
      setsid --wait "$node" serve --key "$work/enc.key" --state-dir "$work/x" --port 0 </dev/null
    expect_error "is not set" "$node" serve --key "$work/enc.key" --passphrase-env PEERPROTO_NO_SUCH_VARIABLE --state-dir "$work/x" --port 0
    serve --key "$work/enc.key" --passphrase-file "$work/pass1"
    got=$(curl -s "http://127.0.0.1:$port/public-key")
    grep -q "$pub" <<<"$got" || fail "the node serves another key: $got"
    expect_error "wrong passphrase" "$node" key change-passphrase --key "$work/enc.key" --passphrase-file "$work/wrong" --new-passphrase-file "$work/pass2"
    "$node" key change-passphrase --key "$work/enc.key" --passphrase-file "$work/pass1" --new-passphrase-file "$work/pass2" >/dev/null
    expect_error "wrong passphrase" "$node" serve --key "$work/enc.key" --passphrase-file "$work/pass1" --state-dir "$work/y" --port 0
    PEERPROTO_PASS="second pass phrase" serve --key "$work/enc.key" --passphrase-env PEERPROTO_PASS
    echo "encrypted: keygen --encrypt, serve, wrong and missing passphrases refused, change-passphrase: ok"
    ;;
  phrase)
    out=$("$node" keygen --entity-id phrase-node --out "$work/phrase.key" --mnemonic)
    words=$(sed -n '/^recovery phrase/{n;p}' <<<"$out" | sed 's/^ *//')
    [ "$(wc -w <<<"$words")" -eq 24 ] || fail "keygen --mnemonic did not print 24 words: $out"
    pub=$(public_key_of <<<"$out")
    echo "$words" >"$work/words"
    again=$("$node" keygen --entity-id phrase-node --out "$work/restored.key" --from-mnemonic --phrase-file "$work/words" | public_key_of)
    [ "$again" = "$pub" ] || fail "the restored key $again is not the phrase's key $pub"
    echo "a passphrase" >"$work/phrase-pass"
    other=$("$node" keygen --entity-id phrase-node --out "$work/other.key" --from-mnemonic --phrase-file "$work/words" \
      --phrase-passphrase-file "$work/phrase-pass" | public_key_of)
    [ "$other" != "$pub" ] || fail "a phrase passphrase did not change the key"
    set -- $words
    echo "${*:1:23} zzzz" >"$work/typo"
    expect_error "word 24 (\"zzzz\") is not in the BIP39 English list" "$node" keygen --entity-id p --out "$work/t1.key" --from-mnemonic --phrase-file "$work/typo"
    echo "$2 $1 ${*:3}" >"$work/swapped"
    if [ "$1" != "$2" ]; then
      expect_error "checksum does not match" "$node" keygen --entity-id p --out "$work/t2.key" --from-mnemonic --phrase-file "$work/swapped"
    fi
    echo "${*:1:20}" >"$work/short"
    expect_error "12, 15, 18, 21 or 24 words, not 20" "$node" keygen --entity-id p --out "$work/t3.key" --from-mnemonic --phrase-file "$work/short"
    [ ! -e "$work/t1.key" ] && [ ! -e "$work/t3.key" ] || fail "a refused phrase left a key file"
    echo "phrase: 24 words printed, restored to the same key, a passphrase changes it, bad phrases refused: ok"
    ;;
  pkcs11)
    module=$(ls /usr/lib/softhsm/libsofthsm2.so 2>/dev/null || true)
    [ -n "$module" ] || fail "SoftHSM2 is not installed (scripts/bootstrap installs softhsm2)"
    mkdir "$work/tokens"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$work/tokens" >"$work/softhsm2.conf"
    export SOFTHSM2_CONF="$work/softhsm2.conf"
    # SoftHSM2 leaves OpenSSL's global allocations behind when it is unloaded; they are not the
    # node's, but a sanitizer build of the node reports them at exit.
    printf 'leak:libcrypto.so\nleak:libsofthsm2.so\n' >"$work/lsan.supp"
    export LSAN_OPTIONS="print_suppressions=0:suppressions=$work/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
    softhsm2-util --init-token --free --label peerproto --pin 1234 --so-pin 5678 >/dev/null
    echo 1234 >"$work/pin"
    echo 9999 >"$work/bad-pin"
    uri="pkcs11:token=peerproto;object=node?module-path=$module&pin-source=file:$work/pin"
    pub=$("$node" keygen --entity-id hsm-node --pkcs11 "$uri" | public_key_of)
    [ ${#pub} -eq 64 ] || fail "keygen --pkcs11 printed no public key"
    expect_error "already holds a key labelled \"node\"" "$node" keygen --entity-id hsm-node --pkcs11 "$uri"
    expect_error "CKR_PIN_INCORRECT" "$node" serve --key "pkcs11:token=peerproto;object=node?module-path=$module&pin-source=file:$work/bad-pin" --entity-id hsm-node --state-dir "$work/z" --port 0
    expect_error "no PKCS#11 token labelled \"other\"" "$node" serve --key "pkcs11:token=other;object=node?module-path=$module&pin-value=1234" --entity-id hsm-node --state-dir "$work/z" --port 0
    expect_error "has no Ed25519 public key labelled \"nothing\"" "$node" serve --key "pkcs11:token=peerproto;object=nothing?module-path=$module&pin-value=1234" --entity-id hsm-node --state-dir "$work/z" --port 0
    expect_error "cannot load the PKCS#11 module" "$node" serve --key "pkcs11:token=peerproto;object=node?module-path=$work/none.so&pin-value=1234" --entity-id hsm-node --state-dir "$work/z" --port 0
    expect_error "needs --entity-id" "$node" serve --key "$uri" --state-dir "$work/z" --port 0
    serve --key "$uri" --entity-id hsm-node
    # Every handshake_ack, error and session message of these cases is signed in the token.
    "$runner" --target "http://127.0.0.1:$port" --node-key "$pub" --cases 'HS-1/*,HS-2/*,SIG-6/*,SES-11/*' >"$work/run" ||
      { cat "$work/run"; fail "the conformance cases failed against the node whose key is in the token"; }
    grep -q "RESULT: PASS" "$work/run" || fail "no pass: $(tail "$work/run")"
    echo "pkcs11: key generated in SoftHSM2, the node signs through it ($(grep -E '^[0-9]+ cases in' "$work/run" | cut -d: -f2 | cut -d' ' -f2-3) of $(grep -cE '^\[[0-9]+/' "$work/run") cases), bad PIN, token, object and module refused: ok"
    ;;
  *) fail "unknown part $part" ;;
  esac
done
