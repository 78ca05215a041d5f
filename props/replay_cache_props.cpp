#include <peerproto/replay_cache.hpp>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <map>

namespace pp = peerproto;
using namespace std::chrono_literals;
using nonce_t = std::array<std::uint8_t, 16>;

namespace {
nonce_t nonce_of(std::uint8_t i) {
  nonce_t n{};
  n[0] = i;
  return n;
}
}  // namespace

RC_GTEST_PROP(ReplayCache, NeverAcceptsARepeatInsideTheWindowAndStaysBounded, ()) {
  const auto max_entries = *rc::gen::inRange<std::size_t>(1, 20);
  pp::replay_cache cache({60s, 300s, max_entries, {}});
  std::map<std::pair<std::string, std::uint8_t>, pp::sys_milliseconds> accepted;  // model: last accept time
  pp::sys_milliseconds now{};
  const auto steps = *rc::gen::container<std::vector<std::tuple<int, std::uint8_t, int>>>(
      rc::gen::tuple(rc::gen::inRange(0, 3), rc::gen::inRange<std::uint8_t>(0, 8), rc::gen::inRange(0, 120000)));
  for (const auto& [sender, n, advance] : steps) {
    now += std::chrono::milliseconds(advance);
    const std::string s = "peer" + std::to_string(sender);
    const auto key = std::make_pair(s, n);
    const bool repeat = accepted.contains(key) && now - accepted[key] < 300s;
    if (cache.check(s, nonce_of(n), now)) {
      RC_ASSERT(repeat);  // refused only what the model calls a repeat
      continue;
    }
    RC_ASSERT(!repeat);   // a repeat inside the window is never accepted
    if (!cache.insert(s, nonce_of(n), now)) accepted[key] = now;
    else RC_ASSERT(cache.size() == max_entries);  // refused only when full of live entries
    RC_ASSERT(cache.size() <= max_entries);
  }
}

TEST(ReplayCache, TimestampTolerance) {
  pp::replay_cache cache;
  const pp::sys_milliseconds now{std::chrono::hours(500000)};
  EXPECT_FALSE(cache.check_time({now + 60s, 3}, now));
  EXPECT_FALSE(cache.check_time({now - 60s, 3}, now));
  EXPECT_EQ(cache.check_time({now + 60001ms, 3}, now), pp::errc::replay_detected);
  EXPECT_EQ(cache.check_time({now - 60001ms, 3}, now), pp::errc::replay_detected);
}

TEST(ReplayCache, RestartFloor) {
  const pp::sys_milliseconds start{std::chrono::hours(500000)};
  pp::replay_cache cache({60s, 300s, 10, start + 60s});
  EXPECT_EQ(cache.check_time({start + 30s, 3}, start + 30s), pp::errc::replay_detected);
  EXPECT_FALSE(cache.check_time({start + 61s, 3}, start + 61s));
}

TEST(ReplayCache, FailsClosedWhenFullAndReportsRetryAfter) {
  pp::replay_cache cache({60s, 300s, 2, {}});
  const pp::sys_milliseconds t{};
  ASSERT_FALSE(cache.insert("a", nonce_of(1), t));
  ASSERT_FALSE(cache.insert("a", nonce_of(2), t + 10s));
  EXPECT_EQ(cache.insert("a", nonce_of(3), t + 20s), pp::errc::rate_limited);
  EXPECT_EQ(cache.retry_after(t + 20s), 280s);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_FALSE(cache.insert("a", nonce_of(3), t + 300s));  // the first entry expired
  EXPECT_EQ(cache.check("a", nonce_of(1), t + 300s), std::error_code{});
}

TEST(ReplayCache, PersistAndRestore) {
  pp::replay_cache a;
  const pp::sys_milliseconds t{};
  ASSERT_FALSE(a.insert("alice", nonce_of(7), t));
  pp::replay_cache b;
  a.for_each([&](std::string_view s, const nonce_t& n, pp::sys_milliseconds exp) { b.restore(s, n, exp, t + 1s); });
  EXPECT_EQ(b.check("alice", nonce_of(7), t + 1s), pp::errc::replay_detected);
  EXPECT_FALSE(b.check("alice", nonce_of(8), t + 1s));
}

TEST(ReplayCache, JournalListsEachInsertOnceAndOnlyWhenEnabled) {
  const auto now = pp::sys_milliseconds(std::chrono::hours(1000));
  pp::replay_cache off;
  ASSERT_FALSE(off.insert("a", nonce_t{1}, now));
  EXPECT_TRUE(off.take_journal().empty());

  pp::replay_options opt;
  opt.journal = true;
  opt.max_entries = 1;
  pp::replay_cache on(opt);
  ASSERT_FALSE(on.insert("a", nonce_t{1}, now));
  EXPECT_EQ(on.insert("b", nonce_t{2}, now), pp::errc::rate_limited);  // refused: not journalled
  const auto j = on.take_journal();
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0].sender, "a");
  EXPECT_EQ(j[0].nonce[0], 1);
  EXPECT_EQ(j[0].expiry, now + pp::limits::replay_window);
  EXPECT_TRUE(on.take_journal().empty());
}
