// The sequencer as a state machine: the input is a program of "arrive with sequence number
// next + k" and "advance the clock" steps. Oracles: delivered numbers are exactly 1, 2, 3, ...
// with none twice; at most W are held; a failed number is never one already delivered.
#include <peerproto/sequencer.hpp>

#include "input_stream.hpp"

#include <cstdlib>

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
      for (const auto& [s, item] : seq.expire(now))
        if (s <= delivered || s != item) std::abort();
      continue;
    }
    // Arrive: a number around the window (some below next, some beyond it).
    const std::int64_t offset = static_cast<std::int64_t>(in.byte()) - 16;
    const std::int64_t s = static_cast<std::int64_t>(seq.next_expected()) + offset;
    if (s < 1) continue;
    const auto n = static_cast<std::uint64_t>(s);
    if (seq.check(n)) continue;
    for (auto d : seq.accept(n, n, now))
      if (d != ++delivered) std::abort();
    if (seq.held() > window) std::abort();
  }
  return 0;
}
