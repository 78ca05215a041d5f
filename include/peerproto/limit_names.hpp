// The name and unit of every limit of docs/SPEC.md §18, as a node advertises them in `limits` of
// its capabilities (MSG-7, HTTP-7), with the specification's defaults. A node lists every name;
// a peer or a test harness reads exactly these names and never guesses another spelling.
#pragma once

#include <peerproto/version.hpp>

#include <array>
#include <chrono>
#include <cstddef>
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
template <class R, class P>
constexpr std::int64_t spec_value(std::chrono::duration<R, P> d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}
template <class T>
constexpr std::int64_t spec_value(T v) { return static_cast<std::int64_t>(v); }
}  // namespace detail

// Every limit once, ordered as SPEC §18's table: X(name, unit, SPEC default, rules). The bucket
// rows are one rate and one burst per class (RL-1, RL-2). The name is both the member of `limits`
// and the enumerator below, so code that sets or reads one limit names it without a string.
#define PEERPROTO_LIMITS(X) \
  X(max_envelope_bytes, size_bytes, limits::max_envelope_bytes, "JSON-5, HTTP-3, WS-4") \
  X(max_json_depth, count, limits::max_json_depth, "JSON-4") \
  X(max_entity_id_chars, count, limits::max_entity_id_chars, "ID-2") \
  X(max_msg_type_chars, count, limits::max_msg_type_chars, "ENV-5") \
  X(max_sequence_num, count, limits::max_sequence_num, "ENV-14") \
  X(timestamp_tolerance_ms, duration_ms, limits::timestamp_tolerance, "RPL-1") \
  X(max_replay_entries, count, limits::max_replay_entries, "RPL-4") \
  X(handshake_timeout_ms, duration_ms, limits::handshake_timeout, "HS-16") \
  X(max_pending_handshakes_per_peer, count, limits::max_pending_handshakes_per_peer, "HS-17") \
  X(max_pending_handshakes_total, count, limits::max_pending_handshakes_total, "HS-18") \
  X(max_sessions_total, count, limits::max_sessions_total, "HS-25") \
  X(max_pending_handshakes_per_address, count, limits::max_pending_handshakes_per_address, "HS-26") \
  X(max_sessions_per_peer, count, limits::max_sessions_per_peer, "HS-27") \
  X(max_pinned_keys, count, limits::max_pinned_keys, "ID-10") \
  X(rotation_grace_ms, duration_ms, limits::rotation_grace, "KR-6") \
  X(max_rotation_chain, count, limits::max_rotation_chain, "KR-3") \
  X(session_idle_ttl_ms, duration_ms, limits::session_idle_ttl, "SES-4") \
  X(session_lifetime_ms, duration_ms, limits::session_lifetime, "SES-5") \
  X(max_messages_per_direction, count, limits::max_messages_per_direction, "SES-6") \
  X(terminal_session_retention_ms, duration_ms, limits::terminal_session_retention, "SES-10") \
  X(reorder_window, count, limits::reorder_window, "ORD-3, ORD-5") \
  X(gap_timeout_ms, duration_ms, limits::gap_timeout, "ORD-6") \
  X(max_chunk_data_bytes, size_bytes, limits::max_chunk_data_bytes, "CHK-2") \
  X(max_chunks_per_transfer, count, limits::max_chunks_per_transfer, "CHK-2") \
  X(max_transfer_bytes, size_bytes, limits::max_transfer_bytes, "CHK-9") \
  X(max_transfers_per_peer, count, limits::max_transfers_per_peer, "CHK-10") \
  X(transfer_idle_timeout_ms, duration_ms, limits::transfer_idle_timeout, "CHK-11") \
  X(max_reassembly_bytes_total, size_bytes, limits::max_reassembly_bytes_total, "CHK-13") \
  X(max_completed_transfers, count, limits::max_completed_transfers, "CHK-4") \
  X(pre_auth_rate_per_minute, per_minute, limits::pre_auth_bucket.per_minute, "RL-1") \
  X(pre_auth_burst, count, limits::pre_auth_bucket.burst, "RL-1") \
  X(handshake_rate_per_minute, per_minute, limits::handshake_bucket.per_minute, "RL-2") \
  X(handshake_burst, count, limits::handshake_bucket.burst, "RL-2") \
  X(heartbeat_rate_per_minute, per_minute, limits::heartbeat_bucket.per_minute, "RL-2") \
  X(heartbeat_burst, count, limits::heartbeat_bucket.burst, "RL-2") \
  X(task_rate_per_minute, per_minute, limits::task_bucket.per_minute, "RL-2") \
  X(task_burst, count, limits::task_bucket.burst, "RL-2") \
  X(discovery_rate_per_minute, per_minute, limits::discovery_bucket.per_minute, "RL-2") \
  X(discovery_burst, count, limits::discovery_bucket.burst, "RL-2") \
  X(chunk_rate_per_minute, per_minute, limits::chunk_bucket.per_minute, "RL-2") \
  X(chunk_burst, count, limits::chunk_bucket.burst, "RL-2") \
  X(default_rate_per_minute, per_minute, limits::default_bucket.per_minute, "RL-2") \
  X(default_burst, count, limits::default_bucket.burst, "RL-2") \
  X(backoff_threshold, count, limits::backoff_threshold, "RL-4") \
  X(backoff_window_ms, duration_ms, limits::backoff_window, "RL-4") \
  X(backoff_initial_ms, duration_ms, limits::backoff_initial, "RL-4") \
  X(backoff_max_ms, duration_ms, limits::backoff_max, "RL-4") \
  X(max_rate_limit_keys, count, limits::max_rate_limit_keys, "RL-8") \
  X(max_error_message_chars, count, limits::max_error_message_chars, "ERR-2") \
  X(max_close_reason_chars, count, limits::max_close_reason_chars, "SES-8") \
  X(max_task_queue, count, limits::max_task_queue, "MSG-6") \
  X(max_header_bytes, size_bytes, limits::max_header_bytes, "HTTP-10") \
  X(read_timeout_ms, duration_ms, limits::read_timeout, "HTTP-11") \
  X(idle_timeout_ms, duration_ms, limits::idle_timeout, "HTTP-11") \
  X(ws_max_in_flight, count, limits::ws_max_in_flight, "WS-2")

/// One limit, by its SPEC §18 name.
enum class limit : std::size_t {
#define PEERPROTO_LIMIT_ENUMERATOR(name, unit, value, rules) name,
  PEERPROTO_LIMITS(PEERPROTO_LIMIT_ENUMERATOR)
#undef PEERPROTO_LIMIT_ENUMERATOR
};

inline constexpr std::array limit_names{
#define PEERPROTO_LIMIT_ROW(name, unit, value, rules) limit_name{#name, limit_unit::unit, detail::spec_value(value), rules},
    PEERPROTO_LIMITS(PEERPROTO_LIMIT_ROW)
#undef PEERPROTO_LIMIT_ROW
};

/// The entry of `l`.
constexpr const limit_name& spec_of(limit l) noexcept { return limit_names[static_cast<std::size_t>(l)]; }

/// The entry for `name`, or nullptr.
constexpr const limit_name* find_limit(std::string_view name) noexcept {
  for (const auto& l : limit_names)
    if (l.name == name) return &l;
  return nullptr;
}

}  // namespace peerproto
