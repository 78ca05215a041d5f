// Test-only faults, so the conformance suite and the fuzzers can be shown to catch nodes that break
// its rules. Only a build that defines PEERPROTO_FAULT_INJECTION has them: the fault-injection node
// of the tests. In every other build, the shipped node and every user of the library included,
// PEERPROTO_FAULT(name) is the constant `false` and the code it guards is the normal path.
//
// Every fault is one row of PEERPROTO_FAULTS below, with what it breaks, and one field of
// fault::switches (as BoGo's ProtocolBugs has one field per bug). A hook names its field, so a
// misspelt fault does not compile. The library never reads the environment: the test node turns
// one fault on at start (fault::enable, from its PEERPROTO_FAULT variable) before any thread runs,
// and refuses a name that is not in the table. The tests' fault lists are checked against this
// table when the build is configured (reference/CMakeLists.txt).
//
// Where a fault can act on the engine's input or output (a node that dies on a chunk, errors with
// a broken signature, a shortened timer or a wrong HTTP status), it lives in the test node
// (reference/node). The hooks left in the library break one decision in the middle of processing
// (skip a check, reuse a number, seal with the wrong key), which no step before or after the
// engine can imitate without re-implementing it.
#pragma once

// X(name, what the node does wrong). Grouped by where the hook is; sorted within a group.
#define PEERPROTO_FAULTS(X) \
  /* the library: parsing and authentication */ \
  X(accept_any_signature, "accepts a signature that does not verify (SIG-1)") \
  X(accept_duplicate_members, "keeps the last of a repeated JSON member instead of refusing (JSON-2)") \
  X(ignore_unknown_members, "accepts an envelope member it does not know (ENV-2)") \
  X(no_backoff, "never counts an authentication failure toward back-off (RL-4)") \
  X(no_rate_limit, "admits authenticated messages past their class's bucket (RL-2)") \
  X(no_supported_versions, "answers INVALID_VERSION without its supported_versions (VER-4)") \
  X(skip_recipient_check, "accepts a message addressed to another node (ENV-7)") \
  X(skip_replay_check, "accepts a nonce already used (RPL-2, RPL-5)") \
  X(skip_timestamp_check, "accepts a timestamp outside the tolerance (RPL-1)") \
  X(short_replay_memory, "forgets a nonce after one second (RPL-2)") \
  X(replay_memory_from_arrival, "remembers a nonce for the tolerance from its arrival, not from its timestamp (RPL-2)") \
  X(backoff_per_address_only, "keeps back-off per address only (RL-4 per sender)") \
  X(backoff_per_sender_only, "keeps back-off per sender only (RL-4 per address)") \
  /* the library: handshakes */ \
  X(accept_expired_handshake, "completes a handshake past its timeout (HS-16)") \
  X(skip_challenge_check, "accepts a handshake_confirm with a wrong challenge response (HS-8)") \
  X(initiator_accepts_bad_ack_signature, "as initiator, accepts a handshake_ack whose signature fails (HS-28)") \
  X(initiator_accepts_unoffered_suite, "as initiator, accepts a suite it did not offer (HS-28)") \
  X(initiator_accepts_unoffered_version, "as initiator, accepts a version it did not offer (HS-28)") \
  X(initiator_skips_challenge_response, "as initiator, accepts an ack with a wrong challenge response (HS-7)") \
  X(initiator_wrong_confirm_response, "as initiator, confirms with the hash of message 1, not 2 (HS-8)") \
  X(initiator_wrong_key_confirmation, "as initiator, sends a key confirmation with one bit flipped (HS-12)") \
  /* the library: sessions, ordering, chunks, key rotation */ \
  X(accept_replayed_sequence, "delivers a sequence number already delivered, again (ORD-4)") \
  X(gap_timer_from_latest, "runs the gap timer from the latest held message, not the earliest (ORD-6)") \
  X(handler_lookup_before_ordering, "refuses an unsupported type before ordering it (ORD-7)") \
  X(ignore_session_close, "keeps a session open after its session_close (SES-8)") \
  X(open_with_either_key, "opens a sealed message with either direction's key (ENC-5)") \
  X(reuse_reply_sequence, "seals every message of a session with the same sequence number (SES-12, ORD-1)") \
  X(same_key_both_directions, "seals with the peer's direction key (ENC-1)") \
  X(skip_chunk_hash, "accepts a reassembled payload whose SHA-256 does not match (CHK-6)") \
  X(revocation_keeps_sessions, "keeps a revoked key's sessions open (KR-7)") \
  X(rotation_ignores_counter, "accepts a rotation record whose counter does not grow (KR-4)") \
  X(rotation_keeps_valid_prefix, "applies a chain's statements before the one that fails, instead of nothing (KR-4)") \
  X(rotation_ignores_entity, "follows a rotation record of another entity (KR-4)") \
  X(rotation_skips_signatures, "accepts a rotation record whose signatures fail (KR-4)") \
  /* the node: its configuration (advertises one value, applies another) */ \
  X(backoff_one_late, "starts back-off one failure after the threshold it advertises (RL-4)") \
  X(long_handshake_timeout, "applies twice the handshake timeout it advertises (HS-16)") \
  X(long_rotation_grace, "applies twice the rotation grace it advertises (KR-6)") \
  X(long_session_idle, "applies twice the session idle time it advertises (SES-4)") \
  X(long_session_lifetime, "applies twice the session lifetime it advertises (SES-5)") \
  X(long_transfer_idle, "applies twice the transfer idle time it advertises (CHK-11)") \
  X(no_address_pending_limit, "has no limit of pending handshakes per address (HS-26)") \
  X(no_pin_limit, "has no limit of bound keys (ID-10)") \
  X(no_sessions_per_peer_limit, "has no limit of sessions per peer (HS-27)") \
  X(pinned_binds_new_keys, "with --trust pinned, binds a new identity as tofu would (ID-5)") \
  X(rotation_no_grace, "gives a replaced key no grace period (KR-6)") \
  X(wide_timestamp_tolerance, "applies twice the timestamp tolerance it advertises (RPL-1)") \
  X(window_one_short, "applies a reorder window one smaller than it advertises (ORD-5)") \
  /* the node: requests, replies, resources and storage */ \
  X(exit_before_reply, "dies after storing every 50th delivery, before its reply leaves") \
  X(exit_on_chunk, "dies when a chunk arrives (a node that stops mid-run)") \
  X(no_body_limit, "reads bodies up to 64 MiB whatever its max_envelope_bytes (HTTP-3)") \
  X(no_capabilities, "has no GET /capabilities (a half-built node)") \
  X(no_limits_advertised, "lists no limits in its capabilities (a reading SPEC allows)") \
  X(malformed_version_answers_505, "answers 505 to a request line whose version is malformed (HTTP-10)") \
  X(no_websocket, "does not upgrade GET /ws (a half-built node)") \
  X(read_timeout_answers_408, "answers 408 before closing at its read timeout (a reading SPEC allows)") \
  X(refuses_handshakes, "refuses every handshake (a half-built node)") \
  X(store_write_fails, "fails every commit that carries nonces (a full disk, ERR-7)") \
  X(task_result_any_payload, "accepts a task_result whatever its payload (MSG-8)") \
  X(unsigned_errors, "sends error replies whose signature does not verify (ENV-1)") \
  X(wrong_http_status, "answers every error with 400 (ERR-6)") \
  X(ws_binary_closes, "closes a WebSocket on a binary frame instead of answering (WS-3)") \
  /* the node as a sender */ \
  X(initiator_gives_up_lost_transfer, "gives a transfer up when the receiver lost it (CHK-16)") \
  X(initiator_ignores_peer_limits, "sends chunks larger than the peer advertises (CHK-15)") \
  X(initiator_ignores_retry_after, "retries before the peer's retry_after (SND-2)") \
  X(initiator_keeps_expired_session, "keeps using a session the peer said is gone (SND-4)") \
  X(initiator_reseals_retransmission, "seals a retransmission anew instead of resending its bytes (SND-5)") \
  X(initiator_retries_refusals, "retries a refusal that is final (SND-3)") \
  X(initiator_skips_session_ready, "uses a session before the peer's session_ready (HS-29)") \
  X(initiator_stale_timestamp, "dates the messages it sends two minutes back (RPL-1)") \
  X(initiator_trusts_forged_errors, "takes an unauthenticated error as a refusal (SND-1)") \
  X(rotation_without_countersignature, "announces its rotations with a broken new-key signature (KR-10)")

#ifdef PEERPROTO_FAULT_INJECTION
#include <array>
#include <string_view>

namespace peerproto::fault {

/// One switch per fault; the test node turns one on.
struct switches {
#define PEERPROTO_FAULT_FIELD(name, what) bool name = false;
  PEERPROTO_FAULTS(PEERPROTO_FAULT_FIELD)
#undef PEERPROTO_FAULT_FIELD
};

/// The switches of this process: set before any thread starts, only read after.
inline switches& active() noexcept {
  static switches s;
  return s;
}

struct entry {
  std::string_view name;
  std::string_view what;
  bool switches::*field;
};

/// Every fault, by name, with what it breaks.
inline constexpr std::array table{
#define PEERPROTO_FAULT_ENTRY(name, what) entry{#name, what, &switches::name},
    PEERPROTO_FAULTS(PEERPROTO_FAULT_ENTRY)
#undef PEERPROTO_FAULT_ENTRY
};

/// Turns the fault `name` on; false, changing nothing, when there is no such fault.
inline bool enable(std::string_view name) noexcept {
  for (const auto& e : table)
    if (e.name == name) return active().*e.field = true;
  return false;
}

}  // namespace peerproto::fault

#define PEERPROTO_FAULT(name) (::peerproto::fault::active().name)
#else
#define PEERPROTO_FAULT(name) false
#endif
