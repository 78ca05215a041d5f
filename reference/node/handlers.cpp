#include "handlers.hpp"

#include "peers.hpp"

#include <peerproto/encoding.hpp>
#include <peerproto/fault.hpp>

namespace peerproto::node {
namespace {

bool empty_object(const handler_request& r) { return r.payload.empty(); }

// Hands a delivered message to the application through the inbox; RATE_LIMITED when the
// application has left `max_inbox` messages unacknowledged.
result<handler_reply> to_inbox(const handler_context& ctx, const handler_request& q) {
  if (ctx.state.inbox_count() + ctx.pending.inbox.size() >= ctx.max_inbox)
    return failure{errc::rate_limited, "the inbox is full: the application has not acknowledged its messages"};
  ctx.pending.inbox.push_back({0, q.request.sender_id, std::string(q.msg_type), jcs::canonicalize(q.payload),
                               q.request.session_id ? format_uuid(*q.request.session_id) : std::string(),
                               hex_encode(q.request.nonce), format_timestamp({q.now, 3}), {}});
  return handler_reply{"ack", {{"status", "delivered"}}};  // MSG-8: other members are ignored
}

// MSG-9: {task_id, status: "completed", result: object} or {task_id, status: "failed", error: string}.
bool valid_task_result(const boost::json::object& p) {
  const auto* id = p.if_contains("task_id");
  const auto* status = p.if_contains("status");
  if (!id || !id->is_string() || !parse_uuid_v4(id->get_string()) || !status || !status->is_string()) return false;
  if (status->get_string() == "completed") {
    const auto* r = p.if_contains("result");
    return p.size() == 3 && r && r->is_object();
  }
  const auto* e = p.if_contains("error");
  return status->get_string() == "failed" && p.size() == 3 && e && e->is_string() &&
         e->get_string().size() <= limits::max_error_message_chars;
}

}  // namespace

boost::json::object capabilities(const engine_options& opt, const registry& r, const boost::json::object& limits) {
  boost::json::array types(msg::core_requests.begin(), msg::core_requests.end());
  for (const auto& t : r.types()) types.emplace_back(t);
  return {{"versions", boost::json::array(opt.versions.begin(), opt.versions.end())},
          {"suites", boost::json::array(opt.suites.begin(), opt.suites.end())},
          {"message_types", std::move(types)},
          {"limits", PEERPROTO_FAULT(no_limits_advertised) ? boost::json::object{} : limits}};
}

void register_builtin_handlers(registry& r, const handler_context& ctx) {
  r.add("ping", [](const handler_request& q) -> result<handler_reply> {
    return handler_reply{"pong", {{"echo", q.payload}}};
  });
  for (const char* type : {"heartbeat", "status_report", "wake_up"})
    r.add(type, [ctx](const handler_request& q) { return to_inbox(ctx, q); });
  r.add("task_result", [ctx](const handler_request& q) -> result<handler_reply> {
    if (!valid_task_result(q.payload) && !PEERPROTO_FAULT(task_result_any_payload))
      return failure{errc::invalid_format, "task_result takes {task_id, status: \"completed\", result: object} "
                                           "or {task_id, status: \"failed\", error: string}"};
    return to_inbox(ctx, q);
  });
  r.add("capability_query", [&opt = ctx.engine_opt, &limits = ctx.limits, &r](const handler_request& q) -> result<handler_reply> {
    if (!empty_object(q)) return failure{errc::invalid_format, "capability_query takes an empty payload"};
    return handler_reply{"capability_response", capabilities(opt, r, limits)};
  });
  r.add("discovery", [&trust = ctx.trust](const handler_request& q) -> result<handler_reply> {
    if (!empty_object(q)) return failure{errc::invalid_format, "discovery takes an empty payload"};
    boost::json::array peers;
    for (const auto& [id, key] : trust.keys()) peers.push_back(boost::json::object{{"entity_id", id}, {"fingerprint", fingerprint(key)}});
    return handler_reply{"discovery_response", {{"peers", std::move(peers)}}};
  });
  r.add("task_delegate", [ctx](const handler_request& q) -> result<handler_reply> {
    const auto* task = q.payload.if_contains("task");
    if (q.payload.size() != 1 || !task || !task->is_object())
      return failure{errc::invalid_format, "task_delegate takes exactly {task: object}"};
    if (ctx.state.task_count() + ctx.pending.tasks.size() >= ctx.max_task_queue)
      return failure{errc::rate_limited, "the task queue is full"};
    std::array<std::uint8_t, 16> random{};
    crypto::random_bytes(random);
    const std::string id = format_uuid(make_uuid_v4(random));
    // MSG-6: accepted only once durably queued: the node writes the task before the reply, and a
    // storage failure turns the reply into INTERNAL_ERROR, so the task is not acknowledged (MSG-5).
    ctx.pending.tasks.push_back({id, q.request.sender_id, jcs::canonicalize(*task), format_timestamp({q.now, 3}), {}});
    return handler_reply{"task_accepted", {{"task_id", id}}};
  });
}

}  // namespace peerproto::node
