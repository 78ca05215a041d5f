// The composing core fed a sequence of envelopes: the input is split at newlines and each part
// is handled by a node that already has a ready session with the harness's identity, with clock
// steps in between. Oracles: no 5xx status, every reply an envelope from the node, memory-bounded
// state (sessions never exceed the configured limit).
#include <peerproto/engine.hpp>

#include "two_nodes.hpp"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace std::chrono_literals;
  peerproto::testing::pair_of_nodes n;
  (void)n.handshake();
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    const auto part = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (part == "tick") {
      n.now += 1s;
      (void)n.bob.poll(n.now);
      continue;
    }
    const auto o = n.bob.handle(part, "127.0.0.1:9", n.now);
    if (o.error == peerproto::errc::internal_error) std::abort();  // no 5xx for any input
    if (o.sends_envelope(true) && !peerproto::parse_envelope(o.reply)) std::abort();
    if (n.bob.session_count() > n.bob.options().max_sessions_total) std::abort();
  }
  return 0;
}
