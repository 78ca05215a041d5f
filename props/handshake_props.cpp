#include <peerproto/handshake.hpp>

#include <peerproto/testing/two_nodes.hpp>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace pp = peerproto;
namespace json = boost::json;
using namespace std::chrono_literals;
using pp::testing::pair_of_nodes;

namespace {

// Rewrites an envelope's text: `edit` changes the parsed envelope, then it is re-signed with
// `signer` (a sender that really made the change) or left with its old signature (a forgery).
template <class F>
std::string tamper(const std::string& text, F&& edit, const pp::crypto::ed25519_keypair* signer) {
  auto e = *pp::parse_envelope(text);
  edit(e);
  if (signer) pp::sign(e, *signer);
  return pp::serialize(e);
}

enum class step { m1, m2, m3, m4 };

struct tamper_case {
  step at;
  const char* what;
  pp::errc expected;
  bool resign;
  std::function<void(pp::envelope&)> edit;
};

std::vector<tamper_case> cases() {
  const auto flip_hex = [](const char* member) {
    return [member](pp::envelope& e) {
      auto s = std::string((*e.payload)[member].as_string());
      s[0] = s[0] == '0' ? '1' : '0';
      (*e.payload)[member] = s;
    };
  };
  const auto low_order_key = [](pp::envelope& e) { (*e.payload)["ephemeral_key"] = std::string(64, '0'); };
  return {
      {step::m1, "forged payload", pp::errc::invalid_signature, false, flip_hex("challenge")},
      {step::m1, "no common version", pp::errc::invalid_version, true,
       [](pp::envelope& e) { (*e.payload)["supported_versions"] = json::array{"9.9"}; }},
      {step::m1, "low-order ephemeral key", pp::errc::challenge_invalid, true, low_order_key},
      {step::m1, "missing challenge", pp::errc::missing_fields, true, [](pp::envelope& e) { e.payload->erase("challenge"); }},
      {step::m1, "ephemeral key without suites", pp::errc::invalid_format, true,
       [](pp::envelope& e) { (*e.payload)["cipher_suites"] = json::array{}; }},
      {step::m2, "forged payload", pp::errc::invalid_signature, false, flip_hex("challenge")},
      {step::m2, "wrong challenge response", pp::errc::challenge_invalid, true, flip_hex("challenge_response")},
      {step::m2, "suite not offered", pp::errc::invalid_version, true,
       [](pp::envelope& e) { (*e.payload)["selected_suite"] = "rot13"; }},
      {step::m2, "low-order ephemeral key", pp::errc::challenge_invalid, true, low_order_key},
      {step::m3, "forged payload", pp::errc::invalid_signature, false, flip_hex("challenge_response")},
      {step::m3, "wrong challenge response", pp::errc::challenge_invalid, true, flip_hex("challenge_response")},
      {step::m3, "wrong key confirmation", pp::errc::challenge_invalid, true, flip_hex("key_confirmation")},
      {step::m3, "missing key confirmation", pp::errc::missing_fields, true,  // HS-3
       [](pp::envelope& e) { e.payload->erase("key_confirmation"); }},
      {step::m3, "unknown session", pp::errc::session_not_found, true,
       [](pp::envelope& e) { (*e.payload)["session_id"] = "123e4567-e89b-42d3-a456-426614174000"; }},
      {step::m4, "changed ciphertext", pp::errc::decryption_failed, false,
       [](pp::envelope& e) { (*e.encrypted_payload)[0] ^= 1; }},
      {step::m4, "changed header", pp::errc::decryption_failed, false,
       [](pp::envelope& e) { e.timestamp.time += 1ms; }},
  };
}

pp::errc code_of(const pp::outcome& o) { return o.error.value_or(pp::errc{}); }

}  // namespace

// Any one message of the handshake, tampered with, is rejected with the code the spec gives and
// changes nothing that a valid message would not: a forged message leaves the exchange able to
// complete with the genuine one; a genuine but wrong message fails the handshake for good (HS-22).
// Without tampering, both sides reach `ready` and can talk in both directions (same keys).
RC_GTEST_PROP(Handshake, ReachesReadyOnlyThroughAValidExchange, ()) {
  const auto all = cases();
  const bool clean = *rc::gen::inRange(0, 4) == 0;
  const auto& tc = all[*rc::gen::inRange<std::size_t>(0, all.size())];
  pair_of_nodes n;
  const auto* alice_key = &n.alice_key;
  const auto* bob_key = &n.bob_key;
  const auto signer = [&](step s) { return s == step::m1 || s == step::m3 ? alice_key : bob_key; };
  const auto maybe = [&](step s, const std::string& text) {
    return !clean && tc.at == s ? tamper(text, tc.edit, tc.resign ? signer(s) : nullptr) : text;
  };

  const auto m1 = n.alice.begin_handshake("bob", n.now);
  const auto r1 = n.bob.handle(maybe(step::m1, m1), "a", n.now);
  if (!clean && tc.at == step::m1) {
    RC_ASSERT(code_of(r1) == tc.expected);
    RC_ASSERT(n.bob.session_count() == 0u);
    return;
  }
  RC_ASSERT(code_of(r1) == pp::errc{});
  const auto m3 = n.alice.finish_handshake(maybe(step::m2, r1.reply), n.now);
  if (!clean && tc.at == step::m2) {
    RC_ASSERT(!m3.ok());
    RC_ASSERT(m3.code() == tc.expected);
    RC_ASSERT(n.alice.session_count() == 0u);
    return;
  }
  RC_ASSERT(m3.ok());
  const auto r3 = n.bob.handle(maybe(step::m3, *m3), "a", n.now);
  if (!clean && tc.at == step::m3) {
    RC_ASSERT(code_of(r3) == tc.expected);
    const auto sid = pp::parse_envelope(r1.reply)->payload->at("session_id").as_string();
    const auto* s = n.bob.find_session(*pp::parse_uuid_v4(sid));
    RC_ASSERT(s != nullptr);
    RC_ASSERT(s->state() != pp::session_state::ready);
    // A forgery changed nothing: the genuine confirmation still completes the handshake. A
    // genuine wrong confirmation failed it for good.
    const auto retry = n.bob.handle(*m3, "a", n.now);
    if (!tc.resign) RC_ASSERT(code_of(retry) == pp::errc{});
    else if (tc.expected == pp::errc::challenge_invalid) RC_ASSERT(s->state() == pp::session_state::failed);
    return;
  }
  RC_ASSERT(code_of(r3) == pp::errc{});
  const auto proven = n.alice.accept_reply(maybe(step::m4, r3.reply), n.now);
  if (!clean && tc.at == step::m4) {
    RC_ASSERT(!proven.ok());
    RC_ASSERT(proven.code() == tc.expected);
    RC_ASSERT(n.alice.accept_reply(r3.reply, n.now).ok());  // nothing was consumed (ENC-5)
    return;
  }
  RC_ASSERT(proven.ok() && proven->size() == 1u);
  const auto sid = *(*proven)[0].reply.session_id;
  RC_ASSERT(n.alice.find_session(sid)->state() == pp::session_state::ready);
  RC_ASSERT(n.bob.find_session(sid)->state() == pp::session_state::ready);
  // Same keys on both sides: messages open in both directions.
  const auto out = n.bob.handle(*n.alice.send(sid, "ping", {{"x", 1}}, n.now), "a", n.now);
  RC_ASSERT(code_of(out) == pp::errc{});
  RC_ASSERT(n.alice.accept_reply(out.reply, n.now).ok());
}

RC_GTEST_PROP(Handshake, LateMessagesExpire, ()) {
  pair_of_nodes n;
  const auto delay = std::chrono::milliseconds(*rc::gen::inRange(0, 60000));
  const auto r1 = n.bob.handle(n.alice.begin_handshake("bob", n.now), "a", n.now);
  const auto m3 = n.alice.finish_handshake(r1.reply, n.now + delay);
  if (delay >= 30s) {
    RC_ASSERT(m3.code() == pp::errc::challenge_expired);
    return;
  }
  RC_ASSERT(m3.ok());
  const auto late = delay + std::chrono::milliseconds(*rc::gen::inRange(0, 60000));
  const auto r3 = n.bob.handle(*m3, "a", n.now + late);
  RC_ASSERT(code_of(r3) == (late >= 30s ? pp::errc::challenge_expired : pp::errc{}));
}

TEST(SessionTable, EveryEventNotInTheTableIsInvalidStateAndChangesNothing) {
  const pp::sys_milliseconds t{};
  for (auto role : {pp::session_role::initiator, pp::session_role::responder}) {
    for (int ev = 0; ev <= static_cast<int>(pp::session_event::expire); ++ev) {
      pp::session s({}, role, "peer", {});
      const auto before = s.state();
      const auto event = static_cast<pp::session_event>(ev);
      const auto applied = s.apply(event, t);
      if (pp::next_state(role, before, event)) {
        EXPECT_TRUE(applied.ok());
      } else {
        EXPECT_EQ(applied.code(), pp::errc::invalid_state);
        EXPECT_EQ(s.state(), before);
      }
    }
  }
  // Terminal states accept nothing.
  for (auto terminal : {pp::session_state::expired, pp::session_state::closed, pp::session_state::failed})
    for (int ev = 0; ev <= static_cast<int>(pp::session_event::expire); ++ev)
      for (auto role : {pp::session_role::initiator, pp::session_role::responder})
        EXPECT_FALSE(pp::next_state(role, terminal, static_cast<pp::session_event>(ev)).has_value());
}

// The machine keeps what the handshake needs until it ends, and remembers why it failed.
TEST(SessionTable, PendingHandshakeEndsWithTheHandshakeAndFailuresKeepTheirReason) {
  const pp::sys_milliseconds t{};
  for (auto role : {pp::session_role::initiator, pp::session_role::responder}) {
    const auto invalid = role == pp::session_role::initiator ? pp::session_event::invalid_ack : pp::session_event::invalid_confirm;
    const auto valid = role == pp::session_role::initiator ? pp::session_event::valid_ack : pp::session_event::valid_confirm;
    for (auto [event, reason, expected] : {std::tuple{pp::session_event::pending_timeout, std::optional<pp::errc>(), pp::errc::challenge_expired},
                                           std::tuple{invalid, std::optional<pp::errc>(), pp::errc::challenge_invalid},
                                           std::tuple{invalid, std::optional(pp::errc::invalid_signature), pp::errc::invalid_signature}}) {
      pp::session s({}, role, "peer", {});
      pp::pending_handshake p;
      p.started = t;
      ASSERT_TRUE(s.start_handshake(std::move(p), t).ok());
      ASSERT_NE(s.pending(), nullptr);
      EXPECT_TRUE(s.handshake_due(t + 30s, 30s));
      EXPECT_FALSE(s.handshake_due(t + 29s, 30s));
      ASSERT_TRUE(s.apply(event, t, reason).ok());
      EXPECT_EQ(s.state(), pp::session_state::failed);
      EXPECT_EQ(s.pending(), nullptr);
      EXPECT_EQ(s.failure_reason(), expected);
      EXPECT_EQ(s.terminal_since(), t);
    }
    pp::session s({}, role, "peer", {});
    ASSERT_TRUE(s.start_handshake(pp::pending_handshake{}, t).ok());
    ASSERT_TRUE(s.apply(valid, t).ok());
    EXPECT_EQ(s.state(), pp::session_state::ready);
    EXPECT_EQ(s.pending(), nullptr);
    EXPECT_EQ(s.failure_reason(), std::nullopt);
  }
}

// The initiator's rows through the engine: a bad ack fails the handshake for good (HS-22) with
// its reason, and an ack that never comes fails it with CHALLENGE_EXPIRED at poll() (HS-16).
TEST(SessionTable, InitiatorFailuresThroughTheEngine) {
  {
    pair_of_nodes n;
    const auto m2 = n.bob.handle(n.alice.begin_handshake("bob", n.now), "a", n.now).reply;
    const auto forged = tamper(m2, [](pp::envelope& e) { e.timestamp.time += 1ms; }, nullptr);
    EXPECT_EQ(n.alice.finish_handshake(forged, n.now).code(), pp::errc::invalid_signature);
    EXPECT_EQ(n.alice.finish_handshake(m2, n.now).code(), pp::errc::invalid_signature);  // the first ack decided
  }
  {
    pair_of_nodes n;
    const auto m2 = n.bob.handle(n.alice.begin_handshake("bob", n.now), "a", n.now).reply;
    ASSERT_EQ(n.alice.next_deadline(), n.now + 30s);
    (void)n.alice.poll(n.now + 30s);
    EXPECT_EQ(n.alice.finish_handshake(m2, n.now + 30s).code(), pp::errc::challenge_expired);
    (void)n.alice.poll(n.now + 30s + pp::limits::terminal_session_retention);  // then forgotten
    EXPECT_EQ(n.alice.finish_handshake(m2, n.now + 30s).code(), pp::errc::session_not_found);
    EXPECT_EQ(n.alice.next_deadline(), std::nullopt);
  }
}
