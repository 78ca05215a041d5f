#include <peerproto/engine.hpp>

#include <peerproto/testing/two_nodes.hpp>
#include <peerproto/testing/generators.hpp>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace pp = peerproto;
namespace json = boost::json;
using namespace std::chrono_literals;
using pp::testing::pair_of_nodes;

namespace {
pp::errc code_of(const pp::outcome& o) { return o.error.value_or(pp::errc{}); }
}  // namespace

TEST(Engine, EncryptedSessionEndToEnd) {
  pair_of_nodes n;
  const auto sid = n.handshake();
  ASSERT_TRUE(sid);
  const auto* bob_session = n.bob.find_session(*sid);
  ASSERT_NE(bob_session, nullptr);
  EXPECT_EQ(bob_session->state(), pp::session_state::ready);
  EXPECT_TRUE(bob_session->encrypted());

  const auto ping = n.alice.send(*sid, "ping", {{"text", "hello"}}, n.now);
  ASSERT_TRUE(ping.ok());
  EXPECT_EQ(ping->find("\"payload\""), std::string::npos);  // sealed, no plaintext
  const auto out = n.bob.handle(*ping, "127.0.0.1:1", n.now);
  ASSERT_EQ(out.what, pp::outcome::kind::answer) << out.reply;
  const auto replies = n.alice.accept_reply(out.reply, n.now);
  ASSERT_TRUE(replies.ok()) << replies.error().message;
  ASSERT_EQ(replies->size(), 1u);
  EXPECT_EQ((*replies)[0].reply.msg_type, "pong");
  EXPECT_EQ((*replies)[0].payload.at("echo").at("text"), "hello");
}

TEST(Engine, Version10SessionIsSignedPlaintext) {
  auto opt = pair_of_nodes::options("alice");
  opt.versions = {"1.0"};
  opt.suites = {};
  pair_of_nodes n(opt);
  const auto sid = n.handshake();
  ASSERT_TRUE(sid);
  EXPECT_FALSE(n.bob.find_session(*sid)->encrypted());
  const auto hb = n.alice.send(*sid, "heartbeat", {}, n.now);
  ASSERT_TRUE(hb.ok());
  EXPECT_NE(hb->find("\"signature\""), std::string::npos);
  const auto out = n.bob.handle(*hb, "127.0.0.1:1", n.now);
  EXPECT_EQ(code_of(out), pp::errc{}) << out.reply;
  // The same bytes again: the sequence number was delivered (ORD-4).
  EXPECT_EQ(code_of(n.bob.handle(*hb, "127.0.0.1:1", n.now)), pp::errc::replay_detected);
}

TEST(Engine, RequireEncryptionRefusesA10Peer) {
  auto alice_opt = pair_of_nodes::options("alice");
  alice_opt.versions = {"1.0"};
  alice_opt.suites = {};
  auto bob_opt = pair_of_nodes::options("bob");
  bob_opt.require_encryption = true;
  pair_of_nodes n(alice_opt, bob_opt);
  const auto m2 = n.bob.handle(n.alice.begin_handshake("bob", n.now), "a", n.now);
  EXPECT_EQ(code_of(m2), pp::errc::encryption_required);
  EXPECT_EQ(pp::http_status(*m2.error), 426);
}

TEST(Engine, HeldMessagesAreReleasedInOrder) {
  pair_of_nodes n;
  const auto sid = *n.handshake();
  std::vector<std::string> msgs;
  for (int i = 0; i < 3; ++i) msgs.push_back(*n.alice.send(sid, "ping", {{"i", i}}, n.now));
  const auto third = n.bob.handle(msgs[2], "a", n.now);
  EXPECT_EQ(third.what, pp::outcome::kind::held);
  const auto second = n.bob.handle(msgs[1], "a", n.now);
  EXPECT_EQ(second.what, pp::outcome::kind::held);
  const auto first = n.bob.handle(msgs[0], "a", n.now);
  ASSERT_EQ(first.what, pp::outcome::kind::answer);
  ASSERT_EQ(first.released.size(), 2u);
  EXPECT_EQ(first.released[0].request_nonce, second.request_nonce);
  EXPECT_EQ(first.released[1].request_nonce, third.request_nonce);
  // The replies are ordered too: alice delivers them in sequence whatever order they arrive in.
  EXPECT_TRUE(n.alice.accept_reply(first.released[1].reply, n.now)->empty());
  EXPECT_EQ(n.alice.accept_reply(first.reply, n.now)->size(), 1u);
  EXPECT_EQ(n.alice.accept_reply(first.released[0].reply, n.now)->size(), 2u);
}

TEST(Engine, GapTimeoutAnswersHeldMessagesWithSequenceError) {
  pair_of_nodes n;
  const auto sid = *n.handshake();
  const auto m1 = *n.alice.send(sid, "ping", {}, n.now);
  const auto m2 = *n.alice.send(sid, "ping", {}, n.now);
  const auto held = n.bob.handle(m2, "a", n.now);
  ASSERT_EQ(held.what, pp::outcome::kind::held);
  EXPECT_EQ(n.bob.next_deadline(), n.now + 5s);
  EXPECT_TRUE(n.bob.poll(n.now + 4s).empty());
  const auto failed = n.bob.poll(n.now + 5s);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(code_of(failed[0]), pp::errc::sequence_error);
  EXPECT_EQ(failed[0].request_nonce, held.request_nonce);
  // Retransmission of the stored bytes is accepted (ORD-7).
  EXPECT_EQ(n.bob.handle(m1, "a", n.now + 6s).what, pp::outcome::kind::answer);
  EXPECT_EQ(n.bob.handle(m2, "a", n.now + 6s).what, pp::outcome::kind::answer);
}

TEST(Engine, ChunkedTransferInASession) {
  pair_of_nodes n;
  const auto sid = *n.handshake();
  json::object big{{"task", std::string(300000, 'z')}};
  const auto chunks = n.alice.chunk_payloads("task_delegate", big, 64 * 1024);
  ASSERT_TRUE(chunks.ok());
  ASSERT_EQ(chunks->size(), 5u);
  for (std::size_t i = 0; i < chunks->size(); ++i) {
    const auto out = n.bob.handle(*n.alice.send(sid, "chunk", (*chunks)[i], n.now), "a", n.now);
    ASSERT_EQ(code_of(out), pp::errc{}) << out.reply;
    const auto reply = n.alice.accept_reply(out.reply, n.now);
    ASSERT_TRUE(reply.ok());
    const auto& type = (*reply)[0].reply.msg_type;
    EXPECT_EQ(type, i + 1 < chunks->size() ? "ack" : "task_accepted");
  }
}

TEST(Engine, SessionlessMessagesNeedAKnownSenderAndAreReplayProtected) {
  pair_of_nodes n;
  const auto ping = n.alice.send_sessionless("bob", "ping", {}, n.now);
  EXPECT_EQ(code_of(n.bob.handle(ping, "a", n.now)), pp::errc::unknown_sender);  // ID-8
  ASSERT_TRUE(n.handshake());
  const auto ping2 = n.alice.send_sessionless("bob", "ping", {}, n.now);
  EXPECT_EQ(code_of(n.bob.handle(ping2, "a", n.now)), pp::errc{});
  EXPECT_EQ(code_of(n.bob.handle(ping2, "a", n.now)), pp::errc::replay_detected);  // RPL-2
  const auto late = n.alice.send_sessionless("bob", "ping", {}, n.now - 61s);
  EXPECT_EQ(code_of(n.bob.handle(late, "a", n.now)), pp::errc::replay_detected);  // RPL-1
  const auto other = n.alice.send_sessionless("carol", "ping", {}, n.now);
  EXPECT_EQ(code_of(n.bob.handle(other, "a", n.now)), pp::errc::invalid_format);  // ENV-7
  const auto unknown = n.alice.send_sessionless("bob", "frobnicate", {}, n.now);
  const auto o = n.bob.handle(unknown, "a", n.now);
  EXPECT_EQ(code_of(o), pp::errc::unsupported_message_type);
  EXPECT_EQ(o.what, pp::outcome::kind::answer);
}

// A signature checked before handle() (precheck_signature, on another thread) decides only when
// it was checked with the key the engine looks up itself.
TEST(Engine, APrecheckedSignatureIsTakenOnlyForTheKeyTheEngineUses) {
  pair_of_nodes n;
  const auto alice_key = n.alice_key.public_key_bytes();
  const auto known = [&](std::string_view id) -> std::optional<pp::crypto::public_key> {
    if (id == "alice") return alice_key;
    return std::nullopt;
  };
  const auto ping = n.alice.send_sessionless("bob", "ping", {}, n.now);
  const auto checked = pp::precheck_signature(ping, {}, known);
  ASSERT_TRUE(checked && checked->valid && checked->key == alice_key);
  EXPECT_FALSE(pp::precheck_signature(ping, {}, [](std::string_view) { return std::optional<pp::crypto::public_key>(); }));
  // A sealed session message has no signature to check.
  const auto sid = n.handshake();
  ASSERT_TRUE(sid);
  const auto sealed = n.alice.send(*sid, "ping", {}, n.now);
  ASSERT_TRUE(sealed.ok());
  EXPECT_FALSE(pp::precheck_signature(*sealed, {}, known));
  EXPECT_EQ(code_of(n.bob.handle(ping, "a", n.now, checked)), pp::errc{});
  // A result for the engine's key is taken as it is: here a (false) failure.
  const auto ping2 = n.alice.send_sessionless("bob", "ping", {}, n.now);
  EXPECT_EQ(code_of(n.bob.handle(ping2, "a", n.now, pp::signature_check{alice_key, false})), pp::errc::invalid_signature);
  // One for another key is ignored: the engine checks the signature itself.
  const auto ping3 = n.alice.send_sessionless("bob", "ping", {}, n.now);
  EXPECT_EQ(code_of(n.bob.handle(ping3, "a", n.now, pp::signature_check{n.bob_key.public_key_bytes(), false})), pp::errc{});
  auto forged = *pp::parse_envelope(n.alice.send_sessionless("bob", "ping", {}, n.now));
  (*forged.signature)[0] ^= 1;
  EXPECT_EQ(code_of(n.bob.handle(pp::serialize(forged), "a", n.now, pp::signature_check{n.bob_key.public_key_bytes(), true})),
            pp::errc::invalid_signature);
}

TEST(Engine, ErrorEnvelopesAreSignedAndNameTheRequest) {
  pair_of_nodes n;
  ASSERT_TRUE(n.handshake());
  const auto o = n.bob.handle(R"({"nonce":"00112233445566778899aabbccddeeff","sender_id":"alice"})", "a", n.now);
  EXPECT_EQ(code_of(o), pp::errc::missing_fields);
  const auto e = pp::parse_envelope(o.reply);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->msg_type, "error");
  EXPECT_EQ(e->recipient_id, "alice");
  EXPECT_EQ(e->payload->at("original_nonce"), "00112233445566778899aabbccddeeff");
  EXPECT_TRUE(pp::verify_signature(*e, n.bob_key.public_key_bytes()));
  const auto garbage = n.bob.handle("not json", "a", n.now);
  EXPECT_EQ(code_of(garbage), pp::errc::invalid_format);
  EXPECT_TRUE(pp::parse_envelope(garbage.reply)->payload->at("original_nonce").is_null());
  EXPECT_EQ(pp::parse_envelope(garbage.reply)->recipient_id, "unknown");
  EXPECT_EQ(code_of(n.bob.handle(std::string(2 << 20, ' '), "a", n.now)), pp::errc::payload_too_large);
}

TEST(Engine, ConfirmRulesHs19ToHs22) {
  pair_of_nodes n;
  const auto m1 = n.alice.begin_handshake("bob", n.now);
  const auto m2 = n.bob.handle(m1, "a", n.now);
  const auto m3 = *n.alice.finish_handshake(m2.reply, n.now);
  ASSERT_EQ(code_of(n.bob.handle(m3, "a", n.now)), pp::errc{});
  EXPECT_EQ(code_of(n.bob.handle(m3, "a", n.now)), pp::errc::replay_detected);  // HS-19 (and RPL-2)
  // A confirm for an unknown session (HS-20).
  auto e = *pp::parse_envelope(m3);
  (*e.payload)["session_id"] = "123e4567-e89b-42d3-a456-426614174000";
  e.nonce[0] ^= 1;
  pp::sign(e, n.alice_key);
  EXPECT_EQ(code_of(n.bob.handle(pp::serialize(e), "a", n.now)), pp::errc::session_not_found);
}

TEST(Engine, PendingHandshakeExpiresAndLimitsHold) {
  auto bob_opt = pair_of_nodes::options("bob");
  bob_opt.max_pending_per_peer = 2;
  pair_of_nodes n(pair_of_nodes::options("alice"), bob_opt);
  const auto m1 = n.alice.begin_handshake("bob", n.now);
  const auto m2 = n.bob.handle(m1, "a", n.now);
  ASSERT_EQ(code_of(m2), pp::errc{});
  EXPECT_EQ(code_of(n.bob.handle(n.alice.begin_handshake("bob", n.now), "a", n.now)), pp::errc{});
  EXPECT_EQ(code_of(n.bob.handle(n.alice.begin_handshake("bob", n.now), "a", n.now)), pp::errc::handshake_in_progress);
  const auto m3 = *n.alice.finish_handshake(m2.reply, n.now + 29s);
  EXPECT_EQ(code_of(n.bob.handle(m3, "a", n.now + 30s)), pp::errc::challenge_expired);  // HS-16
}

TEST(Engine, SessionCloseAndExpiry) {
  pair_of_nodes n;
  auto sid = *n.handshake();
  const auto ping = *n.alice.send(sid, "ping", {}, n.now);
  ASSERT_EQ(code_of(n.bob.handle(ping, "a", n.now)), pp::errc{});
  const auto close = n.bob.handle(*n.alice.send(sid, "session_close", {}, n.now), "a", n.now);
  ASSERT_EQ(code_of(close), pp::errc{}) << close.reply;
  // SES-8: both sides are closed, the sender as soon as it sealed its session_close.
  EXPECT_EQ(n.bob.find_session(sid)->state(), pp::session_state::closed);
  EXPECT_EQ(n.alice.find_session(sid)->state(), pp::session_state::closed);
  EXPECT_EQ(n.alice.send(sid, "ping", {}, n.now).code(), pp::errc::session_not_found);
  EXPECT_EQ(n.alice.accept_reply(close.reply, n.now).code(), pp::errc::session_not_found);  // keys wiped: not opened
  EXPECT_EQ(code_of(n.bob.handle(ping, "a", n.now)), pp::errc::session_not_found);  // SES-9

  sid = *n.handshake();
  const auto later = n.now + 30min;
  EXPECT_EQ(code_of(n.bob.handle(*n.alice.send(sid, "ping", {}, later), "a", later)), pp::errc::session_expired);  // SES-4
}

TEST(Engine, TamperedSealedMessageIsDecryptionFailedAndChangesNothing) {
  pair_of_nodes n;
  const auto sid = *n.handshake();
  auto e = *pp::parse_envelope(*n.alice.send(sid, "ping", {}, n.now));
  const auto good = pp::serialize(e);
  (*e.encrypted_payload)[0] ^= 1;
  EXPECT_EQ(code_of(n.bob.handle(pp::serialize(e), "a", n.now)), pp::errc::decryption_failed);
  EXPECT_EQ(code_of(n.bob.handle(good, "a", n.now)), pp::errc{});  // sequence 1 was not consumed
}

TEST(Engine, SessionAndHandshakeLimits) {
  {  // HS-18: pending handshakes in total
    auto bob_opt = pair_of_nodes::options("bob");
    bob_opt.max_pending_total = 1;
    pair_of_nodes n(pair_of_nodes::options("alice"), bob_opt);
    EXPECT_EQ(code_of(n.bob.handle(n.alice.begin_handshake("bob", n.now), "a", n.now)), pp::errc{});
    const auto o = n.bob.handle(n.alice.begin_handshake("bob", n.now), "a", n.now);
    EXPECT_EQ(code_of(o), pp::errc::rate_limited);
    EXPECT_EQ(pp::http_status(*o.error), 429);
    EXPECT_EQ(o.retry_after, 30s);
  }
  {  // HS-25: sessions in total
    auto bob_opt = pair_of_nodes::options("bob");
    bob_opt.max_sessions_total = 1;
    pair_of_nodes n(pair_of_nodes::options("alice"), bob_opt);
    ASSERT_TRUE(n.handshake());
    EXPECT_EQ(code_of(n.bob.handle(n.alice.begin_handshake("bob", n.now), "a", n.now)), pp::errc::rate_limited);
  }
}

// Hostile peers: one address cannot take every pending slot (HS-26); one peer's sessions are
// bounded, the least recently active giving way (HS-27); a full key table binds no new entity
// id and evicts none (ID-10).
TEST(Engine, HostilePeerLimits) {
  {  // HS-26: per address, whatever the entity ids
    auto bob_opt = pair_of_nodes::options("bob");
    bob_opt.max_pending_per_address = 1;
    pair_of_nodes n(pair_of_nodes::options("alice"), bob_opt);
    EXPECT_EQ(code_of(n.bob.handle(n.alice.begin_handshake("bob", n.now), "a", n.now)), pp::errc{});
    const auto o = n.bob.handle(n.alice.begin_handshake("bob", n.now), "a", n.now);
    EXPECT_EQ(code_of(o), pp::errc::rate_limited);
    EXPECT_EQ(o.retry_after, 30s);
    EXPECT_EQ(code_of(n.bob.handle(n.alice.begin_handshake("bob", n.now), "b", n.now)), pp::errc{});  // another address
  }
  {  // HS-27: the least recently active session of the peer is closed
    auto bob_opt = pair_of_nodes::options("bob");
    bob_opt.max_sessions_per_peer = 2;
    pair_of_nodes n(pair_of_nodes::options("alice"), bob_opt);
    const auto first = n.handshake();
    n.now += 1s;
    const auto second = n.handshake();
    n.now += 1s;
    ASSERT_TRUE(first && second);
    const auto ping = n.alice.send(*first, "ping", {}, n.now);
    ASSERT_EQ(code_of(n.bob.handle(*ping, "a", n.now)), pp::errc{});
    n.now += 1s;
    const auto third = n.handshake();
    ASSERT_TRUE(third);
    EXPECT_EQ(n.bob.find_session(*second)->state(), pp::session_state::closed);
    EXPECT_EQ(n.bob.find_session(*first)->state(), pp::session_state::ready);
    EXPECT_EQ(n.bob.find_session(*third)->state(), pp::session_state::ready);
  }
  {  // ID-10
    pp::trust_store t(pp::trust_policy::tofu, 1);
    const auto a = pp::crypto::ed25519_keypair::generate().public_key_bytes();
    const auto b = pp::crypto::ed25519_keypair::generate().public_key_bytes();
    EXPECT_EQ(*t.accept_handshake_key("a", a, {}), pp::trust_store::binding::pinned_now);
    EXPECT_EQ(t.accept_handshake_key("b", b, {}).code(), pp::errc::unknown_sender);
    EXPECT_EQ(*t.accept_handshake_key("a", a, {}), pp::trust_store::binding::known);
    EXPECT_FALSE(t.key_for("b"));
  }
}

TEST(Engine, SessionLifetimeAndMessageCount) {
  auto bob_opt = pair_of_nodes::options("bob");
  bob_opt.session.lifetime = 10min;
  bob_opt.session.max_messages = 3;
  pair_of_nodes n(pair_of_nodes::options("alice"), bob_opt);
  auto sid = *n.handshake();
  // Activity every 5 minutes keeps it from idling, but the lifetime ends it (SES-5).
  EXPECT_EQ(code_of(n.bob.handle(*n.alice.send(sid, "ping", {}, n.now + 5min), "a", n.now + 5min)), pp::errc{});
  EXPECT_EQ(code_of(n.bob.handle(*n.alice.send(sid, "ping", {}, n.now + 10min), "a", n.now + 10min)),
            pp::errc::session_expired);
  // SES-6: bob has sent ack (1) and two replies (2, 3): the count is used up. (Time goes on:
  // the engine holds a clock that steps back at the latest time it saw.)
  n.now += 10min;
  sid = *n.handshake();
  EXPECT_EQ(code_of(n.bob.handle(*n.alice.send(sid, "ping", {}, n.now), "a", n.now)), pp::errc{});
  EXPECT_EQ(code_of(n.bob.handle(*n.alice.send(sid, "ping", {}, n.now), "a", n.now)), pp::errc{});
  EXPECT_EQ(code_of(n.bob.handle(*n.alice.send(sid, "ping", {}, n.now), "a", n.now)), pp::errc::session_expired);
}

TEST(Engine, TerminalSessionsAreForgottenAfterRetention) {
  pair_of_nodes n;
  const auto sid = *n.handshake();
  ASSERT_EQ(code_of(n.bob.handle(*n.alice.send(sid, "session_close", {{"reason", "done"}}, n.now), "a", n.now)), pp::errc{});
  (void)n.bob.poll(n.now + 299s);
  EXPECT_NE(n.bob.find_session(sid), nullptr);
  (void)n.bob.poll(n.now + 300s);  // SES-10
  EXPECT_EQ(n.bob.find_session(sid), nullptr);
}

TEST(Engine, CloseReasonAndErrorMessageLimits) {
  pair_of_nodes n;
  const auto sid = *n.handshake();
  const auto too_long = n.bob.handle(*n.alice.send(sid, "session_close", {{"reason", std::string(257, 'r')}}, n.now), "a", n.now);
  EXPECT_EQ(code_of(too_long), pp::errc::invalid_format);
  EXPECT_EQ(n.bob.find_session(sid)->state(), pp::session_state::ready);
  // ERR-2: error messages are cut to 512 characters (an unknown type of 64 characters makes a
  // message under the limit; a handler failure can say more).
  pp::registry noisy;
  noisy.add("ping", [](const pp::handler_request&) -> pp::result<pp::handler_reply> {
    return pp::failure{pp::errc::invalid_format, std::string(2000, 'x')};
  });
  pp::trust_store trust(pp::trust_policy::open);
  pp::engine bob(pair_of_nodes::options("bob"), n.bob_key, trust, noisy, pp::testing::counter_random(5));
  pp::engine alice(pair_of_nodes::options("alice"), n.alice_key, n.alice_trust, noisy, pp::testing::counter_random(6));
  const auto m2 = bob.handle(alice.begin_handshake("bob", n.now), "a", n.now);
  ASSERT_EQ(code_of(m2), pp::errc{});
  const auto o = bob.handle(alice.send_sessionless("bob", "ping", {}, n.now), "a", n.now);
  EXPECT_EQ(code_of(o), pp::errc::invalid_format);
  EXPECT_EQ(pp::parse_envelope(o.reply)->payload->at("error_message").as_string().size(), 512u);
}

// SES-13: a ready session written out and put back into a fresh engine carries on where it
// stopped: the next message is accepted, an old one is a replay, and sequence numbers go on.
TEST(Engine, SessionSnapshotSurvivesARestart) {
  pair_of_nodes n;
  const auto sid = n.handshake();
  ASSERT_TRUE(sid);
  const auto first = n.alice.send(*sid, "ping", {{"n", 1}}, n.now);
  ASSERT_TRUE(first.ok());
  const auto out = n.bob.handle(*first, "127.0.0.1:1", n.now);
  ASSERT_EQ(code_of(out), pp::errc{}) << out.reply;
  ASSERT_TRUE(n.alice.accept_reply(out.reply, n.now).ok());

  const auto changed = n.bob.take_changed_sessions();
  ASSERT_EQ(changed.count(*sid), 1u);
  EXPECT_TRUE(n.bob.take_changed_sessions().empty());  // taken once
  const auto snap = n.bob.find_session(*sid)->snapshot();
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->next_send, 3u);  // session_ready was 1, the pong 2
  EXPECT_EQ(snap->next_expected, 2u);

  pp::engine restarted(pair_of_nodes::options("bob"), n.bob_key, n.bob_trust, n.handlers);
  ASSERT_TRUE(restarted.restore_session(*snap));
  EXPECT_FALSE(restarted.restore_session(*snap));  // the id is taken
  EXPECT_EQ(pp::errc::replay_detected, code_of(restarted.handle(*first, "127.0.0.1:1", n.now)));
  const auto second = n.alice.send(*sid, "ping", {{"n", 2}}, n.now);
  ASSERT_TRUE(second.ok());
  const auto again = restarted.handle(*second, "127.0.0.1:1", n.now);
  ASSERT_EQ(code_of(again), pp::errc{}) << again.reply;
  const auto replies = n.alice.accept_reply(again.reply, n.now);
  ASSERT_TRUE(replies.ok()) << replies.error().message;  // sequence 3 from bob: never reused
  EXPECT_EQ((*replies)[0].payload.at("echo").at("n"), 2);
}

// The transport's refusals are signed errors that name what could be read of the request.
TEST(Engine, RefuseNamesTheRequestWhenReadable) {
  pair_of_nodes n;
  const auto msg = n.alice.send_sessionless("bob", "ping", {}, n.now);
  const auto o = n.bob.refuse({pp::errc::invalid_format, "wrong content type"}, msg, "127.0.0.1:1", n.now);
  EXPECT_EQ(o.error, pp::errc::invalid_format);
  EXPECT_EQ(o.msg_type, "ping");
  const auto e = pp::parse_envelope(o.reply);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->recipient_id, "alice");
  EXPECT_EQ(e->payload->at("original_nonce").as_string(), o.request_nonce);
  EXPECT_TRUE(pp::verify_signature(*e, n.bob_key.public_key_bytes()));
  const auto blind = n.bob.refuse({pp::errc::rate_limited, "busy"}, "", "127.0.0.1:1", n.now, std::chrono::seconds(7));
  const auto b = pp::parse_envelope(blind.reply);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->recipient_id, "unknown");
  EXPECT_TRUE(b->payload->at("original_nonce").is_null());
  EXPECT_EQ(b->payload->at("retry_after"), 7);
  EXPECT_EQ(blind.retry_after, std::chrono::seconds(7));
}

// SES-8: whatever came before it, a session_close closes the sender's session when it is sealed
// and the receiver's when it is delivered; neither side sends in the session afterwards.
RC_GTEST_PROP(EngineProps, SessionCloseClosesBothSides, ()) {
  pair_of_nodes n;
  const auto sid = n.handshake();
  RC_ASSERT(sid.has_value());
  const auto before = *rc::gen::inRange(0, 6);
  for (int i = 0; i < before; ++i) RC_ASSERT(code_of(n.bob.handle(*n.alice.send(*sid, "ping", {{"i", i}}, n.now), "a", n.now)) == pp::errc{});
  const auto close = n.alice.send(*sid, "session_close", {}, n.now);
  RC_ASSERT(close.ok());
  RC_ASSERT(n.alice.find_session(*sid)->state() == pp::session_state::closed);
  RC_ASSERT(n.alice.send(*sid, "ping", {}, n.now).code() == pp::errc::session_not_found);
  RC_ASSERT(code_of(n.bob.handle(*close, "a", n.now)) == pp::errc{});
  RC_ASSERT(n.bob.find_session(*sid)->state() == pp::session_state::closed);
}

TEST(Engine, AReplyTypeAsRequestIsAnsweredOnlyOverHttpAndAnErrorNever) {
  pair_of_nodes n;
  ASSERT_TRUE(n.handshake());  // binds alice's key (ID-8)
  const auto o = n.bob.handle(n.alice.send_sessionless("bob", "pong", {}, n.now), "a", n.now);
  EXPECT_EQ(o.error, pp::errc::unsupported_message_type);  // MSG-3
  EXPECT_EQ(o.what, pp::outcome::kind::answer_over_http);
  EXPECT_TRUE(o.sends_envelope(true));
  EXPECT_FALSE(o.sends_envelope(false));
  const json::object error{{"error_code", "INVALID_FORMAT"}, {"error_message", "x"}, {"original_nonce", nullptr}};
  const auto silent = n.bob.handle(n.alice.send_sessionless("bob", "error", error, n.now), "a", n.now);
  EXPECT_EQ(silent.what, pp::outcome::kind::silent);  // ERR-8
  EXPECT_FALSE(silent.sends_envelope(true));
}

TEST(Engine, AClockSteppedBackIsHeldAtTheLatestTime) {
  pair_of_nodes n;
  ASSERT_TRUE(n.handshake());
  (void)n.bob.poll(n.now + 10min);
  // Stamped before the step back by alice's clock: fresh for a clock that went back to n.now,
  // but 10 min old for bob, whose time is held at n.now + 10 min (RPL-1).
  const auto stale = n.alice.send_sessionless("bob", "ping", {}, n.now);
  EXPECT_EQ(code_of(n.bob.handle(stale, "a", n.now)), pp::errc::replay_detected);
  const auto fresh = n.alice.send_sessionless("bob", "ping", {}, n.now + 10min);
  EXPECT_EQ(code_of(n.bob.handle(fresh, "a", n.now)), pp::errc{});
}
