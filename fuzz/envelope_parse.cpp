// Envelope parsing (SPEC §3, §4). Oracle: whatever parses re-serializes to canonical text that
// parses to the same envelope and serializes to the same text.
#include <peerproto/envelope.hpp>

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto e = peerproto::parse_envelope(text);
  if (!e) {
    if (e.error().message.empty()) std::abort();  // every failure says what is wrong
    return 0;
  }
  const auto canonical = peerproto::serialize(*e);
  const auto again = peerproto::parse_envelope(canonical);
  if (!again || !(*again == *e) || peerproto::serialize(*again) != canonical) std::abort();
  (void)peerproto::signing_input(*e);
  (void)peerproto::associated_data(*e);
  return 0;
}
