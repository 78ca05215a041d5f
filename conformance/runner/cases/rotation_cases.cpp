// §2.2 key rotation and revocation, the node as the receiver: the case's identity rotates its own
// key in front of the node (the node's trust policy must let the case's identities bind, as for
// every other case: tofu or open). Whether a refused statement changed nothing is judged by the
// rotation the node accepts next (its counter), not by a handshake, which `open` accepts anyway.
#include "common.hpp"

#include <peerproto/key_rotation.hpp>

namespace peerproto::conformance {
using namespace cases;

namespace {
const std::string g = "rotation";

/// The key `who` rotates to, the n-th time (deterministic, like the case identities).
identity next_key(const identity& who, int n) {
  const auto seed = crypto::sha256(who.key.seed().view(), as_bytes("rotation " + std::to_string(n)));
  return identity{who.id, crypto::ed25519_keypair(seed)};
}

utc_timestamp just_now() { return make_timestamp(std::chrono::system_clock::now() - std::chrono::seconds(1)); }

/// A statement moving `from`'s entity id from `from`'s key to `to`'s (nullptr: a revocation).
key_rotation statement(const identity& from, const identity* to, std::uint64_t counter, utc_timestamp effective = just_now()) {
  return make_key_rotation(from.id, from.key, to ? &to->key : nullptr, counter, effective);
}

json::object chain_of(const std::vector<key_rotation>& chain) { return {{"chain", to_json(chain)}}; }

/// Sends `chain` in session `s` and expects the ack of KR-5 with `status` and `counter`.
void expect_applied(context& c, session_state& s, const std::vector<key_rotation>& chain, std::string_view status, std::uint64_t counter,
                    std::string_view rule = "KR-5") {
  const auto text = c.session_message(s, "key_rotation", chain_of(chain));
  const auto ack = c.expect_reply(c.exchange(text), text, "ack", rule, &s);
  c.check(ack.contains("status") && ack.at("status") == json::value(status), rule, "status \"" + std::string(status) + "\"", canonical(ack));
  c.check(ack.contains("counter") && ack.at("counter") == json::value(counter), rule, "counter " + std::to_string(counter), canonical(ack));
}

/// Sends `chain` in session `s` and expects `code`; the session stays usable (KR-4: nothing changed).
void expect_refused(context& c, session_state& s, const std::vector<key_rotation>& chain, errc code, std::string_view rule) {
  expect_refusal(c, c.session_message(s, "key_rotation", chain_of(chain)), code, rule);
}

/// A sessionless ping signed by `key` for its entity id: the pong (ping_ok), or `code`.
void ping_as(context& c, const identity& key, std::optional<errc> code, std::string_view rule) {
  if (!code) return (void)ping_ok(c, key, {{"text", "hello"}}, rule);
  auto o = c.header(key, "ping", {{"text", "hello"}});
  expect_refusal(c, c.sign(o, key), *code, rule);
}

/// A handshake by `key` refused with UNKNOWN_SENDER.
void handshake_refused(context& c, const identity& key, std::string_view rule) {
  const auto p = c.begin_handshake(key);
  c.expect_error(c.exchange(p.text1), p.text1, errc::unknown_sender, rule);
}

// The node's chain at GET /key-rotation (KR-10): well formed, its own, linked, ending at its key.
void check_served_chain(context& c) {
  const auto r = c.get("/key-rotation");
  c.check(r.status == 200, "KR-10", "HTTP 200 for GET /key-rotation", "HTTP " + std::to_string(r.status));
  boost::system::error_code ec;
  const auto v = json::parse(r.body, ec);
  const auto* o = ec ? nullptr : v.if_object();
  c.check(o && o->contains("entity_id") && o->at("entity_id") == json::value(c.node.entity_id) && o->contains("chain") &&
              o->at("chain").is_array(),
          "KR-10", "{entity_id: the node's, chain: [...]}", r.body.substr(0, 200));
  const auto& arr = o->at("chain").as_array();
  if (arr.empty()) return c.note("the node never rotated its key: its chain is empty");
  auto chain = parse_rotation_chain(json::object{{"chain", arr}}, arr.size());
  c.check(chain.ok(), "KR-10", "a chain as KR-1 and KR-3 describe it", chain ? "" : chain.error().message);
  for (const auto& s : *chain) {
    c.check(s.entity_id == c.node.entity_id, "KR-10", "statements about " + c.node.entity_id, s.entity_id);
    c.check(verify(s), "KR-2", "signatures that verify", "statement " + std::to_string(s.counter) + " does not verify");
  }
  c.check(chain->front().counter == 1, "KR-10", "counter 1 first", std::to_string(chain->front().counter));
  c.check(chain->back().new_key == c.node.key, "KR-10", "the chain ends at the key of GET /public-key",
          chain->back().new_key ? fingerprint(*chain->back().new_key) : "a revocation");
}
}  // namespace

void add_rotation_cases(std::vector<test_case>& out) {
  const auto first_case = out.size();
  out.push_back({"KR-5/in-session", {"KR-5", "KR-9", "KR-3"}, g,
                 "a rotation in a session is acked with its counter; the session continues; a handshake with the new key is accepted",
                 [](context& c) {
                   const auto& who = c.fresh();
                   const auto next = next_key(who, 1);
                   auto s = c.handshake(who);
                   expect_applied(c, s, {statement(who, &next, 1)}, "key_rotated", 1);
                   const auto ping = c.session_message(s, "ping", {{"after", "rotation"}});
                   c.expect_reply(c.exchange(ping), ping, "pong", "KR-9", &s);
                   auto s2 = c.handshake(next);
                   const auto ping2 = c.session_message(s2, "ping");
                   c.expect_reply(c.exchange(ping2), ping2, "pong", "KR-5", &s2);
                   ping_as(c, next, std::nullopt, "KR-5");
                 }});
  out.push_back({"KR-3/sessionless", {"KR-3", "KR-5"}, g, "a sessionless rotation signed by the bound key is acked (signed) with its counter",
                 [](context& c) {
                   const auto& who = c.fresh();
                   const auto next = next_key(who, 1);
                   c.handshake(who);
                   auto o = c.header(who, "key_rotation", chain_of({statement(who, &next, 1)}));
                   const auto text = c.sign(o, who);
                   const auto ack = c.expect_reply(c.exchange(text), text, "ack", "KR-3");
                   c.check(ack.contains("status") && ack.at("status") == "key_rotated", "KR-5", "status \"key_rotated\"", canonical(ack));
                   ping_as(c, next, std::nullopt, "KR-5");
                 }});
  out.push_back({"KR-5/chain", {"KR-5", "KR-3"}, g, "a chain of two statements applies both: the binding moves to the last key, counter 2",
                 [](context& c) {
                   const auto& who = c.fresh();
                   const auto k1 = next_key(who, 1), k2 = next_key(who, 2);
                   auto s = c.handshake(who);
                   expect_applied(c, s, {statement(who, &k1, 1), statement(k1, &k2, 2)}, "key_rotated", 2);
                   ping_as(c, k2, std::nullopt, "KR-5");
                 }});
  out.push_back({"KR-4/replayed", {"KR-4"}, g, "the same statement again is REPLAY_DETECTED", [](context& c) {
                   const auto& who = c.fresh();
                   const auto next = next_key(who, 1);
                   auto s = c.handshake(who);
                   const auto r1 = statement(who, &next, 1);
                   expect_applied(c, s, {r1}, "key_rotated", 1);
                   expect_refused(c, s, {r1}, errc::replay_detected, "KR-4");
                 }});
  out.push_back({"KR-4/stale", {"KR-4"}, g, "a statement with a lower counter than one applied is REPLAY_DETECTED; a chain repeating it "
                                            "is accepted for its newer statement",
                 [](context& c) {
                   const auto& who = c.fresh();
                   const auto k1 = next_key(who, 1), k2 = next_key(who, 2), k3 = next_key(who, 3);
                   auto s = c.handshake(who);
                   const auto r1 = statement(who, &k1, 1), r2 = statement(k1, &k2, 2);
                   expect_applied(c, s, {r1, r2}, "key_rotated", 2);
                   expect_refused(c, s, {r1}, errc::replay_detected, "KR-4");
                   expect_applied(c, s, {r1, r2, statement(k2, &k3, 3)}, "key_rotated", 3, "KR-4");
                 }});
  out.push_back({"KR-4/joins-later", {"KR-4", "KR-5"}, g,
                 "a node that bound a later key of the chain applies the statements from that key on", [](context& c) {
                   const auto& who = c.fresh();
                   const auto k1 = next_key(who, 1), k2 = next_key(who, 2);
                   auto s = c.handshake(k1);  // the node binds k1 first (tofu or open), at counter 0
                   expect_applied(c, s, {statement(who, &k1, 1), statement(k1, &k2, 2)}, "key_rotated", 2);
                   ping_as(c, k2, std::nullopt, "KR-5");
                 }});
  out.push_back({"KR-4/forged-old-signature", {"KR-4", "KR-2"}, g,
                 "a statement whose old_signature does not verify is INVALID_SIGNATURE, and changes nothing", [](context& c) {
                   const auto& who = c.fresh();
                   const auto next = next_key(who, 1);
                   auto s = c.handshake(who);
                   auto forged = statement(who, &next, 1);
                   forged.old_signature[7] ^= 0x04;
                   expect_refused(c, s, {forged}, errc::invalid_signature, "KR-4");
                   expect_applied(c, s, {statement(who, &next, 1)}, "key_rotated", 1, "KR-4");  // nothing changed before
                 }});
  out.push_back({"KR-4/later-statement-forged", {"KR-4", "KR-5"}, g,
                 "a chain whose second statement does not verify is INVALID_SIGNATURE and changes nothing: its valid first "
                 "statement is not applied either",
                 [](context& c) {
                   const auto& who = c.fresh();
                   const auto k1 = next_key(who, 1), k2 = next_key(who, 2);
                   auto s = c.handshake(who);
                   auto forged = statement(k1, &k2, 2);
                   forged.old_signature[7] ^= 0x04;
                   expect_refused(c, s, {statement(who, &k1, 1), forged}, errc::invalid_signature, "KR-4");
                   expect_applied(c, s, {statement(who, &k1, 1)}, "key_rotated", 1, "KR-4");  // counter 0 still: nothing was kept
                 }});
  out.push_back({"KR-4/forged-new-signature", {"KR-4", "KR-2"}, g,
                 "a statement countersigned by another key than new_key is INVALID_SIGNATURE", [](context& c) {
                   const auto& who = c.fresh();
                   const auto next = next_key(who, 1), other = next_key(who, 2);
                   auto s = c.handshake(who);
                   auto forged = statement(who, &next, 1);
                   forged.new_signature = other.key.sign(as_bytes(signing_input(forged)));
                   forged.old_signature = who.key.sign(as_bytes(signing_input(forged)));
                   expect_refused(c, s, {forged}, errc::invalid_signature, "KR-4");
                   expect_applied(c, s, {statement(who, &next, 1)}, "key_rotated", 1, "KR-4");
                 }});
  out.push_back({"KR-4/cross-entity", {"KR-4", "KR-8"}, g,
                 "a valid statement about another entity id than the sender's is UNKNOWN_SENDER, and the other binding stays",
                 [](context& c) {
                   const auto& who = c.fresh();
                   const auto& other = c.fresh();
                   auto s = c.handshake(who);
                   auto theirs = c.handshake(other);
                   const auto next = next_key(other, 1);
                   expect_refused(c, s, {statement(other, &next, 1)}, errc::unknown_sender, "KR-4");
                   ping_as(c, other, std::nullopt, "KR-8");
                   expect_applied(c, theirs, {statement(other, &next, 1)}, "key_rotated", 1, "KR-8");  // still at counter 0
                 }});
  out.push_back({"KR-4/unbound-old-key", {"KR-4"}, g, "a statement whose old_key is not the bound key is UNKNOWN_SENDER", [](context& c) {
                   const auto& who = c.fresh();
                   auto s = c.handshake(who);
                   const identity stranger{who.id, crypto::ed25519_keypair(crypto::sha256(as_bytes(who.id + " stranger")))};
                   const auto next = next_key(who, 1);
                   expect_refused(c, s, {statement(stranger, &next, 1)}, errc::unknown_sender, "KR-4");
                 }});
  out.push_back({"KR-4/future-effective", {"KR-4", "RPL-1"}, g,
                 "a statement taking effect beyond the timestamp tolerance is REPLAY_DETECTED", [](context& c) {
                   const auto& who = c.fresh();
                   const auto next = next_key(who, 1);
                   auto s = c.handshake(who);
                   const auto ahead = std::chrono::milliseconds(c.node.limit("timestamp_tolerance_ms")) + std::chrono::seconds(60);
                   expect_refused(c, s, {statement(who, &next, 1, make_timestamp(std::chrono::system_clock::now() + ahead))},
                                  errc::replay_detected, "KR-4");
                 }});
  out.push_back({"KR-3/form", {"KR-3", "KR-1"}, g,
                 "an unknown statement member, a chain out of order and an empty chain are each INVALID_FORMAT", [](context& c) {
                   const auto& who = c.fresh();
                   const auto k1 = next_key(who, 1), k2 = next_key(who, 2);
                   auto s = c.handshake(who);
                   auto extra = chain_of({statement(who, &k1, 1)});
                   extra["chain"].as_array()[0].as_object()["note"] = "x";
                   expect_refusal(c, c.session_message(s, "key_rotation", extra), errc::invalid_format, "KR-1");
                   expect_refused(c, s, {statement(k1, &k2, 2), statement(who, &k1, 1)}, errc::invalid_format, "KR-3");
                   expect_refusal(c, c.session_message(s, "key_rotation", {{"chain", json::array()}}), errc::invalid_format, "KR-3");
                   expect_applied(c, s, {statement(who, &k1, 1)}, "key_rotated", 1, "KR-3");  // nothing changed before
                 }});
  out.push_back({"KR-6/grace", {"KR-6"}, g, "during the grace period the replaced key still signs sessionless messages and handshakes",
                 [](context& c) {
                   if (c.node.limit("rotation_grace_ms") < 30'000)
                     c.skip("the node's rotation_grace_ms is under 30 s: too short to observe the grace period in this case");
                   const auto& who = c.fresh();
                   const auto next = next_key(who, 1);
                   auto s = c.handshake(who);
                   expect_applied(c, s, {statement(who, &next, 1)}, "key_rotated", 1);
                   ping_as(c, who, std::nullopt, "KR-6");
                   c.handshake(who);
                 }});
  out.push_back({"KR-6/grace-ends", {"KR-6", "ID-8"}, g,
                 "after effective + rotation_grace_ms a sessionless message signed by the replaced key is INVALID_SIGNATURE",
                 [](context& c) {
                   const auto grace = std::chrono::milliseconds(c.node.limit("rotation_grace_ms"));
                   require_time_for(c, "rotation_grace_ms", grace + std::chrono::seconds(2));
                   const auto& who = c.fresh();
                   const auto next = next_key(who, 1);
                   auto s = c.handshake(who);
                   const auto effective = make_timestamp(std::chrono::system_clock::now());
                   expect_applied(c, s, {statement(who, &next, 1, effective)}, "key_rotated", 1);
                   // 1.5 s past the end: the node's clock may differ from the runner's by a little.
                   std::this_thread::sleep_until(std::chrono::system_clock::time_point(effective.time) + grace + std::chrono::milliseconds(1500));
                   ping_as(c, who, errc::invalid_signature, "KR-6");
                   ping_as(c, next, std::nullopt, "KR-6");
                 }});
  out.push_back({"KR-7/revocation", {"KR-7", "KR-5"}, g,
                 "a revocation is acked key_revoked; then the session is gone and every key of the entity id is UNKNOWN_SENDER",
                 [](context& c) {
                   const auto& who = c.fresh();
                   auto s = c.handshake(who);
                   expect_applied(c, s, {statement(who, nullptr, 1)}, "key_revoked", 1);
                   expect_refusal(c, c.session_message(s, "ping"), errc::session_not_found, "KR-7");
                   ping_as(c, who, errc::unknown_sender, "KR-7");
                   handshake_refused(c, who, "KR-7");
                   handshake_refused(c, next_key(who, 1), "KR-7");
                 }});
  out.push_back({"KR-10/served", {"KR-10", "HTTP-6"}, g, "GET /key-rotation serves the node's own chain, ending at its current key",
                 [](context& c) { check_served_chain(c); }});
  declare_needs(out, first_case, need::session,
                {{"KR-3/sessionless", need::handshake},
                 {"KR-10/served", {}}});
}

}  // namespace peerproto::conformance
