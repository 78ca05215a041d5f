#include "handlers.hpp"

#include "peers.hpp"

#include <peerproto/encoding.hpp>
#include <peerproto/fault.hpp>
#include <peerproto/payload_forms.hpp>

namespace peerproto::node {
namespace {

// §15's form of the request's payload (payload_forms.hpp); INVALID_FORMAT when it lacks it.
result<void> check_form(const handler_request& q) {
  if (auto bad = payload_form_error_of(q.msg_type, q.payload)) return failure{errc::invalid_format, std::move(bad->message)};
  return {};
}

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
    if (auto form = check_form(q); !form && !PEERPROTO_FAULT(task_result_any_payload)) return form.error();
    return to_inbox(ctx, q);
  });
  r.add("capability_query", [&opt = ctx.engine_opt, &limits = ctx.limits, &r](const handler_request& q) -> result<handler_reply> {
    if (auto form = check_form(q); !form) return form.error();
    return handler_reply{"capability_response", capabilities(opt, r, limits)};
  });
  r.add("discovery", [&trust = ctx.trust](const handler_request& q) -> result<handler_reply> {
    if (auto form = check_form(q); !form) return form.error();
    boost::json::array peers;
    for (const auto& [id, key] : trust.keys()) peers.push_back(boost::json::object{{"entity_id", id}, {"fingerprint", fingerprint(key)}});
    return handler_reply{"discovery_response", {{"peers", std::move(peers)}}};
  });
  r.add("task_delegate", [ctx](const handler_request& q) -> result<handler_reply> {
    if (auto form = check_form(q); !form) return form.error();
    if (ctx.state.task_count() + ctx.pending.tasks.size() >= ctx.max_task_queue)
      return failure{errc::rate_limited, "the task queue is full"};
    std::array<std::uint8_t, 16> random{};
    crypto::random_bytes(random);
    const std::string id = format_uuid(make_uuid_v4(random));
    // MSG-6: accepted only once durably queued: the node writes the task before the reply, and a
    // storage failure turns the reply into INTERNAL_ERROR, so the task is not acknowledged (MSG-5).
    ctx.pending.tasks.push_back({id, q.request.sender_id, jcs::canonicalize(q.payload.at("task")), format_timestamp({q.now, 3}), {}});
    return handler_reply{"task_accepted", {{"task_id", id}}};
  });
}

}  // namespace peerproto::node
