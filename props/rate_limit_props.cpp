#include <peerproto/rate_limit.hpp>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

namespace pp = peerproto;
using namespace std::chrono_literals;

RC_GTEST_PROP(TokenBucket, NeverAdmitsMoreThanBurstPlusRateTimesTimeOverAnyInterval, ()) {
  const double per_minute = *rc::gen::inRange(1, 600);
  const double burst = *rc::gen::inRange(1, 50);
  const pp::sys_milliseconds t0{std::chrono::hours(1)};
  pp::token_bucket bucket({per_minute, burst}, t0);
  auto now = t0;
  std::vector<pp::sys_milliseconds> admitted;
  // Bursts of attempts separated by pauses of up to ten minutes.
  const auto steps = *rc::gen::container<std::vector<std::pair<int, int>>>(
      rc::gen::pair(rc::gen::inRange(0, 600000), rc::gen::inRange(0, 80)));
  for (const auto& [pause, attempts] : steps) {
    now += std::chrono::milliseconds(pause);
    for (int i = 0; i < attempts; ++i) {
      const bool predicted = bucket.wait_time(now).count() == 0;
      const bool took = bucket.try_take(now);
      RC_ASSERT(took == predicted);  // wait_time() agrees with try_take()
      if (took) admitted.push_back(now);
      now += std::chrono::milliseconds(*rc::gen::inRange(0, 50));
    }
  }
  // Every interval [admitted[i], admitted[j]] holds at most burst + rate × length admissions.
  for (std::size_t i = 0; i < admitted.size(); ++i)
    for (std::size_t j = i; j < admitted.size(); ++j) {
      const double minutes = static_cast<double>((admitted[j] - admitted[i]).count()) / 60000.0;
      RC_ASSERT(static_cast<double>(j - i + 1) <= burst + per_minute * minutes + 1e-9);
    }
}

RC_GTEST_PROP(Backoff, DoublesAndCaps, ()) {
  pp::backoff_config cfg;
  pp::backoff b(cfg);
  pp::sys_milliseconds now{std::chrono::hours(1)};
  const auto extra = *rc::gen::inRange(1, 20);
  for (std::size_t i = 0; i + 1 < cfg.threshold; ++i) RC_ASSERT(b.fail(now).count() == 0);
  std::chrono::milliseconds expected = cfg.initial;
  for (int i = 0; i < extra; ++i) {
    const auto block = b.fail(now);
    RC_ASSERT(block == expected);
    RC_ASSERT(b.blocked_for(now) == expected);
    expected = std::min(expected * 2, cfg.max);
    now += 10ms;  // all inside the 60 s window
  }
  RC_ASSERT(b.blocked_for(now + cfg.max) == 0ms);
}

TEST(Backoff, WindowAndReset) {
  pp::backoff b;
  pp::sys_milliseconds t{};
  for (int i = 0; i < 4; ++i) b.fail(t + std::chrono::seconds(i * 20));  // spread over 60 s
  EXPECT_EQ(b.fail(t + 80s), 0ms);  // only three of them fall in the window
  b.reset();
  EXPECT_EQ(b.blocked_for(t + 80s), 0ms);
}

TEST(RateLimiter, PreAuthBucketPerAddressAndBackoffBlocks) {
  pp::rate_limit_options opt;
  opt.pre_auth = {60, 3};
  pp::rate_limiter rl(opt);
  const pp::sys_milliseconds t{};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(rl.admit_unauthenticated("10.0.0.1", "a", t), 0ms);
  EXPECT_EQ(rl.admit_unauthenticated("10.0.0.1", "a", t), 1000ms);
  EXPECT_EQ(pp::retry_after_seconds(1000ms), 1s);
  EXPECT_EQ(rl.admit_unauthenticated("10.0.0.2", "a", t), 0ms);  // another address has its own bucket
  for (int i = 0; i < 5; ++i) rl.authentication_failed("10.0.0.3", "mallory", t);
  EXPECT_EQ(rl.admit_unauthenticated("10.0.0.3", "x", t), 1000ms);        // address blocked
  EXPECT_EQ(rl.admit_unauthenticated("10.0.0.4", "mallory", t), 1000ms);  // sender blocked
  rl.authenticated("mallory");
  EXPECT_EQ(rl.admit_unauthenticated("10.0.0.4", "mallory", t), 0ms);
}

TEST(RateLimiter, ClassBucketsUseTheirDefaults) {
  pp::rate_limiter rl;
  const pp::sys_milliseconds t{};
  int admitted = 0;
  while (rl.admit_authenticated("alice", "handshake", t) == 0ms) ++admitted;
  EXPECT_EQ(admitted, 10);  // handshake burst (RL-2)
  EXPECT_EQ(rl.admit_authenticated("alice", "handshake", t), 12000ms);  // 5 per minute
  admitted = 0;
  while (rl.admit_authenticated("alice", "chunk", t) == 0ms) ++admitted;
  EXPECT_EQ(admitted, 240);
  EXPECT_EQ(rl.admit_authenticated("alice", "ping", t), 0ms);  // other classes untouched
}

TEST(RateLimiter, KeyTableIsBoundedAndFailsClosed) {
  pp::rate_limit_options opt;
  opt.max_keys = 4;
  opt.pre_auth = {60, 1};
  pp::rate_limiter rl(opt);
  const pp::sys_milliseconds t{};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rl.admit_unauthenticated("addr" + std::to_string(i), "", t), 0ms);
  EXPECT_EQ(rl.admit_unauthenticated("addr9", "", t), 1000ms);  // all four active: refuse
  EXPECT_EQ(rl.tracked_keys(), 4u);
  EXPECT_EQ(rl.admit_unauthenticated("addr9", "", t + 2s), 0ms);  // the others refilled: evicted
  EXPECT_LE(rl.tracked_keys(), 4u);
}
