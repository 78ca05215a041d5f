#include "handlers.hpp"

#include "identity.hpp"

#include <peerproto/encoding.hpp>

namespace peerproto::node {
namespace {

result<handler_reply> delivered(const handler_request&) {
  return handler_reply{"ack", {{"status", "delivered"}}};  // MSG-8: other members are ignored
}

bool empty_object(const handler_request& r) { return r.payload.empty(); }

}  // namespace

boost::json::object capabilities(const engine_options& opt, const registry& r) {
  boost::json::array types{"handshake", "handshake_confirm", "chunk", "session_close"};
  for (const auto& t : r.types()) types.emplace_back(t);
  const auto ms = [](std::chrono::milliseconds d) { return d.count(); };
  boost::json::object lim{
      {"max_envelope_bytes", opt.json.max_bytes},
      {"max_json_depth", opt.json.max_depth},
      {"max_entity_id_chars", limits::max_entity_id_chars},
      {"max_msg_type_chars", limits::max_msg_type_chars},
      {"timestamp_tolerance_ms", ms(opt.replay.tolerance)},
      {"replay_window_ms", ms(opt.replay.window)},
      {"max_replay_entries", opt.replay.max_entries},
      {"handshake_timeout_ms", ms(opt.handshake_timeout)},
      {"max_pending_handshakes_per_peer", opt.max_pending_per_peer},
      {"max_pending_handshakes_total", opt.max_pending_total},
      {"max_sessions_total", opt.max_sessions_total},
      {"session_idle_ttl_ms", ms(opt.session.idle_ttl)},
      {"session_lifetime_ms", ms(opt.session.lifetime)},
      {"max_messages_per_direction", opt.session.max_messages},
      {"reorder_window", opt.session.ordering.window},
      {"gap_timeout_ms", ms(opt.session.ordering.gap_timeout)},
      {"max_chunk_data_bytes", opt.chunks.max_chunk_data},
      {"max_chunks_per_transfer", opt.chunks.max_chunks},
      {"max_transfer_bytes", opt.chunks.max_transfer_bytes},
      {"max_transfers_per_peer", opt.chunks.max_transfers_per_peer},
      {"max_reassembly_bytes_total", opt.chunks.max_total_bytes},
      {"pre_auth_rate_per_minute", opt.rate.pre_auth.per_minute},
      {"pre_auth_burst", opt.rate.pre_auth.burst},
      {"heartbeat_rate_per_minute", opt.rate.heartbeat.per_minute},
      {"heartbeat_burst", opt.rate.heartbeat.burst},
      {"backoff_threshold", opt.rate.backoff.threshold},
      {"backoff_window_ms", ms(opt.rate.backoff.window)},
      {"backoff_initial_ms", ms(opt.rate.backoff.initial)},
  };
  return {{"versions", boost::json::array(opt.versions.begin(), opt.versions.end())},
          {"suites", boost::json::array(opt.suites.begin(), opt.suites.end())},
          {"message_types", std::move(types)},
          {"limits", std::move(lim)}};
}

void register_builtin_handlers(registry& r, const handler_context& ctx) {
  r.add("ping", [](const handler_request& q) -> result<handler_reply> {
    return handler_reply{"pong", {{"echo", q.payload}}};
  });
  r.add("heartbeat", delivered);
  r.add("status_report", delivered);
  r.add("wake_up", delivered);
  r.add("capability_query", [&opt = ctx.engine_opt, &r](const handler_request& q) -> result<handler_reply> {
    if (!empty_object(q)) return failure{errc::invalid_format, "capability_query takes an empty payload"};
    return handler_reply{"capability_response", capabilities(opt, r)};
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
