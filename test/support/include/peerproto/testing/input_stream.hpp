// Reads structured choices from a fuzz input: small integers and byte strings, with zeros once
// the input runs out, so every input is a valid program of operations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace peerproto::testing {

class input_stream {
 public:
  input_stream(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
  bool empty() const noexcept { return p_ == end_; }
  std::uint8_t byte() noexcept { return p_ == end_ ? 0 : *p_++; }
  /// Big-endian; the two reads are sequenced, so every compiler reads an input the same way.
  std::uint16_t u16() noexcept {
    const unsigned hi = byte();
    return static_cast<std::uint16_t>(hi << 8 | byte());
  }
  /// A string of at most `max` bytes, length-prefixed by one u16.
  std::string bytes(std::size_t max) {
    std::size_t n = u16() % (max + 1);
    n = std::min<std::size_t>(n, static_cast<std::size_t>(end_ - p_));
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

}  // namespace peerproto::testing
