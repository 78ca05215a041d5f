// The name and unit of every limit of docs/SPEC.md §18, as a node advertises them in `limits` of
// its capabilities (MSG-7, HTTP-7), with the specification's defaults. A node lists every name;
// a peer or a test harness reads exactly these names and never guesses another spelling.
#pragma once

#include <peerproto/version.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <string_view>

namespace peerproto {

enum class limit_unit { count, size_bytes, duration_ms, per_minute };

/// The unit as SPEC §18's table writes it.
constexpr std::string_view to_string(limit_unit u) noexcept {
  switch (u) {
    case limit_unit::count: return "count";
    case limit_unit::size_bytes: return "bytes";
    case limit_unit::duration_ms: return "ms";
    case limit_unit::per_minute: return "tokens per minute";
  }
  return "?";
}

struct limit_name {
  std::string_view name;  ///< the member of `limits` in the capabilities
  limit_unit unit;
  std::int64_t spec_default;
  std::string_view rules;  ///< the requirements it parameterises
};

namespace detail {
constexpr std::int64_t ms(std::chrono::milliseconds d) { return d.count(); }
template <class T>
constexpr std::int64_t n(T v) { return static_cast<std::int64_t>(v); }
}  // namespace detail

// Ordered as SPEC §18's table; the bucket rows are one rate and one burst per class (RL-1, RL-2).
inline constexpr std::array limit_names{
    limit_name{"max_envelope_bytes", limit_unit::size_bytes, detail::n(limits::max_envelope_bytes), "JSON-5, HTTP-3, WS-4"},
    limit_name{"max_json_depth", limit_unit::count, detail::n(limits::max_json_depth), "JSON-4"},
    limit_name{"max_entity_id_chars", limit_unit::count, detail::n(limits::max_entity_id_chars), "ID-2"},
    limit_name{"max_msg_type_chars", limit_unit::count, detail::n(limits::max_msg_type_chars), "ENV-5"},
    limit_name{"max_sequence_num", limit_unit::count, detail::n(limits::max_sequence_num), "ENV-14"},
    limit_name{"timestamp_tolerance_ms", limit_unit::duration_ms, detail::ms(limits::timestamp_tolerance), "RPL-1"},
    limit_name{"max_replay_entries", limit_unit::count, detail::n(limits::max_replay_entries), "RPL-4"},
    limit_name{"handshake_timeout_ms", limit_unit::duration_ms, detail::ms(limits::handshake_timeout), "HS-16"},
    limit_name{"max_pending_handshakes_per_peer", limit_unit::count, detail::n(limits::max_pending_handshakes_per_peer), "HS-17"},
    limit_name{"max_pending_handshakes_total", limit_unit::count, detail::n(limits::max_pending_handshakes_total), "HS-18"},
    limit_name{"max_sessions_total", limit_unit::count, detail::n(limits::max_sessions_total), "HS-25"},
    limit_name{"max_pending_handshakes_per_address", limit_unit::count, detail::n(limits::max_pending_handshakes_per_address), "HS-26"},
    limit_name{"max_sessions_per_peer", limit_unit::count, detail::n(limits::max_sessions_per_peer), "HS-27"},
    limit_name{"max_pinned_keys", limit_unit::count, detail::n(limits::max_pinned_keys), "ID-10"},
    limit_name{"rotation_grace_ms", limit_unit::duration_ms, detail::ms(limits::rotation_grace), "KR-6"},
    limit_name{"max_rotation_chain", limit_unit::count, detail::n(limits::max_rotation_chain), "KR-3"},
    limit_name{"session_idle_ttl_ms", limit_unit::duration_ms, detail::ms(limits::session_idle_ttl), "SES-4"},
    limit_name{"session_lifetime_ms", limit_unit::duration_ms, detail::ms(limits::session_lifetime), "SES-5"},
    limit_name{"max_messages_per_direction", limit_unit::count, detail::n(limits::max_messages_per_direction), "SES-6"},
    limit_name{"terminal_session_retention_ms", limit_unit::duration_ms, detail::ms(limits::terminal_session_retention), "SES-10"},
    limit_name{"reorder_window", limit_unit::count, detail::n(limits::reorder_window), "ORD-3, ORD-5"},
    limit_name{"gap_timeout_ms", limit_unit::duration_ms, detail::ms(limits::gap_timeout), "ORD-6"},
    limit_name{"max_chunk_data_bytes", limit_unit::size_bytes, detail::n(limits::max_chunk_data_bytes), "CHK-2"},
    limit_name{"max_chunks_per_transfer", limit_unit::count, detail::n(limits::max_chunks_per_transfer), "CHK-2"},
    limit_name{"max_transfer_bytes", limit_unit::size_bytes, detail::n(limits::max_transfer_bytes), "CHK-9"},
    limit_name{"max_transfers_per_peer", limit_unit::count, detail::n(limits::max_transfers_per_peer), "CHK-10"},
    limit_name{"transfer_idle_timeout_ms", limit_unit::duration_ms, detail::ms(limits::transfer_idle_timeout), "CHK-11"},
    limit_name{"max_reassembly_bytes_total", limit_unit::size_bytes, detail::n(limits::max_reassembly_bytes_total), "CHK-13"},
    limit_name{"max_completed_transfers", limit_unit::count, detail::n(limits::max_completed_transfers), "CHK-4"},
    limit_name{"pre_auth_rate_per_minute", limit_unit::per_minute, detail::n(limits::pre_auth_bucket.per_minute), "RL-1"},
    limit_name{"pre_auth_burst", limit_unit::count, detail::n(limits::pre_auth_bucket.burst), "RL-1"},
    limit_name{"handshake_rate_per_minute", limit_unit::per_minute, detail::n(limits::handshake_bucket.per_minute), "RL-2"},
    limit_name{"handshake_burst", limit_unit::count, detail::n(limits::handshake_bucket.burst), "RL-2"},
    limit_name{"heartbeat_rate_per_minute", limit_unit::per_minute, detail::n(limits::heartbeat_bucket.per_minute), "RL-2"},
    limit_name{"heartbeat_burst", limit_unit::count, detail::n(limits::heartbeat_bucket.burst), "RL-2"},
    limit_name{"task_rate_per_minute", limit_unit::per_minute, detail::n(limits::task_bucket.per_minute), "RL-2"},
    limit_name{"task_burst", limit_unit::count, detail::n(limits::task_bucket.burst), "RL-2"},
    limit_name{"discovery_rate_per_minute", limit_unit::per_minute, detail::n(limits::discovery_bucket.per_minute), "RL-2"},
    limit_name{"discovery_burst", limit_unit::count, detail::n(limits::discovery_bucket.burst), "RL-2"},
    limit_name{"chunk_rate_per_minute", limit_unit::per_minute, detail::n(limits::chunk_bucket.per_minute), "RL-2"},
    limit_name{"chunk_burst", limit_unit::count, detail::n(limits::chunk_bucket.burst), "RL-2"},
    limit_name{"default_rate_per_minute", limit_unit::per_minute, detail::n(limits::default_bucket.per_minute), "RL-2"},
    limit_name{"default_burst", limit_unit::count, detail::n(limits::default_bucket.burst), "RL-2"},
    limit_name{"backoff_threshold", limit_unit::count, detail::n(limits::backoff_threshold), "RL-4"},
    limit_name{"backoff_window_ms", limit_unit::duration_ms, detail::ms(limits::backoff_window), "RL-4"},
    limit_name{"backoff_initial_ms", limit_unit::duration_ms, detail::ms(limits::backoff_initial), "RL-4"},
    limit_name{"backoff_max_ms", limit_unit::duration_ms, detail::ms(limits::backoff_max), "RL-4"},
    limit_name{"max_rate_limit_keys", limit_unit::count, detail::n(limits::max_rate_limit_keys), "RL-8"},
    limit_name{"max_error_message_chars", limit_unit::count, detail::n(limits::max_error_message_chars), "ERR-2"},
    limit_name{"max_close_reason_chars", limit_unit::count, detail::n(limits::max_close_reason_chars), "SES-8"},
    limit_name{"max_task_queue", limit_unit::count, detail::n(limits::max_task_queue), "MSG-6"},
    limit_name{"max_header_bytes", limit_unit::size_bytes, detail::n(limits::max_header_bytes), "HTTP-10"},
    limit_name{"read_timeout_ms", limit_unit::duration_ms, detail::ms(limits::read_timeout), "HTTP-11"},
    limit_name{"idle_timeout_ms", limit_unit::duration_ms, detail::ms(limits::idle_timeout), "HTTP-11"},
    limit_name{"ws_max_in_flight", limit_unit::count, detail::n(limits::ws_max_in_flight), "WS-2"},
};

/// The entry for `name`, or nullptr.
constexpr const limit_name* find_limit(std::string_view name) noexcept {
  for (const auto& l : limit_names)
    if (l.name == name) return &l;
  return nullptr;
}

}  // namespace peerproto
