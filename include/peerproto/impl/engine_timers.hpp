// engine: the timed work (poll, next_deadline) and the time contract of engine.hpp.
#pragma once

#include <iterator>

namespace peerproto {

// The time contract: a `now` earlier than one already seen is taken as that one.
inline sys_milliseconds engine::monotonic(sys_milliseconds now) noexcept {
  if (now < latest_now_) return latest_now_;
  latest_now_ = now;
  return now;
}

inline std::vector<outcome> engine::poll(sys_milliseconds now) {
  now = monotonic(now);
  std::vector<outcome> out;
  std::vector<audit_record> events;  // expiries have no request to travel with
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    session& s = it->second;
    auto ctx = context_for({}, now);
    ctx.sender_id = s.peer_id();
    ctx.session_id = format_uuid(s.id());
    if (s.expire_if_due(now)) {
      changed_.insert(s.id());
      audit(ctx, audit_event::session_expired, std::nullopt, std::nullopt, "session expired");
    }
    for (auto& [seq, held] : s.received().expire(now)) {
      auto hctx = context_for(held.remote, now);
      hctx.sender_id = held.request.sender_id;
      hctx.nonce_hex = hex_encode(held.request.nonce);
      hctx.session_id = ctx.session_id;
      hctx.version = s.version();
      hctx.msg_type = held.request.msg_type;
      out.push_back(error_reply(hctx, {errc::sequence_error, "a gap before this message was not filled in time"}));
      out.back().msg_type = held.request.msg_type;
    }
    if (expire_pending(s, now))
      audit(ctx, audit_event::handshake_failed, std::nullopt, errc::challenge_expired, "pending handshake expired");
    std::move(ctx.audit.begin(), ctx.audit.end(), std::back_inserter(events));
    if (const auto t = s.terminal_since(); t && has_elapsed(*t, opt_.terminal_retention, now)) {
      changed_.insert(s.id());
      it = sessions_.erase(it);
      continue;
    }
    ++it;
  }
  // Our own handshakes awaiting an ack fail the same way, and are forgotten like any failed session.
  // Nothing to report: the caller learns it from finish_handshake().
  for (auto it = initiating_.begin(); it != initiating_.end();) {
    expire_pending(it->second, now);
    const auto t = it->second.terminal_since();
    it = t && has_elapsed(*t, opt_.terminal_retention, now) ? initiating_.erase(it) : std::next(it);
  }
  reassembler_.expire(now);
  if (!events.empty()) out.push_back(outcome::silent({}, std::move(events)));
  return out;
}

inline std::optional<sys_milliseconds> engine::next_deadline() const {
  std::optional<sys_milliseconds> d;
  const auto consider = [&](std::optional<sys_milliseconds> t) {
    if (t && (!d || *t < *d)) d = t;
  };
  const auto consider_session = [&](const session& s) {
    consider(s.next_deadline());
    if (const auto* p = s.pending()) consider(ends_at(p->started, opt_.handshake_timeout));
    if (const auto t = s.terminal_since()) consider(ends_at(*t, opt_.terminal_retention));
  };
  for (const auto& [id, s] : sessions_) consider_session(s);
  for (const auto& [nonce, s] : initiating_) consider_session(s);
  consider(reassembler_.next_deadline());
  return d;
}

}  // namespace peerproto
