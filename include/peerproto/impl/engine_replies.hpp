// engine: building what goes back: signed envelopes, `error` replies (SPEC §14), the replies of
// refusals that also feed back-off and audit, and audit records (§20).
#pragma once

namespace peerproto {

inline void engine::audit(request_context& ctx, audit_event ev, const std::optional<envelope>& e, std::optional<errc> code,
                          std::string detail) {
  const auto known = [](const std::string& s) { return s.empty() ? std::nullopt : std::optional(s); };
  ctx.audit.push_back(audit_record{ctx.now, ev, known(ctx.remote), known(ctx.sender_id), known(ctx.session_id),
                                   e ? std::optional(e->msg_type) : std::nullopt, known(ctx.nonce_hex), code,
                                   std::move(detail), std::nullopt});
}

// A sessionless envelope from this node to `to`, signed (SIG-6).
inline envelope engine::signed_envelope(std::string_view version, std::string_view msg_type, std::string_view to,
                                        boost::json::object payload, sys_milliseconds now) {
  auto e = make_header(version, msg_type, opt_.self_id, to, now, rng_);
  e.payload = std::move(payload);
  sign(e, *identity_);
  return e;
}

// ERR-1..ERR-5: a signed, sessionless error envelope.
inline outcome engine::error_reply(request_context& ctx, const failure& f, std::optional<std::chrono::seconds> retry) {
  const std::string version = ctx.version.empty() ? opt_.versions.front() : ctx.version;
  boost::json::object p{{"error_code", wire_name(f.code)},
                        {"error_message", f.message.substr(0, limits::max_error_message_chars)},
                        {"original_nonce", ctx.nonce_hex.empty() ? boost::json::value(nullptr) : boost::json::value(ctx.nonce_hex)}};
  if (f.code == errc::rate_limited) p["retry_after"] = (retry ? *retry : std::chrono::seconds(1)).count();
  if (f.code == errc::invalid_version && !PEERPROTO_FAULT(no_supported_versions))
    p["supported_versions"] = boost::json::array(opt_.versions.begin(), opt_.versions.end());
  auto e = signed_envelope(version, msg::error, ctx.sender_id.empty() ? "unknown" : ctx.sender_id, std::move(p), ctx.now);
  auto o = outcome::answer(serialize(e), ctx.nonce_hex, std::move(ctx.audit));
  o.error = f.code;
  if (f.code == errc::rate_limited) o.retry_after = retry ? *retry : std::chrono::seconds(1);
  if (f.code == errc::unsupported_message_type && is_reply_type(ctx.msg_type)) o.what = outcome::kind::answer_over_http;  // MSG-3
  return o;
}

inline outcome engine::limited(request_context& ctx, const envelope& e, std::chrono::milliseconds wait, const char* why) {
  audit(ctx, audit_event::rate_limited, e, errc::rate_limited, why);
  return error_reply(ctx, {errc::rate_limited, why}, retry_after_seconds(wait));
}

// An authentication failure: the reply, the back-off of RL-5, and the audit record.
inline outcome engine::auth_failed(request_context& ctx, const envelope& e, const failure& f) {
  if (!PEERPROTO_FAULT(no_backoff)) rate_.authentication_failed(ctx.remote, e.sender_id, ctx.now);
  audit(ctx, f.code == errc::unknown_sender ? audit_event::key_refused : audit_event::auth_failure, e, f.code, f.message);
  return error_reply(ctx, f);
}

// MSG-2: the reply names the request.
inline void engine::name_request(handler_reply& r, const envelope& request) {
  if (r.msg_type == msg::ack) r.payload["acked_nonce"] = hex_encode(request.nonce);
  else r.payload["in_reply_to"] = hex_encode(request.nonce);
}

// The failure an `error` envelope we received reports.
inline failure engine::error_of(const envelope& e) {
  const auto* code = e.payload ? detail::string_member(*e.payload, "error_code") : nullptr;
  const auto* msg = e.payload ? detail::string_member(*e.payload, "error_message") : nullptr;
  const auto c = code ? errc_from_wire_name(*code) : std::nullopt;
  return failure{c.value_or(errc::internal_error), msg ? std::string(*msg) : "the peer answered with an error"};
}

}  // namespace peerproto
