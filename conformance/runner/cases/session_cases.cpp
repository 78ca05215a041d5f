// §9 sessions and §10 encryption of session messages.
#include "common.hpp"

#include <peerproto/envelope.hpp>

#include <thread>

namespace peerproto::conformance {
using namespace cases;

namespace {
// A sealed session message whose sealing or envelope `f` breaks; `f` gets the finished object.
test_case broken_seal(std::string id, std::vector<std::string> reqs, std::string title,
                      std::function<void(context&, session_state&, json::object&)> f, errc code) {
  return {std::move(id), std::move(reqs), "encryption", std::move(title), [f, code](context& c) {
            auto s = c.handshake(c.fresh());
            auto m = parse_object(c.session_message(s, "ping", {{"n", 1}}));
            f(c, s, m);
            expect_refusal(c, canonical(m), code, "ENC-5");
            // ENC-5: nothing changed, so the same sequence number still works. The payload is the
            // same, so no second plaintext is sealed under that number (ENC-4).
            --s.next_out;
            const auto text = c.session_message(s, "ping", {{"n", 1}});
            c.expect_reply(c.exchange(text), text, "pong", "ENC-5", &s);
          }};
}

}  // namespace

void add_session_cases(std::vector<test_case>& out) {
  const auto first_case = out.size();
  const std::string g = "session";
  out.push_back(refusal("SES-2/unknown-session", {"SES-2"}, g, "a session message for an unknown session is SESSION_NOT_FOUND",
                        changed_session_shape([](json::object&) {}), errc::session_not_found));
  out.push_back({"SES-2/other-peer", {"SES-2"}, g, "a session message naming another peer's session is SESSION_NOT_FOUND", [](context& c) {
                   auto s = c.handshake(c.fresh());
                   auto theirs = s;
                   theirs.who = &c.bound();
                   expect_refusal(c, c.session_message(theirs, "ping"), errc::session_not_found, "SES-2");
                 }});
  out.push_back({"SES-8/close", {"SES-8", "SES-9"}, g, "session_close is acked with status closed in the session; then the session is gone",
                 [](context& c) {
                   auto s = c.handshake(c.fresh());
                   const auto close = c.session_message(s, "session_close", {{"reason", "done"}});
                   const auto ack = c.expect_reply(c.exchange(close), close, "ack", "SES-8", &s);
                   c.check(ack.at("status") == "closed", "SES-8", "status \"closed\"", canonical(ack));
                   expect_refusal(c, c.session_message(s, "ping"), errc::session_not_found, "SES-9");
                 }});
  out.push_back({"SES-8/reason-too-long", {"SES-8"}, g, "a close reason over 256 characters is INVALID_FORMAT", [](context& c) {
                   auto s = c.handshake(c.fresh());
                   expect_refusal(c, c.session_message(s, "session_close", {{"reason", std::string(257, 'r')}}), errc::invalid_format, "SES-8");
                 }});
  out.push_back({"SES-12/reply-sequence", {"SES-12", "ORD-1", "ORD-7"}, g,
                 "replies carry the next sequence number of the node's direction; an error consumes none", [](context& c) {
                   auto s = c.handshake(c.fresh());
                   for (int i = 0; i < 3; ++i) {
                     const auto text = c.session_message(s, "ping", {{"i", i}});
                     c.expect_reply(c.exchange(text), text, "pong", "SES-12", &s);
                   }
                   // Refused before delivery (ENC-5), so neither direction's number moves (ORD-7):
                   // the stored bytes are then accepted, and the reply takes the node's next number.
                   const auto text = c.session_message(s, "ping", {{"i", 3}});
                   expect_refusal(c, with_broken_tag(text), errc::decryption_failed, "ENC-5");
                   c.expect_reply(c.exchange(text), text, "pong", "SES-12", &s);
                 }});
  out.push_back({"ORD-7/delivered-unsupported-type", {"ORD-7", "MSG-1", "PROC-7"}, g,
                 "a session message of an unknown type is delivered, then refused: its number is used, a repeat is REPLAY_DETECTED",
                 [](context& c) {
                   auto s = c.handshake(c.fresh());
                   const auto text = c.session_message(s, "no_such_type");
                   expect_refusal(c, text, errc::unsupported_message_type, "MSG-1");
                   expect_refusal(c, text, errc::replay_detected, "ORD-7");
                   const auto next = c.session_message(s, "ping");
                   c.expect_reply(c.exchange(next), next, "pong", "ORD-7", &s);
                 }});
  out.push_back({"SES-8/sessionless-close", {"SES-8", "MSG-1"}, g,
                 "a signed session_close without session_id is UNSUPPORTED_MESSAGE_TYPE", [](context& c) {
                   const auto& who = c.bound();
                   auto o = c.header(who, "session_close", {{"reason", "no session"}});
                   expect_refusal(c, c.sign(o, who), errc::unsupported_message_type, "SES-8");
                 }});
  out.push_back({"SES-4/idle-expiry", {"SES-4", "SES-7"}, g,
                 "a session used within its idle time stays ready; idle past session_idle_ttl_ms it is SESSION_EXPIRED",
                 [](context& c) {
                   const auto idle = std::chrono::milliseconds(c.node.limit("session_idle_ttl_ms"));
                   require_time_for(c, "session_idle_ttl_ms", idle / 2 + idle + std::chrono::seconds(1));
                   auto s = c.handshake(c.fresh());
                   std::this_thread::sleep_for(idle / 2);
                   const auto inside = c.session_message(s, "ping");
                   c.expect_reply(c.exchange(inside), inside, "pong", "SES-4", &s);
                   c.note("idle for session_idle_ttl_ms + 1 s");
                   std::this_thread::sleep_for(idle + std::chrono::seconds(1));
                   expect_refusal(c, c.session_message(s, "ping"), errc::session_expired, "SES-4");
                 },
                 std::chrono::seconds(60)});
  out.push_back({"SES-5/lifetime-expiry", {"SES-5", "SES-7"}, g,
                 "a session kept busy is SESSION_EXPIRED once session_lifetime_ms has passed since it became ready", [](context& c) {
                   const auto life = std::chrono::milliseconds(c.node.limit("session_lifetime_ms"));
                   const auto idle = std::chrono::milliseconds(c.node.limit("session_idle_ttl_ms"));
                   require_time_for(c, "session_lifetime_ms", life + std::chrono::seconds(1));
                   if (idle < std::chrono::seconds(2)) c.skip("session_idle_ttl_ms is under 2 s: the session cannot be kept busy");
                   auto s = c.handshake(c.fresh());
                   const auto ready = std::chrono::steady_clock::now();
                   const auto step = std::min<std::chrono::milliseconds>(idle / 2, std::chrono::seconds(2));
                   while (std::chrono::steady_clock::now() + step + std::chrono::milliseconds(500) < ready + life) {
                     std::this_thread::sleep_for(step);
                     const auto text = c.session_message(s, "ping");
                     c.expect_reply(c.exchange(text), text, "pong", "SES-5", &s);
                   }
                   std::this_thread::sleep_until(ready + life + std::chrono::seconds(1));
                   expect_refusal(c, c.session_message(s, "ping"), errc::session_expired, "SES-5");
                 },
                 std::chrono::seconds(60)});
  out.push_back({"SES-11/1.0-tampered", {"SES-11"}, g, "a 1.0 session message is verified with the peer's key: a change is INVALID_SIGNATURE",
                 [](context& c) {
                   c.require_version("1.0");
                   auto s = c.handshake(c.fresh(), offer_1_0());
                   auto m = parse_object(c.session_message(s, "ping", {{"n", 1}}));
                   m["payload"] = json::object{{"n", 2}};
                   expect_refusal(c, canonical(m), errc::invalid_signature, "SES-11");
                 }});
  out.push_back({"SES-11/1.0-unsigned", {"SES-11", "ENV-19"}, g, "a 1.0 session message without signature is MISSING_FIELDS", [](context& c) {
                   c.require_version("1.0");
                   auto s = c.handshake(c.fresh(), offer_1_0());
                   auto m = parse_object(c.session_message(s, "ping"));
                   m.erase("signature");
                   expect_refusal(c, canonical(m), errc::missing_fields, "ENV-19");
                 }});

  // ---------------------------------------------------------------- encryption
  out.push_back(broken_seal("ENC-5/flipped-ciphertext", {"ENC-5"}, "a changed ciphertext byte is DECRYPTION_FAILED and consumes nothing",
                            [](context&, session_state&, json::object& m) {
                              auto b = *base64_decode(m["encrypted_payload"].as_string());
                              b[0] ^= 1;
                              m["encrypted_payload"] = base64_encode(b);
                            },
                            errc::decryption_failed));
  out.push_back(broken_seal("ENC-5/wrong-direction", {"ENC-5", "ENC-1"}, "a message sealed with the node's direction key is DECRYPTION_FAILED",
                            [](context& c, session_state& s, json::object& m) {
                              std::swap(s.k_i2r, s.k_r2i);
                              --s.next_out;
                              m = parse_object(c.session_message(s, "ping", {{"n", 1}}));
                              std::swap(s.k_i2r, s.k_r2i);
                            },
                            errc::decryption_failed));
  for (const char* member : {"timestamp", "nonce", "msg_type"})
    out.push_back(broken_seal(std::string("ENC-3/changed-") + member, {"ENC-3", "ENC-5"},
                              std::string("changing ") + member + " after sealing (associated data) is DECRYPTION_FAILED",
                              [member](context&, session_state&, json::object& m) {
                                const std::string_view name = member;
                                if (name == "timestamp") m["timestamp"] = timestamp_at(std::chrono::seconds(-1));
                                else if (name == "nonce") m["nonce"] = random_hex(16);
                                else m["msg_type"] = "heartbeat";
                              },
                              errc::decryption_failed));
  out.push_back(broken_seal("ENC-2/wrong-gcm-nonce", {"ENC-2", "ENC-5"}, "sealing under the GCM nonce of another sequence number is DECRYPTION_FAILED",
                            [](context&, session_state& s, json::object& m) {
                              m.erase("encrypted_payload");
                              const auto seq = m.at("sequence_num").to_number<std::uint64_t>();
                              const auto sealed = crypto::aes_gcm_seal(s.k_i2r, session_nonce(seq + 1), as_bytes(canonical(m)),
                                                                       as_bytes(std::string_view("{\"n\":1}")));
                              m["encrypted_payload"] = base64_encode(sealed);
                            },
                            errc::decryption_failed));
  out.push_back({"ENC-6/plaintext-array", {"ENC-6"}, "encryption", "a sealed plaintext that is an array is INVALID_FORMAT", [](context& c) {
                   auto s = c.handshake(c.fresh());
                   expect_refusal(c, sealed_text(c, s, "[1,2]"), errc::invalid_format, "ENC-6");
                 }});
  out.push_back({"ENC-6/plaintext-not-json", {"ENC-6", "JSON-6"}, "encryption", "a sealed plaintext that is not JSON is INVALID_FORMAT",
                 [](context& c) {
                   auto s = c.handshake(c.fresh());
                   expect_refusal(c, sealed_text(c, s, "{\"n\":"), errc::invalid_format, "ENC-6");
                 }});
  out.push_back({"JSON-4/plaintext-depth", {"JSON-4", "ENC-6"}, "encryption",
                 "a sealed plaintext is a JSON text of its own: 32 levels are accepted, 33 are INVALID_FORMAT", [](context& c) {
                   c.require_type("heartbeat");
                   auto s = c.handshake(c.fresh());
                   const auto nested = [](int levels) {  // an object at level 1 holding arrays down to `levels`
                     return "{\"a\":" + std::string(levels - 1, '[') + std::string(levels - 1, ']') + "}";
                   };
                   const auto text = sealed_text(c, s, nested(32), "heartbeat");
                   c.expect_reply(c.exchange(text), text, "ack", "JSON-4", &s);
                   expect_refusal(c, sealed_text(c, s, nested(33), "heartbeat"), errc::invalid_format, "JSON-4");
                 }});
  out.push_back({"ENC-6/plaintext-duplicate-member", {"ENC-6", "JSON-2"}, "encryption",
                 "a sealed plaintext with a duplicated member is INVALID_FORMAT", [](context& c) {
                   auto s = c.handshake(c.fresh());
                   expect_refusal(c, sealed_text(c, s, "{\"n\":1,\"n\":2}"), errc::invalid_format, "ENC-6");
                 }});
  declare_needs(out, first_case, need::session,
                {{"SES-2/unknown-session", {}},
                 {"SES-8/sessionless-close", need::handshake}});
}

}  // namespace peerproto::conformance
