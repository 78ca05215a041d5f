// The initiator role: the node under test sends (made to by the shim) and the runner is its peer.
// The runner answers correctly or deliberately wrong and judges what the node does next: the
// handshake it completes or abandons (§8), how it seals and numbers (§10, §11), and what it does
// with refusals, forged answers and lost answers (§11.1).
#include "common.hpp"

#include <peerproto/chunking.hpp>
#include <peerproto/envelope.hpp>
#include <peerproto/key_file.hpp>
#include <peerproto/key_rotation.hpp>

#include <set>

namespace peerproto::conformance {
namespace {

const std::string group = "initiator";
constexpr auto poll = std::chrono::milliseconds(200);

test_case initiator_case(std::string id, std::vector<std::string> reqs, std::string title, std::function<void(peer_context&)> f,
                         std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
  return {std::move(id), std::move(reqs), group, std::move(title), {}, timeout, false, std::move(f)};
}

// What a request is and which session it names, read leniently: a request in a broken session
// may break other rules too (a version the runner selected wrongly, say).
const json::object* object_of(const json::value& v) { return v.is_object() ? &v.get_object() : nullptr; }
std::string string_at(const json::object* o, std::string_view name) {
  const auto* v = o ? o->if_contains(name) : nullptr;
  return v && v->is_string() ? std::string(v->get_string()) : "";
}
std::string type_of(const inbound_message& m) {
  boost::system::error_code ec;
  const auto v = json::parse(m.body, ec);
  return ec ? "" : string_at(object_of(v), "msg_type");
}
// The session_id of a session message, or the one a handshake_confirm confirms.
std::string session_of(const inbound_message& m) {
  boost::system::error_code ec;
  const auto v = json::parse(m.body, ec);
  if (ec) return "";
  const auto* o = object_of(v);
  if (string_at(o, "msg_type") != "handshake_confirm") return string_at(o, "session_id");
  const auto* p = o->if_contains("payload");
  return string_at(p ? object_of(*p) : nullptr, "session_id");
}

// The node's next message of its own, in a session: handshakes on the way are answered correctly
// and `s` becomes the session they make (a node may start a new session at any time).
json::object next_message(peer_context& c, peer_session& s, const std::string& what, std::string_view rule) {
  for (;;) {
    const auto m = c.take(what, rule);
    if (type_of(m) != "handshake") return c.open(s, m);
    s = c.handshake(m);
  }
}

// One message, delivered the ordinary way; every check of the node's side runs on the way.
// Returns the session it went in.
peer_session deliver_one(peer_context& c) {
  const json::object payload{{"text", "hello from " + c.node.entity_id + " to the runner"}};
  c.send("heartbeat", payload);
  auto s = c.handshake();
  const auto m = next_message(c, s, "the message in the new session", "HS-29");
  c.check(m.at("payload") == payload, "ENC-3", "the payload given to the shim: " + canonical(payload), canonical(m.at("payload")));
  c.answer_delivered(s, m);
  c.expect_outcome(0, "SHIM", "a message answered by its reply as delivered");
  return s;
}

// KR-10, KR-2, KR-3: the key_rotation the node announces: a chain about itself that links its
// current key to `next`, every statement signed by both keys. Acked as KR-5 says.
void check_announcement(peer_context& c, peer_session& s, const json::object& m, const crypto::public_key& old_key, const identity& next) {
  const auto& payload = m.at("payload").as_object();
  const auto* arr = payload.if_contains("chain");
  auto chain = parse_rotation_chain(payload, arr && arr->is_array() ? std::max<std::size_t>(arr->as_array().size(), 1) : 1);
  c.check(chain.ok(), "KR-3", "a payload {chain: [statement, ...]} as KR-1 and KR-3 describe", chain ? "" : chain.error().message);
  for (const auto& r : *chain) {
    c.check(r.entity_id == c.node.entity_id, "KR-1", "statements about " + c.node.entity_id, r.entity_id);
    c.check(verify(r), "KR-2", "statement " + std::to_string(r.counter) + " signed by its old and its new key", "signatures that do not verify");
  }
  const bool links = std::any_of(chain->begin(), chain->end(), [&](const key_rotation& r) { return r.old_key == old_key; });
  c.check(links, "KR-10", "a statement whose old_key is the node's key before the rotation " + fingerprint(old_key), "none");
  c.check(chain->back().new_key == next.key.public_key_bytes(), "KR-10", "the chain ends at the new key " + fingerprint(next.key.public_key_bytes()),
          chain->back().new_key ? fingerprint(*chain->back().new_key) : "a revocation");
  c.answer_delivered(s, m, {{"status", "key_rotated"}, {"counter", chain->back().counter}});
}

// The runner answers every handshake as `o` says (message 3 too, with a session_ready sealed with
// the wrong key when `bad_ready`); the node must not use any session so made (`rule`) until the
// shim reports its conclusion.
void refused_handshake(peer_context& c, ack_options o, std::string_view rule, bool bad_ready = false) {
  c.send("heartbeat", {}, 3);
  std::set<std::string> broken;
  int handshakes = 0;
  while (c.sending()) {
    const auto m = c.next(poll);
    if (!m) continue;
    const auto type = type_of(*m);
    if (type == "handshake") {
      ++handshakes;
      const auto s = c.answer_handshake(c.read_handshake(*m), o);
      broken.insert(s.session_id);
      if (!bad_ready) continue;
      auto ready = s;
      const auto m3 = c.take("message 3 of the handshake", "HS-15");
      c.check_confirm(ready, m3);
      c.answer_session_ready(ready, m3, true);
      continue;
    }
    // With a session_ready that did not open, message 3 may come again (SND-1: a lost answer);
    // only a message in the session is a use of it.
    const auto session = bad_ready && type == "handshake_confirm" ? std::string() : session_of(*m);
    c.check(!broken.contains(session), rule,
            bad_ready ? "no message in a session whose first message did not open with k_r2i"
                      : "no handshake_confirm and no session message for a handshake whose message 2 is wrong",
            type + " for session " + session);
    c.answer(400, "");
  }
  c.outcome();
  c.check(handshakes > 0, rule, "at least one handshake", "none");
}

// A handshake, then the node's message, answered by `refuse` (which gets it as received).
struct refused_message {
  peer_session s;
  inbound_message first;
  json::object opened;
};
refused_message send_and_refuse(peer_context& c, int expires_in_s, const std::function<void(const json::object&)>& refuse) {
  refused_message r;
  c.send("heartbeat", {}, expires_in_s);
  r.s = c.handshake();
  r.first = c.take("the message in the new session", "HS-29");
  r.opened = c.open(r.s, r.first);
  refuse(r.opened);
  return r;
}

// SES-8: a node that gives a message up may close its session, which leaves a gap in its
// numbers otherwise (ORD-3). True when `m` was such a session_close, answered as SES-8 says.
bool answered_close(peer_context& c, peer_session& s, const inbound_message& m) {
  if (type_of(m) != "session_close" || session_of(m) != s.session_id) return false;
  c.answer_delivered(s, c.open(s, m), {{"status", "closed"}});
  return true;
}

// The message again after an answer that did not settle it. A node may give a message up rather
// than send it again (no rule makes it retry): the case then has nothing to judge and is skipped.
inbound_message again(peer_context& c, const std::string& what, std::string_view rule, bool refusal_ok = false) {
  while (c.sending())
    if (auto m = c.next(poll)) return *m;
  if (auto m = c.next(poll)) return *m;  // sent just before the shim ended
  const auto status = c.outcome().status;
  if (status == 3 || (refusal_ok && status == 1)) c.skip("the node gave the message up without sending it again");
  c.fail(rule, what, "no request from the node, which reported exit status " + std::to_string(status));
}

// The node sends a payload too large for one envelope of the runner, which advertises small
// limits. Every message of the transfer is checked (its size, CHK-2's form, one transfer and its
// metadata, CHK-1's bytes) and acknowledged; the chunk that completes the transfer gets the reply.
// With `lose_once`, the runner answers the first round's completing chunk as a receiver that lost
// the others would (a restart): ack chunk_received, keeping only that chunk; CHK-16 then has the
// node send the chunks again under the same transfer_id.
void chunked_send(peer_context& c, bool lose_once) {
  constexpr std::int64_t max_envelope = 16384, max_chunk = 4096;
  c.advertise_limits({{"max_envelope_bytes", max_envelope}, {"max_chunk_data_bytes", max_chunk}});
  const json::object payload{{"case", c.me.id}, {"blob", random_hex(20000)}};  // 40 KiB of text
  c.send("heartbeat", payload, 20);
  auto s = c.handshake();
  std::optional<chunk> first;
  std::map<std::uint32_t, bytes> held;
  bool lost = !lose_once;
  for (;;) {
    std::optional<inbound_message> m;
    while (!m && c.sending()) m = c.next(poll);
    if (!m) m = c.next(poll);  // sent just before the shim ended
    if (!m)
      c.fail(lost ? "CHK-15" : "CHK-16",
             lost ? "the chunks of the payload" : "the chunks again under the same transfer_id after every one was acknowledged",
             "no request from the node, which reported exit status " + std::to_string(c.outcome().status));
    if (type_of(*m) == "handshake") {  // a new session for the rest of the transfer
      s = c.handshake(*m);
      continue;
    }
    const auto opened = c.open(s, *m);
    c.check(m->body.size() <= static_cast<std::size_t>(max_envelope), "CHK-15",
            "envelopes within the runner's max_envelope_bytes of " + std::to_string(max_envelope), std::to_string(m->body.size()) + " bytes");
    const auto type = std::string(opened.at("msg_type").as_string());
    c.check(type == "chunk", "CHK-15", "chunk messages (the payload does not fit one envelope)", type);
    auto got = parse_chunk(opened.at("payload").as_object());
    c.check(got.ok(), "CHK-2", "a chunk payload as CHK-2 describes", got ? "" : got.error().message);
    c.check(got->data.size() <= static_cast<std::size_t>(max_chunk), "CHK-15",
            "chunk data within the runner's max_chunk_data_bytes of " + std::to_string(max_chunk), std::to_string(got->data.size()) + " bytes");
    if (!first) first = *got;
    c.check(got->transfer_id == first->transfer_id, lost && lose_once ? "CHK-16" : "CHK-5", "one transfer_id " + format_uuid(first->transfer_id),
            format_uuid(got->transfer_id));
    c.check(got->total == first->total && got->total_size == first->total_size && got->sha256 == first->sha256 &&
                got->original_msg_type == first->original_msg_type,
            "CHK-5", "every chunk with the first chunk's total, total_size, sha256 and original_msg_type", canonical(opened.at("payload")));
    if (const auto it = held.find(got->index); it != held.end())
      c.check(it->second == got->data, "CHK-5", "chunk " + std::to_string(got->index) + " with the same data again", "other data");
    held[got->index] = got->data;
    if (held.size() < got->total) {
      c.answer_delivered(s, opened, {{"status", "chunk_received"}});
      continue;
    }
    if (!lost) {  // the runner "restarts": all but this chunk are gone
      lost = true;
      held = {{got->index, got->data}};
      c.answer_delivered(s, opened, {{"status", "chunk_received"}});
      continue;
    }
    std::string text;
    for (const auto& [i, d] : held) text.append(d.begin(), d.end());
    c.check(text.size() == got->total_size && crypto::sha256(as_bytes(text)) == got->sha256, "CHK-1",
            "the reassembled bytes of total_size with SHA-256 sha256", std::to_string(text.size()) + " bytes, another digest");
    boost::system::error_code ec;
    const auto value = json::parse(text, ec);
    c.check(!ec && value == payload, "CHK-1", "the reassembled bytes are the payload given to the shim", text.substr(0, 200));
    c.check(got->original_msg_type == "heartbeat", "CHK-1", "original_msg_type heartbeat", got->original_msg_type);
    c.answer_delivered(s, opened);  // the handler's reply (CHK-7)
    break;
  }
  c.expect_outcome(0, "SHIM", "the transfer answered by its reply as delivered");
}

}  // namespace

void add_initiator_cases(std::vector<test_case>& out) {
  const auto first_case = out.size();
  // ---- a message delivered: every step of the node's side checked
  out.push_back(initiator_case("HS-1/initiator-handshake", {"HS-1", "HS-2", "HS-3", "HS-5"},
                               "the node's handshake is sessionless, signed with its key, and well formed", deliver_one));
  out.push_back(initiator_case("HS-8/initiator-confirm", {"HS-8", "HS-15"},
                               "the node's handshake_confirm carries SHA-256 of message 2", deliver_one));
  out.push_back(initiator_case("HS-12/initiator-key-confirmation", {"HS-12"},
                               "the node's key_confirmation is the HMAC of k_confirm", deliver_one));
  out.push_back(initiator_case("ENC-1/initiator-seal", {"ENC-1", "ENC-2", "ENC-3", "VER-10"},
                               "the node seals with k_i2r, the sequence nonce and the envelope as associated data", deliver_one));
  out.push_back(initiator_case("ORD-1/initiator-sequence", {"ORD-1", "ENC-4"},
                               "two messages: sequence numbers 1 and 2 in one session (or 1 in a new one)", [](peer_context& c) {
                                 c.send("heartbeat", {{"n", 1}});
                                 auto s = c.handshake();
                                 auto m = next_message(c, s, "the first message", "HS-29");
                                 c.answer_delivered(s, m);
                                 c.expect_outcome(0, "SHIM", "a message answered by its reply as delivered");
                                 c.send("heartbeat", {{"n", 2}});
                                 m = next_message(c, s, "the second message", "ORD-1");
                                 c.check(m.at("payload") == json::object{{"n", 2}}, "ENC-3", "the payload {\"n\":2}", canonical(m.at("payload")));
                                 c.answer_delivered(s, m);
                                 c.expect_outcome(0, "SHIM", "a message answered by its reply as delivered");
                               }));
  out.push_back(initiator_case("VER-6/initiator-1.0-session", {"VER-6", "HS-13", "SES-11"},
                               "a 1.0 session when the runner selects 1.0: no key confirmation, signed session messages", [](peer_context& c) {
                                 c.advertise_only_1_0();  // selecting 1.0 is then what VER-5 asks
                                 c.send("heartbeat", {{"text", "plain"}});
                                 const auto m1 = c.take("message 1 of a handshake", "HS-28");
                                 const auto msg1 = c.read_handshake(m1);
                                 const auto& offered = msg1.at("payload").at("supported_versions").as_array();
                                 if (std::find(offered.begin(), offered.end(), json::value("1.0")) == offered.end())
                                   c.skip("the node does not offer 1.0 (it requires encryption)");
                                 auto s = c.answer_handshake(msg1, {.version = "1.0", .suite = std::optional<std::string>()});
                                 const auto m3 = c.take("message 3 of the handshake", "HS-15");
                                 c.check_confirm(s, m3);
                                 c.answer_session_ready(s, m3);
                                 const auto m = c.open(s, c.take("the message in the 1.0 session", "HS-29"));
                                 c.answer_delivered(s, m);
                                 c.expect_outcome(0, "SHIM", "a message answered by its reply as delivered");
                               }));

  // ---- a wrong message 2 or 4: the node abandons the handshake
  out.push_back(initiator_case("HS-28/initiator-ack-signature", {"HS-28", "HS-2"},
                               "a handshake_ack whose signature does not verify is not confirmed",
                               [](peer_context& c) { refused_handshake(c, {.break_signature = true}, "HS-28"); }));
  out.push_back(initiator_case("HS-7/initiator-challenge-response", {"HS-7", "HS-28"},
                               "a handshake_ack with a wrong challenge_response is not confirmed", [](peer_context& c) {
                                 refused_handshake(c, {.tweak = [](json::object& p) { p["challenge_response"] = random_hex(32); }}, "HS-7");
                               }));
  out.push_back(initiator_case("HS-28/initiator-unoffered-version", {"HS-28", "VER-5"},
                               "a handshake_ack selecting a version the node did not offer is not confirmed", [](peer_context& c) {
                                 refused_handshake(c, {.version = "2.0", .suite = std::optional<std::string>()}, "HS-28");
                               }));
  out.push_back(initiator_case("HS-28/initiator-unoffered-suite", {"HS-28", "HS-6"},
                               "a handshake_ack selecting a suite the node did not offer is not confirmed", [](peer_context& c) {
                                 refused_handshake(c, {.suite = std::optional<std::string>("x25519-hkdf-sha256-chacha20poly1305")}, "HS-28");
                               }));
  out.push_back(initiator_case("HS-10/initiator-low-order-key", {"HS-10", "HS-28"},
                               "a handshake_ack whose ephemeral key gives an all-zero secret is not confirmed", [](peer_context& c) {
                                 refused_handshake(c, {.tweak = [](json::object& p) { p["ephemeral_key"] = std::string(64, '0'); }}, "HS-10");
                               }));
  out.push_back(initiator_case("HS-29/initiator-session-ready-key", {"HS-29", "HS-15"},
                               "a session whose first message is sealed with the wrong direction's key is not used",
                               [](peer_context& c) { refused_handshake(c, {}, "HS-29", true); }));

  // ---- answers to the node's message: forged, rate limited, final, session gone, lost
  out.push_back(initiator_case("SND-1/initiator-forged-error", {"SND-1"},
                               "an error signed by another key is not taken as a refusal", [](peer_context& c) {
                                 auto r = send_and_refuse(c, 3, [&](const json::object& m) { c.answer_error(m, errc::invalid_format, {}, true); });
                                 while (c.sending())
                                   if (const auto m = c.next(poll)) {
                                     if (answered_close(c, r.s, *m)) continue;
                                     c.check(m->body == r.first.body, "SND-5", "a retransmission of the stored bytes", m->body);
                                     c.answer_error(r.opened, errc::invalid_format, {}, true);
                                   }
                                 c.expect_outcome(3, "SND-1", "the message given up unanswered, not refused");
                               }));
  out.push_back(initiator_case("SND-2/initiator-retry-after", {"SND-2", "RL-7"},
                               "after RATE_LIMITED with retry_after 2, the message comes again no earlier than 2 s later",
                               [](peer_context& c) {
                                 std::chrono::steady_clock::time_point refused;
                                 auto r = send_and_refuse(c, 10, [&](const json::object& m) {
                                   refused = std::chrono::steady_clock::now();
                                   c.answer_error(m, errc::rate_limited, 2);
                                 });
                                 const auto next = again(c, "the message again after retry_after", "SND-2");
                                 const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(next.arrived - refused);
                                 c.check(waited >= std::chrono::seconds(2), "SND-2", "the message again 2000 ms or more after the refusal",
                                         "after " + std::to_string(waited.count()) + " ms");
                                 c.check(next.body == r.first.body, "RL-7", "the stored bytes (refused before delivery: ORD-7)", next.body);
                                 c.answer_delivered(r.s, r.opened);
                                 c.expect_outcome(0, "SHIM", "a message answered by its reply as delivered");
                               }));
  // SND-3 holds for every code outside its list, among them codes a forged answer could carry too
  // (SND-1): an authenticated refusal with one of those is still final.
  for (const auto& [id, code] : {std::pair{"SND-3/initiator-final-refusal", errc::payload_too_large},
                                 std::pair{"SND-3/initiator-final-invalid-format", errc::invalid_format},
                                 std::pair{"SND-3/initiator-final-invalid-signature", errc::invalid_signature}})
    out.push_back(initiator_case(id, {"SND-3"}, "a message refused with " + std::string(wire_name(code)) + " (signed by the runner) is not sent again",
                                 [code](peer_context& c) {
                                   auto r = send_and_refuse(c, 3, [&](const json::object& m) { c.answer_error(m, code); });
                                   while (c.sending())
                                     if (const auto m = c.next(poll)) {
                                       if (answered_close(c, r.s, *m)) continue;
                                       c.check(m->body != r.first.body, "SND-3", "no second transmission of the refused envelope", m->body);
                                       c.answer(400, "");
                                     }
                                   c.expect_outcome(1, "SND-3", "the message refused by the peer");
                                 }));
  out.push_back(initiator_case(
      "SND-1/initiator-reply-does-not-open", {"SND-1", "SND-5"},
      "a reply sealed with the wrong direction's key is a lost answer: the message comes again as its stored bytes, not sealed anew",
      [](peer_context& c) {
        c.send("heartbeat", {}, 10);
        auto s = c.handshake();
        const auto first = c.take("the message in the new session", "HS-29");
        const auto opened = c.open(s, first);
        c.answer_delivered(s, opened, {}, true);
        --s.next_out;  // the node could not open that reply: its number is still the runner's next
        for (;;) {
          const auto m = again(c, "the message again after a reply that did not open", "SND-1");
          if (answered_close(c, s, m)) continue;
          if (type_of(m) != "handshake") {
            c.check(m.body == first.body, "SND-5", "the stored bytes of the first transmission", m.body);
            c.answer_delivered(s, opened);
            break;
          }
          // A new session: the message in it would be its content sealed anew, as after a refusal,
          // although the first transmission may have been delivered.
          auto s2 = c.handshake(m);
          const auto next = next_message(c, s2, "the node's next message", "SND-1");
          c.check(next.at("payload") != opened.at("payload"), "SND-1",
                  "not the message sealed anew after a reply that did not open (it may have been delivered)",
                  "its content again in the new session " + s2.session_id);
          c.answer_delivered(s2, next);
          break;
        }
        c.expect_outcome(0, "SHIM", "a message answered by its reply as delivered");
      }));
  out.push_back(initiator_case("SND-4/initiator-session-expired", {"SND-4", "SES-7"},
                               "after SESSION_EXPIRED the node sends nothing more in that session and sends again in a new one",
                               [](peer_context& c) {
                                 auto r = send_and_refuse(c, 10, [&](const json::object& m) { c.answer_error(m, errc::session_expired); });
                                 const auto old = r.s.session_id;
                                 for (;;) {
                                   const auto m = again(c, "a new handshake for the message", "SND-4", true);
                                   c.check(session_of(m) != old, "SND-4", "nothing more in the expired session " + old,
                                           type_of(m) + " in it");
                                   if (type_of(m) != "handshake") {
                                     c.answer(400, "");
                                     continue;
                                   }
                                   auto s = c.handshake(m);
                                   const auto again = next_message(c, s, "the message in the new session", "SND-4");
                                   c.check(again.at("payload") == r.opened.at("payload"), "SND-4", "the same content in the new session",
                                           canonical(again.at("payload")));
                                   c.answer_delivered(s, again);
                                   break;
                                 }
                                 c.expect_outcome(0, "SHIM", "a message answered by its reply as delivered");
                               }));
  out.push_back(initiator_case("SND-5/initiator-retransmission", {"SND-5", "ENC-4"},
                               "a message whose answer was lost comes again as the same bytes", [](peer_context& c) {
                                 auto r = send_and_refuse(c, 10, [&](const json::object&) { c.drop(); });
                                 const auto next = again(c, "the message again after its answer was lost", "SND-5");
                                 c.check(next.body == r.first.body, "SND-5", "the stored bytes of the first transmission", next.body);
                                 c.answer_delivered(r.s, r.opened);
                                 c.expect_outcome(0, "SHIM", "a message answered by its reply as delivered");
                               }));

  // ---- a payload too large for one envelope of the peer
  out.push_back(initiator_case("CHK-15/initiator-chunks", {"CHK-15", "CHK-1", "CHK-2", "CHK-5"},
                               "a payload too large for the runner's advertised envelope limit comes as chunks within its limits, "
                               "delivered by the reply to the last",
                               [](peer_context& c) { chunked_send(c, false); }));
  out.push_back(initiator_case("CHK-16/initiator-transfer-again", {"CHK-16", "CHK-4"},
                               "when every chunk was acknowledged and the transfer did not complete, the chunks come again under "
                               "the same transfer_id",
                               [](peer_context& c) { chunked_send(c, true); }));

  // ---- its own key rotation (--rotate-shim; last, because the node's key changes for good)
  out.push_back(initiator_case(
      "KR-10/initiator-announces", {"KR-10", "KR-9", "KR-2", "KR-3"},
      "the node rotating its key announces, under its old key, a chain that verifies and ends at the new key; then it signs with the new key",
      [](peer_context& c) {
        auto s = deliver_one(c);  // a session, and an address the node knows the runner by
        const auto old_key = c.node_key();
        const identity next{c.node.entity_id, crypto::ed25519_keypair::generate()};
        c.rotate(next);
        for (;;) {
          const auto m = next_message(c, s, "the key_rotation announcing the node's new key", "KR-10");
          if (m.at("msg_type") == "key_rotation") {
            check_announcement(c, s, m, old_key, next);
            break;
          }
          c.answer_delivered(s, m);
        }
        c.expect_outcome(0, "SHIM", "the rotation shim reports the rotation done");
        c.node_rotated(next.key.public_key_bytes());
        // KR-9: the 1.1 session continues, or a new handshake comes under the new key.
        c.send("heartbeat");
        const auto m = next_message(c, s, "a message after the rotation", "KR-9");
        c.answer_delivered(s, m);
        c.expect_outcome(0, "SHIM", "a message after the rotation, answered as delivered");
      },
      std::chrono::seconds(40)));
  cases::declare_needs(out, first_case, need::shim);
}

}  // namespace peerproto::conformance
