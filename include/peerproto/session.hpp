// Sessions (SPEC §9, §10): the state table (transitions as data, in one place), expiry by idle
// time, lifetime and message count, and per-direction sealing and opening.
#pragma once

#include <peerproto/fault.hpp>
#include <peerproto/crypto.hpp>
#include <peerproto/envelope.hpp>
#include <peerproto/error.hpp>
#include <peerproto/sequencer.hpp>
#include <peerproto/version.hpp>

#include <array>
#include <chrono>
#include <optional>
#include <string>

namespace peerproto {

enum class session_role { initiator, responder };
enum class session_state { idle, await_ack, await_confirm, ready, expired, closed, failed };
enum class session_event { send_handshake, valid_ack, invalid_ack, valid_handshake, valid_confirm, invalid_confirm,
                           pending_timeout, message, close, expire };

inline std::string_view to_string(session_state s) noexcept {
  constexpr std::array<std::string_view, 7> names{"idle", "await_ack", "await_confirm", "ready", "expired", "closed", "failed"};
  return names[static_cast<std::size_t>(s)];
}

struct session_transition {
  session_role role;
  session_state from;
  session_event event;
  session_state to;
};

/// SPEC §9's table, row for row. Nothing else changes a session's state (SES-1).
inline constexpr std::array<session_transition, 14> session_table{{
    {session_role::initiator, session_state::idle, session_event::send_handshake, session_state::await_ack},
    {session_role::initiator, session_state::await_ack, session_event::valid_ack, session_state::ready},
    {session_role::initiator, session_state::await_ack, session_event::invalid_ack, session_state::failed},
    {session_role::initiator, session_state::await_ack, session_event::pending_timeout, session_state::failed},
    {session_role::responder, session_state::idle, session_event::valid_handshake, session_state::await_confirm},
    {session_role::responder, session_state::await_confirm, session_event::valid_confirm, session_state::ready},
    {session_role::responder, session_state::await_confirm, session_event::invalid_confirm, session_state::failed},
    {session_role::responder, session_state::await_confirm, session_event::pending_timeout, session_state::failed},
    {session_role::initiator, session_state::ready, session_event::message, session_state::ready},
    {session_role::responder, session_state::ready, session_event::message, session_state::ready},
    {session_role::initiator, session_state::ready, session_event::close, session_state::closed},
    {session_role::responder, session_state::ready, session_event::close, session_state::closed},
    {session_role::initiator, session_state::ready, session_event::expire, session_state::expired},
    {session_role::responder, session_state::ready, session_event::expire, session_state::expired},
}};

/// The state `event` leads to from `from`, or nothing when the table has no such row.
constexpr std::optional<session_state> next_state(session_role role, session_state from, session_event event) noexcept {
  for (const auto& t : session_table)
    if (t.role == role && t.from == from && t.event == event) return t.to;
  return std::nullopt;
}

/// Session limits (SPEC §18).
struct session_options {
  std::chrono::milliseconds idle_ttl = limits::session_idle_ttl;             ///< SES-4
  std::chrono::milliseconds lifetime = limits::session_lifetime;             ///< SES-5
  std::uint64_t max_messages = limits::max_messages_per_direction;           ///< SES-6
  sequencer_options ordering{};                                             ///< ORD-3, ORD-6
};

/// What a handshake in progress needs until it ends, kept by its session: everything that
/// decides the session's next transition lives in the session. The initiator keeps its ephemeral
/// key and message 1 (the transcript of HS-11 and the check of HS-7); the responder keeps the
/// challenge response and key confirmation it expects (HS-8, HS-12). Dropped, and the ephemeral
/// secret wiped, when the handshake ends (HS-14).
struct pending_handshake {
  sys_milliseconds started{};
  std::optional<crypto::x25519_keypair> ephemeral;  ///< initiator, when it offered a suite
  std::string msg1;                                 ///< initiator: message 1 as sent
  crypto::digest expected_response{};               ///< responder: H(JCS(message 2))
  std::string remote;                               ///< responder: where message 1 came from (HS-26)
  std::optional<crypto::digest> confirmation;       ///< responder: the key_confirmation expected (1.1)
};

/// The code a failed handshake is remembered by when the event itself names none.
constexpr errc failure_of(session_event e) noexcept {
  return e == session_event::pending_timeout ? errc::challenge_expired : errc::challenge_invalid;
}

/// A received session message waiting in the sequencer: the envelope, its opened payload, and
/// where it came from.
struct held_message {
  envelope request;
  boost::json::object payload;
  std::string remote;
};

/// What a node persists of a ready session so that it survives a restart (SES-13): the keys and,
/// per direction, the next sequence number. Held messages are not part of it: they were never
/// answered, so their senders retransmit them (ORD-7).
struct session_snapshot {
  uuid id;
  session_role role;
  std::string peer_id;
  crypto::public_key peer_key;
  std::string version;
  crypto::secret<32> send_key, receive_key;  ///< unused (zero) for 1.0
  std::uint64_t next_send = 1;               ///< the next sequence number this side sends
  std::uint64_t next_expected = 1;           ///< the next sequence number to deliver
  sys_milliseconds ready_at{}, last_activity{};
};

/// One session, seen from one side. Keys are per direction: send_key seals what this side sends,
/// receive_key opens what the peer sends (ENC-1). For a 1.0 session both are unused and messages
/// are signed with the identity keys instead (SES-11).
class session {
 public:
  session(uuid id, session_role role, std::string peer_id, crypto::public_key peer_key, session_options opt = {})
      : id_(id), role_(role), peer_id_(std::move(peer_id)), peer_key_(peer_key), opt_(opt), received_(opt.ordering) {}

  const uuid& id() const noexcept { return id_; }
  session_role role() const noexcept { return role_; }
  session_state state() const noexcept { return state_; }
  const std::string& peer_id() const noexcept { return peer_id_; }
  const crypto::public_key& peer_key() const noexcept { return peer_key_; }
  const std::string& version() const noexcept { return version_; }
  bool encrypted() const noexcept { return version_ == version_1_1; }
  std::uint64_t sent() const noexcept { return next_send_ - 1; }
  sys_milliseconds last_activity() const noexcept { return last_activity_; }
  sequencer<held_message>& received() noexcept { return received_; }

  /// The persistent part of a ready session; nothing for a session in any other state.
  std::optional<session_snapshot> snapshot() const {
    if (state_ != session_state::ready) return std::nullopt;
    return session_snapshot{id_, role_, peer_id_, peer_key_, version_, send_key_, receive_key_,
                            next_send_, received_.next_expected(), ready_at_, last_activity_};
  }

  /// A ready session rebuilt from its snapshot (after a restart).
  static session restore(const session_snapshot& s, session_options opt = {}) {
    session out(s.id, s.role, s.peer_id, s.peer_key, opt);
    out.state_ = session_state::ready;
    out.version_ = s.version;
    out.send_key_ = s.send_key;
    out.receive_key_ = s.receive_key;
    out.key_contexts();
    out.next_send_ = s.next_send;
    out.received_ = sequencer<held_message>(opt.ordering, s.next_expected);
    out.ready_at_ = s.ready_at;
    out.last_activity_ = s.last_activity;
    return out;
  }

  /// Applies `event` by the table: INVALID_STATE and no change when there is no row (SES-1).
  /// Entering `failed` records why (`reason`, or the event's own code); leaving a handshake state
  /// drops the pending handshake; entering a terminal state wipes the keys (ENC-7).
  [[nodiscard]] result<void> apply(session_event event, sys_milliseconds now, std::optional<errc> reason = std::nullopt) {
    const auto to = next_state(role_, state_, event);
    if (!to) return failure{errc::invalid_state, "no transition for this event in state " + std::string(to_string(state_))};
    if (*to == session_state::ready && state_ != session_state::ready) ready_at_ = now;
    if (event == session_event::message || *to == session_state::ready) last_activity_ = now;
    state_ = *to;
    if (state_ != session_state::await_ack && state_ != session_state::await_confirm) pending_.reset();
    if (state_ == session_state::failed) failure_ = reason.value_or(failure_of(event));
    if (state_ == session_state::expired || state_ == session_state::closed || state_ == session_state::failed) {
      send_key_.wipe();
      receive_key_.wipe();
      send_aead_.wipe();
      receive_aead_.wipe();
      terminal_at_ = now;
    }
    return {};
  }

  /// Starts the handshake: message 1 sent (initiator) or a valid one received (responder), with
  /// what the rest of the handshake needs.
  [[nodiscard]] result<void> start_handshake(pending_handshake p, sys_milliseconds now) {
    auto r = apply(role_ == session_role::initiator ? session_event::send_handshake : session_event::valid_handshake, now);
    if (r) pending_ = std::move(p);
    return r;
  }
  const pending_handshake* pending() const noexcept { return pending_ ? &*pending_ : nullptr; }
  pending_handshake* pending() noexcept { return pending_ ? &*pending_ : nullptr; }

  /// HS-16: true when a handshake is pending and `timeout` has passed since it started.
  bool handshake_due(sys_milliseconds now, std::chrono::milliseconds timeout) const noexcept {
    return pending_ && has_elapsed(pending_->started, timeout, now);
  }

  /// Why a failed session failed (CHALLENGE_EXPIRED after a timeout, for example).
  std::optional<errc> failure_reason() const noexcept { return failure_; }

  /// Initiator: message 2 names the session (HS-4) and the responder's key. Only while the
  /// handshake is pending.
  void bind_responder(const uuid& id, const crypto::public_key& key) {
    if (role_ == session_role::initiator && state_ == session_state::await_ack) {
      id_ = id;
      peer_key_ = key;
    }
  }

  /// Installs the negotiated version and, for 1.1, the keys for each direction (from HS-11:
  /// the initiator sends with k_i2r, the responder with k_r2i).
  void set_keys(std::string version, const crypto::secret<32>* k_i2r, const crypto::secret<32>* k_r2i) {
    version_ = std::move(version);
    if (k_i2r && k_r2i) {
      send_key_ = role_ == session_role::initiator ? *k_i2r : *k_r2i;
      receive_key_ = role_ == session_role::initiator ? *k_r2i : *k_i2r;
      key_contexts();
    }
  }

  /// Moves a ready session to expired when its idle time, lifetime or message count is used up
  /// (SES-4..SES-6). Returns true when it expired now.
  bool expire_if_due(sys_milliseconds now) {
    if (state_ != session_state::ready) return false;
    const bool due = has_elapsed(last_activity_, opt_.idle_ttl, now) || has_elapsed(ready_at_, opt_.lifetime, now) ||
                     sent() >= opt_.max_messages || received_.next_expected() - 1 >= opt_.max_messages;
    return due && apply(session_event::expire, now).ok();
  }

  /// The earliest time expire_if_due() or the sequencer's gap timer needs attention.
  std::optional<sys_milliseconds> next_deadline() const {
    if (state_ != session_state::ready) return std::nullopt;
    auto d = std::min(ends_at(last_activity_, opt_.idle_ttl), ends_at(ready_at_, opt_.lifetime));
    if (const auto gap = received_.next_deadline()) d = std::min(d, *gap);
    return d;
  }

  /// When a terminal session may be forgotten (SES-10).
  std::optional<sys_milliseconds> terminal_since() const noexcept { return terminal_at_; }

  /// PROC-4 for an inbound session message, before authentication; changes nothing.
  /// SESSION_NOT_FOUND (closed or failed; SES-9), ENCRYPTION_NOT_READY (SES-3), SESSION_EXPIRED
  /// (SES-7), INVALID_VERSION (VER-10), then the sequencer's REPLAY_DETECTED / SEQUENCE_ERROR.
  result<void> check_inbound(const envelope& e) const {
    switch (state_) {
      case session_state::ready: break;
      case session_state::await_ack:
      case session_state::await_confirm: return failure{errc::encryption_not_ready, "the session is not confirmed yet"};
      case session_state::expired: return failure{errc::session_expired, "the session expired; run a new handshake"};
      default: return failure{errc::session_not_found, "the session is closed or failed"};
    }
    if (e.version != version_) return failure{errc::invalid_version, "the message's version is not the session's"};
    if (const auto ec = received_.check(*e.sequence_num))
      return failure{to_errc(ec), ec == errc::replay_detected ? "sequence number already used"
                                                             : "sequence number outside the ordering window"};
    return {};
  }

  /// Authenticates an inbound session message and returns its payload, changing nothing:
  /// DECRYPTION_FAILED for a bad tag (ENC-5), INVALID_SIGNATURE for a bad 1.0 signature (SES-11),
  /// INVALID_FORMAT for a 1.1 message that is not sealed or a plaintext that is not an object.
  result<boost::json::object> open_inbound(const envelope& e) const {
    if (encrypted()) {
      if (!e.encrypted_payload) return failure{errc::invalid_format, "a v1.1 session message must be sealed"};
      auto opened = open(e, receive_aead_);
      if (!opened && PEERPROTO_FAULT(open_with_either_key)) return open(e, send_aead_);  // takes our own direction's key too
      return opened;
    }
    if (!e.payload) return failure{errc::invalid_format, "a v1.0 session message carries a payload"};
    if (!verify_signature(e, peer_key_)) return failure{errc::invalid_signature, "the signature does not verify"};
    return *e.payload;
  }

  /// Fills in the session members of an outbound envelope (session_id, the next sequence number,
  /// the session's version) and seals `payload` for a 1.1 session; for 1.0 the payload is set and
  /// the caller signs. SESSION_EXPIRED when the session is not ready or the count is used up
  /// (SES-6); never reuses a sequence number (ENC-4).
  result<void> seal_outbound(envelope& e, const boost::json::object& payload, sys_milliseconds now) {
    if (state_ != session_state::ready)
      return state_ == session_state::expired ? failure{errc::session_expired, "the session expired"}
                                              : failure{errc::session_not_found, "the session is not open"};
    if (sent() >= opt_.max_messages) {
      if (auto r = apply(session_event::expire, now); !r) return r;
      return failure{errc::session_expired, "the session's message count is used up"};
    }
    e.version = version_;
    e.session_id = id_;
    e.sequence_num = PEERPROTO_FAULT(reuse_reply_sequence) ? next_send_ : next_send_++;
    if (encrypted()) {
      const auto& key = PEERPROTO_FAULT(same_key_both_directions) ? receive_aead_ : send_aead_;
      if (const auto ec = seal(e, key, payload))
        return to_failure(ec, "sealing failed: ");
    } else {
      e.payload = payload;
      e.encrypted_payload.reset();
    }
    return apply(session_event::message, now);
  }

 private:
  // The keyed AEAD of each direction, made once per key (crypto::aes_gcm_key).
  void key_contexts() {
    send_aead_ = crypto::aes_gcm_key(send_key_.view());
    receive_aead_ = crypto::aes_gcm_key(receive_key_.view());
  }

  uuid id_;
  session_role role_;
  std::string peer_id_;
  crypto::public_key peer_key_;
  session_options opt_;
  session_state state_ = session_state::idle;
  std::string version_;
  crypto::secret<32> send_key_, receive_key_;
  crypto::aes_gcm_key send_aead_, receive_aead_;
  std::uint64_t next_send_ = 1;
  sequencer<held_message> received_;
  sys_milliseconds ready_at_{}, last_activity_{};
  std::optional<sys_milliseconds> terminal_at_;
  std::optional<pending_handshake> pending_;
  std::optional<errc> failure_;
};

}  // namespace peerproto
