#include "handlers.hpp"

#include "peers.hpp"

#include <peerproto/encoding.hpp>
#include <peerproto/fault.hpp>

namespace peerproto::node {
namespace {

result<handler_reply> delivered(const handler_request&) {
  return handler_reply{"ack", {{"status", "delivered"}}};  // MSG-8: other members are ignored
}

bool empty_object(const handler_request& r) { return r.payload.empty(); }

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
  r.add("heartbeat", delivered);
  r.add("status_report", delivered);
  r.add("wake_up", delivered);
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
  r.add("task_delegate", [&state = ctx.state, max = ctx.max_task_queue](const handler_request& q) -> result<handler_reply> {
    const auto* task = q.payload.if_contains("task");
    if (q.payload.size() != 1 || !task || !task->is_object())
      return failure{errc::invalid_format, "task_delegate takes exactly {task: object}"};
    std::array<std::uint8_t, 16> random{};
    crypto::random_bytes(random);
    const std::string id = format_uuid(make_uuid_v4(random));
    // MSG-6: accepted only once durably queued. A storage failure propagates as store_error and
    // becomes INTERNAL_ERROR: the task is then not acknowledged (MSG-5).
    if (!state.enqueue_task({id, q.request.sender_id, boost::json::serialize(*task), format_timestamp({q.now, 3})}, max))
      return failure{errc::rate_limited, "the task queue is full"};
    return handler_reply{"task_accepted", {{"task_id", id}}};
  });
}

}  // namespace peerproto::node
