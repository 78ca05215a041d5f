#include "limits.hpp"

#include "peers.hpp"

#include <peerproto/limit_names.hpp>

#include <charconv>
#include <type_traits>

namespace peerproto::node {
namespace {

// Calls f(limit, field) for every limit. A field the protocol fixes is passed as a const value:
// it is advertised, never set. node.Node.CapabilitiesListEveryLimitOfSpecUnderItsNameAndLimitFlagsSetThem holds
// it to the list (a limit visited twice or never leaves one out).
template <class Config, class F>
void visit_limits(Config& c, F&& f) {
  auto& p = c.protocol;
  auto& r = p.rate;
  const auto fixed = [&](limit l, auto value) {
    const decltype(value) v = value;
    f(l, v);
  };
  f(limit::max_envelope_bytes, c.max_body_bytes);
  f(limit::max_json_depth, p.json.max_depth);
  fixed(limit::max_entity_id_chars, limits::max_entity_id_chars);
  fixed(limit::max_msg_type_chars, limits::max_msg_type_chars);
  fixed(limit::max_sequence_num, limits::max_sequence_num);
  f(limit::timestamp_tolerance_ms, p.replay.tolerance);
  f(limit::max_replay_entries, p.replay.max_entries);
  f(limit::handshake_timeout_ms, p.handshake_timeout);
  f(limit::max_pending_handshakes_per_peer, p.max_pending_per_peer);
  f(limit::max_pending_handshakes_total, p.max_pending_total);
  f(limit::max_sessions_total, p.max_sessions_total);
  f(limit::max_pending_handshakes_per_address, p.max_pending_per_address);
  f(limit::max_sessions_per_peer, p.max_sessions_per_peer);
  f(limit::max_pinned_keys, c.max_pinned_keys);
  f(limit::rotation_grace_ms, p.rotation_grace);
  f(limit::max_rotation_chain, p.max_rotation_chain);
  f(limit::session_idle_ttl_ms, p.session.idle_ttl);
  f(limit::session_lifetime_ms, p.session.lifetime);
  f(limit::max_messages_per_direction, p.session.max_messages);
  f(limit::terminal_session_retention_ms, p.terminal_retention);
  f(limit::reorder_window, p.session.ordering.window);
  f(limit::gap_timeout_ms, p.session.ordering.gap_timeout);
  f(limit::max_chunk_data_bytes, p.chunks.max_chunk_data);
  f(limit::max_chunks_per_transfer, p.chunks.max_chunks);
  f(limit::max_transfer_bytes, p.chunks.max_transfer_bytes);
  f(limit::max_transfers_per_peer, p.chunks.max_transfers_per_peer);
  f(limit::transfer_idle_timeout_ms, p.chunks.idle_timeout);
  f(limit::max_reassembly_bytes_total, p.chunks.max_total_bytes);
  f(limit::max_completed_transfers, p.chunks.max_completed);
  f(limit::pre_auth_rate_per_minute, r.pre_auth.per_minute);
  f(limit::pre_auth_burst, r.pre_auth.burst);
  f(limit::handshake_rate_per_minute, r.handshake.per_minute);
  f(limit::handshake_burst, r.handshake.burst);
  f(limit::heartbeat_rate_per_minute, r.heartbeat.per_minute);
  f(limit::heartbeat_burst, r.heartbeat.burst);
  f(limit::task_rate_per_minute, r.task.per_minute);
  f(limit::task_burst, r.task.burst);
  f(limit::discovery_rate_per_minute, r.discovery.per_minute);
  f(limit::discovery_burst, r.discovery.burst);
  f(limit::chunk_rate_per_minute, r.chunk.per_minute);
  f(limit::chunk_burst, r.chunk.burst);
  f(limit::default_rate_per_minute, r.other.per_minute);
  f(limit::default_burst, r.other.burst);
  f(limit::backoff_threshold, r.backoff.threshold);
  f(limit::backoff_window_ms, r.backoff.window);
  f(limit::backoff_initial_ms, r.backoff.initial);
  f(limit::backoff_max_ms, r.backoff.max);
  f(limit::max_rate_limit_keys, r.max_keys);
  fixed(limit::max_error_message_chars, limits::max_error_message_chars);
  fixed(limit::max_close_reason_chars, limits::max_close_reason_chars);
  f(limit::max_task_queue, c.max_task_queue);
  f(limit::max_header_bytes, c.max_header_bytes);
  f(limit::read_timeout_ms, c.read_timeout);
  f(limit::idle_timeout_ms, c.idle_timeout);
  f(limit::ws_max_in_flight, c.ws_max_in_flight);
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
  visit_limits(applied, [&](limit l, const auto& v) { out[spec_of(l).name] = as_number(v); });
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
  visit_limits(cfg, [&](limit l, auto& field) {
    using T = std::remove_reference_t<decltype(field)>;
    if (&spec_of(l) != spec) return;
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
