#include <peerproto/sequencer.hpp>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <set>

namespace pp = peerproto;
using namespace std::chrono_literals;

namespace {
const pp::sys_milliseconds t0{};

// A permutation of 1..n in which no message arrives more than `window - 1` places ahead of the
// lowest undelivered one, which is what "any arrival order within the window" means.
rc::Gen<std::vector<std::uint64_t>> arrival_order(std::uint64_t n, std::uint64_t window) {
  return rc::gen::exec([n, window] {
    std::vector<std::uint64_t> order;
    std::set<std::uint64_t> pending;
    for (std::uint64_t i = 1; i <= n; ++i) pending.insert(i);
    while (!pending.empty()) {
      const auto lowest = *pending.begin();
      std::vector<std::uint64_t> choices;
      for (auto s : pending)
        if (s - lowest < window) choices.push_back(s);
      const auto pick = *rc::gen::elementOf(choices);
      order.push_back(pick);
      pending.erase(pick);
    }
    return order;
  });
}
}  // namespace

RC_GTEST_PROP(Sequencer, AnyOrderWithinTheWindowWithDuplicatesDeliversTheSentStreamOnce, ()) {
  const auto window = *rc::gen::inRange<std::uint64_t>(1, 16);
  const auto n = *rc::gen::inRange<std::uint64_t>(0, 80);
  auto order = *arrival_order(n, window);
  // Inject duplicates: some messages arrive again later.
  const auto dups = *rc::gen::container<std::vector<std::size_t>>(rc::gen::inRange<std::size_t>(0, std::max<std::size_t>(order.size(), 1)));
  for (auto i : dups)
    if (i < order.size()) order.insert(order.begin() + static_cast<std::ptrdiff_t>(*rc::gen::inRange<std::size_t>(i, order.size())) + 1, order[i]);

  pp::sequencer<std::uint64_t> seq({window, 5s});
  std::vector<std::uint64_t> delivered;
  int replays = 0;
  for (auto s : order) {
    const auto ec = seq.check(s);
    if (ec) {
      RC_ASSERT(ec == pp::errc::replay_detected);  // within the window only duplicates are refused
      ++replays;
      continue;
    }
    for (auto d : seq.accept(s, s, t0)) delivered.push_back(d);
    RC_ASSERT(seq.held() <= window);
  }
  std::vector<std::uint64_t> expected(n);
  for (std::uint64_t i = 0; i < n; ++i) expected[i] = i + 1;
  RC_ASSERT(delivered == expected);
  RC_ASSERT(static_cast<std::size_t>(replays) == order.size() - n);
}

RC_GTEST_PROP(Sequencer, BeyondTheWindowIsASequenceErrorAndChangesNothing, ()) {
  const auto window = *rc::gen::inRange<std::uint64_t>(1, 64);
  pp::sequencer<int> seq({window, 5s});
  const auto ahead = *rc::gen::inRange<std::uint64_t>(window, window * 4);
  RC_ASSERT(seq.check(1 + ahead) == pp::errc::sequence_error);
  RC_ASSERT(seq.accept(1 + ahead, 0, t0).empty());
  RC_ASSERT(seq.held() == 0u);
  RC_ASSERT(seq.next_expected() == 1u);
}

RC_GTEST_PROP(Sequencer, AGapOlderThanGFailsOnlyTheHeldMessagesAndRetransmissionsAreAccepted, ()) {
  const auto window = *rc::gen::inRange<std::uint64_t>(3, 64);
  pp::sequencer<std::uint64_t> seq({window, 5s});
  const auto delivered_first = *rc::gen::inRange<std::uint64_t>(0, window);
  for (std::uint64_t s = 1; s <= delivered_first; ++s) RC_ASSERT(seq.accept(s, s, t0).size() == 1u);
  const auto next = delivered_first + 1;
  // Hold some messages behind the missing `next`.
  std::set<std::uint64_t> held;
  for (auto off : *rc::gen::container<std::vector<std::uint64_t>>(rc::gen::inRange<std::uint64_t>(1, window)))
    held.insert(next + off);
  RC_PRE(!held.empty());
  const auto arrival = t0 + std::chrono::milliseconds(*rc::gen::inRange(0, 1000));
  for (auto s : held) RC_ASSERT(seq.accept(s, s, arrival).empty());
  RC_ASSERT(seq.next_deadline() == arrival + 5s);
  RC_ASSERT(seq.expire(arrival + 4999ms).empty());  // not yet
  const auto failed = seq.expire(arrival + 5s);
  std::set<std::uint64_t> failed_seqs;
  for (const auto& [s, item] : failed) failed_seqs.insert(s);
  RC_ASSERT(failed_seqs == held);
  RC_ASSERT(seq.next_expected() == next);            // delivered messages stay delivered
  RC_ASSERT(!seq.next_deadline().has_value());
  for (auto s : held) RC_ASSERT(!seq.check(s));      // only delivered messages were recorded
  for (std::uint64_t s = 1; s < next; ++s) RC_ASSERT(seq.check(s) == pp::errc::replay_detected);
  // The retransmitted gap message and the failed ones now deliver in order.
  std::vector<std::uint64_t> out = seq.accept(next, next, arrival + 6s);
  RC_ASSERT(out.size() == 1u);
}

TEST(Sequencer, Examples) {
  pp::sequencer<int> seq({4, 5s});
  EXPECT_TRUE(seq.accept(2, 2, t0).empty());
  EXPECT_EQ(seq.check(2), pp::errc::replay_detected);     // already held
  EXPECT_EQ(seq.check(5), pp::errc::sequence_error);      // next + W
  EXPECT_FALSE(seq.check(4));
  EXPECT_EQ(seq.accept(1, 1, t0), (std::vector<int>{1, 2}));
  EXPECT_EQ(seq.check(1), pp::errc::replay_detected);     // delivered
  EXPECT_EQ(seq.next_expected(), 3u);
}
