// The network fuzzer's inputs: what the fuzzer sends, as a recipe that can be saved and replayed,
// and the mutations that make them. Every choice comes from one seeded generator, so a run with
// the same --seed makes the same inputs in the same order.
//
// Unlike a byte fuzzer, most inputs are mutated *before* they are signed or sealed: the fuzzer
// signs the mutated envelope with its own identity, or seals the mutated payload in a session it
// opened, so the input passes authentication and reaches the node's deeper checks.
#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace peerproto::conformance::netfuzz {

namespace json = boost::json;

/// How an input is sent; the recipe is its JSON form in a finding file.
enum class input_kind {
  signed_envelope,  ///< `envelope` (without signature) signed by the fuzzer's identity and POSTed
  session_message,  ///< `header` and `payload` sealed (or signed, 1.0) in a session the fuzzer opens
  raw_body,         ///< `body`, bytes as they are, as one message
  raw_http,         ///< `bytes`, a whole HTTP request on a new connection (plain TCP targets)
  raw_ws,           ///< `bytes`, WebSocket frames sent after an upgrade on a new connection (plain TCP targets)
  forgery,          ///< `forgery` (one of `forgeries`), which the node must refuse
};

/// Inputs a node must refuse, each with the rule its acceptance breaks: the `accepted` oracle.
/// All but `unknown_sender` need the fuzzer's identity bound and a session; `unknown_sender` is
/// only a forgery for a node whose trust is pinned (fuzz --node-trust pinned), and is then the only
/// one. `expired_session` waits out the node's idle time, so it is sent only when that is 5 s or less.
struct forgery_kind {
  std::string_view name, rule, what;
};
inline constexpr forgery_kind forgeries[] = {
    {"tampered", "SIG-5", "a message with a signed member changed after signing"},
    {"other_key", "SIG-1", "a message signed by another key than its sender's"},
    {"replayed", "RPL-2", "the same signed message a second time"},
    {"stale", "RPL-1", "a signed message dated 30 s beyond the timestamp tolerance"},
    {"wrong_key", "ENC-5", "a session message sealed with the node's direction key (k_r2i)"},
    {"reused_sequence", "ORD-4", "a second, different session message with a sequence number already delivered"},
    {"closed_session", "SES-8", "a message in a session the fuzzer closed"},
    {"expired_session", "SES-4", "a message in a session idle longer than the node's session_idle_ttl_ms"},
    {"unknown_sender", "ID-5", "a handshake from an identity the node has not pinned"},
};
/// The forgery called `name`; std::invalid_argument when there is none.
const forgery_kind& forgery_named(std::string_view name);
std::string_view to_string(input_kind k);

struct input {
  input_kind kind = input_kind::signed_envelope;
  json::object envelope;  ///< signed_envelope: sender/recipient/nonce/timestamp are filled in when sent
  json::object header;    ///< session_message: members other than session_id/sequence_num are as given
  json::object payload;   ///< session_message
  std::int64_t sequence_offset = 0;  ///< session_message: sequence_num = next + offset
  std::string bytes;      ///< raw_body, raw_http
  std::string forgery;    ///< forgery: its name (forgeries)
  std::string member;     ///< forgery "tampered": the signed member changed
  std::string mutation;   ///< what was done to the seed, for the finding
  json::object to_json() const;
  static input from_json(const json::object& o);  ///< throws std::invalid_argument
};

/// Seeds: one message of each type the suite sends, and any given with --seeds.
struct seed {
  std::string msg_type;
  json::object payload;
};
std::vector<seed> builtin_seeds();
/// The sent envelopes of a --save-transcripts directory (NNN-sent.json), as seeds.
std::vector<seed> seeds_from(const std::string& dir);

class mutator {
 public:
  /// `raw_tcp`: the target is reached over plain TCP, so malformed HTTP and WebSocket framing can
  /// be sent (not through TLS). `forging`: the forgeries mixed in (one in 12 inputs); when it is
  /// all the mutator may make (`only_forgeries`), every input is one of them.
  mutator(std::uint64_t seed_value, std::vector<seed> seeds, bool raw_tcp, std::vector<std::string_view> forging = {},
          bool only_forgeries = false)
      : rng_(seed_value), seeds_(std::move(seeds)), raw_tcp_(raw_tcp), forging_(std::move(forging)), only_forgeries_(only_forgeries) {}

  /// The next input.
  input next();
  /// Smaller forms of `in` to try when minimizing a finding, most reducing first.
  std::vector<input> reductions(const input& in) const;

 private:
  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }
  bool chance(int percent) { return pick(100) < static_cast<std::size_t>(percent); }
  json::value odd_value();
  std::string mutate_value(json::value& v, int depth);
  std::string mutate_object(json::object& o);
  std::string mutate_bytes(std::string& s);
  std::string http_request(const std::string& body, std::string& what);
  std::string ws_frames(const std::string& body, std::string& what);
  std::string frame(std::uint8_t first, const std::string& payload, bool masked = true, std::optional<std::uint64_t> length = {});

  input forged();

  std::mt19937_64 rng_;
  std::vector<seed> seeds_;
  bool raw_tcp_;
  std::vector<std::string_view> forging_;
  bool only_forgeries_;
};

}  // namespace peerproto::conformance::netfuzz
