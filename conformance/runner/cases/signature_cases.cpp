// §5 signatures and §6 replay protection.
#include "common.hpp"

#include <thread>

namespace peerproto::conformance {
using namespace cases;

namespace {
// A signed ping from a bound identity, changed after signing by `f`; must be INVALID_SIGNATURE.
test_case tampered(std::string id, std::vector<std::string> reqs, std::string title, std::function<void(context&, json::object&)> f) {
  return {std::move(id), std::move(reqs), "signature", std::move(title), [f](context& c) {
            const auto& who = c.bound();
            auto o = c.header(who, "ping", {{"text", "hello"}, {"nested", json::object{{"k", "v"}}}});
            c.sign(o, who);
            f(c, o);
            expect_refusal(c, canonical(o), errc::invalid_signature, "SIG-5");
          }};
}

// Ed25519's group order L, little-endian: S + L is the same scalar written non-canonically.
constexpr std::array<std::uint8_t, 32> group_order{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                                   0xa2, 0xde, 0xf9, 0xde, 0x14, 0,    0,    0,    0,    0,    0,
                                                   0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};

std::string signed_ping(context& c, const identity& who, std::chrono::milliseconds skew = {}) {
  auto o = c.header(who, "ping", {{"text", "hello"}});
  o["timestamp"] = timestamp_at(skew);
  return c.sign(o, who);
}
}  // namespace

void add_signature_cases(std::vector<test_case>& out) {
  const auto first_case = out.size();
  out.push_back(tampered("SIG-5/version", {"SIG-5", "SIG-2"}, "changing version after signing is INVALID_SIGNATURE",
                         [](context& c, json::object& o) {
                           c.require_version("1.0");
                           o["version"] = "1.0";
                         }));
  out.push_back(tampered("SIG-5/msg-type", {"SIG-5"}, "changing msg_type after signing is INVALID_SIGNATURE",
                         [](context&, json::object& o) { o["msg_type"] = "heartbeat"; }));
  out.push_back(tampered("SIG-5/sender-id", {"SIG-5", "ID-8"}, "naming another bound sender is INVALID_SIGNATURE (verified with that sender's key)",
                         [](context& c, json::object& o) { o["sender_id"] = c.bound().id; }));
  out.push_back(tampered("SIG-5/timestamp", {"SIG-5"}, "changing the timestamp by a second is INVALID_SIGNATURE",
                         [](context&, json::object& o) { o["timestamp"] = timestamp_at(std::chrono::seconds(-1)); }));
  out.push_back(tampered("SIG-5/nonce", {"SIG-5"}, "changing the nonce is INVALID_SIGNATURE",
                         [](context&, json::object& o) { o["nonce"] = random_hex(16); }));
  out.push_back(tampered("SIG-5/payload-member", {"SIG-5"}, "changing a payload member is INVALID_SIGNATURE",
                         [](context&, json::object& o) { o["payload"].as_object()["text"] = "hellO"; }));
  out.push_back(tampered("SIG-5/nested-member", {"SIG-5"}, "changing a member nested in the payload is INVALID_SIGNATURE",
                         [](context&, json::object& o) { o["payload"].as_object()["nested"].as_object()["k"] = "w"; }));
  out.push_back(tampered("SIG-5/added-member", {"SIG-5"}, "adding a payload member is INVALID_SIGNATURE",
                         [](context&, json::object& o) { o["payload"].as_object()["extra"] = true; }));
  out.push_back(tampered("SIG-1/flipped-bit", {"SIG-1"}, "a signature with one bit flipped is INVALID_SIGNATURE",
                         [](context&, json::object& o) {
                           std::string s(o["signature"].as_string());
                           s[10] = s[10] == '0' ? '1' : '0';
                           o["signature"] = s;
                         }));
  out.push_back(tampered("SIG-1/other-message", {"SIG-1"}, "a valid signature of another envelope is INVALID_SIGNATURE",
                         [](context& c, json::object& o) {
                           auto other = c.header(c.me(), "ping");  // me() is the bound identity that signed `o`
                           o["signature"] = parse_object(c.sign(other, c.me())).at("signature");
                         }));
  out.push_back(tampered("SIG-3/non-canonical-s", {"SIG-3"}, "S + L (the same scalar, not reduced) is INVALID_SIGNATURE",
                         [](context&, json::object& o) {
                           auto sig = *hex_decode_fixed<64>(o["signature"].as_string());
                           unsigned carry = 0;
                           for (std::size_t i = 0; i < 32; ++i) {
                             const unsigned sum = sig[32 + i] + group_order[i] + carry;
                             sig[32 + i] = static_cast<std::uint8_t>(sum);
                             carry = sum >> 8;
                           }
                           o["signature"] = hex_encode(sig);
                         }));
  out.push_back({"SIG-2/same-message", {"SIG-2"}, "signature", "signature failures do not say which member was wrong",
                 [](context& c) {
                   const auto& who = c.bound();
                   std::vector<std::string> messages;
                   for (const char* member : {"timestamp", "payload"}) {
                     auto o = c.header(who, "ping", {{"text", "hello"}});
                     c.sign(o, who);
                     if (std::string_view(member) == "timestamp") o["timestamp"] = timestamp_at(std::chrono::seconds(-2));
                     else o["payload"] = json::object{{"text", "other"}};
                     const auto text = canonical(o);
                     const auto r = c.exchange(text);
                     c.expect_error(r, text, errc::invalid_signature, "SIG-5");
                     messages.emplace_back(json::parse(r.body).at("payload").at("error_message").as_string());
                   }
                   c.check(messages[0] == messages[1], "SIG-2", "the same error_message for both", messages[0] + " / " + messages[1]);
                 }});
  out.push_back(refusal("ID-8/unbound-sender", {"ID-8"}, "signature", "a sessionless message from a sender without a bound key is UNKNOWN_SENDER",
                        [](context& c) { return signed_ping(c, c.me()); }, errc::unknown_sender));

  // ---------------------------------------------------------------- replay
  const std::string r = "replay";
  out.push_back({"RPL-2/repeat", {"RPL-2"}, r, "the same envelope twice: the second is REPLAY_DETECTED", [](context& c) {
                   const auto& who = c.bound();
                   const auto text = signed_ping(c, who);
                   c.expect_reply(c.exchange(text), text, "pong", "RPL-2");
                   expect_refusal(c, text, errc::replay_detected, "RPL-2");
                 }});
  out.push_back({"RPL-2/same-nonce-new-content", {"RPL-2"}, r, "a new envelope reusing an accepted nonce is REPLAY_DETECTED",
                 [](context& c) {
                   const auto& who = c.bound();
                   auto o = c.header(who, "ping", {{"text", "first"}});
                   const auto first = c.sign(o, who);
                   c.expect_reply(c.exchange(first), first, "pong", "RPL-2");
                   o["payload"] = json::object{{"text", "second"}};
                   expect_refusal(c, c.sign(o, who), errc::replay_detected, "RPL-2");
                 }});
  out.push_back({"RPL-2/per-sender", {"RPL-2"}, r, "the nonce cache is per sender: another sender may use the same nonce",
                 [](context& c) {
                   const auto& a = c.bound();
                   const auto& b = c.bound();
                   auto o = c.header(a, "ping");
                   const auto ta = c.sign(o, a);
                   c.expect_reply(c.exchange(ta), ta, "pong", "RPL-2");
                   o["sender_id"] = b.id;
                   const auto tb = c.sign(o, b);
                   c.expect_reply(c.exchange(tb), tb, "pong", "RPL-2");
                 }});
  for (const auto& [name, sign] : std::vector<std::pair<std::string, int>>{{"past", -1}, {"future", 1}})
    out.push_back({"RPL-1/skew-" + name, {"RPL-1"}, r, "a timestamp beyond the tolerance in the " + name + " is REPLAY_DETECTED (clock skew)",
                   [s = sign](context& c) {
                     const auto tolerance = std::chrono::milliseconds(c.node.limit("timestamp_tolerance_ms"));
                     const auto& who = c.bound();
                     // Just past the edge (5 s for the two clocks and the trip), so a node whose
                     // tolerance is longer than it advertises fails here.
                     expect_refusal(c, signed_ping(c, who, s * (tolerance + std::chrono::seconds(5))), errc::replay_detected, "RPL-1", "skew");
                   }});
  for (const auto& [name, sign] : std::vector<std::pair<std::string, int>>{{"past", -1}, {"future", 1}})
    out.push_back({"RPL-1/within-tolerance-" + name, {"RPL-1"}, r, "a timestamp 5 s inside the tolerance in the " + name + " is accepted",
                   [s = sign](context& c) {
                     const auto tolerance = std::chrono::milliseconds(c.node.limit("timestamp_tolerance_ms"));
                     if (tolerance <= std::chrono::seconds(10)) c.skip("timestamp_tolerance_ms is 10 s or less: no room inside the edge");
                     const auto& who = c.bound();
                     const auto text = signed_ping(c, who, s * (tolerance - std::chrono::seconds(5)));
                     c.expect_reply(c.exchange(text), text, "pong", "RPL-1");
                   }});
  out.push_back({"RPL-3/refused-after-verification", {"RPL-3", "RL-7"}, r,
                 "a signed message refused after its signature verified (no handler) has used its nonce: the same bytes are REPLAY_DETECTED",
                 [](context& c) {
                   const auto& who = c.bound();
                   auto o = c.header(who, "no_such_type");
                   const auto text = c.sign(o, who);
                   expect_refusal(c, text, errc::unsupported_message_type, "MSG-1");
                   expect_refusal(c, text, errc::replay_detected, "RPL-3");
                 }});
  out.push_back({"RPL-2/future-dated-replay", {"RPL-2", "RPL-1"}, r,
                 "a message dated ahead of the node's clock is remembered until its timestamp plus the tolerance, not its arrival "
                 "plus the tolerance: its replay just after the latter is REPLAY_DETECTED",
                 [](context& c) {
                   const auto tolerance = std::chrono::milliseconds(c.node.limit("timestamp_tolerance_ms"));
                   require_time_for(c, "timestamp_tolerance_ms", tolerance + std::chrono::seconds(1));
                   // Ahead by the tolerance less a margin for the two clocks and the trip; replayed
                   // when arrival + tolerance has passed, while the timestamp is still acceptable.
                   const auto margin = std::min<std::chrono::milliseconds>(std::chrono::seconds(5), tolerance / 4);
                   const auto& who = c.bound();
                   const auto text = signed_ping(c, who, tolerance - margin);
                   c.expect_reply(c.exchange(text), text, "pong", "RPL-1");
                   const auto wait = tolerance + margin / 2;
                   c.note("replaying after " + std::to_string(wait.count()) + " ms, when the timestamp is " +
                          std::to_string((margin + margin / 2).count()) + " ms old");
                   std::this_thread::sleep_for(wait);
                   expect_refusal(c, text, errc::replay_detected, "RPL-2");
                 },
                 std::chrono::seconds(30)});
  out.push_back({"RPL-2/replay-later", {"RPL-2"}, r,
                 "a replay some seconds later, while its timestamp is still acceptable, is still REPLAY_DETECTED", [](context& c) {
                   // RPL-2: the node remembers the nonce while the timestamp is acceptable.
                   const auto tolerance = std::chrono::milliseconds(c.node.limit("timestamp_tolerance_ms"));
                   const auto wait = std::min<std::chrono::milliseconds>(tolerance / 2, std::chrono::seconds(8));
                   const auto& who = c.bound();
                   const auto text = signed_ping(c, who);
                   c.expect_reply(c.exchange(text), text, "pong", "RPL-2");
                   c.note("replaying after " + std::to_string(wait.count()) + " ms");
                   std::this_thread::sleep_for(wait);
                   expect_refusal(c, text, errc::replay_detected, "RPL-2");
                 },
                 std::chrono::seconds(30)});
  out.push_back({"RPL-3/after-bad-signature", {"RPL-3", "ENV-22", "SIG-4"}, r,
                 "a nonce first seen with a bad signature is not cached: the genuine message is accepted", [](context& c) {
                   const auto& who = c.bound();
                   auto o = c.header(who, "ping", {{"text", "genuine"}});
                   const auto genuine = c.sign(o, who);
                   o["payload"] = json::object{{"text", "forged"}};
                   const auto forged = canonical(o);
                   expect_refusal(c, forged, errc::invalid_signature, "SIG-5");
                   c.expect_reply(c.exchange(genuine), genuine, "pong", "RPL-3");
                 }});
  out.push_back({"PROC-5/replay-before-signature", {"PROC-5", "RPL-2"}, r,
                 "a repeated nonce with a bad signature is REPLAY_DETECTED: the cache is consulted before verification",
                 [](context& c) {
                   const auto& who = c.bound();
                   auto o = c.header(who, "ping", {{"text", "first"}});
                   const auto first = c.sign(o, who);
                   c.expect_reply(c.exchange(first), first, "pong", "RPL-2");
                   o["payload"] = json::object{{"text", "forged"}};
                   expect_refusal(c, canonical(o), errc::replay_detected, "PROC-5");
                 }});
  out.push_back({"RPL-7/session-nonces-not-cached", {"RPL-7"}, r,
                 "a v1.1 session message's nonce is not entered in the nonce cache", [](context& c) {
                   const auto& who = c.fresh();
                   auto s = c.handshake(who);
                   auto m = c.session_header(s, "ping");
                   const auto nonce = m.at("nonce");
                   const auto t1 = c.seal(s, m, {{"n", 1}});
                   c.expect_reply(c.exchange(t1), t1, "pong", "RPL-7", &s);
                   auto o = c.header(who, "ping", {{"n", 2}});
                   o["nonce"] = nonce;
                   const auto t2 = c.sign(o, who);
                   c.expect_reply(c.exchange(t2), t2, "pong", "RPL-7");
                 }});
  out.push_back({"RPL-7/session-skew", {"RPL-7", "RPL-1"}, r, "RPL-1 applies to v1.1 session messages: a stale one is REPLAY_DETECTED",
                 [](context& c) {
                   const auto tolerance = std::chrono::milliseconds(c.node.limit("timestamp_tolerance_ms"));
                   auto s = c.handshake(c.fresh());
                   auto m = c.session_header(s, "ping");
                   m["timestamp"] = timestamp_at(-(tolerance + std::chrono::seconds(30)));
                   expect_refusal(c, c.seal(s, m, {}), errc::replay_detected, "RPL-7", "skew");
                 }});
  out.push_back({"HS-23/handshake-replay", {"HS-23", "RPL-2"}, r, "a handshake message sent twice is REPLAY_DETECTED the second time",
                 [](context& c) {
                   const auto p = c.begin_handshake(c.fresh());
                   c.check_ack(p, c.exchange(p.text1));
                   expect_refusal(c, p.text1, errc::replay_detected, "HS-23");
                 }});
  declare_needs(out, first_case, need::handshake,
                {{"ID-8/unbound-sender", {}},
                 {"RPL-7/session-nonces-not-cached", need::session},
                 {"RPL-7/session-skew", need::session},
                 {"HS-23/handshake-replay", need::trust}});
}

}  // namespace peerproto::conformance
