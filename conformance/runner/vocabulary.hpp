// The conformance suite's vocabulary: how a case ends (verdicts, failures, skips), what the runner
// knows of the node and of itself, identities, sessions, replies and handshakes as the runner
// holds them, and small helpers. The case fixture (fixture/) and the runner's commands use it.
#pragma once

#include "wire.hpp"

#include <peerproto/crypto.hpp>
#include <peerproto/error.hpp>

#include <boost/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace peerproto::conformance {

namespace json = boost::json;

// ---------------------------------------------------------------- outcomes of a case

enum class verdict { pass, fail, timeout, skip, info };
std::string_view to_string(verdict v);

/// Thrown by an expectation that does not hold.
struct case_failure : std::runtime_error {
  case_failure(std::string rule_, std::string expected_, std::string actual_)
      : std::runtime_error(rule_ + ": expected " + expected_ + ", got " + actual_),
        rule(std::move(rule_)), expected(std::move(expected_)), actual(std::move(actual_)) {}
  std::string rule, expected, actual;
};
/// A failure in a step many cases share (the handshake before a session case): the runner
/// reports it once, with the number of cases it stopped.
struct setup_failure : case_failure {
  setup_failure(std::string step_, const case_failure& f) : case_failure(f), step(std::move(step_)) {}
  std::string step;
};
/// Thrown when a case cannot apply to this node (the reason says why).
struct case_skip : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct transcript_entry {
  std::string what;  ///< "sent", "received" or "note"
  std::string text;
};

// ---------------------------------------------------------------- the node and the runner

/// What a case needs of the node besides GET /public-key (every case needs the node's key, to
/// check its signatures). The runner finds out once, before the cases, which needs the node meets
/// (run_command.cpp), and reports a case whose need it does not meet as not run, naming the need:
/// so a half-built node gets a verdict on every case it can already answer.
enum class need : unsigned {
  capabilities = 1,  ///< GET /capabilities answers a document (the case reads it itself)
  trust = 32,        ///< the node accepts identities it has never seen (trust tofu or open)
  handshake = 2,     ///< a handshake with a new identity completes, which binds its key
  session = 4,       ///< a message in the session that handshake opened is answered in it
  websocket = 8,     ///< GET /ws upgrades to WebSocket
  shim = 16,         ///< the node sends when the runner's shim tells it to (initiator cases)
};
/// In the order the runner checks them; a session implies a handshake, which implies trust.
inline constexpr need all_needs[] = {need::capabilities, need::websocket, need::trust, need::handshake, need::session, need::shim};
struct need_set {
  unsigned bits = 0;
  constexpr need_set() = default;
  constexpr need_set(need n) : bits(static_cast<unsigned>(n)) {}  // NOLINT: a need is a set of one
  static constexpr need_set all() { return need_set(~0u); }

 private:
  constexpr explicit need_set(unsigned b) : bits(b) {}
  friend constexpr need_set operator|(need_set a, need_set b) { return need_set(a.bits | b.bits); }
};
constexpr need_set operator|(need a, need b) { return need_set(a) | need_set(b); }
constexpr bool has(need_set s, need n) { return (s.bits & static_cast<unsigned>(n)) != 0; }
/// `s` with what its needs imply: a session needs a handshake, and a handshake needs trust.
constexpr need_set with_implied(need_set s) {
  if (has(s, need::session)) s = s | need::handshake;
  return has(s, need::handshake) ? s | need::trust : s;
}
std::string_view to_string(need n);
std::optional<need> need_named(std::string_view name);
std::string_view describe(need n);  ///< what the node must do to meet it, in a few words

/// Whether the node meets a need, as the runner found out before the cases.
struct need_check {
  explicit need_check(need w = {}, bool m = false) : which(w), met(m) {}
  /// Not met because the node broke `r`.
  need_check(need w, std::string r, std::string e, std::string a)
      : which(w), rule(std::move(r)), expected(std::move(e)), actual(std::move(a)), node_fault(true) {}
  need which;
  bool met = false;
  std::string rule, expected, actual;  ///< when not met: what was asked and what the node answered
  bool node_fault = false;             ///< not met because the node broke `rule` (not a setting of the run)
};


/// What the runner learned about the node before the first case.
struct node_info {
  std::string entity_id;
  crypto::public_key key{};
  std::string fingerprint;
  json::object capabilities;
  std::vector<std::string> versions, suites, message_types;

  /// Every limit of SPEC §18 (include/peerproto/limit_names.hpp) as the run uses it: the value
  /// the node advertised, or the specification's default when it did not (listed in `assumed`).
  std::map<std::string, std::int64_t, std::less<>> limits;
  std::map<std::string, std::string> assumed;  ///< name -> why the default was assumed
  /// Without a /capabilities document: what the run assumes instead (versions, suites, types).
  std::vector<std::string> assumptions;

  bool supports_version(std::string_view v) const;
  bool has_type(std::string_view t) const;
  /// VER-2: a node that requires encryption does not support "1.0".
  bool requires_encryption() const { return !supports_version("1.0"); }
  /// The limit `name` of SPEC §18 (a name not in §18 is a bug of the runner: std::logic_error).
  std::int64_t limit(std::string_view name) const;
  /// Fills `limits` and `assumed` from `capabilities`.
  void read_limits();
};

struct settings {
  endpoint target;                      ///< host and port of the node (HTTP and /ws)
  bool websocket = false;               ///< message cases over WebSocket instead of HTTP
  std::string ws_path = "/ws";
  std::chrono::milliseconds case_timeout{20000};
  std::string base_id;                  ///< the runner's entity id; case identities extend it
  crypto::secret<32> base_seed;         ///< the runner's key seed; case keys derive from it
  std::string run_tag;                  ///< distinguishes this run's identities from earlier runs
  std::vector<std::string> source_addresses;  ///< spread over cases (back-off is per address)
  std::string shim;                     ///< initiator role: the command that makes the node send
  std::string rotate_shim;              ///< initiator role: the command that makes the node rotate its key (KR-10)
  std::string listen = "127.0.0.1";     ///< initiator role: the address the runner's peer listens on
};

struct identity {
  std::string id;
  crypto::ed25519_keypair key;
  std::string public_hex() const;
};

/// Our side of an established session.
struct session_state {
  std::string id;
  std::string version;
  std::array<std::uint8_t, 32> k_i2r{}, k_r2i{};
  std::uint64_t next_out = 1;  ///< our next sequence number
  std::uint64_t next_in = 1;   ///< the node's next sequence number we expect
  const identity* who = nullptr;
  bool encrypted() const { return version == "1.1"; }
};

/// One answer from the node: an HTTP response, or a WebSocket text message (status 0).
struct reply {
  int status = 0;
  std::string body;
  std::string content_type;
  std::string retry_after_header;
  bool websocket = false;
};

/// Message 1 of a handshake, as the runner offers it.
struct offer {
  std::vector<std::string> versions{"1.1", "1.0"};
  std::vector<std::string> suites{"x25519-hkdf-sha256-aes256gcm"};
  std::string envelope_version = "1.1";
  std::function<void(json::object& payload)> tweak;  ///< changes the payload before signing
};

/// A handshake in progress (after message 1 was built).
struct pending_handshake {
  const identity* who = nullptr;
  json::object msg1;
  std::string text1;
  std::optional<crypto::x25519_keypair> ephemeral;
};

/// Message 2 as received and checked, with the keys derived from it.
struct acked_handshake {
  json::object msg2;
  std::string session_id, selected_version;
  std::optional<std::string> suite;
  session_state keys;
  std::array<std::uint8_t, 32> k_confirm{};
};

// ---------------------------------------------------------------- small helpers for cases

std::string random_hex(std::size_t bytes);
std::string random_uuid();
std::string timestamp_at(std::chrono::milliseconds offset_from_now = {}, int fraction_digits = 3);
std::string canonical(const json::value& v);
json::object parse_object(const std::string& text);  ///< for texts the runner built itself

/// A named JSON value, for tables of malformed forms.
struct named_value {
  std::string name;
  json::value value;
};

}  // namespace peerproto::conformance
