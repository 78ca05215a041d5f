// RFC 8785 known answers: the six input/output pairs of the outside JCS vectors, byte for byte,
// and the IEEE 754 number samples of RFC 8785 Appendix B.
#include <peerproto/jcs.hpp>

#include "vectors.hpp"

#include <bit>
#include <cstdio>

namespace jcs = peerproto::jcs;

TEST(Rfc8785, VectorFilesCanonicalizeExactly) {
  const auto dir = peerproto::kat::vectors_dir() / "jcs";
  int checked = 0;
  for (const char* name : {"arrays", "french", "structures", "unicode", "values", "weird"}) {
    const auto in = dir / "input" / (std::string(name) + ".json");
    const auto out = dir / "output" / (std::string(name) + ".json");
    if (!std::filesystem::exists(in) || !std::filesystem::exists(out)) {
      ADD_FAILURE() << "JCS vectors not found: " << in << " (conformance/vectors/third_party/ is part of the project: is the checkout complete?)";
      continue;
    }
    const auto canonical = jcs::canonicalize_text(peerproto::kat::read_file(in));
    ASSERT_TRUE(canonical.ok()) << name << ": " << canonical.error().message;
    EXPECT_EQ(*canonical, peerproto::kat::read_file(out)) << name;
    // Canonical output is a fixed point.
    EXPECT_EQ(*jcs::canonicalize_text(*canonical), *canonical) << name;
    ++checked;
  }
  std::printf("rfc8785: %d vector files canonicalized byte for byte\n", checked);
  EXPECT_EQ(checked, 6);
}

TEST(Rfc8785, AppendixBNumbers) {
  // RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical text. NaN and Infinity are
  // left out: no JSON text parses to them, so the serializer never sees them.
  const std::pair<std::uint64_t, const char*> samples[] = {
      {0x0000000000000000, "0"},
      {0x8000000000000000, "0"},
      {0x0000000000000001, "5e-324"},
      {0x8000000000000001, "-5e-324"},
      {0x7fefffffffffffff, "1.7976931348623157e+308"},
      {0xffefffffffffffff, "-1.7976931348623157e+308"},
      {0x4340000000000000, "9007199254740992"},
      {0xc340000000000000, "-9007199254740992"},
      {0x4430000000000000, "295147905179352830000"},
      {0x44b52d02c7e14af5, "9.999999999999997e+22"},
      {0x44b52d02c7e14af6, "1e+23"},
      {0x44b52d02c7e14af7, "1.0000000000000001e+23"},
      {0x444b1ae4d6e2ef4e, "999999999999999700000"},
      {0x444b1ae4d6e2ef4f, "999999999999999900000"},
      {0x444b1ae4d6e2ef50, "1e+21"},
      {0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
      {0x3eb0c6f7a0b5ed8d, "0.000001"},
      {0x41b3de4355555553, "333333333.3333332"},
      {0x41b3de4355555554, "333333333.33333325"},
      {0x41b3de4355555555, "333333333.3333333"},
      {0x41b3de4355555556, "333333333.3333334"},
      {0x41b3de4355555557, "333333333.33333343"},
      {0xbecbf647612f3696, "-0.0000033333333333333333"},
      {0x43143ff3c1cb0959, "1424953923781206.2"},
  };
  for (const auto& [bits, text] : samples) {
    const double v = std::bit_cast<double>(bits);
    std::string out;
    jcs::append_number(out, v);
    EXPECT_EQ(out, text) << std::hex << bits;
    // The text parses back to the same value (negative zero compares equal to zero).
    const auto parsed = jcs::parse_strict(text);
    ASSERT_TRUE(parsed.ok()) << text;
    EXPECT_EQ(parsed->to_number<double>(), v) << text;
  }
  std::printf("rfc8785 appendix B: %zu number samples\n", std::size(samples));
}
