// engine: the handshake (SPEC §8), both roles. Each handshake is a session from its first message
// on, and what it needs until it ends is the session's pending_handshake.
#pragma once

#include <exception>
#include <iterator>

namespace peerproto {

// HS-10, HS-11, HS-14: for 1.1, derives the direction keys from our ephemeral secret and the
// peer's ephemeral key over the transcript, installs them with the version, and destroys the
// ephemeral secret; for 1.0, installs the version only. Returns the key confirmation of 1.1
// (HS-12): the initiator sends it, the responder expects it.
inline result<std::optional<crypto::digest>> engine::install_keys(session& s, const std::string& version,
                                                                 pending_handshake& p,
                                                                 const std::optional<crypto::public_key>& peer_ephemeral,
                                                                 std::string_view msg1, std::string_view msg2) {
  if (version != version_1_1) {
    s.set_keys(version, nullptr, nullptr);
    return std::optional<crypto::digest>();
  }
  if (!peer_ephemeral || !p.ephemeral) return failure{errc::challenge_invalid, "an encrypted session needs both ephemeral keys"};
  auto keys = derive_session_keys(p.ephemeral->private_key(), *peer_ephemeral, msg1, msg2);
  p.ephemeral.reset();  // HS-14: the keys exist (or never will), the secret is no longer needed
  if (!keys) return keys.error();
  s.set_keys(version, &keys->k_i2r, &keys->k_r2i);
  return std::optional(key_confirmation(keys->k_confirm));
}

// HS-16: a pending handshake past its timeout fails with CHALLENGE_EXPIRED, in either role.
inline bool engine::expire_pending(session& s, sys_milliseconds now) {
  if (!s.handshake_due(now, opt_.handshake_timeout) || PEERPROTO_FAULT(accept_expired_handshake)) return false;
  return s.apply(session_event::pending_timeout, now).ok();
}

// Every refused handshake message leaves an audit record (§20): a refusal with an event of its
// own (rate_limited, key_refused, auth_failure, replay_detected, handshake_failed) keeps it; any
// other is recorded as handshake_failed with its code.
inline outcome engine::audit_refusal(request_context& ctx, const envelope& e, outcome o) {
  if (!o.error || !o.audit.empty()) return o;
  ctx.audit.clear();
  audit(ctx, audit_event::handshake_failed, e, *o.error, "refused with " + std::string(wire_name(*o.error)));
  o.audit = std::move(ctx.audit);
  return o;
}

// HS-27: before one more session of this peer becomes ready, its least recently active ready
// session is closed when the peer already has as many as the limit allows.
inline void engine::make_room_for_session(request_context& ctx, const envelope& e) {
  session* oldest = nullptr;
  std::size_t ready = 0;
  for (auto& [id, s] : sessions_)
    if (s.peer_id() == e.sender_id && s.state() == session_state::ready) {
      ++ready;
      if (!oldest || s.last_activity() < oldest->last_activity()) oldest = &s;
    }
  if (ready < opt_.max_sessions_per_peer || !oldest) return;
  if (!oldest->apply(session_event::close, ctx.now)) return;
  changed_.insert(oldest->id());
  auto closed_ctx = context_for(ctx.remote, ctx.now);
  closed_ctx.sender_id = e.sender_id;
  closed_ctx.session_id = format_uuid(oldest->id());
  audit(closed_ctx, audit_event::session_closed, std::nullopt, std::nullopt, "closed to make room for a newer session (HS-27)");
  std::move(closed_ctx.audit.begin(), closed_ctx.audit.end(), std::back_inserter(ctx.audit));
}

// ------------------------------------------------------------ initiator

inline std::string engine::begin_handshake(std::string_view peer_id, sys_milliseconds now) {
  static_assert(next_state(session_role::initiator, session_state::idle, session_event::send_handshake) ==
                session_state::await_ack);
  now = monotonic(now);
  pending_handshake p;
  p.started = now;
  p.ephemeral.emplace(draw<32>(rng_));
  hello h;
  h.identity_key = identity_->public_key_bytes();
  h.supported_versions = opt_.versions;
  h.cipher_suites = opt_.suites;
  if (!h.cipher_suites.empty()) h.ephemeral_key = p.ephemeral->public_key_bytes();
  h.challenge = draw<32>(rng_);
  const auto e = signed_envelope(opt_.versions.front(), msg::handshake, peer_id, to_json(h), now);
  p.msg1 = serialize(e);
  std::string text = p.msg1;
  session s(uuid{}, session_role::initiator, std::string(peer_id), {}, opt_.session);
  if (!s.start_handshake(std::move(p), now)) std::terminate();  // a new session is idle: see the static_assert
  initiating_.emplace(e.nonce, std::move(s));
  return text;
}

inline result<uuid> engine::session_ready(const result<std::vector<accepted_reply>>& ready) {
  if (!ready) return ready.error();
  if (ready->size() != 1 || ready->front().reply.msg_type != msg::ack || !ready->front().reply.session_id)
    return failure{errc::invalid_format, "the answer to handshake_confirm is not the session_ready ack"};
  return *ready->front().reply.session_id;
}

inline result<std::string> engine::finish_handshake(std::string_view msg2_text, sys_milliseconds now) {
  now = monotonic(now);
  auto e = parse_envelope(msg2_text, opt_.json);
  if (!e) return e.error();
  if (e->msg_type == msg::error) return error_of(*e);
  if (e->msg_type != msg::handshake_ack || !e->payload || e->recipient_id != opt_.self_id)
    return failure{errc::invalid_format, "expected a handshake_ack addressed to this node"};
  auto ack = parse_hello_ack(*e->payload);
  if (!ack) return ack.error();
  const auto it = initiating_.find(ack->in_reply_to);
  if (it == initiating_.end()) return failure{errc::session_not_found, "no handshake of ours matches in_reply_to"};
  session& s = it->second;
  if (s.state() == session_state::failed)  // HS-22: the first ack decided
    return failure{s.failure_reason().value_or(errc::invalid_state), "this handshake already failed"};
  if (expire_pending(s, now)) return failure{errc::challenge_expired, "the handshake expired"};
  auto msg3 = confirm_ack(s, *e, *ack, now);
  if (!msg3) {
    if (auto failed = s.apply(session_event::invalid_ack, now, msg3.code()); !failed) return failed.error();
    return msg3;
  }
  auto node = initiating_.extract(it);
  sessions_.emplace(ack->session_id, std::move(node.mapped()));
  changed_.insert(ack->session_id);
  return msg3;
}

// HS-7, HS-9, VER-5, VER-6 on our side: checks message 2 against the handshake we started, then
// makes the session ready and returns message 3.
inline result<std::string> engine::confirm_ack(session& s, const envelope& e, const hello_ack& ack, sys_milliseconds now) {
  pending_handshake& p = *s.pending();
  if (e.sender_id != s.peer_id()) return failure{errc::unknown_sender, "the reply comes from another entity"};
  if (!verify_signature(e, ack.identity_key) && !PEERPROTO_FAULT(initiator_accepts_bad_ack_signature))
    return failure{errc::invalid_signature, "handshake_ack signature does not verify"};
  if (!trust_.acceptable(e.sender_id, ack.identity_key, now))
    return failure{errc::unknown_sender, "the peer's key is not acceptable under the trust policy"};
  if (ack.challenge_response != crypto::sha256(as_bytes(p.msg1)) && !PEERPROTO_FAULT(initiator_skips_challenge_response))
    return failure{errc::challenge_invalid, "challenge_response does not match our handshake"};  // HS-7
  const bool offered = ours(ack.selected_version);
  const bool suite_ok = ack.selected_suite
      ? ack.selected_version == version_1_1 && std::find(opt_.suites.begin(), opt_.suites.end(), *ack.selected_suite) != opt_.suites.end()
      : ack.selected_version == version_1_0;
  if ((!offered && !PEERPROTO_FAULT(initiator_accepts_unoffered_version)) || (offered && !suite_ok && !PEERPROTO_FAULT(initiator_accepts_unoffered_suite)))
    return failure{errc::invalid_version, "the responder selected a version or suite we did not offer"};
  if (opt_.require_encryption && !ack.selected_suite) return failure{errc::encryption_required, "the responder refused encryption"};
  if (sessions_.size() >= opt_.max_sessions_total) return failure{errc::rate_limited, "too many sessions"};
  if (sessions_.contains(ack.session_id)) return failure{errc::invalid_state, "session id already in use"};
  if (auto bound = trust_.accept_handshake_key(e.sender_id, ack.identity_key, now); !bound) return bound.error();

  const std::string msg2 = serialize(e);
  s.bind_responder(ack.session_id, ack.identity_key);
  auto confirmation = install_keys(s, ack.selected_version, p, ack.ephemeral_key, p.msg1, msg2);
  if (!confirmation) return confirmation.error();
  hello_confirm c{ack.session_id, crypto::sha256(as_bytes(PEERPROTO_FAULT(initiator_wrong_confirm_response) ? p.msg1 : msg2)), *confirmation};
  if (PEERPROTO_FAULT(initiator_wrong_key_confirmation) && c.key_confirmation) (*c.key_confirmation)[0] ^= 1;
  if (auto ready = s.apply(session_event::valid_ack, now); !ready) return ready.error();
  return serialize(signed_envelope(ack.selected_version, msg::handshake_confirm, e.sender_id, to_json(c), now));
}

// ------------------------------------------------------------ responder

inline outcome engine::handle_handshake(request_context& ctx, const envelope& e) {
  auto h = parse_hello(*e.payload);
  if (!h) return error_reply(ctx, h.error());
  auto neg = negotiate(*h, opt_.versions, opt_.suites, opt_.require_encryption);
  if (!neg) return error_reply(ctx, neg.error());
  if (!trust_.acceptable(e.sender_id, h->identity_key, ctx.now))
    return auth_failed(ctx, e, {errc::unknown_sender, "the sender's key is not acceptable under the trust policy"});
  if (auto o = authenticate_signed(ctx, e, h->identity_key)) return std::move(*o);
  if (auto o = after_authentication(ctx, e)) return std::move(*o);
  std::size_t pending_total = 0, pending_peer = 0, pending_address = 0;
  for (const auto& [id, s] : sessions_)
    if (const auto* p = s.pending()) {
      ++pending_total;
      if (s.peer_id() == e.sender_id) ++pending_peer;
      if (p->remote == ctx.remote) ++pending_address;
    }
  if (pending_peer >= opt_.max_pending_per_peer)
    return error_reply(ctx, {errc::handshake_in_progress, "too many handshakes pending for this sender"});
  if (pending_address >= opt_.max_pending_per_address)
    return limited(ctx, e, opt_.handshake_timeout, "too many handshakes pending from this address");  // HS-26
  if (pending_total >= opt_.max_pending_total || sessions_.size() >= opt_.max_sessions_total)
    return limited(ctx, e, opt_.handshake_timeout, "too many handshakes or sessions on this node");
  const auto bound = trust_.accept_handshake_key(e.sender_id, h->identity_key, ctx.now);
  if (!bound) return auth_failed(ctx, e, bound.error());  // ID-10: the table of bound keys is full
  if (*bound != trust_store::binding::known) audit(ctx, audit_event::key_pinned, e, std::nullopt, "key bound to entity id");

  hello_ack ack;
  ack.in_reply_to = e.nonce;
  ack.session_id = make_uuid_v4(draw<16>(rng_));
  while (sessions_.contains(ack.session_id)) ack.session_id = make_uuid_v4(draw<16>(rng_));
  ack.selected_version = neg->version;
  ack.selected_suite = neg->suite;
  ack.identity_key = identity_->public_key_bytes();
  ack.challenge = draw<32>(rng_);
  const std::string msg1 = serialize(e);
  ack.challenge_response = crypto::sha256(as_bytes(msg1));
  pending_handshake p;
  p.started = ctx.now;
  p.remote = ctx.remote;
  if (neg->suite) {
    p.ephemeral.emplace(draw<32>(rng_));
    ack.ephemeral_key = p.ephemeral->public_key_bytes();
  }
  const std::string msg2 = serialize(signed_envelope(neg->version, msg::handshake_ack, e.sender_id, to_json(ack), ctx.now));
  p.expected_response = crypto::sha256(as_bytes(msg2));

  session s(ack.session_id, session_role::responder, e.sender_id, h->identity_key, opt_.session);
  auto confirmation = install_keys(s, neg->version, p, h->ephemeral_key, msg1, msg2);
  if (!confirmation) return auth_failed(ctx, e, confirmation.error());
  p.confirmation = *confirmation;
  if (auto started = s.start_handshake(std::move(p), ctx.now); !started) return error_reply(ctx, started.error());
  sessions_.emplace(ack.session_id, std::move(s));
  return outcome::answer(msg2, ctx.nonce_hex, std::move(ctx.audit));
}

inline outcome engine::handle_confirm(request_context& ctx, const envelope& e) {
  auto c = parse_hello_confirm(*e.payload);
  if (!c) return error_reply(ctx, c.error());
  ctx.session_id = format_uuid(c->session_id);
  const auto it = sessions_.find(c->session_id);
  if (it == sessions_.end() || it->second.peer_id() != e.sender_id || it->second.role() != session_role::responder)
    return error_reply(ctx, {errc::session_not_found, "no pending handshake with this session id"});  // HS-20, HS-21
  session& s = it->second;
  if (s.state() == session_state::ready) return error_reply(ctx, {errc::replay_detected, "the session is already confirmed"});  // HS-19
  changed_.insert(s.id());
  // HS-16: a message 3 after the timeout is CHALLENGE_EXPIRED, whether or not poll() has
  // already failed the handshake; any other failed handshake stays failed (HS-22).
  if (s.failure_reason() == errc::challenge_expired) return error_reply(ctx, {errc::challenge_expired, "the pending handshake expired"});
  if (s.state() != session_state::await_confirm || !s.pending())
    return error_reply(ctx, {errc::session_not_found, "no pending handshake with this session id"});  // HS-22
  if (expire_pending(s, ctx.now)) {
    audit(ctx, audit_event::handshake_failed, e, errc::challenge_expired, "confirmation arrived too late");
    return error_reply(ctx, {errc::challenge_expired, "the pending handshake expired"});
  }
  if (auto o = authenticate_signed(ctx, e, s.peer_key())) return std::move(*o);
  if (auto o = after_authentication(ctx, e)) return std::move(*o);
  // KR-7: a key revoked (or rotated past its grace period) since message 1 opens no session.
  if (!trust_.acceptable(e.sender_id, s.peer_key(), ctx.now))
    return auth_failed(ctx, e, {errc::unknown_sender, "the sender's key is no longer acceptable (rotated or revoked)"});
  const pending_handshake& p = *s.pending();
  // HS-3: absent where the table requires it is MISSING_FIELDS; HS-13: present in 1.0 is INVALID_FORMAT.
  if (p.confirmation && !c->key_confirmation)
    return error_reply(ctx, {errc::missing_fields, "key_confirmation is required when a suite was selected"});
  if (!p.confirmation && c->key_confirmation)
    return error_reply(ctx, {errc::invalid_format, "key_confirmation is not allowed in a 1.0 handshake"});
  const bool response_ok =
      crypto::equal_constant_time(c->challenge_response, p.expected_response) || PEERPROTO_FAULT(skip_challenge_check);
  const bool confirm_ok = !c->key_confirmation || crypto::equal_constant_time(*c->key_confirmation, *p.confirmation);
  if (!response_ok || !confirm_ok) {
    if (auto failed = s.apply(session_event::invalid_confirm, ctx.now); !failed) return error_reply(ctx, failed.error());
    audit(ctx, audit_event::handshake_failed, e, errc::challenge_invalid, "wrong challenge response or key confirmation");
    return auth_failed(ctx, e, {errc::challenge_invalid, "the challenge response or key confirmation is wrong"});
  }
  make_room_for_session(ctx, e);
  if (auto ready = s.apply(session_event::valid_confirm, ctx.now); !ready) return error_reply(ctx, ready.error());
  audit(ctx, audit_event::handshake_succeeded, e, std::nullopt, "version " + s.version());
  audit(ctx, audit_event::session_opened, e, std::nullopt, s.encrypted() ? "encrypted" : "signed plaintext");
  handler_reply r{std::string(msg::ack), {{"status", "session_ready"}}};
  name_request(r, e);
  return session_reply(ctx, s, std::move(r));
}

}  // namespace peerproto
