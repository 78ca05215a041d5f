// The sequencer as a state machine: the input is a program of "arrive with sequence number
// next + k" and "advance the clock" steps. Oracles: delivered numbers are exactly 1, 2, 3, ...
// with none twice; at most W are held; a failed number is never one already delivered. Replay
// mode prints how many numbers were delivered and how many held ones timed out (ORD-6).
#include <peerproto/sequencer.hpp>

#include <peerproto/testing/input_stream.hpp>

#include <cstdio>
#include <cstdlib>

namespace {
std::size_t delivered_total = 0, timed_out = 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  peerproto::testing::input_stream in(data, size);
  const std::uint64_t window = 1 + in.byte() % 64;
  peerproto::sequencer<std::uint64_t> seq({window, std::chrono::milliseconds(5000)});
  peerproto::sys_milliseconds now{};
  std::uint64_t delivered = 0;
  while (!in.empty()) {
    const auto op = in.byte();
    if (op & 0x80) {
      now += std::chrono::milliseconds((op & 0x7f) * 100);
      for (const auto& [s, item] : seq.expire(now)) {
        if (s <= delivered || s != item) std::abort();
        ++timed_out;
      }
      continue;
    }
    // Arrive: a number around the window (some below next, some beyond it).
    const std::int64_t offset = static_cast<std::int64_t>(in.byte()) - 16;
    const std::int64_t s = static_cast<std::int64_t>(seq.next_expected()) + offset;
    if (s < 1) continue;
    const auto n = static_cast<std::uint64_t>(s);
    if (seq.check(n)) continue;
    for (auto d : seq.accept(n, n, now)) {
      if (d != ++delivered) std::abort();
      ++delivered_total;
    }
    if (seq.held() > window) std::abort();
  }
  return 0;
}

extern "C" void peerproto_fuzz_summary() { std::printf("delivered: %zu, timed out: %zu\n", delivered_total, timed_out); }
