#include <peerproto/jcs.hpp>

#include <peerproto/testing/generators.hpp>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

namespace pp = peerproto;
namespace jcs = peerproto::jcs;

namespace {
pp::errc code_of(std::string_view text, const jcs::parse_limits& lim = {}) {
  auto r = jcs::parse_strict(text, lim);
  return r ? pp::errc{} : r.code();
}
}  // namespace

RC_GTEST_PROP(Jcs, CanonicalFormIsIdempotentAndParses, ()) {
  const auto v = *pp::gen::json_value(5);
  const auto once = jcs::canonicalize(v);
  const auto reparsed = jcs::parse_strict(once, {1 << 26, 64});
  RC_ASSERT(reparsed.ok());
  RC_ASSERT(jcs::canonicalize(*reparsed) == once);
}

RC_GTEST_PROP(Jcs, WhitespaceAndMemberOrderDoNotChangeTheCanonicalForm, ()) {
  const auto v = *pp::gen::json_value(4);
  // boost::json::serialize writes members in insertion order with its own escaping; the
  // canonical form of that text must equal the canonical form of the value.
  const auto text = boost::json::serialize(v);
  const auto parsed = jcs::parse_strict(text, {1 << 26, 64});
  RC_ASSERT(parsed.ok());
  RC_ASSERT(jcs::canonicalize(*parsed) == jcs::canonicalize(v));
}

RC_GTEST_PROP(Jcs, NumbersRoundTripThroughTheirCanonicalText, ()) {
  const double d = *pp::gen::finite_double();
  std::string s;
  jcs::append_number(s, d);
  const auto parsed = jcs::parse_strict(s);
  RC_ASSERT(parsed.ok());
  RC_ASSERT(parsed->to_number<double>() == d);
}

TEST(Jcs, DuplicateNamesAreRejectedAtAnyDepth) {
  EXPECT_EQ(code_of(R"({"a":1,"a":2})"), pp::errc::invalid_format);
  EXPECT_EQ(code_of(R"({"x":[{"b":{"c":1,"c":1}}]})"), pp::errc::invalid_format);
  EXPECT_EQ(code_of(R"({"a":1,"\u0061":2})"), pp::errc::invalid_format);  // equal after decoding
  EXPECT_EQ(code_of(R"({"a":1,"A":2})"), pp::errc{});
}

TEST(Jcs, InvalidUtf8AndLoneSurrogatesAreRejected) {
  EXPECT_EQ(code_of("{\"a\":\"\xC0\x80\"}"), pp::errc::invalid_format);          // overlong NUL
  EXPECT_EQ(code_of("{\"a\":\"\xE0\x80\xAF\"}"), pp::errc::invalid_format);      // overlong '/'
  EXPECT_EQ(code_of("{\"a\":\"\xED\xA0\x80\"}"), pp::errc::invalid_format);      // encoded surrogate
  EXPECT_EQ(code_of("{\"a\":\"\xF4\x90\x80\x80\"}"), pp::errc::invalid_format);  // above U+10FFFF
  EXPECT_EQ(code_of("{\"a\":\"\xE2\x82\"}"), pp::errc::invalid_format);          // truncated
  EXPECT_EQ(code_of("{\"a\":\"\x80\"}"), pp::errc::invalid_format);              // lone continuation
  EXPECT_EQ(code_of("\xEF\xBB\xBF{}"), pp::errc::invalid_format);                // byte-order mark
  EXPECT_EQ(code_of(R"({"a":"\ud800"})"), pp::errc::invalid_format);
  EXPECT_EQ(code_of(R"({"a":"\udc00"})"), pp::errc::invalid_format);
  EXPECT_EQ(code_of(R"({"a":"\ud800\u0041"})"), pp::errc::invalid_format);
  EXPECT_EQ(code_of(R"({"a":"\ud83d\ude00"})"), pp::errc{});
  EXPECT_EQ(code_of("{\"a\":\"\xF0\x9F\x98\x80\"}"), pp::errc{});
}

TEST(Jcs, GrammarViolationsAreRejected) {
  for (const char* bad : {"", "{", "{}}", "{} x", "{,}", R"({"a":1,})", "[1,]", "{'a':1}", R"({"a":01})",
                          R"({"a":-})", R"({"a":1.})", R"({"a":.5})", R"({"a":1e})", R"({"a":NaN})",
                          R"({"a":Infinity})", R"({"a":tru})", "{\"a\":\"\t\"}", R"({"a":"\x"})",
                          "/*c*/{}", R"({"a":1e400})", R"({"a":-1e400})"})
    EXPECT_EQ(code_of(bad), pp::errc::invalid_format) << bad;
  EXPECT_EQ(code_of(" \t\r\n{ \"a\" : [ 1 , 2 ] } \n"), pp::errc{});
  EXPECT_EQ(*jcs::canonicalize_text(R"({"a":1e-400})"), R"({"a":0})");  // underflow is zero, not an error
  EXPECT_EQ(*jcs::canonicalize_text(R"({"a":-0.0})"), R"({"a":0})");
}

TEST(Jcs, DepthLimitIsExact) {
  const auto nested = [](std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_EQ(code_of(nested(32)), pp::errc{});
  EXPECT_EQ(code_of(nested(33)), pp::errc::invalid_format);
  EXPECT_EQ(code_of(nested(100000)), pp::errc::invalid_format);  // no stack exhaustion
  EXPECT_EQ(code_of(nested(3), {1024, 3}), pp::errc{});
  EXPECT_EQ(code_of(nested(4), {1024, 3}), pp::errc::invalid_format);
}

TEST(Jcs, SizeLimitIsExactAndChecksBeforeParsing) {
  const std::size_t limit = pp::limits::max_envelope_bytes;
  std::string at_limit = "{\"a\":\"" + std::string(limit - 8, 'x') + "\"}";
  ASSERT_EQ(at_limit.size(), limit);
  EXPECT_EQ(code_of(at_limit), pp::errc{});
  EXPECT_EQ(code_of(at_limit + " "), pp::errc::payload_too_large);
  EXPECT_EQ(code_of(std::string(limit + 1, '{')), pp::errc::payload_too_large);  // size before syntax
}

TEST(Jcs, MembersSortByUtf16CodeUnits) {
  // U+E000 sorts after U+1F600 in UTF-16 (0xE000 > 0xD83D) but before it in code point order.
  EXPECT_EQ(*jcs::canonicalize_text(R"({"\ue000":1,"\ud83d\ude00":2,"a":3,"\u00e9":4})"),
            "{\"a\":3,\"\xC3\xA9\":4,\"\xF0\x9F\x98\x80\":2,\"\xEE\x80\x80\":1}");
}

TEST(Jcs, StringEscapesAreMinimal) {
  EXPECT_EQ(*jcs::canonicalize_text(R"(["\u0000\u001f\b\f\n\r\t\"\\\/\u007f\u2028\u00e9"])"),
            "[\"\\u0000\\u001f\\b\\f\\n\\r\\t\\\"\\\\/\x7f\xE2\x80\xA8\xC3\xA9\"]");
}
