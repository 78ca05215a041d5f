// The delivery machine (delivery.hpp) against the model peer of delivery_model.hpp: the input
// plays the peer (answers, losses, refusals, forgeries, restarts, forgotten sessions) and the
// sender's restarts. The model's oracles abort on a broken rule. Replay mode prints how the
// messages ended, so ctest can require that the seeds reach every ending.
#include <peerproto/testing/delivery_model.hpp>

#include <cstdio>
#include <cstdlib>

namespace {
peerproto::testing::delivery_summary total;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  peerproto::testing::delivery_model model(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
  try {
    model.run(1 + data[0] % 4u);
  } catch (const std::logic_error& e) {
    std::fprintf(stderr, "delivery: %s\n", e.what());
    std::abort();
  }
  const auto& s = model.summary();
  total.delivered += s.delivered;
  total.failed += s.failed;
  total.unconfirmed += s.unconfirmed;
  total.expired += s.expired;
  total.transfers_resumed += s.transfers_resumed;
  return 0;
}

extern "C" void peerproto_fuzz_summary() {
  std::printf("delivered: %zu, given up: %zu, unconfirmed: %zu, expired: %zu, transfers resumed: %zu\n", total.delivered,
              total.failed, total.unconfirmed, total.expired, total.transfers_resumed);
}
