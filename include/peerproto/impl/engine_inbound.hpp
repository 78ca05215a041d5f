// engine: one inbound envelope in SPEC §17's order (parse, form, rate, version, recipient, clock,
// then the handler of its kind), the authentication steps shared by every kind, and dispatch.
#pragma once

namespace peerproto {

inline outcome engine::handle(std::string_view text, std::string_view remote, sys_milliseconds now,
                              const std::optional<signature_check>& checked) {
  auto ctx = context_for(remote, monotonic(now));
  ctx.checked = checked;
  outcome o = process(ctx, text);
  o.msg_type = std::move(ctx.msg_type);
  return o;
}

inline outcome engine::refuse(const failure& f, std::string_view text, std::string_view remote, sys_milliseconds now,
                              std::optional<std::chrono::seconds> retry_after) {
  auto ctx = context_for(remote, monotonic(now));
  detail::envelope_members_read m;
  (void)detail::read_members(text, opt_.json, m);  // whatever it reads names the reply
  peek(m, ctx);
  outcome o = error_reply(ctx, f, retry_after);
  o.msg_type = std::move(ctx.msg_type);
  return o;
}

inline bool engine::ours(std::string_view version) const {
  return std::find(opt_.versions.begin(), opt_.versions.end(), version) != opt_.versions.end();
}

// ERR-3, ERR-4: what can be read of a request that may not be a valid envelope.
inline void engine::peek(const detail::envelope_members_read& m, request_context& ctx) const {
  if (const auto* s = m.string(detail::m_sender); s && is_entity_id(*s)) ctx.sender_id = *s;
  if (const auto* s = m.string(detail::m_nonce); s && hex_decode_fixed<16>(*s)) ctx.nonce_hex = *s;
  if (const auto* s = m.string(detail::m_version); s && ours(*s)) ctx.version = *s;
  if (const auto* s = m.string(detail::m_msg_type); s && is_msg_type(*s)) ctx.msg_type = *s;
}

// SPEC §17, steps 1 to 3, then the handler of the message's kind.
inline outcome engine::process(request_context& ctx, std::string_view text) {
  const auto now = ctx.now;
  detail::envelope_members_read m;
  const auto read = detail::read_members(text, opt_.json, m);
  peek(m, ctx);
  // ERR-8: an `error` is never answered, not even when it is malformed.
  if (ctx.msg_type == msg::error) {
    auto unanswered = outcome::silent(ctx.nonce_hex, {});
    unanswered.error = errc::unsupported_message_type;  // for metrics; nothing is sent
    return unanswered;
  }
  if (!read) return error_reply(ctx, read.error());
  auto parsed = detail::envelope_from_members(m);
  if (!parsed) return error_reply(ctx, parsed.error());
  envelope& e = *parsed;
  // HS-1, part of the envelope's form (PROC-1): the handshake messages are sessionless.
  if (e.session_id && is_handshake_type(e.msg_type))
    return error_reply(ctx, {errc::invalid_format, "handshake messages carry no session_id or sequence_num (HS-1)"});

  // PROC-2
  if (const auto wait = rate_.admit_unauthenticated(ctx.remote, e.sender_id, now); wait.count() > 0)
    return limited(ctx, e, wait, "too many messages from this address or sender");
  // PROC-3. The envelope parser knows every version of the protocol; this node may support fewer
  // (VER-2: no 1.0 when encryption is required).
  if (e.msg_type != msg::handshake && !ours(e.version))
    return error_reply(ctx, {errc::invalid_version, "version '" + e.version + "' is not supported by this node"});
  if (e.recipient_id != opt_.self_id && !PEERPROTO_FAULT(skip_recipient_check))
    return error_reply(ctx, {errc::invalid_format, "the message is addressed to another node"});
  if (replay_.check_time(e.timestamp, now) && !PEERPROTO_FAULT(skip_timestamp_check)) {
    audit(ctx, audit_event::replay_detected, e, errc::replay_detected, "clock skew");
    return error_reply(ctx, {errc::replay_detected, "the timestamp is outside the allowed clock skew"});
  }
  if (e.session_id) return handle_session_message(ctx, std::move(e));
  if (e.msg_type == msg::handshake) return audit_refusal(ctx, e, handle_handshake(ctx, e));
  if (e.msg_type == msg::handshake_confirm) return audit_refusal(ctx, e, handle_confirm(ctx, e));
  return handle_sessionless(ctx, e);
}

// PROC-5, PROC-6 for a signature-authenticated message: replay cache, then signature.
inline std::optional<outcome> engine::authenticate_signed(request_context& ctx, const envelope& e,
                                                          const crypto::public_key& key) {
  if (replay_.may_have_forgotten(e.timestamp.time) && !PEERPROTO_FAULT(skip_replay_check)) {  // RPL-5
    audit(ctx, audit_event::replay_detected, e, errc::replay_detected, "timestamp below the replay floor");
    return error_reply(ctx, {errc::replay_detected, "the timestamp is older than the node's replay cache still covers "
                                                    "(its clock was later before)"});
  }
  if (replay_.check(e.sender_id, e.nonce, e.timestamp.time, ctx.now) && !PEERPROTO_FAULT(skip_replay_check)) {
    audit(ctx, audit_event::replay_detected, e, errc::replay_detected, "nonce reused");
    return error_reply(ctx, {errc::replay_detected, "this nonce was already used by the sender"});
  }
  const bool valid = ctx.checked && ctx.checked->key == key ? ctx.checked->valid : verify_signature(e, key);
  if (!valid && !PEERPROTO_FAULT(accept_any_signature))
    return auth_failed(ctx, e, {errc::invalid_signature, "the signature does not verify"});
  if (replay_.insert(e.sender_id, e.nonce, e.timestamp.time, ctx.now))
    return limited(ctx, e, replay_.retry_after(ctx.now), "the replay cache is full");
  rate_.authenticated(e.sender_id);
  return std::nullopt;
}

// PROC-7's first steps, common to every authenticated message.
inline std::optional<outcome> engine::after_authentication(request_context& ctx, const envelope& e) {
  if (const auto wait = rate_.admit_authenticated(e.sender_id, e.msg_type, ctx.now);
      wait.count() > 0 && !PEERPROTO_FAULT(no_rate_limit))
    return limited(ctx, e, wait, "too many messages of this class from this sender");
  if (opt_.require_encryption && !e.is_sealed_session_message() && e.msg_type != msg::handshake &&
      e.msg_type != msg::handshake_confirm)
    return error_reply(ctx, {errc::encryption_required, "this node accepts only encrypted session messages"});
  return std::nullopt;
}

// MSG-1, MSG-3, CHK-7: what a delivered message's handler answers, before it is wrapped.
inline result<handler_reply> engine::dispatch(const envelope& e, const boost::json::object& payload,
                                              std::string_view remote, sys_milliseconds now) {
  if (e.msg_type == msg::chunk) {
    auto c = parse_chunk(payload, opt_.chunks);
    if (!c) return c.error();
    if (!handlers_.find(c->original_msg_type))
      return failure{errc::unsupported_message_type, "no handler for '" + c->original_msg_type + "'"};  // CHK-8
    const uuid transfer_id = c->transfer_id;
    auto out = reassembler_.add(e.sender_id, std::move(*c), now);
    if (!out) return out.error();
    if (out->what != reassembler::outcome::kind::complete)
      return handler_reply{"ack", {{"acked_nonce", hex_encode(e.nonce)}, {"status", "chunk_received"}}};
    const handler* h = handlers_.find(out->original_msg_type);
    if (!h) return failure{errc::unsupported_message_type, "no handler for '" + out->original_msg_type + "'"};
    auto reply = (*h)(handler_request{e, out->original_msg_type, *out->payload, remote, now});
    if (!reply) reassembler_.forget_completed(e.sender_id, transfer_id);  // not delivered: CHK-16 may send it again
    return reply;
  }
  if (is_reply_type(e.msg_type)) return failure{errc::unsupported_message_type, "'" + e.msg_type + "' is a reply, not a request"};
  const handler* h = handlers_.find(e.msg_type);
  if (!h) return failure{errc::unsupported_message_type, "no handler is registered for '" + e.msg_type + "'"};
  return (*h)(handler_request{e, e.msg_type, payload, remote, now});
}

inline outcome engine::handle_sessionless(request_context& ctx, const envelope& e) {
  auto key = trust_.key_for(e.sender_id);
  // KR-6: while a rotation's grace period lasts, the replaced key still signs.
  if (const auto replaced = trust_.grace_key(e.sender_id, ctx.now); replaced && verify_signature(e, *replaced)) key = replaced;
  if (!key) return auth_failed(ctx, e, {errc::unknown_sender, "no key is known for this sender; run a handshake first"});
  if (auto o = authenticate_signed(ctx, e, *key)) return std::move(*o);
  if (auto o = after_authentication(ctx, e)) return std::move(*o);
  bool revoked = false;
  auto r = e.msg_type == msg::key_rotation ? follow_rotation(ctx, e, *e.payload, revoked) : dispatch(e, *e.payload, ctx.remote, ctx.now);
  if (!r) return error_reply(ctx, r.error());
  name_request(*r, e);
  const auto reply = signed_envelope(e.version, r->msg_type, e.sender_id, std::move(r->payload), ctx.now);
  if (revoked) close_sessions_of(ctx, e.sender_id);  // KR-7
  return outcome::answer(serialize(reply), ctx.nonce_hex, std::move(ctx.audit));
}

}  // namespace peerproto
