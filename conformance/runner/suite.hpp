// The conformance suite's vocabulary: a case, the context it runs in, and the expectations that
// decide its verdict. A case builds envelopes as JSON objects (so it can break any rule), sends
// them to the node over the chosen transport, and checks each answer completely: status, error
// code, the reply's signature or session seal, and the reply's reference to the request.
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

// ---------------------------------------------------------------- the context of one case

class context {
 public:
  context(const settings& cfg, const node_info& node, std::size_t case_number, std::chrono::milliseconds timeout);
  ~context();

  const settings& cfg;
  const node_info& node;
  std::vector<transcript_entry> transcript;
  std::vector<std::pair<std::string, std::string>> envelopes;  ///< (direction, text) for --save-transcripts

  deadline until() const { return deadline_; }
  endpoint source_endpoint() const;  ///< the target, bound to this case's source address
  std::size_t source_index() const { return case_number_; }  ///< this case's place in --source-addresses

  // identities: the case's own, and more on demand; each is new to the node
  const identity& me();
  const identity& fresh();

  // envelopes
  json::object header(const identity& from, std::string_view type, json::object payload = {},
                      std::string_view version = "1.1");
  std::string sign(json::object& o, const identity& by);  ///< sets `signature`, returns the JCS text
  json::object session_header(session_state& s, std::string_view type);  ///< next sequence number
  /// The session message `o` finished for the wire: sealed (1.1) or signed (1.0).
  std::string seal(session_state& s, json::object o, const json::object& payload);
  /// Seals exactly `plaintext` (any bytes, even invalid JSON) into the 1.1 session header `o`.
  std::string seal_plaintext(session_state& s, json::object o, const std::string& plaintext);
  std::string session_message(session_state& s, std::string_view type, const json::object& payload = {});

  // handshakes
  pending_handshake begin_handshake(const identity& who, const offer& o = {});
  acked_handshake check_ack(const pending_handshake& p, const reply& r);
  json::object confirm_message(const pending_handshake& p, const acked_handshake& a);
  session_state finish_handshake(const pending_handshake& p, acked_handshake& a, const std::string& text3, const reply& r);
  /// Sends the correct message 3 of an acked handshake and returns the ready session.
  session_state confirm(const pending_handshake& p, acked_handshake& a);
  session_state handshake(const identity& who, const offer& o = {});
  /// Binds a fresh identity's key at the node (one handshake, tofu or open trust).
  const identity& bound();

  // transport: messages go over HTTP (POST /message) or WebSocket, as configured
  reply exchange(const std::string& text);
  void send(const std::string& text);  ///< WebSocket: without waiting; HTTP: on a new connection
  reply receive();                     ///< the next answer to send() (WebSocket: in arrival order)
  http_connection& http();             ///< the case's keep-alive HTTP connection
  ws_connection& ws();                 ///< the case's WebSocket connection
  http_response get(const std::string& path);
  /// POSTs `text` over HTTP from the source address `source` (one of --source-addresses), on a
  /// connection of its own: for rules kept per remote address.
  reply exchange_from(const std::string& source, const std::string& text);

  // expectations
  void expect_error(const reply& r, const std::string& request, errc code, std::string_view rule,
                    std::string_view message_contains = {});
  /// Checks a successful reply of `type` to `request` (in session `s` if given); returns its
  /// payload and advances s->next_in.
  json::object expect_reply(const reply& r, const std::string& request, std::string_view type, std::string_view rule,
                            session_state* s = nullptr);
  void check(bool ok, std::string_view rule, const std::string& expected, const std::string& actual);
  [[noreturn]] void fail(std::string_view rule, const std::string& expected, const std::string& actual);
  [[noreturn]] void skip(const std::string& reason);
  void require_type(std::string_view type);
  void require_version(std::string_view version);
  void note(const std::string& text);
  /// Adds to the transcript (and, for envelopes, to the saved envelopes) what a case sent or
  /// received over a connection of its own.
  void record(const std::string& what, const std::string& text, const std::string* envelope = nullptr);
  std::string describe(const reply& r) const;
  /// Skips the case when the node requires encryption and answered a plaintext `request` with
  /// ENCRYPTION_REQUIRED where the case expected an outcome decided after that step (`later`).
  void skip_if_encryption_required(const reply& r, const std::string& request, bool later);

 private:
  std::size_t case_number_;
  deadline deadline_;
  std::vector<std::unique_ptr<identity>> identities_;
  std::unique_ptr<http_connection> http_;
  std::unique_ptr<ws_connection> ws_;
  std::vector<std::unique_ptr<http_connection>> waiting_;  ///< HTTP requests sent, not yet read
  reply from_http(const http_response& h);
};

// ---------------------------------------------------------------- cases

struct test_case {
  std::string id;                         ///< names its requirement, e.g. "ENV-5/uppercase"
  std::vector<std::string> requirements;  ///< the first one gives the level
  std::string group;
  std::string title;
  std::function<void(context&)> run;
  std::chrono::milliseconds timeout{0};   ///< 0: the runner's default
  bool exclusive = false;                 ///< runs alone, after the others (it fills a node-wide limit)
};

/// Adds the cases of each group to the catalogue.
void add_json_cases(std::vector<test_case>& out);
void add_envelope_cases(std::vector<test_case>& out);
void add_signature_cases(std::vector<test_case>& out);  ///< and replay protection
void add_version_cases(std::vector<test_case>& out);
void add_handshake_cases(std::vector<test_case>& out);
void add_session_cases(std::vector<test_case>& out);
void add_ordering_cases(std::vector<test_case>& out);
void add_chunk_cases(std::vector<test_case>& out);
void add_rate_limit_cases(std::vector<test_case>& out);
void add_message_cases(std::vector<test_case>& out);
void add_transport_cases(std::vector<test_case>& out);

/// The whole catalogue, in run order.
const std::vector<test_case>& catalogue();
/// MUST requirements no case can check over the wire within a run, each with the reason.
const std::map<std::string, std::string>& not_on_the_wire();

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
