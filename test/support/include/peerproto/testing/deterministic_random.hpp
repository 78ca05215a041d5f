// The fuzzing "crypto backend": a deterministic random stream (SHA-256 in counter mode over a
// seed), so that fuzz targets and tests replay exactly. It lives outside include/, so the library
// and the reference node cannot reach it.
#pragma once

#include <peerproto/crypto.hpp>
#include <peerproto/handshake.hpp>

#include <algorithm>
#include <memory>

namespace peerproto::testing {

inline random_source counter_random(std::uint64_t seed) {
  auto counter = std::make_shared<std::uint64_t>(seed << 32);
  return [counter](std::span<std::uint8_t> out) {
    for (std::size_t i = 0; i < out.size(); i += 32) {
      const auto block = crypto::sha256(byte_view(reinterpret_cast<const std::uint8_t*>(counter.get()), 8));
      ++*counter;
      std::copy_n(block.begin(), std::min<std::size_t>(32, out.size() - i), out.begin() + static_cast<std::ptrdiff_t>(i));
    }
  };
}

}  // namespace peerproto::testing
