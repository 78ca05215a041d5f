// Everything peerproto-node can be told, with safe defaults (loopback only, pinned trust).
#pragma once

#include "outbound.hpp"

#include <peerproto/engine.hpp>
#include <peerproto/key_file.hpp>
#include <peerproto/version.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

namespace peerproto::node {

struct node_config {
  // identity and trust
  std::filesystem::path key_file = "node.key";     ///< from `peerproto-node keygen`, mode 0600
  passphrase_source key_passphrase;               ///< asked when key_file is encrypted
  std::string entity_id;                          ///< with a pkcs11: key (a token holds no entity id)
  std::string trust = "pinned";                    ///< pinned, tofu or open (ID-4)
  std::filesystem::path peers_file;                ///< "entity_id public_key_hex" lines (pinned)
  // network
  std::string bind = "127.0.0.1";                  ///< loopback unless told otherwise
  std::uint16_t port = 8700;                       ///< 0: any free port (printed at start-up)
  std::filesystem::path tls_cert, tls_key;         ///< PEM; both given: the node speaks only TLS (https, wss)
  // state
  std::filesystem::path state_dir = "peerproto-state";  ///< SQLite database and audit log
  std::filesystem::path audit_log;                 ///< default: <state_dir>/audit.jsonl
  std::filesystem::path control_socket;            ///< default: <state_dir>/control.sock (mode 0600)
  std::size_t audit_max_bytes = 64u << 20;         ///< AUD-4: the file rotates at this size
  std::size_t audit_files = 4;                     ///< AUD-4: rotated files kept (audit.1.jsonl ...)
  // protocol
  engine_options protocol{};                       ///< every protocol limit (`--limit NAME=VALUE`, limits.hpp)
  bool require_encryption = false;                 ///< VER-7
  double rate_multiplier = 1;                      ///< scales every rate-limit bucket (load tests)
  std::size_t max_task_queue = limits::max_task_queue;  ///< MSG-6
  std::size_t max_pinned_keys = limits::max_pinned_keys;  ///< ID-10: keys handshakes may bind (tofu, open)
  std::size_t max_inbox = 10'000;                  ///< unacknowledged inbox messages before RATE_LIMITED
  outbound_options outbound{};                     ///< the outbox and the outbound client
  // transport limits (SPEC §16, §18)
  std::size_t max_header_bytes = limits::max_header_bytes;     ///< HTTP-10
  std::size_t max_body_bytes = limits::max_envelope_bytes;     ///< HTTP-3, WS-4
  std::size_t max_connections = 1024;              ///< all clients together
  std::size_t max_connections_per_address = 64;    ///< one remote IP address
  std::size_t ws_max_in_flight = limits::ws_max_in_flight;  ///< WS-2
  std::chrono::seconds read_timeout = limits::read_timeout;  ///< HTTP-11: a whole request
  std::chrono::seconds idle_timeout = limits::idle_timeout;  ///< HTTP-11: between requests
  std::chrono::seconds drain_timeout{15};          ///< SIGTERM: longest wait for in-flight work
  std::chrono::seconds linger_timeout{2};          ///< after a refusal that closes: input discarded this long
  bool quiet = false;                              ///< no start-up banner on stderr
  unsigned threads = 1;                            ///< 1: one thread; N > 1: the core and N - 1 transport threads (server.hpp)

  /// The engine options these settings imply.
  engine_options engine(const std::string& self_id) const;
};

}  // namespace peerproto::node
