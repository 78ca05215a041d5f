// Envelope parsing (SPEC §3, §4). Oracles: whatever parses re-serializes to canonical text that
// parses to the same envelope and serializes to the same text; whatever the direct reader reads,
// the general path (strict JSON, then envelope_from_json) reads the same, to the same envelope or
// the same error.
#include <peerproto/envelope.hpp>

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto e = peerproto::parse_envelope(text);
  if (peerproto::detail::envelope_members_read m; peerproto::detail::read_members_direct(text, {}, m)) {
    const auto direct = peerproto::detail::envelope_from_members(m);
    auto value = peerproto::jcs::parse_strict(text);
    if (!value) std::abort();
    const auto general = peerproto::envelope_from_json(std::move(*value));
    if (direct.ok() != general.ok()) std::abort();
    if (general ? !(*general == *direct) : general.error().message != direct.error().message) std::abort();
  }
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
