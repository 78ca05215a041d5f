// engine: session messages (SPEC §10, §11) in both directions: received ones through the session's
// checks, opening and ordering window to their handler; sent ones sealed or signed; chunking;
// replies to our own requests.
#pragma once

namespace peerproto {

// The session a session message names, when it belongs to its sender (SESSION_NOT_FOUND otherwise).
inline session* engine::session_of(const envelope& e) {
  const auto it = sessions_.find(*e.session_id);
  if (it == sessions_.end() || it->second.peer_id() != e.sender_id) return nullptr;
  return &it->second;
}

// The first steps of every session message, a request or a reply to one of ours: the sender's own
// session (SESSION_NOT_FOUND), expired once due (SES-4, SES-5), then ready for this message's
// version and sequence number (ORD-4, ORD-5). Audited into `ctx` where one is given.
inline result<session*> engine::session_for(const envelope& e, sys_milliseconds now, request_context* ctx) {
  session* s = session_of(e);
  if (!s) return failure{errc::session_not_found, "no such session for this sender"};
  changed_.insert(s->id());
  if (s->expire_if_due(now) && ctx) audit(*ctx, audit_event::session_expired, e, errc::session_expired, "session expired");
  if (auto checked = s->check_inbound(e); !checked) {
    if (ctx && checked.code() == errc::replay_detected)
      audit(*ctx, audit_event::replay_detected, e, checked.code(), "sequence number reused");
    return checked.error();
  }
  return s;
}

inline outcome engine::handle_session_message(request_context& ctx, envelope e) {
  ctx.session_id = format_uuid(*e.session_id);
  auto found = session_for(e, ctx.now, &ctx);
  if (!found) return error_reply(ctx, found.error());
  session& s = **found;
  if (!s.encrypted()) {
    if (auto o = authenticate_signed(ctx, e, s.peer_key())) return std::move(*o);  // SES-11, RPL-2
  }
  auto payload = s.open_inbound(e);
  if (!payload) {
    if (payload.code() == errc::decryption_failed) return auth_failed(ctx, e, payload.error());
    return error_reply(ctx, payload.error());
  }
  if (s.encrypted()) rate_.authenticated(e.sender_id);
  if (auto o = after_authentication(ctx, e)) return std::move(*o);
  if (PEERPROTO_FAULT(handler_lookup_before_ordering) && !is_core_type(e.msg_type) &&
      !handlers_.find(e.msg_type))
    return error_reply(ctx, {errc::unsupported_message_type, "no handler is registered for '" + e.msg_type + "'"});
  const auto seq = *e.sequence_num;
  const std::string request_nonce = ctx.nonce_hex;
  auto delivered = s.received().accept(seq, held_message{std::move(e), std::move(*payload), ctx.remote}, ctx.now);
  if (delivered.empty()) return outcome::held(request_nonce, std::move(ctx.audit));
  outcome first;
  for (std::size_t i = 0; i < delivered.size(); ++i) {
    auto& h = delivered[i];
    auto hctx = context_for(h.remote, ctx.now);
    hctx.sender_id = h.request.sender_id;
    hctx.nonce_hex = hex_encode(h.request.nonce);
    hctx.session_id = ctx.session_id;
    hctx.version = s.version();
    hctx.msg_type = h.request.msg_type;
    if (i == 0) hctx.audit = std::move(ctx.audit);
    outcome o = deliver(hctx, s, h);
    o.msg_type = h.request.msg_type;
    if (i == 0) first = std::move(o);
    else first.released.push_back(std::move(o));
    if (s.state() != session_state::ready) break;  // closed by session_close
  }
  return first;
}

// Runs a delivered session message through its handler and wraps the reply in the session.
inline outcome engine::deliver(request_context& ctx, session& s, const held_message& h) {
  if (auto counted = s.apply(session_event::message, ctx.now); !counted) return error_reply(ctx, counted.error());
  if (h.request.msg_type == msg::session_close) {
    if (auto bad = payload_form_error_of(msg::session_close, h.payload)) return error_reply(ctx, {errc::invalid_format, std::move(bad->message)});
    auto out = session_reply(ctx, s, handler_reply{std::string(msg::ack), {{"acked_nonce", hex_encode(h.request.nonce)}, {"status", "closed"}}});
    if (!PEERPROTO_FAULT(ignore_session_close))
      if (auto closed = s.apply(session_event::close, ctx.now); !closed) return error_reply(ctx, closed.error());  // SES-8
    audit(ctx, audit_event::session_closed, h.request, std::nullopt, "closed by the peer");
    out.audit = std::move(ctx.audit);
    return out;
  }
  bool revoked = false;
  auto r = h.request.msg_type == msg::key_rotation ? follow_rotation(ctx, h.request, h.payload, revoked)
                                                    : dispatch(h.request, h.payload, h.remote, ctx.now);
  if (!r) return error_reply(ctx, r.error());
  name_request(*r, h.request);
  auto out = session_reply(ctx, s, std::move(*r));
  if (revoked) {  // KR-7: the ack above is the session's last message
    ctx.audit.clear();  // moved into `out`
    close_sessions_of(ctx, h.request.sender_id);
    out.audit.insert(out.audit.end(), ctx.audit.begin(), ctx.audit.end());
  }
  return out;
}

inline outcome engine::session_reply(request_context& ctx, session& s, handler_reply r) {
  auto sealed = seal_in(s, r.msg_type, r.payload, ctx.now);
  if (!sealed) return error_reply(ctx, {sealed.code(), "the session cannot send: " + sealed.error().message});
  return outcome::answer(std::move(*sealed), ctx.nonce_hex, std::move(ctx.audit));
}

// The one way a message of ours leaves a session, a reply or one we send: the session's members
// filled in, then sealed (1.1) or signed (1.0).
inline result<std::string> engine::seal_in(session& s, std::string_view msg_type, const boost::json::object& payload,
                                           sys_milliseconds now) {
  changed_.insert(s.id());
  auto e = make_header(s.version(), msg_type, opt_.self_id, s.peer_id(), now, rng_);
  if (auto sealed = s.seal_outbound(e, payload, now); !sealed) return sealed.error();
  if (!s.encrypted()) sign(e, *identity_);
  return serialize(e);
}

inline result<std::string> engine::send(const uuid& session_id, std::string_view msg_type, const boost::json::object& payload,
                                        sys_milliseconds now) {
  now = monotonic(now);
  const auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return failure{errc::session_not_found, "no such session"};
  session& s = it->second;
  auto text = seal_in(s, msg_type, payload, now);
  // SES-8: the sender's session is closed once its session_close is sealed (keys wiped, ENC-7).
  if (text && msg_type == msg::session_close)
    if (auto closed = s.apply(session_event::close, now); !closed) return closed.error();
  return text;
}

inline result<std::vector<boost::json::object>> engine::chunk_payloads(std::string_view msg_type,
                                                                       const boost::json::object& payload,
                                                                       std::size_t chunk_size) {
  auto chunks = split(payload, msg_type, chunk_size, make_uuid_v4(draw<16>(rng_)), opt_.chunks);
  if (!chunks) return chunks.error();
  std::vector<boost::json::object> out;
  out.reserve(chunks->size());
  for (const auto& c : *chunks) out.push_back(to_json(c));
  return out;
}

inline result<std::vector<accepted_reply>> engine::accept_reply(std::string_view text, sys_milliseconds now) {
  now = monotonic(now);
  auto e = parse_envelope(text, opt_.json);
  if (!e) return e.error();
  if (e->recipient_id != opt_.self_id) return failure{errc::invalid_format, "the reply is addressed to another node"};
  if (!e->session_id) {
    const auto key = trust_.key_for(e->sender_id);
    if (!key) return failure{errc::unknown_sender, "no key is known for the replying node"};
    if (!verify_signature(*e, *key)) return failure{errc::invalid_signature, "the reply's signature does not verify"};
    if (e->msg_type == msg::error) return error_of(*e);
    return std::vector<accepted_reply>{{*e, *e->payload}};
  }
  auto found = session_for(*e, now, nullptr);
  if (!found) return found.error();
  session& s = **found;
  auto payload = s.open_inbound(*e);
  if (!payload) return payload.error();
  std::vector<accepted_reply> out;
  for (auto& h : s.received().accept(*e->sequence_num, held_message{*e, std::move(*payload), {}}, now)) {
    if (auto counted = s.apply(session_event::message, now); !counted) return counted.error();
    out.push_back({std::move(h.request), std::move(h.payload)});
  }
  return out;
}

}  // namespace peerproto
