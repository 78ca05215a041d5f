#include <peerproto/delivery.hpp>

#include <peerproto/testing/delivery_model.hpp>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <random>

namespace pp = peerproto;
using namespace std::chrono_literals;
using step = pp::delivery_step;

namespace {
const pp::sys_milliseconds t0{1'700'000'000'000ms};
const pp::random_source zeros = [](std::span<std::uint8_t> out) { std::ranges::fill(out, std::uint8_t{0}); };

pp::delivery_answer refused(pp::errc code, std::optional<std::chrono::seconds> retry_after = std::nullopt) {
  pp::delivery_answer a;
  a.what = pp::delivery_answer::kind::refused;
  a.code = code;
  a.retry_after = retry_after;
  return a;
}

pp::delivery_record queued() {
  pp::delivery_record r;
  r.expires = t0 + 1h;
  return r;
}

const pp::uuid s1 = pp::make_uuid_v4({1});
}  // namespace

// The model: a lossy, rate-limiting, forging, forgetting and restarting peer, a restarting sender.
RC_GTEST_PROP(Delivery, EveryMessageIsDeliveredOnceOrReportedAgainstAnUnreliablePeer, ()) {
  const auto choices = *rc::gen::container<std::string>(rc::gen::arbitrary<char>());
  const auto count = *rc::gen::inRange(1u, 4u);
  pp::testing::delivery_model model(choices);
  try {
    model.run(count);
  } catch (const std::logic_error& e) {
    RC_FAIL(e.what());
  }
}

// Each sender mistake the suite's faults plant is caught by the model's oracles, with its rule:
// the property above can fail.
TEST(Delivery, TheModelCatchesEachSenderMistake) {
  const std::pair<bool pp::delivery_faults::*, const char*> faults[] = {
      {&pp::delivery_faults::ignores_retry_after, "SND-2"},   {&pp::delivery_faults::keeps_expired_session, "SND-4"},
      {&pp::delivery_faults::trusts_forged_errors, "SND-1"},  {&pp::delivery_faults::retries_refusals, "SND-3"},
      {&pp::delivery_faults::reseals_retransmission, "SND-5"}, {&pp::delivery_faults::gives_up_lost_transfer, "CHK-16"},
  };
  for (const auto& [fault, rule] : faults) {
    pp::delivery_options opt;
    opt.faults.*fault = true;
    std::mt19937 gen(7);
    std::string caught;
    for (int i = 0; i < 20'000 && caught.empty(); ++i) {
      std::string choices(std::uniform_int_distribution<std::size_t>(0, 300)(gen), '\0');
      for (auto& c : choices) c = static_cast<char>(gen());
      try {
        pp::testing::delivery_model(choices, opt).run(3);
      } catch (const std::logic_error& e) {
        caught = e.what();
      }
    }
    EXPECT_NE(caught.find(rule), std::string::npos) << rule << " was not caught; the first failure was: " << caught;
  }
}

TEST(Delivery, BackOffDoublesUpToItsCapWithJitterInTheUpperHalf) {
  const pp::delivery_options opt;  // 500 ms, capped at 30 s
  EXPECT_EQ(pp::backoff_delay(0, opt, zeros), 250ms);
  EXPECT_EQ(pp::backoff_delay(3, opt, zeros), 2000ms);
  EXPECT_EQ(pp::backoff_delay(40, opt, zeros), 15'000ms);
  const auto rng = pp::system_random();
  for (unsigned f = 0; f < 10; ++f) {
    const auto d = std::min(30'000ms, std::chrono::milliseconds(500 << f));
    for (int i = 0; i < 200; ++i) {
      const auto w = pp::backoff_delay(f, opt, rng);
      ASSERT_GE(w, d / 2);
      ASSERT_LE(w, d);
    }
  }
}

TEST(Delivery, RateLimitedWaitsAtLeastRetryAfterEvenAcrossARestart) {
  auto r = queued();
  const pp::delivery_options opt;
  pp::delivery d(r, opt, zeros);
  ASSERT_EQ(d.next(t0, false).what, step::kind::seal);
  ASSERT_EQ(d.sealed("env", s1, t0).what, step::kind::send);
  const auto s = d.answered(refused(pp::errc::rate_limited, 7s), t0);
  ASSERT_EQ(s.what, step::kind::wait);
  EXPECT_EQ(s.not_before, t0 + 7s);
  pp::delivery again(r, opt, zeros);  // a new machine over the stored record
  EXPECT_EQ(again.next(t0 + 6s, true).what, step::kind::wait);
  EXPECT_EQ(again.next(t0 + 7s, true).what, step::kind::send);
  EXPECT_EQ(r.sealed, "env");  // the same bytes (SND-5)
}

TEST(Delivery, AReplayAfterAHandlersRateLimitIsSealedAgainNotTakenAsDelivered) {
  auto r = queued();
  const pp::delivery_options opt;
  pp::delivery d(r, opt, zeros);
  d.next(t0, false);
  d.sealed("env", s1, t0);
  d.answered(refused(pp::errc::rate_limited, 1s), t0);
  ASSERT_EQ(d.next(t0 + 1s, true).what, step::kind::send);
  EXPECT_EQ(d.answered(refused(pp::errc::replay_detected), t0 + 1s).what, step::kind::seal);  // RL-7
  EXPECT_TRUE(r.sealed.empty());
  EXPECT_EQ(r.status, pp::delivery_status::queued);
}

TEST(Delivery, AStoredTransmissionWhosePeerForgotTheSessionIsUnconfirmed) {
  auto r = queued();
  r.sealed = "env";  // stored by an earlier run: it may have been sent
  r.session = s1;
  const pp::delivery_options opt;
  pp::delivery d(r, opt, zeros);
  ASSERT_EQ(d.next(t0, true).what, step::kind::send);
  const auto s = d.answered(refused(pp::errc::session_not_found), t0);
  EXPECT_EQ(s.what, step::kind::done);
  EXPECT_EQ(s.session, step::session_action::forget);  // SND-4: nothing more in it
  EXPECT_EQ(r.status, pp::delivery_status::unconfirmed);
}

TEST(Delivery, ARefusalForGoodFailsTheMessageAndAForgedOneIsRetried) {
  const pp::delivery_options opt;
  auto r = queued();
  pp::delivery d(r, opt, zeros);
  d.next(t0, false);
  d.sealed("env", s1, t0);
  pp::delivery_answer forged;
  forged.what = pp::delivery_answer::kind::unauthenticated;
  forged.code = pp::errc::invalid_signature;
  EXPECT_EQ(d.answered(forged, t0).what, step::kind::wait);  // SND-1
  EXPECT_EQ(r.status, pp::delivery_status::queued);
  ASSERT_EQ(d.next(t0 + 1h - 1ms, true).what, step::kind::send);
  EXPECT_EQ(d.answered(refused(pp::errc::unsupported_message_type), t0).what, step::kind::done);  // SND-3
  EXPECT_EQ(r.status, pp::delivery_status::failed);
  EXPECT_EQ(d.next(t0, true).what, step::kind::done);
  // The peer's own INVALID_SIGNATURE (it could not verify ours) is a refusal for good too.
  auto r2 = queued();
  pp::delivery d2(r2, opt, zeros);
  d2.next(t0, false);
  d2.sealed("env", s1, t0);
  EXPECT_EQ(d2.answered(refused(pp::errc::invalid_signature), t0).what, step::kind::done);
  EXPECT_EQ(r2.status, pp::delivery_status::failed);
}
