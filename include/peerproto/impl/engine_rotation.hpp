// engine: following a peer's key rotation (SPEC §2.2): a `key_rotation` request, in a session or
// sessionless, moves the binding of its sender, or revokes it and closes the sender's sessions.
#pragma once

namespace peerproto {

// KR-3..KR-7: applies the chain of `e` and builds the ack, or the failure (audited as key_refused).
// `revoked` says whether the sender revoked its key.
inline result<handler_reply> engine::follow_rotation(request_context& ctx, const envelope& e, const boost::json::object& payload,
                                                     bool& revoked) {
  auto chain = parse_rotation_chain(payload, opt_.max_rotation_chain);
  auto applied = chain ? trust_.apply_rotation(e.sender_id, *chain, ctx.now, opt_.rotation_grace, opt_.replay.tolerance)
                       : result<rotation_applied>(chain.error());
  if (!applied) {
    audit(ctx, audit_event::key_refused, e, applied.code(), "key rotation refused: " + applied.error().message);
    return applied.error();
  }
  revoked = !applied->to_key;
  const auto counters = "counter " + std::to_string(applied->from_counter) + " -> " + std::to_string(applied->to_counter) + ": ";
  if (revoked) {
    audit(ctx, audit_event::key_revoked, e, std::nullopt, counters + fingerprint(applied->from_key) + " revoked");
    return handler_reply{std::string(msg::ack), {{"status", "key_revoked"}, {"counter", applied->to_counter}}};
  }
  audit(ctx, audit_event::key_rotated, e, std::nullopt, counters + fingerprint(applied->from_key) + " -> " + fingerprint(*applied->to_key));
  return handler_reply{std::string(msg::ack), {{"status", "key_rotated"}, {"counter", applied->to_counter}}};
}

// KR-7: after a revocation every session of `peer_id` is closed (once the reply is sealed).
inline void engine::close_sessions_of(request_context& ctx, std::string_view peer_id) {
  if (PEERPROTO_FAULT(revocation_keeps_sessions)) return;
  for (auto& [id, s] : sessions_)
    if (s.peer_id() == peer_id && s.state() == session_state::ready && s.apply(session_event::close, ctx.now).ok()) {
      changed_.insert(id);
      audit_record r{ctx.now, audit_event::session_closed, ctx.remote, std::string(peer_id), format_uuid(id), std::nullopt,
                     std::nullopt, std::nullopt, "closed: the peer revoked its key", std::nullopt};
      ctx.audit.push_back(std::move(r));
    }
}

}  // namespace peerproto
