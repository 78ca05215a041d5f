#include <peerproto/replay_cache.hpp>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

namespace pp = peerproto;
using namespace std::chrono_literals;
using nonce_t = std::array<std::uint8_t, 16>;

namespace {
nonce_t nonce_of(std::uint8_t i) {
  nonce_t n{};
  n[0] = i;
  return n;
}

// One step of the model: a signed envelope arrives (sender, nonce, timestamp relative to the
// clock) after the clock moved (forwards or back), then maybe the node purges its store or
// restarts from it.
struct step {
  int sender;
  std::uint8_t nonce;
  int ts_offset_ms;
  int advance_ms;
  int event;  // 0: nothing, 1: the store purges, 2: restart
};
}  // namespace

// RPL-2, RPL-4, RPL-5, RPL-6 against a model, with a clock that may step back and a node that
// persists the journal and the floor the way the reference node does: no envelope (the same
// sender, nonce and timestamp, so the same signed bytes) is ever accepted twice; a refusal happens
// only when the model says the pair is remembered or may have been forgotten; the cache stays
// within its bound.
RC_GTEST_PROP(ReplayCache, NoEnvelopeIsEverAcceptedTwiceWhateverTheClockAndRestartsDo, ()) {
  const auto max_entries = *rc::gen::inRange<std::size_t>(1, 20);
  const pp::replay_options opt{60s, max_entries, {}, true};
  pp::replay_cache cache(opt);
  std::set<std::tuple<int, std::uint8_t, std::int64_t>> accepted;     // every envelope ever accepted
  std::map<std::pair<int, std::uint8_t>, pp::sys_milliseconds> live;  // model: pair -> expiry
  std::map<std::pair<std::string, std::uint8_t>, pp::sys_milliseconds> stored;  // the node's table
  pp::sys_milliseconds stored_floor{}, forgotten{};
  pp::sys_milliseconds now{std::chrono::hours(500000)};
  const auto steps = *rc::gen::container<std::vector<step>>(rc::gen::construct<step>(
      rc::gen::inRange(0, 3), rc::gen::inRange<std::uint8_t>(0, 6), rc::gen::inRange(-70000, 70000),
      rc::gen::inRange(-40000, 90000), rc::gen::weightedElement<int>({{8, 0}, {1, 1}, {1, 2}})));
  for (const auto& x : steps) {
    now += std::chrono::milliseconds(x.advance_ms);
    const auto ts = now + std::chrono::milliseconds(x.ts_offset_ms);
    const std::string s = "peer" + std::to_string(x.sender);
    const auto pair = std::make_pair(x.sender, x.nonce);
    const auto expiry = ts + 60s + 1ms;
    if (!cache.check_time({ts, 3}, now)) {
      // RPL-2: a pair must be remembered until the clock first passes its expiry, and may be
      // remembered while the expiry is ahead of the clock; RPL-5: an envelope whose expiry is not
      // after the purged time is refused.
      const bool must_remember = live.contains(pair) && live[pair] > now && live[pair] > forgotten;
      const bool may_remember = live.contains(pair) && live[pair] > now;
      const bool maybe_forgotten = expiry <= forgotten;
      if (cache.check(s, nonce_of(x.nonce), ts, now)) {
        RC_ASSERT(may_remember || maybe_forgotten);  // refused only for a reason RPL-2/RPL-5 gives
      } else {
        RC_ASSERT(!must_remember && !maybe_forgotten);
        // RPL-4, RPL-5: refused only when the entries the cache must still remember fill it.
        const auto limit = std::max(forgotten, now);
        const auto remembered = std::count_if(live.begin(), live.end(), [&](const auto& kv) { return kv.second > limit; });
        if (!cache.insert(s, nonce_of(x.nonce), ts, now)) {
          RC_ASSERT(accepted.insert({x.sender, x.nonce, ts.time_since_epoch().count()}).second);  // never twice
          live[pair] = std::max(live[pair], expiry);
        } else {
          RC_ASSERT(static_cast<std::size_t>(remembered) >= max_entries);
        }
        forgotten = limit;  // insert purges up to the limit
      }
    }
    for (auto& e : cache.take_journal()) {
      auto& kept = stored[{e.sender, e.nonce[0]}];
      kept = std::max(kept, e.expiry);
    }
    if (x.event == 1) {  // the store's purge: DELETE ... WHERE expiry <= now, and the floor moves
      std::erase_if(stored, [&](const auto& kv) { return kv.second <= now; });
      stored_floor = std::max(stored_floor, now);
    }
    if (x.event == 2) {  // restart from the store
      cache = pp::replay_cache(opt);
      for (const auto& [k, exp] : stored) cache.restore(k.first, nonce_of(k.second), exp, now);
      cache.restore_forgotten_through(stored_floor, now);
      forgotten = std::max(stored_floor, now);  // what the store kept, not what memory had forgotten
      // What the restarted node remembers is what was stored and has not expired.
      live.clear();
      for (const auto& [k, exp] : stored)
        if (exp > now) live[{std::stoi(k.first.substr(4)), k.second}] = exp;
    }
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
  pp::replay_cache cache({60s, 10, start + 60s});
  EXPECT_EQ(cache.check_time({start + 30s, 3}, start + 30s), pp::errc::replay_detected);
  EXPECT_FALSE(cache.check_time({start + 61s, 3}, start + 61s));
}

// RPL-2: a nonce is remembered until its timestamp plus the tolerance, to the millisecond, and
// not for a fixed time after its arrival.
TEST(ReplayCache, RemembersANonceExactlyAsLongAsItsTimestampIsAcceptable) {
  const pp::sys_milliseconds t{std::chrono::hours(500000)};
  pp::replay_cache cache({60s, 10, {}});
  ASSERT_FALSE(cache.insert("a", nonce_of(1), t - 50s, t));  // 50 s old on arrival
  EXPECT_EQ(cache.check("a", nonce_of(1), t - 50s, t + 10s), pp::errc::replay_detected);
  EXPECT_FALSE(cache.check_time({t - 50s, 3}, t + 10s));           // the timestamp is still acceptable
  EXPECT_EQ(cache.check_time({t - 50s, 3}, t + 10001ms), pp::errc::replay_detected);  // and then it is not
  ASSERT_FALSE(cache.insert("b", nonce_of(2), t + 11s, t + 11s));  // purges the first entry
  EXPECT_EQ(cache.size(), 1u);
}

TEST(ReplayCache, FailsClosedWhenFullAndReportsRetryAfter) {
  pp::replay_cache cache({60s, 2, {}});
  const pp::sys_milliseconds t{std::chrono::hours(500000)};
  ASSERT_FALSE(cache.insert("a", nonce_of(1), t, t));
  ASSERT_FALSE(cache.insert("a", nonce_of(2), t + 10s, t + 10s));
  EXPECT_EQ(cache.insert("a", nonce_of(3), t + 20s, t + 20s), pp::errc::rate_limited);
  EXPECT_EQ(cache.retry_after(t + 20s), 41s);  // the first entry's second ends at t + 61 s
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_FALSE(cache.insert("a", nonce_of(3), t + 61s, t + 61s));  // the first entry expired
  EXPECT_EQ(cache.size(), 2u);
}

// RPL-5: entries that expired within the current second do not keep a full cache full.
TEST(ReplayCache, EntriesExpiredWithinTheSecondDoNotCountWhenFull) {
  const pp::sys_milliseconds t{std::chrono::hours(500000) + 100ms};
  pp::replay_cache cache({60s, 2, {}});
  ASSERT_FALSE(cache.insert("a", nonce_of(1), t, t));              // expires t + 60.001 s
  ASSERT_FALSE(cache.insert("a", nonce_of(2), t + 500ms, t));      // expires t + 60.501 s, same second
  EXPECT_EQ(cache.insert("a", nonce_of(3), t, t + 60s), pp::errc::rate_limited);
  EXPECT_FALSE(cache.insert("a", nonce_of(3), t + 60s, t + 60100ms));  // the first has expired
  EXPECT_EQ(cache.size(), 2u);
}

// RPL-5: with the clock stepped back, a forgotten nonce is refused by the floor.
TEST(ReplayCache, AClockSteppedBackRevivesNoForgottenNonce) {
  pp::replay_cache cache({60s, 10, {}});
  const pp::sys_milliseconds t{std::chrono::hours(500000)};
  ASSERT_FALSE(cache.insert("a", nonce_of(1), t, t));
  ASSERT_FALSE(cache.insert("a", nonce_of(2), t + 100s, t + 100s));  // forgets the first
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.forgotten_through(), t + 100s);
  EXPECT_FALSE(cache.check_time({t, 3}, t + 30s));                       // the clock went back 70 s
  EXPECT_EQ(cache.check("a", nonce_of(1), t, t + 30s), pp::errc::replay_detected);
  EXPECT_FALSE(cache.check("a", nonce_of(3), t + 41s, t + 30s));         // a newer one is fine
}

TEST(ReplayCache, PersistAndRestoreWithTheFloor) {
  pp::replay_options opt{60s, 10, {}, true};
  pp::replay_cache a(opt);
  const pp::sys_milliseconds t{std::chrono::hours(500000)};
  ASSERT_FALSE(a.insert("alice", nonce_of(7), t, t));
  const auto j = a.take_journal();
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0].expiry, t + 60001ms);
  pp::replay_cache b(opt);
  b.restore(j[0].sender, j[0].nonce, j[0].expiry, t + 1s);
  b.restore_forgotten_through(t + 200s, t + 1s);  // the store was purged under a later clock
  EXPECT_EQ(b.check("alice", nonce_of(7), t, t + 1s), pp::errc::replay_detected);
  EXPECT_EQ(b.check("bob", nonce_of(8), t + 1s, t + 1s), pp::errc::replay_detected);  // below the floor
  EXPECT_FALSE(b.check("bob", nonce_of(8), t + 141s, t + 1s));
  // Restored entries beyond the bound are kept: the cache refuses new ones instead.
  pp::replay_cache c({60s, 1, {}});
  c.restore("a", nonce_of(1), t + 60s, t);
  c.restore("a", nonce_of(2), t + 60s, t);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_EQ(c.insert("a", nonce_of(3), t, t), pp::errc::rate_limited);
}

TEST(ReplayCache, JournalListsEachInsertOnceAndOnlyWhenEnabled) {
  const auto now = pp::sys_milliseconds(std::chrono::hours(1000));
  pp::replay_cache off;
  ASSERT_FALSE(off.insert("a", nonce_t{1}, now, now));
  EXPECT_TRUE(off.take_journal().empty());

  pp::replay_options opt;
  opt.journal = true;
  opt.max_entries = 1;
  pp::replay_cache on(opt);
  ASSERT_FALSE(on.insert("a", nonce_t{1}, now, now));
  EXPECT_EQ(on.insert("b", nonce_t{2}, now, now), pp::errc::rate_limited);  // refused: not journalled
  const auto j = on.take_journal();
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0].sender, "a");
  EXPECT_EQ(j[0].nonce[0], 1);
  EXPECT_EQ(j[0].expiry, now + pp::limits::timestamp_tolerance + 1ms);
  EXPECT_TRUE(on.take_journal().empty());
}
