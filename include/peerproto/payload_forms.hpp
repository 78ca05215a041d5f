// The request payloads whose form SPEC §15 fixes (MSG-8, MSG-9, SES-8): one statement of each,
// for a receiver's handlers and for a harness that judges what a sender sends. The types whose
// payload is any object (ping, heartbeat, status_report, wake_up) and those with a parser of their
// own (handshake, handshake_confirm: handshake.hpp; chunk: chunking.hpp; key_rotation:
// key_rotation.hpp) are not here.
#pragma once

#include <peerproto/encoding.hpp>
#include <peerproto/message_types.hpp>
#include <peerproto/version.hpp>

#include <boost/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace peerproto {

/// A payload that does not have its type's form: the rule, and what the form is.
struct payload_form_error {
  std::string_view rule;
  std::string message;
};

/// Whether `p` has the form §15 gives the request payload of `type`; nullopt when it has, or when
/// §15 fixes no form for `type`.
inline std::optional<payload_form_error> payload_form_error_of(std::string_view type, const boost::json::object& p) {
  if (type == msg::session_close) {  // {reason?}
    const auto* reason = p.if_contains("reason");
    if (p.size() != (reason ? 1u : 0u) || (reason && (!reason->is_string() || reason->get_string().size() > limits::max_close_reason_chars)))
      return payload_form_error{"SES-8", "session_close takes only a reason of at most 256 characters"};
  } else if (type == "capability_query" || type == "discovery") {  // {}
    if (!p.empty()) return payload_form_error{"MSG-8", std::string(type) + " takes an empty payload"};
  } else if (type == "task_delegate") {  // {task: object}
    const auto* task = p.if_contains("task");
    if (p.size() != 1 || !task || !task->is_object()) return payload_form_error{"MSG-8", "task_delegate takes exactly {task: object}"};
  } else if (type == "task_result") {  // {task_id, status: "completed", result: object} or {task_id, status: "failed", error}
    const auto* id = p.if_contains("task_id");
    const auto* status = p.if_contains("status");
    const auto* result = p.if_contains("result");
    const auto* error = p.if_contains("error");
    const bool ok = p.size() == 3 && id && id->is_string() && parse_uuid_v4(id->get_string()) && status && status->is_string() &&
                    ((status->get_string() == "completed" && result && result->is_object()) ||
                     (status->get_string() == "failed" && error && error->is_string() &&
                      error->get_string().size() <= limits::max_error_message_chars));
    if (!ok)
      return payload_form_error{"MSG-9", "task_result takes {task_id, status: \"completed\", result: object} "
                                         "or {task_id, status: \"failed\", error: string}"};
  }
  return std::nullopt;
}

}  // namespace peerproto
