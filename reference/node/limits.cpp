#include "limits.hpp"

#include "peers.hpp"

#include <peerproto/limit_names.hpp>

#include <charconv>
#include <type_traits>

namespace peerproto::node {
namespace {

// Calls f(name, field) for every limit, in the order of limit_names. A field the protocol fixes
// is passed as a const value: it is advertised, never set.
template <class Config, class F>
void visit_limits(Config& c, F&& f) {
  auto& p = c.protocol;
  auto& r = p.rate;
  const auto fixed = [&](std::string_view name, auto value) {
    const decltype(value) v = value;
    f(name, v);
  };
  f("max_envelope_bytes", c.max_body_bytes);
  f("max_json_depth", p.json.max_depth);
  fixed("max_entity_id_chars", limits::max_entity_id_chars);
  fixed("max_msg_type_chars", limits::max_msg_type_chars);
  fixed("max_sequence_num", limits::max_sequence_num);
  f("timestamp_tolerance_ms", p.replay.tolerance);
  f("max_replay_entries", p.replay.max_entries);
  f("handshake_timeout_ms", p.handshake_timeout);
  f("max_pending_handshakes_per_peer", p.max_pending_per_peer);
  f("max_pending_handshakes_total", p.max_pending_total);
  f("max_sessions_total", p.max_sessions_total);
  f("max_pending_handshakes_per_address", p.max_pending_per_address);
  f("max_sessions_per_peer", p.max_sessions_per_peer);
  f("max_pinned_keys", c.max_pinned_keys);
  f("rotation_grace_ms", p.rotation_grace);
  f("max_rotation_chain", p.max_rotation_chain);
  f("session_idle_ttl_ms", p.session.idle_ttl);
  f("session_lifetime_ms", p.session.lifetime);
  f("max_messages_per_direction", p.session.max_messages);
  f("terminal_session_retention_ms", p.terminal_retention);
  f("reorder_window", p.session.ordering.window);
  f("gap_timeout_ms", p.session.ordering.gap_timeout);
  f("max_chunk_data_bytes", p.chunks.max_chunk_data);
  f("max_chunks_per_transfer", p.chunks.max_chunks);
  f("max_transfer_bytes", p.chunks.max_transfer_bytes);
  f("max_transfers_per_peer", p.chunks.max_transfers_per_peer);
  f("transfer_idle_timeout_ms", p.chunks.idle_timeout);
  f("max_reassembly_bytes_total", p.chunks.max_total_bytes);
  f("max_completed_transfers", p.chunks.max_completed);
  f("pre_auth_rate_per_minute", r.pre_auth.per_minute);
  f("pre_auth_burst", r.pre_auth.burst);
  f("handshake_rate_per_minute", r.handshake.per_minute);
  f("handshake_burst", r.handshake.burst);
  f("heartbeat_rate_per_minute", r.heartbeat.per_minute);
  f("heartbeat_burst", r.heartbeat.burst);
  f("task_rate_per_minute", r.task.per_minute);
  f("task_burst", r.task.burst);
  f("discovery_rate_per_minute", r.discovery.per_minute);
  f("discovery_burst", r.discovery.burst);
  f("chunk_rate_per_minute", r.chunk.per_minute);
  f("chunk_burst", r.chunk.burst);
  f("default_rate_per_minute", r.other.per_minute);
  f("default_burst", r.other.burst);
  f("backoff_threshold", r.backoff.threshold);
  f("backoff_window_ms", r.backoff.window);
  f("backoff_initial_ms", r.backoff.initial);
  f("backoff_max_ms", r.backoff.max);
  f("max_rate_limit_keys", r.max_keys);
  fixed("max_error_message_chars", limits::max_error_message_chars);
  fixed("max_close_reason_chars", limits::max_close_reason_chars);
  f("max_task_queue", c.max_task_queue);
  f("max_header_bytes", c.max_header_bytes);
  f("read_timeout_ms", c.read_timeout);
  f("idle_timeout_ms", c.idle_timeout);
  f("ws_max_in_flight", c.ws_max_in_flight);
}

template <class T>
struct is_duration : std::false_type {};
template <class R, class P>
struct is_duration<std::chrono::duration<R, P>> : std::true_type {};

template <class T>
std::int64_t as_number(const T& v) {
  if constexpr (is_duration<T>::value) return std::chrono::duration_cast<std::chrono::milliseconds>(v).count();
  else return static_cast<std::int64_t>(v);
}

}  // namespace

boost::json::object advertised_limits(const node_config& cfg) {
  node_config applied = cfg;
  applied.protocol = cfg.engine({});  // the multiplier and the body limit, as the engine gets them
  boost::json::object out;
  visit_limits(applied, [&](std::string_view name, const auto& v) { out[name] = as_number(v); });
  return out;
}

void set_limit(node_config& cfg, std::string_view assignment) {
  const auto eq = assignment.find('=');
  const auto name = assignment.substr(0, eq);
  const auto* spec = find_limit(name);
  if (eq == std::string_view::npos || !spec)
    throw config_error("--limit takes NAME=VALUE with a name of SPEC §18 (see GET /capabilities), not '" +
                       std::string(assignment) + "'");
  const auto text = assignment.substr(eq + 1);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value <= 0)
    throw config_error("--limit " + std::string(name) + ": '" + std::string(text) + "' is not a positive whole number of " +
                       std::string(to_string(spec->unit)));
  visit_limits(cfg, [&](std::string_view n, auto& field) {
    using T = std::remove_reference_t<decltype(field)>;
    if (n != name) return;
    if constexpr (std::is_const_v<T>) {
      throw config_error("--limit " + std::string(name) + ": fixed by the protocol, not configurable");
    } else if constexpr (is_duration<T>::value) {
      const std::chrono::milliseconds ms(value);
      if (std::chrono::duration_cast<T>(ms) != ms)
        throw config_error("--limit " + std::string(name) + ": this node keeps it in whole seconds");
      field = std::chrono::duration_cast<T>(ms);
    } else {
      field = static_cast<T>(value);
    }
  });
}

}  // namespace peerproto::node
