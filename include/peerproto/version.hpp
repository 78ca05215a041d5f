// Protocol versions, suite names, and every limit and default of docs/SPEC.md §18, in one place
// (VER-1). Other headers take these values through their options structs; nothing else in the
// library spells a protocol number.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace peerproto {

/// The library's own version (not the protocol's).
inline constexpr std::string_view library_version = "0.1.0";

/// Protocol versions this library implements, highest first (VER-2, VER-3).
inline constexpr std::string_view version_1_0 = "1.0";
inline constexpr std::string_view version_1_1 = "1.1";
inline constexpr std::array<std::string_view, 2> supported_versions{version_1_1, version_1_0};

/// The only cipher suite of protocol 1.1 (VER-9).
inline constexpr std::string_view suite_x25519_aes256gcm = "x25519-hkdf-sha256-aes256gcm";

/// Fixed labels of the key schedule (HS-11, HS-12).
inline constexpr std::string_view hkdf_info_session_key = "peer-v1.1-session-key";
inline constexpr std::string_view key_confirmation_label = "peer-v1.1-confirm";

/// Schema name of audit records (AUD-2).
inline constexpr std::string_view audit_schema = "peerproto.audit.v1";

namespace limits {
using std::chrono::seconds;
using namespace std::chrono_literals;

// Envelope and JSON (SPEC §3, §4).
inline constexpr std::size_t max_envelope_bytes = 1024 * 1024;         ///< JSON-5
inline constexpr std::size_t max_json_depth = 32;                      ///< JSON-4
inline constexpr std::size_t max_entity_id_chars = 128;                ///< ID-2
inline constexpr std::size_t max_msg_type_chars = 64;                  ///< ENV-5
inline constexpr std::uint64_t max_sequence_num = (1ULL << 53) - 1;    ///< ENV-14
inline constexpr std::size_t max_error_message_chars = 512;            ///< ERR-2
inline constexpr std::size_t max_close_reason_chars = 256;             ///< SES-8

// Replay protection (SPEC §6).
inline constexpr seconds timestamp_tolerance = 60s;                    ///< RPL-1
inline constexpr std::size_t max_replay_entries = 1'000'000;           ///< RPL-4

// Handshake and sessions (SPEC §8, §9).
inline constexpr seconds handshake_timeout = 30s;                      ///< HS-16
inline constexpr std::size_t max_pending_handshakes_per_peer = 4;      ///< HS-17
inline constexpr std::size_t max_pending_handshakes_total = 1024;      ///< HS-18
inline constexpr std::size_t max_sessions_total = 10'000;              ///< HS-25
inline constexpr std::size_t max_pending_handshakes_per_address = 32;  ///< HS-26
inline constexpr std::size_t max_sessions_per_peer = 4;                ///< HS-27
inline constexpr std::size_t max_pinned_keys = 100'000;                ///< ID-10
inline constexpr seconds rotation_grace = 3600s;                      ///< KR-6
inline constexpr std::size_t max_rotation_chain = 16;                  ///< KR-3
inline constexpr seconds session_idle_ttl = 30min;                     ///< SES-4
inline constexpr seconds session_lifetime = 24h;                       ///< SES-5
inline constexpr std::uint64_t max_messages_per_direction = 0xFFFF'FFFFULL; ///< SES-6
inline constexpr seconds terminal_session_retention = 300s;            ///< SES-10

// Ordering (SPEC §11).
inline constexpr std::uint64_t reorder_window = 64;                    ///< ORD-3 (W)
inline constexpr seconds gap_timeout = 5s;                             ///< ORD-6 (G)

// Chunked transfer (SPEC §12).
inline constexpr std::size_t max_chunk_data_bytes = 256 * 1024;        ///< CHK-2
inline constexpr std::size_t max_chunks_per_transfer = 4096;           ///< CHK-2
inline constexpr std::size_t max_transfer_bytes = 64 * 1024 * 1024;    ///< CHK-9
inline constexpr std::size_t max_transfers_per_peer = 4;               ///< CHK-10
inline constexpr seconds transfer_idle_timeout = 300s;                 ///< CHK-11
inline constexpr std::size_t max_reassembly_bytes_total = 256 * 1024 * 1024; ///< CHK-13
inline constexpr std::size_t max_completed_transfers = 4096;         ///< CHK-4

// Rate limiting (SPEC §13). Rates are tokens per minute.
struct bucket_default {
  double per_minute;  ///< refill rate
  double burst;       ///< capacity
};
inline constexpr bucket_default pre_auth_bucket{600, 1200};            ///< RL-1
inline constexpr bucket_default handshake_bucket{5, 10};               ///< RL-2
inline constexpr bucket_default heartbeat_bucket{60, 120};             ///< RL-2
inline constexpr bucket_default task_bucket{30, 60};                   ///< RL-2
inline constexpr bucket_default discovery_bucket{10, 20};              ///< RL-2
inline constexpr bucket_default chunk_bucket{120, 240};                ///< RL-2
inline constexpr bucket_default default_bucket{60, 120};               ///< RL-2
inline constexpr std::size_t backoff_threshold = 5;                    ///< RL-4
inline constexpr seconds backoff_window = 60s;                         ///< RL-4
inline constexpr seconds backoff_initial = 1s;                         ///< RL-4
inline constexpr seconds backoff_max = 300s;                           ///< RL-4
inline constexpr std::size_t max_rate_limit_keys = 100'000;            ///< RL-8

// Node and transports (SPEC §15, §16).
inline constexpr std::size_t max_task_queue = 1000;                    ///< MSG-6
inline constexpr std::size_t max_header_bytes = 8192;                  ///< HTTP-10
inline constexpr seconds read_timeout = 10s;                           ///< HTTP-11
inline constexpr seconds idle_timeout = 60s;                           ///< HTTP-11
inline constexpr std::size_t ws_max_in_flight = 64;                    ///< WS-2

}  // namespace limits
}  // namespace peerproto
