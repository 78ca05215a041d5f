// The fuzz command: mutated messages sent to a node for a set time, each answer judged by oracles
// that need no knowledge of the node's code:
//   node_down       the node stops answering /health
//   server_error    an answer with a 5xx status (ERR-7)
//   no_answer       a message that gets no answer, or a connection closed without one (except
//                   the WebSocket closes WS-4 and WS-5 ask for: 1009 oversize, 1007 invalid UTF-8)
//   bad_reply       an answer that is neither a signed envelope of the node nor a documented HTTP
//                   error: unreadable, not signed by the node, a session reply that does not
//                   open, an `error` whose status is not its code's (ERR-6)
//   session_broken  a session that no longer answers a valid message after a refused one
//   accepted        a forgery (netfuzz/mutator.hpp: a changed signed member, a replay, a stale
//                   timestamp, another key, the wrong session key, a reused sequence number, a
//                   closed or idle-expired session, an unknown sender under pinned trust) answered as accepted;
//                   the finding names the rule the acceptance breaks
//   memory          the node's resident memory (--pid) grows beyond --max-rss-growth
// A finding is minimized (when the node is still up) and saved as a JSON file with the input and
// the command that replays it. The inputs depend only on --seed.
#include "commands.hpp"
#include "netfuzz/mutator.hpp"

#include <peerproto/encoding.hpp>
#include <peerproto/envelope.hpp>
#include <peerproto/error.hpp>
#include <peerproto/jcs.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>

namespace peerproto::conformance {
namespace {
using namespace netfuzz;
using clock = std::chrono::steady_clock;

struct verdict_of_input {
  std::string oracle;  ///< empty: every oracle held
  std::string detail;
  std::string rule = {};  ///< the rule a finding breaks, when one names it (accepted)
  bool fatal() const { return oracle == "node_down"; }
};

// RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const std::size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (!n || i + n > s.size()) return false;
    std::uint32_t cp = n == 1 ? b : b & (0x7F >> n);
    for (std::size_t k = 1; k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c >> 6) != 2) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    const std::uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

std::size_t rss_kib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("VmRSS:")) return std::stoul(line.substr(6));
  return 0;
}

// Members whose value is a placeholder get theirs at send time; "$absent" removes the member.
void fill(json::object& o, const identity& me, const node_info& node, bool top) {
  for (auto it = o.begin(); it != o.end();) {
    auto& v = it->value();
    if (v.is_object()) fill(v.get_object(), me, node, false);
    if (v.is_string()) {
      const auto s = v.get_string();
      if (s == "$absent") {
        it = o.erase(it);
        continue;
      }
      if (s == "$self") v = top ? me.id : me.public_hex();
      else if (s == "$node") v = node.entity_id;
      else if (s == "$now") v = timestamp_at();
      else if (s == "$nonce") v = random_hex(16);
    }
    ++it;
  }
}

/// Sends inputs as a sequence of identities, each with a session, and judges the answers.
class executor {
 public:
  /// `first_identity`: identities are numbered from there (workers use disjoint ranges).
  executor(const settings& cfg, const node_info& node, std::size_t first_identity)
      : cfg_(cfg), node_(node), identities_(first_identity) {
    const auto g = node.limit("gap_timeout_ms");
    per_message_ = std::chrono::milliseconds(g) + std::chrono::seconds(4);
  }
  ~executor() { retire(); }

  /// Runs `in`; with `alone`, as the first input of a new identity and session, as a replay does.
  verdict_of_input run(const input& in, bool alone = false) {
    try {
      if (!c_ || alone || ++used_ > uses_per_identity || clock::now() + per_message_ > c_->until()) rotate();
      switch (in.kind) {
        case input_kind::signed_envelope: {
          auto e = in.envelope;
          fill(e, c_->me(), node_, true);
          e.erase("signature");
          return judge(c_->exchange(c_->sign(e, c_->me())), false);
        }
        case input_kind::raw_body: return judge(c_->exchange(in.bytes), false);
        case input_kind::raw_http: return raw_http(in.bytes);
        case input_kind::raw_ws: return raw_ws(in.bytes);
        case input_kind::session_message: return session(in);
        case input_kind::forgery: return forge(in);
      }
    } catch (const wire_failure& w) {
      const bool down = !alive();
      retire();
      if (down) return {"node_down", "the node stopped answering /health after: " + std::string(w.what())};
      // WebSocket closes the rules ask for: invalid UTF-8 (WS-5, RFC 6455 §8.1), oversize (WS-4).
      // The close code of a text message with invalid UTF-8 may be lost when the node drops the
      // connection right after its close frame; the close is what counts.
      const bool bad_text = cfg_.websocket && in.kind == input_kind::raw_body && !valid_utf8(in.bytes);
      if (w.ws_close_code == 1007 || w.ws_close_code == 1009 || (bad_text && w.what_kind != wire_failure::kind::timeout)) {
        ++answers["WebSocket close " + (w.ws_close_code ? std::to_string(w.ws_close_code) : std::string("(code lost)"))];
        return {};
      }
      return {"no_answer", w.what()};
    }
    return {};
  }
  bool alive() {
    try {
      return http_get(cfg_.target, "/health", clock::now() + std::chrono::seconds(3)).status == 200;
    } catch (const wire_failure&) {
      return false;
    }
  }
  std::map<std::string, std::size_t> answers;  ///< error_code (or "reply") -> count
  std::size_t handshakes_refused = 0;

 private:
  void retire() {
    if (c_ && s_) try {
        c_->exchange(c_->session_message(*s_, "session_close", {{"reason", "fuzzer identity retired"}}));
      } catch (const std::exception&) {
      }
    s_.reset();
    c_.reset();
  }
  void rotate() {
    retire();
    used_ = 0;
    c_ = std::make_unique<context>(cfg_, node_, ++identities_, std::chrono::seconds(30));
    try {
      s_ = c_->handshake(c_->me());
    } catch (const case_failure&) {
      ++handshakes_refused;  // rate limited or full: session inputs wait for the next identity
    }
  }

  verdict_of_input session(const input& in) {
    if (!s_) return {};
    auto& s = *s_;
    json::object h = c_->session_header(s, "x");
    --s.next_out;  // consumed only if the node delivers it
    h["sequence_num"] = s.next_out + static_cast<std::uint64_t>(in.sequence_offset);
    for (const auto& kv : in.header) h[kv.key()] = kv.value();
    if (!in.header.contains("msg_type")) h.erase("msg_type");  // minimized away
    fill(h, c_->me(), node_, true);
    std::string text;
    if (s.encrypted()) {
      const auto* seq = h.if_contains("sequence_num");
      const std::uint64_t n = seq && seq->is_uint64() ? seq->get_uint64() : seq && seq->is_int64() ? static_cast<std::uint64_t>(seq->get_int64()) : s.next_out;
      const auto plaintext = jcs::canonicalize(in.payload);
      const auto sealed = crypto::aes_gcm_seal(s.k_i2r, session_nonce(n), as_bytes(jcs::canonicalize(h)), as_bytes(plaintext));
      h["encrypted_payload"] = base64_encode(sealed);
      text = jcs::canonicalize(h);
    } else {
      h["payload"] = in.payload;
      text = c_->sign(h, c_->me());
    }
    const auto r = c_->exchange(text);
    if (r.status == 200) {
      ++s.next_out;
      return judge(r, true);
    }
    if (auto v = judge(r, true); !v.oracle.empty()) return v;
    return probe();
  }

  // After a refused session message, a valid one must still be answered in the session.
  verdict_of_input probe() {
    auto& s = *s_;
    for (int attempt = 0; attempt < 2; ++attempt) {
      const auto text = c_->session_message(s, "ping", {{"probe", true}});
      const auto r = c_->exchange(text);
      if (r.status == 200 || (r.websocket && r.body.find("\"pong\"") != std::string::npos)) return judge(r, true);
      if (r.body.find("\"REPLAY_DETECTED\"") != std::string::npos) continue;  // the refused one used the number (ORD-7)
      if (r.body.find("\"RATE_LIMITED\"") != std::string::npos) {
        --s.next_out;
        return {};
      }
      return {"session_broken", "a valid ping after a refused message was answered " + c_->describe(r)};
    }
    return {"session_broken", "two valid pings after a refused message were answered REPLAY_DETECTED"};
  }

  verdict_of_input raw_http(const std::string& bytes) {
    http_connection conn(c_->source_endpoint(), clock::now() + std::chrono::seconds(3));
    conn.write_raw(bytes, clock::now() + std::chrono::seconds(3));
    try {
      const auto h = conn.receive(clock::now() + std::chrono::milliseconds(300));  // no longer: a node may wait for promised bytes
      if (h.status >= 500) return {"server_error", "HTTP " + std::to_string(h.status) + " to a malformed request"};
      ++answers["HTTP " + std::to_string(h.status)];
    } catch (const wire_failure& w) {
      // No answer (still waiting for the promised bytes) or closed: both allowed (HTTP-10, HTTP-11).
      if (!alive()) return {"node_down", "the node stopped answering /health after a malformed HTTP request: " + std::string(w.what())};
    }
    return {};
  }

  // An upgrade to WebSocket, then the frames: a node may close or refuse them (RFC 6455 §7.1.7), but
  // must not answer 5xx or go down.
  verdict_of_input raw_ws(const std::string& frames) {
    http_connection conn(c_->source_endpoint(), clock::now() + std::chrono::seconds(3));
    conn.write_raw("GET " + cfg_.ws_path + " HTTP/1.1\r\nHost: node\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" + frames,
                   clock::now() + std::chrono::seconds(3));
    try {
      const auto got = conn.read_until_closed(clock::now() + std::chrono::milliseconds(300));  // or wait for our close (RFC 6455 §7.1.1)
      if (got && got->starts_with("HTTP/1.1 5")) return {"server_error", got->substr(0, got->find('\r'))};
      ++answers[got ? "WebSocket closed" : "WebSocket open"];
    } catch (const wire_failure& w) {
      if (!alive()) return {"node_down", "the node stopped answering /health after malformed WebSocket frames: " + std::string(w.what())};
    }
    return {};
  }

  // An answer that is an envelope other than `error` accepted the message.
  static bool accepted(const reply& r) {
    const auto e = parse_envelope(r.body);
    return e && e->msg_type != "error";
  }

  // Sends a forgery (after what it needs: a first, accepted copy for a replay, a closed session);
  // the node must refuse it. The identity and its session end with it.
  verdict_of_input forge(const input& in) {
    const auto& f = forgery_named(in.forgery);
    used_ = uses_per_identity;  // the next input starts a new identity
    const auto refused = [&](const reply& r) -> verdict_of_input {
      if (accepted(r)) return {"accepted", std::string(f.rule) + ": " + std::string(f.what) + " was accepted: " + c_->describe(r), std::string(f.rule)};
      ++answers["forgery refused"];
      return judge(r, false);
    };
    if (f.name == "unknown_sender") {
      const auto p = c_->begin_handshake(c_->fresh());
      return refused(c_->exchange(p.text1));
    }
    if (!s_) return {};  // not bound (the handshake was refused): a forgery would prove nothing
    auto& s = *s_;
    const auto& me = c_->me();
    const auto ping = [&] { return c_->header(me, "ping", {{"text", "hello"}}); };
    if (f.name == "tampered") {
      auto o = ping();
      c_->sign(o, me);
      if (in.member == "payload") o["payload"] = json::object{{"text", "hellO"}};
      else if (in.member == "timestamp") o["timestamp"] = timestamp_at(std::chrono::seconds(1));
      else if (in.member == "nonce") o["nonce"] = random_hex(16);
      else if (in.member == "msg_type") o["msg_type"] = "heartbeat";
      else o["version"] = "1.0";
      return refused(c_->exchange(canonical(o)));
    }
    if (f.name == "other_key") {
      auto o = ping();
      return refused(c_->exchange(c_->sign(o, c_->fresh())));
    }
    if (f.name == "stale") {
      auto o = ping();
      o["timestamp"] = timestamp_at(-std::chrono::milliseconds(node_.limit("timestamp_tolerance_ms")) - std::chrono::seconds(30));
      return refused(c_->exchange(c_->sign(o, me)));
    }
    if (f.name == "replayed") {
      auto o = ping();
      const auto text = c_->sign(o, me);
      if (const auto first = c_->exchange(text); !accepted(first)) return judge(first, false);
      return refused(c_->exchange(text));
    }
    if (f.name == "wrong_key") {
      if (!s.encrypted()) return {};
      auto mirrored = s;  // the fixture seals with k_i2r: give it the node's direction key instead
      mirrored.k_i2r = s.k_r2i;
      return refused(c_->exchange(c_->seal_plaintext(mirrored, c_->session_header(s, "ping"), R"({"text":"hello"})")));
    }
    if (f.name == "reused_sequence") {
      if (const auto first = c_->exchange(c_->session_message(s, "ping", {{"n", 1}})); !accepted(first)) return judge(first, true);
      auto h = c_->session_header(s, "ping");
      h["sequence_num"] = s.next_out - 2;  // the number the first one used
      return refused(c_->exchange(c_->seal(s, h, {{"n", 2}})));
    }
    // closed_session, expired_session: a second session of the same identity, closed or left idle,
    // then used.
    std::optional<session_state> second;
    try {
      second = c_->handshake(me);
    } catch (const case_failure&) {
      return {};  // refused (sessions per peer, rate limits): nothing to close
    }
    auto& ended = *second;
    if (f.name == "expired_session") {
      std::this_thread::sleep_for(std::chrono::milliseconds(node_.limit("session_idle_ttl_ms")) + std::chrono::milliseconds(1500));
    } else if (const auto bye = c_->exchange(c_->session_message(ended, "session_close", {{"reason", "done"}})); !accepted(bye)) {
      return {};
    }
    return refused(c_->exchange(c_->session_message(ended, "ping", {{"text", "hello"}})));
  }

  verdict_of_input judge(const reply& r, bool in_session) {
    if (!r.websocket && r.status >= 500) return {"server_error", c_->describe(r)};
    if (r.body.empty()) {
      if (r.websocket || r.status == 400) return {};  // no envelope in answer to an error (ERR-8)
      return {"bad_reply", "HTTP " + std::to_string(r.status) + " without a body"};
    }
    const auto e = parse_envelope(r.body);
    if (!e) {
      static const std::set<int> http_level{404, 405, 408, 411, 414, 431, 505};
      if (!r.websocket && http_level.contains(r.status)) return {};
      return {"bad_reply", "an answer that is not an envelope: " + c_->describe(r)};
    }
    if (e->session_id) {
      if (!in_session || !s_ || format_uuid(*e->session_id) != s_->id) return {"bad_reply", "a session reply in a session the fuzzer did not use: " + c_->describe(r)};
      if (s_->encrypted() && !open(*e, s_->k_r2i)) return {"bad_reply", "a session reply that does not open with k_r2i: " + c_->describe(r)};
      ++answers["reply"];
      return {};
    }
    if (!verify_signature(*e, node_.key)) return {"bad_reply", "an answer not signed by the node's key: " + c_->describe(r)};
    if (e->msg_type == "error" && e->payload) {
      const auto* code = e->payload->if_contains("error_code");
      const std::string name = code && code->is_string() ? std::string(code->get_string()) : "?";
      ++answers[name];
      for (const auto& info : detail::errc_table)
        if (info.wire == name && !r.websocket && r.status != info.http)
          return {"bad_reply", name + " with HTTP " + std::to_string(r.status) + ", not " + std::to_string(info.http) + " (ERR-6)"};
    } else {
      ++answers["reply"];
    }
    return {};
  }

  static constexpr std::size_t uses_per_identity = 50;
  const settings& cfg_;
  const node_info& node_;
  std::chrono::milliseconds per_message_;
  std::unique_ptr<context> c_;
  std::optional<session_state> s_;
  std::size_t used_ = 0, identities_;
};

// Worker w's generator seed: distinct streams from one --seed (splitmix64's constant).
std::uint64_t worker_seed(std::uint64_t seed, unsigned worker) { return seed ^ (0x9E3779B97F4A7C15ULL * worker); }

std::chrono::seconds parse_duration(const std::string& text) {
  std::size_t used = 0;
  long n = -1;
  try {
    n = std::stol(text, &used);
  } catch (const std::exception&) {
  }
  const std::string unit = text.substr(used);
  const long scale = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : 0;
  if (n <= 0 || scale == 0) throw setup_error("--duration takes a number of seconds, or with s, m or h (got " + text + ")");
  return std::chrono::seconds(n * scale);
}

std::string save_finding(const fuzz_options& o, const std::optional<input>& in, const verdict_of_input& v, std::uint64_t seed,
                         std::size_t number, const std::string& original, const std::vector<input>& in_flight) {
  std::filesystem::create_directories(o.findings_dir);
  const auto file = (std::filesystem::path(o.findings_dir) / ("finding-" + std::to_string(number) + "-" + v.oracle + ".json")).string();
  json::object f{{"schema", "peerproto.conformance.finding.v1"},
                 {"oracle", v.oracle},
                 {"detail", v.detail},
                 {"rule", v.rule.empty() ? json::value(nullptr) : json::value(v.rule)},
                 {"seed", seed},
                 {"input", in ? json::value(in->to_json()) : json::value(nullptr)},
                 {"replay", "peerproto-conformance fuzz --target " + o.base.target + (o.base.ca_file.empty() ? "" : " --ca-file " + o.base.ca_file) +
                                " --replay " + file}};
  if (!original.empty()) f["before_minimizing"] = original;
  if (!in_flight.empty()) {
    // A node that went down may have been brought down by another worker's input.
    json::array others;
    for (const auto& x : in_flight) others.push_back(x.to_json());
    f["also_in_flight"] = std::move(others);
  }
  std::ofstream(file) << jcs::canonicalize(f) << "\n";
  return file;
}

// The forgeries a run mixes in: under pinned trust only an unknown sender (no identity of the
// fuzzer is bound), otherwise all the others; --forgery NAME: that one alone.
std::vector<std::string_view> forgeries_for(const fuzz_options& o, const node_info* node) {
  if (o.node_trust != "pinned" && o.node_trust != "tofu" && o.node_trust != "open")
    throw setup_error("--node-trust is pinned, tofu or open (got " + o.node_trust + ")");
  const bool pinned = o.node_trust == "pinned";
  const bool short_idle = node && node->limit("session_idle_ttl_ms") <= 5000;
  std::vector<std::string_view> out;
  for (const auto& f : forgeries)
    if ((f.name == "unknown_sender") == pinned && (f.name != "expired_session" || short_idle)) out.push_back(f.name);
  if (o.forgery.empty()) return out;
  const auto named = std::find(out.begin(), out.end(), o.forgery);
  if (named != out.end()) return {*named};
  try {
    forgery_named(o.forgery);
  } catch (const std::invalid_argument& e) {
    throw setup_error(std::string("--forgery: ") + e.what());
  }
  throw setup_error("--forgery " + o.forgery + (o.forgery == "expired_session" && !pinned
                                                    ? " waits out the node's session_idle_ttl_ms, which must be 5000 or less"
                                                : pinned ? " needs a bound identity, which a node with pinned trust refuses"
                                                         : " is a forgery only for a node with pinned trust (--node-trust pinned)"));
}

}  // namespace

int fuzz_command(const fuzz_options& o) {
  if (o.print_inputs) {
    if (!o.seed) throw setup_error("--print-inputs needs --seed");
    mutator m(worker_seed(*o.seed, 0), builtin_seeds(), true, forgeries_for(o, nullptr), !o.forgery.empty());
    for (std::size_t i = 0; i < o.print_inputs; ++i) {
      const auto in = m.next();
      std::cout << jcs::canonicalize(in.to_json()) << "\n";
    }
    return 0;
  }
  if (o.base.target.empty()) throw setup_error("fuzz needs --target");
  const settings cfg = settings_from(o.base);
  const auto node = discover(cfg, o.base.node_key);

  if (!o.replay.empty()) {
    std::ifstream in(o.replay);
    const std::string text{std::istreambuf_iterator<char>(in), {}};
    boost::system::error_code ec;
    json::parse_options deep;
    deep.max_depth = 4096;  // inputs nest deeper than Boost.JSON's default of 32
    const auto f = json::parse(text, ec, {}, deep);
    if (ec) throw setup_error(o.replay + " is not JSON: " + ec.message());
    if (!f.is_object() || !f.as_object().contains("input")) throw setup_error(o.replay + " is not a finding file (no input)");
    if (!f.at("input").is_object()) throw setup_error(o.replay + " has no input to replay (a memory or node_down finding of the run as a whole)");
    // The input, then any that were in flight beside it (a node_down found by parallel workers).
    std::vector<input> recorded;
    try {
      recorded.push_back(input::from_json(f.at("input").as_object()));
      if (const auto* also = f.as_object().if_contains("also_in_flight"); also && also->is_array())
        for (const auto& x : also->as_array()) recorded.push_back(input::from_json(x.as_object()));
    } catch (const std::exception& e) {
      throw setup_error(o.replay + ": " + e.what());
    }
    executor x(cfg, node, 0);
    for (const auto& one : recorded) {
      const auto v = x.run(one, true);
      std::cout << "replayed " << o.replay << " (" << to_string(one.kind) << ": " << one.mutation << "): "
                << (v.oracle.empty() ? "every oracle held" : "FINDING " + v.oracle + ": " + v.detail) << "\n";
      if (!v.oracle.empty()) return 1;
    }
    return 0;
  }

  std::random_device entropy;
  const std::uint64_t seed = o.seed ? *o.seed : (std::uint64_t{entropy()} << 32) | entropy();
  auto seeds = builtin_seeds();
  if (!o.seeds_dir.empty()) {
    auto more = seeds_from(o.seeds_dir);
    std::cout << "seeds: " << more.size() << " envelopes from " << o.seeds_dir << "\n";
    seeds.insert(seeds.end(), more.begin(), more.end());
  }
  const auto duration = parse_duration(o.duration);
  const auto forging = forgeries_for(o, &node);
  std::cout << "forgeries (the accepted oracle):";
  for (const auto f : forging) std::cout << " " << f << " (" << forgery_named(f).rule << ")";
  std::cout << (o.forgery.empty() ? ", one input in 12" : ", every input") << "\n";
  std::cout << "fuzzing " << node.entity_id << " at " << o.base.target << " for " << duration.count() << " s with " << o.jobs
            << " workers, seed " << seed << " (--seed " << seed << " repeats each worker's inputs); findings go to " << o.findings_dir << "\n";

  // Each worker has its own generator (the seed and its number), executor and identities; what
  // they find is collected here.
  std::mutex lock;
  std::size_t inputs = 0, findings = 0, refused_handshakes = 0;
  std::map<std::string, std::size_t> answers;
  std::set<std::string> seen;  // oracle + the start of the detail: one file per kind of finding
  std::atomic<bool> stopped{false};
  const auto start = clock::now();
  std::vector<std::optional<input>> in_flight(o.jobs);  // each worker's current input
  const auto report = [&](const verdict_of_input& v, const std::optional<input>& in, const std::string& original) {
    std::lock_guard g(lock);
    if (!seen.insert(v.oracle + v.detail.substr(0, 40)).second) return;
    std::vector<input> others;
    if (v.fatal())
      for (const auto& x : in_flight)
        if (x && (!in || x->to_json() != in->to_json())) others.push_back(*x);
    const auto file = save_finding(o, in ? in : (others.empty() ? std::nullopt : std::optional(others.front())), v, seed, ++findings,
                                   original, in || others.empty() ? others : std::vector<input>(others.begin() + 1, others.end()));
    std::cout << "FINDING " << v.oracle << ": " << v.detail.substr(0, 300) << "\n";
    if (in) std::cout << "  input (" << to_string(in->kind) << "): " << in->mutation << "\n";
    std::cout << "  saved as " << file << std::endl;
    if (v.fatal() || findings >= o.max_findings) stopped = true;
  };
  const auto work = [&](unsigned worker) {
    mutator m(worker_seed(seed, worker), seeds, !cfg.target.tls, forging, !o.forgery.empty());
    executor x(cfg, node, std::size_t{worker} * 1'000'000);
    while (clock::now() - start < duration && !stopped) {
      const auto in = m.next();
      {
        std::lock_guard g(lock);
        in_flight[worker] = in;
      }
      const auto v = x.run(in);
      {
        std::lock_guard g(lock);
        ++inputs;
      }
      if (v.oracle.empty()) continue;
      // Minimize while the same oracle still fires for the input on its own, as a replay sends it
      // (not for a node that is down: nothing answers; nor for an input that needs what came before).
      input smallest = in;
      std::string original;
      if (!v.fatal() && x.run(in, true).oracle == v.oracle) {
        for (bool smaller = true; smaller && !stopped;) {
          smaller = false;
          for (const auto& r : m.reductions(smallest))
            if (x.run(r, true).oracle == v.oracle) {
              if (original.empty()) original = in.mutation;
              smallest = r;
              smaller = true;
              break;
            }
        }
      }
      report(v, smallest, original);
    }
    std::lock_guard g(lock);
    for (const auto& [what, n] : x.answers) answers[what] += n;
    refused_handshakes += x.handshakes_refused;
  };
  std::vector<std::thread> workers;
  for (unsigned w = 0; w < o.jobs; ++w) workers.emplace_back(work, w);

  // Progress every 5 s, and the node's memory every second (--pid).
  std::size_t baseline_rss = 0, peak_rss = 0;
  for (auto last = start; clock::now() - start < duration && !stopped;) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (o.pid > 0) {
      const auto rss = rss_kib(o.pid);
      if (rss == 0) report({"node_down", "process " + std::to_string(o.pid) + " is gone"}, std::nullopt, "");
      if (!baseline_rss && clock::now() - start > std::chrono::seconds(5)) baseline_rss = rss;
      peak_rss = std::max(peak_rss, rss);
      if (baseline_rss && rss > baseline_rss + o.max_rss_growth_mib * 1024)
        report({"memory", "resident memory " + std::to_string(rss / 1024) + " MiB, " + std::to_string((rss - baseline_rss) / 1024) +
                              " MiB above the " + std::to_string(baseline_rss / 1024) + " MiB after 5 s"},
               std::nullopt, "");
    }
    if (clock::now() - last >= std::chrono::seconds(5)) {
      last = clock::now();
      const auto secs = std::chrono::duration<double>(clock::now() - start).count();
      std::lock_guard g(lock);
      std::cout << "[" << static_cast<long>(secs) << " s] " << inputs << " inputs, " << static_cast<long>(static_cast<double>(inputs) / secs)
                << "/s, " << findings << " finding(s)";
      if (o.pid > 0) std::cout << ", node RSS " << peak_rss / 1024 << " MiB peak";
      std::cout << std::endl;
    }
  }
  for (auto& w : workers) w.join();
  const auto secs = std::chrono::duration<double>(clock::now() - start).count();
  std::cout << "\n" << inputs << " inputs in " << secs << " s: " << static_cast<long>(static_cast<double>(inputs) / secs)
            << " executions/s; answers:";
  for (const auto& [what, n] : answers) std::cout << " " << what << " " << n;
  std::cout << "; " << refused_handshakes << " identities without a session (handshake refused)\n";
  if (o.pid > 0) std::cout << "node resident memory: " << baseline_rss / 1024 << " MiB after 5 s, " << peak_rss / 1024 << " MiB peak\n";
  std::cout << (findings ? "RESULT: " + std::to_string(findings) + " FINDING(S)" : std::string("RESULT: NO FINDINGS")) << "\n";
  return findings ? 1 : 0;
}

}  // namespace peerproto::conformance
