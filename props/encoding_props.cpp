#include <peerproto/encoding.hpp>

#include <peerproto/testing/generators.hpp>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

namespace pp = peerproto;

namespace {
// Every single-character mutation of `text`: each position replaced by each character of
// `alphabet`, deleted, or doubled.
template <class F>
void for_each_mutation(const std::string& text, std::string_view alphabet, F&& f) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    for (char c : alphabet) {
      if (c == text[i]) continue;
      std::string m = text;
      m[i] = c;
      f(m);
    }
    f(text.substr(0, i) + text.substr(i + 1));
    f(text.substr(0, i + 1) + text.substr(i));
  }
}
using namespace std::literals;
constexpr std::string_view mutation_alphabet =
    "0123456789abcdefABCDEFxyzXYZ+/=-_:.TZtz \n\x00\xff"sv;
}  // namespace

RC_GTEST_PROP(Hex, RoundTrips, (const std::vector<std::uint8_t>& data)) {
  const auto text = pp::hex_encode(data);
  RC_ASSERT(pp::hex_decode(text) == std::optional(data));
}

RC_GTEST_PROP(Hex, EveryMutationIsRejectedOrDecodesDifferently, (const std::vector<std::uint8_t>& data)) {
  RC_PRE(data.size() <= 24);
  const auto text = pp::hex_encode(data);
  for_each_mutation(text, mutation_alphabet, [&](const std::string& m) {
    const auto d = pp::hex_decode(m);
    RC_ASSERT(!d || *d != data);
  });
}

RC_GTEST_PROP(Base64, RoundTrips, (const std::vector<std::uint8_t>& data)) {
  const auto text = pp::base64_encode(data);
  RC_ASSERT(pp::base64_decode(text) == std::optional(data));
  RC_ASSERT(pp::base64_decoded_size(text) == data.size());
}

RC_GTEST_PROP(Base64, EveryMutationIsRejectedOrDecodesDifferently, (const std::vector<std::uint8_t>& data)) {
  RC_PRE(data.size() <= 24);
  const auto text = pp::base64_encode(data);
  for_each_mutation(text, mutation_alphabet, [&](const std::string& m) {
    const auto d = pp::base64_decode(m);
    RC_ASSERT(!d || *d != data);
  });
}

RC_GTEST_PROP(Uuid, RoundTripsAndIsVersion4, ()) {
  const auto u = pp::make_uuid_v4(*pp::gen::byte_array<16>());
  const auto text = pp::format_uuid(u);
  RC_ASSERT(text[14] == '4');
  RC_ASSERT(pp::parse_uuid_v4(text) == std::optional(u));
  for_each_mutation(text, mutation_alphabet, [&](const std::string& m) {
    const auto d = pp::parse_uuid_v4(m);
    RC_ASSERT(!d || *d != u);
  });
}

RC_GTEST_PROP(Timestamp, RoundTrips, ()) {
  const auto ts = *pp::gen::timestamp();
  const auto text = pp::format_timestamp(ts);
  RC_ASSERT(pp::parse_timestamp(text) == std::optional(ts));
}

RC_GTEST_PROP(Timestamp, EveryMutationIsRejectedOrDecodesDifferently, ()) {
  const auto ts = *pp::gen::timestamp();
  const auto text = pp::format_timestamp(ts);
  for_each_mutation(text, mutation_alphabet, [&](const std::string& m) {
    const auto d = pp::parse_timestamp(m);
    RC_ASSERT(!d || *d != ts);
  });
}

TEST(Base64, StrictExamples) {
  EXPECT_EQ(pp::base64_encode(pp::as_bytes("")), "");
  EXPECT_EQ(pp::base64_encode(pp::as_bytes("f")), "Zg==");
  EXPECT_EQ(pp::base64_encode(pp::as_bytes("fo")), "Zm8=");
  EXPECT_EQ(pp::base64_encode(pp::as_bytes("foobar")), "Zm9vYmFy");  // RFC 4648 §10
  EXPECT_TRUE(pp::base64_decode("Zg==").has_value());
  EXPECT_FALSE(pp::base64_decode("Zh==").has_value());    // non-zero trailing bits
  EXPECT_FALSE(pp::base64_decode("Zm9=").has_value());    // non-zero trailing bits
  EXPECT_FALSE(pp::base64_decode("Zg=").has_value());     // wrong padding length
  EXPECT_FALSE(pp::base64_decode("Zg").has_value());      // missing padding
  EXPECT_FALSE(pp::base64_decode("Z===").has_value());
  EXPECT_FALSE(pp::base64_decode("Zg==Zg==").has_value());  // padding in the middle
  EXPECT_FALSE(pp::base64_decode("Zm9v YmFy").has_value());
  EXPECT_FALSE(pp::base64_decode("Zm9v\nYmFy").has_value());
  EXPECT_FALSE(pp::base64_decode("-_8=").has_value());    // URL-safe alphabet
}

TEST(Hex, StrictExamples) {
  EXPECT_EQ(pp::hex_encode(std::vector<std::uint8_t>{0x00, 0xab, 0xff}), "00abff");
  EXPECT_FALSE(pp::hex_decode("00ABff").has_value());  // upper case is another spelling
  EXPECT_FALSE(pp::hex_decode("abc").has_value());
  EXPECT_FALSE(pp::hex_decode_fixed<2>("abcdef").has_value());
}

TEST(Uuid, StrictExamples) {
  EXPECT_TRUE(pp::parse_uuid_v4("123e4567-e89b-42d3-a456-426614174000").has_value());
  EXPECT_FALSE(pp::parse_uuid_v4("123E4567-E89B-42D3-A456-426614174000").has_value());  // upper case
  EXPECT_FALSE(pp::parse_uuid_v4("123e4567-e89b-12d3-a456-426614174000").has_value());  // version 1
  EXPECT_FALSE(pp::parse_uuid_v4("123e4567-e89b-42d3-c456-426614174000").has_value());  // variant 110
  EXPECT_FALSE(pp::parse_uuid_v4("{123e4567-e89b-42d3-a456-426614174000}").has_value());
  EXPECT_FALSE(pp::parse_uuid_v4("123e4567e89b42d3a456426614174000").has_value());
}

TEST(Timestamp, StrictExamples) {
  EXPECT_TRUE(pp::parse_timestamp("2026-02-28T23:59:59.999Z").has_value());
  EXPECT_TRUE(pp::parse_timestamp("2024-02-29T00:00:00Z").has_value());      // leap year
  EXPECT_TRUE(pp::parse_timestamp("2026-01-01T00:00:00.5Z").has_value());
  EXPECT_FALSE(pp::parse_timestamp("2026-02-29T00:00:00Z").has_value());     // not a leap year
  EXPECT_FALSE(pp::parse_timestamp("2100-02-29T00:00:00Z").has_value());     // century rule
  EXPECT_FALSE(pp::parse_timestamp("2026-04-31T00:00:00Z").has_value());
  EXPECT_FALSE(pp::parse_timestamp("2026-13-01T00:00:00Z").has_value());
  EXPECT_FALSE(pp::parse_timestamp("2026-12-31T23:59:60Z").has_value());     // leap second
  EXPECT_FALSE(pp::parse_timestamp("2026-12-31T24:00:00Z").has_value());
  EXPECT_FALSE(pp::parse_timestamp("2026-01-01t00:00:00Z").has_value());     // lower-case t
  EXPECT_FALSE(pp::parse_timestamp("2026-01-01T00:00:00z").has_value());
  EXPECT_FALSE(pp::parse_timestamp("2026-01-01T00:00:00+00:00").has_value()); // offsets other than Z
  EXPECT_FALSE(pp::parse_timestamp("2026-01-01T00:00:00.1234Z").has_value()); // beyond milliseconds
  EXPECT_FALSE(pp::parse_timestamp("2026-01-01T00:00:00.Z").has_value());
  EXPECT_FALSE(pp::parse_timestamp("2026-01-01 00:00:00Z").has_value());
  EXPECT_FALSE(pp::parse_timestamp("1767225600").has_value());                // unix seconds
  const auto ts = *pp::parse_timestamp("2026-01-01T00:00:00.25Z");
  EXPECT_EQ(ts.time.time_since_epoch().count(), 1767225600250);
  EXPECT_EQ(pp::format_timestamp(ts), "2026-01-01T00:00:00.25Z");
}

TEST(Timestamp, FormattingNeverDropsPrecision) {
  auto ts = *pp::parse_timestamp("2026-01-01T00:00:00.5Z");
  ts.time += std::chrono::milliseconds(7);  // 507 ms cannot be written with one digit
  EXPECT_EQ(pp::format_timestamp(ts), "2026-01-01T00:00:00.507Z");
  ts.fraction_digits = 0;
  ts.time -= std::chrono::milliseconds(507);
  EXPECT_EQ(pp::format_timestamp(ts), "2026-01-01T00:00:00Z");
}
