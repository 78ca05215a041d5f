// Security event records (SPEC §20) with a stable schema, "peerproto.audit.v1". The engine
// returns them; the node writes them (as JSON lines).
#pragma once

#include <peerproto/encoding.hpp>
#include <peerproto/error.hpp>
#include <peerproto/version.hpp>

#include <boost/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace peerproto {

/// AUD-1
enum class audit_event {
  auth_failure,
  replay_detected,
  rate_limited,
  handshake_succeeded,
  handshake_failed,
  session_opened,
  session_expired,
  session_closed,
  key_pinned,
  key_refused,
  key_rotated,
  key_revoked,
};

inline std::string_view to_string(audit_event e) noexcept {
  switch (e) {
    case audit_event::auth_failure: return "auth_failure";
    case audit_event::replay_detected: return "replay_detected";
    case audit_event::rate_limited: return "rate_limited";
    case audit_event::handshake_succeeded: return "handshake_succeeded";
    case audit_event::handshake_failed: return "handshake_failed";
    case audit_event::session_opened: return "session_opened";
    case audit_event::session_expired: return "session_expired";
    case audit_event::session_closed: return "session_closed";
    case audit_event::key_pinned: return "key_pinned";
    case audit_event::key_refused: return "key_refused";
    case audit_event::key_rotated: return "key_rotated";
    case audit_event::key_revoked: return "key_revoked";
  }
  return "unknown";
}

/// One record (AUD-2). Optional members are left out of the JSON when unknown.
struct audit_record {
  sys_milliseconds time;                  ///< when it happened
  audit_event event;                      ///< what happened
  std::optional<std::string> remote;      ///< the peer's address; null when not known
  std::optional<std::string> sender_id;   ///< the claimed sender
  std::optional<std::string> session_id;  ///< canonical UUID text
  std::optional<std::string> msg_type;
  std::optional<std::string> nonce;       ///< hex
  std::optional<errc> error_code;         ///< the protocol code reported, if any
  std::optional<std::string> detail;      ///< one sentence; never secret material
  std::optional<std::string> trace_id;    ///< the request's W3C trace id (32 hex), set by the transport
};

/// The record as the JSON object of AUD-2.
inline boost::json::object to_json(const audit_record& r) {
  boost::json::object o;
  o["schema"] = audit_schema;
  o["time"] = format_timestamp({r.time, 3});
  o["event"] = to_string(r.event);
  o["remote"] = r.remote ? boost::json::value(*r.remote) : boost::json::value(nullptr);
  if (r.sender_id) o["sender_id"] = *r.sender_id;
  if (r.session_id) o["session_id"] = *r.session_id;
  if (r.msg_type) o["msg_type"] = *r.msg_type;
  if (r.nonce) o["nonce"] = *r.nonce;
  if (r.error_code) o["error_code"] = wire_name(*r.error_code);
  if (r.detail) o["detail"] = *r.detail;
  if (r.trace_id) o["trace_id"] = *r.trace_id;
  return o;
}

}  // namespace peerproto
