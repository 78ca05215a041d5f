#include <peerproto/crypto.hpp>

#include <peerproto/testing/generators.hpp>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

namespace pp = peerproto;
namespace pc = peerproto::crypto;

RC_GTEST_PROP(AesGcm, SealThenOpenRoundTripsAndAnyFlipFails,
              (const std::vector<std::uint8_t>& plaintext, const std::vector<std::uint8_t>& aad)) {
  const auto key = pc::random_array<32>();
  const auto nonce = pc::random_array<12>();
  auto sealed = pc::aes_gcm_seal(key, nonce, aad, plaintext);
  RC_ASSERT(sealed.size() == plaintext.size() + 16);
  RC_ASSERT(pc::aes_gcm_open(key, nonce, aad, sealed) == std::optional(plaintext));

  const auto bit = *rc::gen::inRange<std::size_t>(0, sealed.size() * 8);
  sealed[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
  pp::bytes out(plaintext.size(), 0xAA);
  RC_ASSERT(pc::aes_gcm_open(key, nonce, aad, sealed, out) == pp::errc::decryption_failed);
  RC_ASSERT(std::all_of(out.begin(), out.end(), [](auto b) { return b == 0; }));  // nothing leaks
  sealed[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));

  auto other_nonce = nonce;
  other_nonce[*rc::gen::inRange<std::size_t>(0, 12)] ^= 1;
  RC_ASSERT(!pc::aes_gcm_open(key, other_nonce, aad, sealed).has_value());
  auto other_aad = aad;
  other_aad.push_back(0);
  RC_ASSERT(!pc::aes_gcm_open(key, nonce, other_aad, sealed).has_value());
}

RC_GTEST_PROP(Ed25519, SignaturesVerifyAndBitFlipsDoNot, (const std::vector<std::uint8_t>& message)) {
  const auto key = pc::ed25519_keypair::generate();
  auto sig = key.sign(message);
  RC_ASSERT(pc::ed25519_verify(key.public_key_bytes(), message, sig));
  const auto bit = *rc::gen::inRange<std::size_t>(0, 512);
  sig[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
  RC_ASSERT(!pc::ed25519_verify(key.public_key_bytes(), message, sig));
}

RC_GTEST_PROP(X25519, BothSidesAgree, ()) {
  const auto a = pc::x25519_keypair::generate();
  const auto b = pc::x25519_keypair::generate();
  pc::secret<32> ab, ba;
  RC_ASSERT(!pc::x25519_agree(a.private_key(), b.public_key_bytes(), ab));
  RC_ASSERT(!pc::x25519_agree(b.private_key(), a.public_key_bytes(), ba));
  RC_ASSERT(std::equal(ab.data(), ab.data() + 32, ba.data()));
}

TEST(X25519, LowOrderPeerKeyIsChallengeInvalid) {
  const auto a = pc::x25519_keypair::generate();
  pc::secret<32> shared;
  const std::array<std::uint8_t, 32> zero{};
  std::array<std::uint8_t, 32> one{};
  one[0] = 1;
  EXPECT_EQ(pc::x25519_agree(a.private_key(), zero, shared), pp::errc::challenge_invalid);
  EXPECT_EQ(pc::x25519_agree(a.private_key(), one, shared), pp::errc::challenge_invalid);
  EXPECT_EQ(pc::x25519_agree(a.private_key(), std::vector<std::uint8_t>(31), shared), pp::errc::invalid_argument);
}

TEST(Ed25519, MalformedInputsDoNotVerify) {
  const auto key = pc::ed25519_keypair::generate();
  const auto sig = key.sign(pp::as_bytes("m"));
  EXPECT_FALSE(pc::ed25519_verify(pp::byte_view(key.public_key_bytes()).first(31), pp::as_bytes("m"), sig));
  EXPECT_FALSE(pc::ed25519_verify(key.public_key_bytes(), pp::as_bytes("m"), pp::byte_view(sig).first(63)));
  // S + L verifies mathematically but is malleable: rejected (SIG-3).
  auto malleable = sig;
  unsigned carry = 0;
  for (std::size_t i = 0; i < 32; ++i) {
    const unsigned sum = malleable[32 + i] + pc::detail::ed25519_order[i] + carry;
    malleable[32 + i] = static_cast<std::uint8_t>(sum);
    carry = sum >> 8;
  }
  ASSERT_EQ(carry, 0u);  // S < L < 2^253, so S + L fits in 32 bytes
  EXPECT_FALSE(pc::ed25519_verify(key.public_key_bytes(), pp::as_bytes("m"), malleable));
}

TEST(Hkdf, OutputLengthLimit) {
  std::vector<std::uint8_t> ok(255 * 32), too_long(255 * 32 + 1);
  EXPECT_FALSE(pc::hkdf_sha256(pp::as_bytes("ikm"), {}, {}, ok));
  EXPECT_EQ(pc::hkdf_sha256(pp::as_bytes("ikm"), {}, {}, too_long), pp::errc::invalid_argument);
}

TEST(Secret, WipeZeroes) {
  pc::secret<32> s(pc::random_array<32>());
  s.wipe();
  EXPECT_TRUE(std::all_of(s.data(), s.data() + 32, [](auto b) { return b == 0; }));
}

TEST(Random, DistinctDraws) { EXPECT_NE(pc::random_array<16>(), pc::random_array<16>()); }
