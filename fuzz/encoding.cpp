// The text encodings (hex, base64, UUID, timestamps). The first byte picks the decoder; the rest
// is its input. Oracles: a decoder accepts exactly one spelling per value, so anything it accepts
// re-encodes to the same text; and encoding arbitrary bytes decodes back to them.
#include <peerproto/encoding.hpp>

#include <cstdlib>

using namespace peerproto;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const byte_view raw(data + 1, size - 1);
  switch (data[0] % 6) {
    case 0:
      if (auto d = hex_decode(text); d && hex_encode(*d) != text) std::abort();
      break;
    case 1:
      if (auto d = base64_decode(text); d && (base64_encode(*d) != text || base64_decoded_size(text) != d->size()))
        std::abort();
      break;
    case 2:
      if (auto u = parse_uuid_v4(text); u && format_uuid(*u) != text) std::abort();
      break;
    case 3:
      if (auto t = parse_timestamp(text); t && format_timestamp(*t) != text) std::abort();
      break;
    case 4:
      if (hex_decode(hex_encode(raw)) != bytes(raw.begin(), raw.end())) std::abort();
      break;
    default:
      if (base64_decode(base64_encode(raw)) != bytes(raw.begin(), raw.end())) std::abort();
      break;
  }
  return 0;
}
