// §8 the handshake, and the trust rules it exercises (§2).
#include "common.hpp"

#include <thread>

namespace peerproto::conformance {
using namespace cases;

namespace {
offer tweaked(std::function<void(json::object&)> f) {
  offer o;
  o.tweak = std::move(f);
  return o;
}

test_case bad_hello(std::string id, std::vector<std::string> reqs, std::string title, std::function<void(json::object&)> f, errc code) {
  const std::string rule = reqs.front();
  return {std::move(id), std::move(reqs), "handshake", std::move(title), [f, code, rule](context& c) {
            const auto p = c.begin_handshake(c.fresh(), tweaked(f));
            expect_refusal(c, p.text1, code, rule);
          }};
}

// Runs messages 1 and 2, lets `f` change message 3 (before signing), and expects `code`. Then a
// correct message 3 for the same session must be SESSION_NOT_FOUND: a failed handshake stays
// failed (HS-22).
void confirm_refused(context& c, const offer& o, std::function<void(json::object&)> f, errc code, std::string_view rule,
                     bool then_failed = true) {
  const auto& who = c.fresh();
  const auto p = c.begin_handshake(who, o);
  auto a = c.check_ack(p, c.exchange(p.text1));
  auto m3 = c.confirm_message(p, a);
  f(m3.at("payload").as_object());
  expect_refusal(c, c.sign(m3, who), code, rule);
  if (!then_failed) return;
  auto good = c.confirm_message(p, a);
  expect_refusal(c, c.sign(good, who), errc::session_not_found, "HS-22");
}

std::string low_order_point(std::uint8_t first) {
  std::array<std::uint8_t, 32> k{};
  k[0] = first;
  return hex_encode(k);
}
}  // namespace

void add_handshake_cases(std::vector<test_case>& out) {
  const auto first_case = out.size();
  const std::string g = "handshake";
  out.push_back({"HS-1/complete-1.1", {"HS-1", "HS-2", "HS-7", "HS-11", "HS-12", "HS-15", "ENC-1"}, g,
                 "a full 1.1 handshake: message 2 checked member by member, the session_ready ack opens with k_r2i, a sealed ping works",
                 [](context& c) {
                   auto s = c.handshake(c.fresh());
                   c.check(s.encrypted(), "VER-5", "a 1.1 session", s.version);
                   const auto text = c.session_message(s, "ping", {{"n", 1}});
                   c.expect_reply(c.exchange(text), text, "pong", "ENC-1", &s);
                 }});
  out.push_back({"HS-1/session-id", {"HS-1", "PROC-1"}, g,
                 "a handshake carrying session_id and sequence_num is INVALID_FORMAT (envelope form), not a session lookup",
                 [](context& c) {
                   const auto& who = c.fresh();
                   auto m = c.begin_handshake(who).msg1;
                   m.erase("signature");
                   // Version 1.0, so that the envelope is well formed as a signed session message:
                   // only HS-1 refuses it (a node without the rule answers SESSION_NOT_FOUND).
                   m["version"] = "1.0";
                   m["session_id"] = random_uuid();
                   m["sequence_num"] = 1;
                   expect_refusal(c, c.sign(m, who), errc::invalid_format, "HS-1");
                 }});
  out.push_back(bad_hello("HS-3/missing-before-hs5", {"HS-3", "HS-5"},
                          "a message 1 missing challenge and breaking HS-5: the missing member is reported (MISSING_FIELDS)",
                          [](json::object& p) {
                            p.erase("challenge");
                            p["cipher_suites"] = json::array{};  // ephemeral_key stays: HS-5 is broken too
                          },
                          errc::missing_fields));
  out.push_back({"HS-13/missing-before-confirmation", {"HS-13", "HS-3"}, g,
                 "a 1.0 message 3 missing challenge_response but carrying key_confirmation is MISSING_FIELDS", [](context& c) {
                   c.require_version("1.0");
                   confirm_refused(c, offer_1_0(), [](json::object& p) {
                     p.erase("challenge_response");
                     p["key_confirmation"] = random_hex(32);
                   }, errc::missing_fields, "HS-3", false);
                 }});
  out.push_back({"HS-9/fresh-values", {"HS-9"}, g, "two handshakes get different challenges, ephemeral keys and session ids", [](context& c) {
                   const auto& who = c.fresh();
                   std::vector<json::object> acks;
                   for (int i = 0; i < 2; ++i) {
                     const auto p = c.begin_handshake(who);
                     acks.push_back(c.check_ack(p, c.exchange(p.text1)).msg2.at("payload").as_object());
                   }
                   for (const char* m : {"challenge", "ephemeral_key", "session_id"})
                     c.check(acks[0].at(m) != acks[1].at(m), "HS-9", std::string("a fresh ") + m, "the same value twice");
                 }});
  for (const char* m : {"identity_key", "supported_versions", "cipher_suites", "challenge"})
    out.push_back(bad_hello(std::string("HS-3/missing-") + m, {"HS-3"}, std::string("a handshake without ") + m + " is MISSING_FIELDS",
                            [m](json::object& p) { p.erase(m); }, errc::missing_fields));
  const auto form = [&](std::string name, std::string title, std::function<void(json::object&)> f) {
    out.push_back(bad_hello("HS-3/" + name, {"HS-3"}, title + " is INVALID_FORMAT", std::move(f), errc::invalid_format));
  };
  form("extra-member", "an unknown payload member", [](json::object& p) { p["priority"] = 1; });
  form("identity-key-uppercase", "an upper-case identity_key", [](json::object& p) {
    std::string k(p["identity_key"].as_string());
    for (auto& ch : k) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    p["identity_key"] = k;
  });
  form("identity-key-short", "a 62-character identity_key", [](json::object& p) { p["identity_key"] = std::string(p["identity_key"].as_string()).substr(2); });
  form("challenge-short", "a 31-byte challenge", [](json::object& p) { p["challenge"] = random_hex(31); });
  form("versions-empty", "an empty supported_versions", [](json::object& p) { p["supported_versions"] = json::array{}; });
  form("versions-duplicate", "a duplicated version", [](json::object& p) { p["supported_versions"] = json::array{"1.1", "1.1"}; });
  form("versions-not-array", "supported_versions as a string", [](json::object& p) { p["supported_versions"] = "1.1"; });
  form("version-too-long", "a 65-character version string", [](json::object& p) {
    p["supported_versions"] = json::array{"1.1", std::string(65, '9')};
  });
  form("suites-duplicate", "a duplicated suite", [](json::object& p) {
    p["cipher_suites"] = json::array{"x25519-hkdf-sha256-aes256gcm", "x25519-hkdf-sha256-aes256gcm"};
  });
  form("capabilities-not-object", "capabilities that are not an object", [](json::object& p) { p["capabilities"] = "all"; });
  out.push_back({"HS-3/capabilities-accepted", {"HS-3"}, g, "the optional capabilities object is accepted", [](context& c) {
                   const auto p = c.begin_handshake(c.fresh(), tweaked([](json::object& pl) { pl["capabilities"] = json::object{{"x", 1}}; }));
                   c.check_ack(p, c.exchange(p.text1));
                 }});
  out.push_back(bad_hello("HS-5/suites-without-ephemeral", {"HS-5"}, "cipher_suites without ephemeral_key is INVALID_FORMAT",
                          [](json::object& p) { p.erase("ephemeral_key"); }, errc::invalid_format));
  out.push_back(bad_hello("HS-5/ephemeral-without-suites", {"HS-5"}, "ephemeral_key with empty cipher_suites is INVALID_FORMAT",
                          [](json::object& p) { p["cipher_suites"] = json::array{}; }, errc::invalid_format));
  out.push_back(bad_hello("HS-10/zero-point", {"HS-10"}, "the X25519 point u=0 (all-zero shared secret) is CHALLENGE_INVALID",
                          [](json::object& p) { p["ephemeral_key"] = low_order_point(0); }, errc::challenge_invalid));
  out.push_back(bad_hello("HS-10/order-4-point", {"HS-10"}, "the low-order X25519 point u=1 is CHALLENGE_INVALID",
                          [](json::object& p) { p["ephemeral_key"] = low_order_point(1); }, errc::challenge_invalid));
  out.push_back({"HS-2/key-not-the-signer", {"HS-2"}, g, "a handshake signed by another key than its identity_key is INVALID_SIGNATURE",
                 [](context& c) {
                   const auto& who = c.fresh();
                   const auto& other = c.fresh();
                   auto p = c.begin_handshake(who, tweaked([&](json::object& pl) { pl["identity_key"] = other.public_hex(); }));
                   expect_refusal(c, p.text1, errc::invalid_signature, "HS-2");
                 }});
  out.push_back({"ID-6/key-change", {"ID-6", "ID-7", "ID-4", "HS-2"}, g,
                 "a new key for a bound entity id: UNKNOWN_SENDER under tofu, or (open) it replaces the old key", [](context& c) {
                   const auto& who = c.bound();
                   const identity impostor{who.id, crypto::ed25519_keypair::generate()};
                   const auto p = c.begin_handshake(impostor);
                   const auto r = c.exchange(p.text1);
                   if (r.body.find("\"UNKNOWN_SENDER\"") != std::string::npos)
                     return c.expect_error(r, p.text1, errc::unknown_sender, "ID-6");
                   c.note("the node accepted the new key: checking open-mode replacement (ID-7)");
                   c.check_ack(p, r);
                   auto o = c.header(who, "ping");
                   expect_refusal(c, c.sign(o, who), errc::invalid_signature, "ID-7");
                   auto n = c.header(impostor, "ping");
                   const auto text = c.sign(n, impostor);
                   c.expect_reply(c.exchange(text), text, "pong", "ID-7");
                 }});
  out.push_back({"HS-8/wrong-challenge-response", {"HS-8", "HS-22"}, g,
                 "message 3 with a wrong challenge_response is CHALLENGE_INVALID and the handshake stays failed", [](context& c) {
                   confirm_refused(c, {}, [](json::object& p) { p["challenge_response"] = random_hex(32); }, errc::challenge_invalid, "HS-8");
                 }});
  out.push_back({"HS-12/wrong-key-confirmation", {"HS-12", "HS-22"}, g,
                 "message 3 with a wrong key_confirmation is CHALLENGE_INVALID and the handshake stays failed", [](context& c) {
                   confirm_refused(c, {}, [](json::object& p) { p["key_confirmation"] = random_hex(32); }, errc::challenge_invalid, "HS-12");
                 }});
  out.push_back({"HS-13/1.1-without-key-confirmation", {"HS-13", "HS-3"}, g,
                 "message 3 of a 1.1 handshake without key_confirmation is MISSING_FIELDS", [](context& c) {
                   confirm_refused(c, {}, [](json::object& p) { p.erase("key_confirmation"); }, errc::missing_fields, "HS-3", false);
                 }});
  out.push_back({"HS-13/1.0-with-key-confirmation", {"HS-13"}, g, "message 3 of a 1.0 handshake with key_confirmation is INVALID_FORMAT",
                 [](context& c) {
                   c.require_version("1.0");
                   confirm_refused(c, offer_1_0(), [](json::object& p) { p["key_confirmation"] = random_hex(32); }, errc::invalid_format, "HS-13", false);
                 }});
  out.push_back({"HS-16/expired", {"HS-16"}, g, "message 3 after the handshake timeout is CHALLENGE_EXPIRED",
                 [](context& c) {
                   const auto wait = std::chrono::milliseconds(c.node.limit("handshake_timeout_ms")) + std::chrono::milliseconds(1500);
                   if (std::chrono::steady_clock::now() + wait + std::chrono::seconds(5) > c.until())
                     c.skip("the node's handshake timeout is longer than this case's time limit (--timeout)");
                   const auto& who = c.fresh();
                   const auto p = c.begin_handshake(who);
                   auto a = c.check_ack(p, c.exchange(p.text1));
                   c.note("waiting out the handshake timeout");
                   std::this_thread::sleep_for(wait);
                   auto m3 = c.confirm_message(p, a);
                   expect_refusal(c, c.sign(m3, who), errc::challenge_expired, "HS-16");
                 },
                 std::chrono::seconds(50)});
  out.push_back({"HS-17/pending-per-peer", {"HS-17"}, g, "one handshake beyond the per-peer pending limit is HANDSHAKE_IN_PROGRESS",
                 [](context& c) {
                   const auto limit = c.node.limit("max_pending_handshakes_per_peer");
                   const auto& who = c.fresh();
                   for (std::int64_t i = 0; i < limit; ++i) {
                     const auto p = c.begin_handshake(who);
                     c.check_ack(p, c.exchange(p.text1));
                   }
                   const auto p = c.begin_handshake(who);
                   expect_refusal(c, p.text1, errc::handshake_in_progress, "HS-17");
                 }});
  out.push_back({"HS-18/pending-total", {"HS-18"}, g, "one handshake beyond the total pending limit is RATE_LIMITED", [](context& c) {
                   const auto total = c.node.limit("max_pending_handshakes_total");
                   const auto per_peer = c.node.limit("max_pending_handshakes_per_peer");
                   const auto per_address = c.node.limit("max_pending_handshakes_per_address");
                   if (total > 4096) c.skip("the node's pending-handshake limit is above 4096; filling it would take too long");
                   // Spread over source addresses so that HS-26 does not refuse first.
                   const auto& all = c.cfg.source_addresses;
                   if (static_cast<std::int64_t>(all.size()) * per_address <= total)
                     c.skip("needs more than max_pending_handshakes_total / max_pending_handshakes_per_address source addresses (--source-addresses)");
                   const auto source = [&](std::int64_t i) {
                     return all[(c.source_index() + static_cast<std::size_t>(i / per_address)) % all.size()];
                   };
                   std::int64_t sent = 0;
                   while (sent < total) {
                     const auto& who = c.fresh();
                     for (std::int64_t i = 0; i < per_peer && sent < total; ++i, ++sent) {
                       const auto p = c.begin_handshake(who);
                       const auto r = c.exchange_from(source(sent), p.text1);
                       // Other runs or peers may hold pending handshakes too: the limit may come early.
                       if (r.body.find("\"RATE_LIMITED\"") != std::string::npos) return c.expect_error(r, p.text1, errc::rate_limited, "HS-18");
                       c.check_ack(p, r);
                     }
                   }
                   const auto p = c.begin_handshake(c.fresh());
                   c.expect_error(c.exchange_from(source(sent + per_address), p.text1), p.text1, errc::rate_limited, "HS-18");
                 },
                 std::chrono::seconds(120), true});
  out.push_back({"HS-26/pending-per-address", {"HS-26"}, g,
                 "one handshake beyond the per-address pending limit is RATE_LIMITED, whatever the entity ids", [](context& c) {
                   const auto limit = c.node.limit("max_pending_handshakes_per_address");
                   if (limit > 256) c.skip("the node's per-address pending limit is above 256");
                   std::vector<std::pair<pending_handshake, acked_handshake>> open;
                   for (std::int64_t i = 0; i < limit; ++i) {
                     const auto p = c.begin_handshake(c.fresh());  // a new entity id each time: HS-17 never applies
                     auto a = c.check_ack(p, c.exchange(p.text1));
                     open.emplace_back(p, std::move(a));
                   }
                   const auto p = c.begin_handshake(c.fresh());
                   expect_refusal(c, p.text1, errc::rate_limited, "HS-26");
                   c.note("confirming the pending handshakes, so that none is left behind");
                   for (auto& [q, a] : open) c.confirm(q, a);
                 }});
  out.push_back({"HS-27/sessions-per-peer", {"HS-27", "SES-9"}, g,
                 "one session beyond the per-peer limit closes that peer's least recently active session", [](context& c) {
                   const auto limit = c.node.limit("max_sessions_per_peer");
                   // Messages 1 and 3 both count in the handshake bucket of RL-2.
                   if (2 * (limit + 1) > c.node.limit("handshake_burst"))
                     c.skip("limit + 1 handshakes of one sender exceed the node's handshake burst (RL-2)");
                   const auto& who = c.fresh();
                   std::vector<session_state> sessions;
                   for (std::int64_t i = 0; i < limit; ++i) sessions.push_back(c.handshake(who));
                   c.note("a ping in the first session makes the second one the least recently active");
                   const auto first = c.session_message(sessions[0], "ping");
                   c.expect_reply(c.exchange(first), first, "pong", "HS-27", &sessions[0]);
                   auto newest = c.handshake(who);
                   expect_refusal(c, c.session_message(sessions[1], "ping"), errc::session_not_found, "HS-27");
                   for (auto* s : {&sessions[0], &newest}) {
                     const auto text = c.session_message(*s, "ping");
                     c.expect_reply(c.exchange(text), text, "pong", "HS-27", s);
                   }
                 }});
  out.push_back({"ID-10/bound-keys-full", {"ID-10"}, g,
                 "when the table of bound keys is full, a new entity id is UNKNOWN_SENDER and bound ones still work",
                 [](context& c) {
                   const auto limit = c.node.limit("max_pinned_keys");
                   if (limit > 1000) c.skip("the node binds more than 1000 keys; filling the table would take too long");
                   const auto& known = c.bound();
                   // Each new entity id completes its handshake, so no pending limit is reached.
                   for (std::int64_t i = 0; i <= limit; ++i) {
                     const auto& who = c.fresh();
                     const auto p = c.begin_handshake(who);
                     const auto r = c.exchange(p.text1);
                     if (r.body.find("\"UNKNOWN_SENDER\"") != std::string::npos) {
                       c.expect_error(r, p.text1, errc::unknown_sender, "ID-10");
                       c.note("refused after " + std::to_string(i) + " new entity ids; a bound one must still be served");
                       auto s = c.handshake(known);
                       const auto text = c.session_message(s, "ping");
                       c.expect_reply(c.exchange(text), text, "pong", "ID-10", &s);
                       return;
                     }
                     auto a = c.check_ack(p, r);
                     c.confirm(p, a);
                   }
                   c.check(false, "ID-10", "UNKNOWN_SENDER within max_pinned_keys + 1 new entity ids",
                           std::to_string(limit + 1) + " new entity ids were bound");
                 },
                 std::chrono::seconds(120), true});
  out.push_back({"HS-19/confirm-when-ready", {"HS-19"}, g, "a new message 3 for a ready session is REPLAY_DETECTED and changes nothing",
                 [](context& c) {
                   const auto& who = c.fresh();
                   const auto p = c.begin_handshake(who);
                   auto a = c.check_ack(p, c.exchange(p.text1));
                   auto s = c.confirm(p, a);
                   auto again = c.confirm_message(p, a);
                   expect_refusal(c, c.sign(again, who), errc::replay_detected, "HS-19");
                   const auto text = c.session_message(s, "ping");
                   c.expect_reply(c.exchange(text), text, "pong", "HS-19", &s);
                 }});
  out.push_back({"HS-20/unknown-session", {"HS-20"}, g, "message 3 naming an unknown session is SESSION_NOT_FOUND", [](context& c) {
                   const auto& who = c.bound();
                   auto o = c.header(who, "handshake_confirm",
                                     {{"session_id", random_uuid()}, {"challenge_response", random_hex(32)}, {"key_confirmation", random_hex(32)}});
                   expect_refusal(c, c.sign(o, who), errc::session_not_found, "HS-20");
                 }});
  out.push_back({"HS-21/other-initiator", {"HS-21"}, g, "message 3 from another sender than the initiator is SESSION_NOT_FOUND",
                 [](context& c) {
                   const auto& who = c.fresh();
                   const auto& other = c.bound();
                   const auto p = c.begin_handshake(who);
                   auto a = c.check_ack(p, c.exchange(p.text1));
                   auto m3 = c.confirm_message(p, a);
                   m3["sender_id"] = other.id;
                   expect_refusal(c, c.sign(m3, other), errc::session_not_found, "HS-21");
                 }});
  out.push_back({"SES-3/not-ready", {"SES-3"}, g, "a session message while the handshake awaits message 3 is ENCRYPTION_NOT_READY",
                 [](context& c) {
                   const auto& who = c.fresh();
                   const auto p = c.begin_handshake(who);
                   auto a = c.check_ack(p, c.exchange(p.text1));
                   auto s = a.keys;
                   // The node cannot know the keys are ours yet; the state check comes first.
                   expect_refusal(c, c.session_message(s, "ping"), errc::encryption_not_ready, "SES-3");
                 }});
  declare_needs(out, first_case, need::trust,
                {{"HS-1/complete-1.1", need::session},
                 {"ID-6/key-change", need::handshake},
                 {"HS-27/sessions-per-peer", need::session},
                 {"ID-10/bound-keys-full", need::session},
                 {"HS-19/confirm-when-ready", need::session},
                 {"HS-20/unknown-session", need::handshake},
                 {"HS-21/other-initiator", need::handshake},
                 {"SES-3/not-ready", need::session}});
}

}  // namespace peerproto::conformance
