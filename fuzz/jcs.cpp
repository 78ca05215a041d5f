// The strict JSON parser and the RFC 8785 serializer. Oracles: the canonical form of anything
// that parses is itself parseable and a fixed point; and the strict parser accepts nothing that
// Boost.JSON's own parser rejects (it may reject more: duplicates, lone surrogates), except for
// exponents too large for Boost's counter, such as 5e-324234567890, which RFC 8259 allows and
// which mean binary64 zero or are rejected as too large here (JSON-7).
#include <peerproto/jcs.hpp>

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto v = peerproto::jcs::parse_strict(text);
  if (!v) return 0;
  const auto canonical = peerproto::jcs::canonicalize(*v);
  const auto again = peerproto::jcs::canonicalize_text(canonical);
  if (!again || *again != canonical) std::abort();

  boost::json::parse_options opt;
  opt.max_depth = 64;
  boost::system::error_code ec;
  (void)boost::json::parse(text, ec, {}, opt);
  if (ec && ec != boost::json::error::exponent_overflow) std::abort();
  return 0;
}
