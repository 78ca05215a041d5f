// Shared building blocks of the case files: a base envelope, ways to break it, and a case that
// expects a given refusal.
#pragma once

#include "../suite.hpp"

#include <peerproto/crypto.hpp>
#include <peerproto/encoding.hpp>
#include <peerproto/envelope.hpp>
#include <peerproto/key_file.hpp>

namespace peerproto::conformance::cases {

/// Builds the text a case sends.
using build = std::function<std::string(context&)>;

/// A sessionless ping from the case's identity (not bound: for rules checked before
/// authentication).
inline json::object base_ping(context& c) { return c.header(c.me(), "ping", {{"text", "hello"}}); }

/// The base ping changed by `f`, then signed (the signature matches the changed envelope).
inline build changed(std::function<void(json::object&)> f) {
  return [f](context& c) {
    auto o = base_ping(c);
    f(o);
    return c.sign(o, c.me());
  };
}

/// The base ping signed, then changed by `f` (for rules about the signature member itself).
inline build changed_after_signing(std::function<void(json::object&)> f) {
  return [f](context& c) {
    auto o = base_ping(c);
    c.sign(o, c.me());
    f(o);
    return canonical(o);
  };
}

/// A v1.1 session message shape (random session id, sequence 1, 32 bytes of "ciphertext"),
/// changed by `f`. For form rules, which come before the session lookup.
inline build changed_session_shape(std::function<void(json::object&)> f) {
  return [f](context& c) {
    json::object o = c.header(c.me(), "ping");
    o.erase("payload");
    o["session_id"] = random_uuid();
    o["sequence_num"] = 1;
    bytes b(32, 0x5a);
    o["encrypted_payload"] = base64_encode(b);
    f(o);
    return canonical(o);
  };
}

/// The text of a ping whose payload is `payload_text`, spliced in verbatim (for JSON-level
/// breakage the runner's own serializer cannot produce). The signature covers the payload
/// {"text": "hello"}, so only parse failures are meaningful with it.
inline build raw_payload(std::string payload_text) {
  return [payload_text](context& c) {
    auto o = base_ping(c);
    auto text = c.sign(o, c.me());
    const std::string from = "\"payload\":{\"text\":\"hello\"}";
    text.replace(text.find(from), from.size(), "\"payload\":" + payload_text);
    return text;
  };
}

/// Declares the needs (test_case::needs) of the cases added to `out` since `first`: `usual`, but
/// what `other` says for the cases it names (each must be one of them).
inline void declare_needs(std::vector<test_case>& out, std::size_t first, need_set usual, std::map<std::string, need_set> other = {}) {
  for (auto i = first; i < out.size(); ++i) {
    const auto it = other.find(out[i].id);
    out[i].needs = it == other.end() ? usual : it->second;
    if (it != other.end()) other.erase(it);
  }
  if (!other.empty()) throw std::logic_error("needs declared for a case that is not here: " + other.begin()->first);
}

/// A handshake offer of version 1.0 only (no suites, no ephemeral key).
inline offer offer_1_0() {
  offer o;
  o.versions = {"1.0"};
  o.suites = {};
  return o;
}

inline void expect_refusal(context& c, const std::string& text, errc code, std::string_view rule, std::string_view contains = {}) {
  c.expect_error(c.exchange(text), text, code, rule, contains);
}

/// A case that sends what `b` builds and expects `code`.
inline test_case refusal(std::string id, std::vector<std::string> reqs, std::string group, std::string title, build b, errc code,
                         std::string contains = {}) {
  const std::string rule = reqs.front();
  return {std::move(id), std::move(reqs), std::move(group), std::move(title),
          [b, code, rule, contains](context& c) { expect_refusal(c, b(c), code, rule, contains); }};
}

/// A signed sessionless ping from a bound identity, with payload `payload`; expects the pong.
inline json::object ping_ok(context& c, const identity& who, const json::object& payload, std::string_view rule) {
  auto o = c.header(who, "ping", payload);
  const auto text = c.sign(o, who);
  return c.expect_reply(c.exchange(text), text, "pong", rule);
}

/// A case that observes a node timer must wait it out: skips, naming the limit, when waiting
/// `needed` would pass the case's time limit (the node's value is longer than a run can observe).
inline void require_time_for(context& c, std::string_view limit_name, std::chrono::milliseconds needed) {
  if (std::chrono::steady_clock::now() + needed + std::chrono::seconds(3) <= c.until()) return;
  c.skip("the node's " + std::string(limit_name) + " is " + std::to_string(c.node.limit(limit_name)) +
         " ms: observing it takes longer than this case's time limit; to test the rule, start the node with a shorter value "
         "(the reference node: --limit " + std::string(limit_name) + "=3000)");
}

/// A session message whose plaintext is exactly `plaintext` (any bytes, even invalid JSON), sealed
/// with the next sequence number (1.1 sessions).
inline std::string sealed_text(context& c, session_state& s, const std::string& plaintext, std::string_view type = "ping") {
  return c.seal_plaintext(s, c.session_header(s, type), plaintext);
}

/// Flips one bit of a sealed message's ciphertext: the same plaintext, a tag that fails (ENC-5).
inline std::string with_broken_tag(const std::string& sealed_text) {
  auto m = parse_object(sealed_text);
  auto b = *base64_decode(m["encrypted_payload"].as_string());
  b[0] ^= 1;
  m["encrypted_payload"] = base64_encode(b);
  return canonical(m);
}

}  // namespace peerproto::conformance::cases
