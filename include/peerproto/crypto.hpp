// The crypto boundary: the only header that includes Crypto++. The rest of the library sees the
// functions below, which take and return plain byte spans and arrays, never throw, and report
// failure by return value. Secret material lives in `secret<N>`, which wipes itself.
//
// Primitives: Ed25519 (RFC 8032), X25519 (RFC 7748), HKDF-SHA256 (RFC 5869), HMAC-SHA256
// (RFC 2104), SHA-256 (FIPS 180-4), AES-GCM (SP 800-38D) with 96-bit nonces and 128-bit tags, and
// an operating-system-seeded CSPRNG.
//
// Fuzzing mode: a build that defines PEERPROTO_FUZZING_UNSAFE_CRYPTO (the fuzz targets and their
// corpus replays, nothing else) replaces Ed25519, X25519 and AES-GCM with cheap stand-ins built
// on SHA-256, the way BoringSSL's fuzzer mode and ngtcp2's null cipher do: signatures and tags
// still bind the message and the key, so a wrong key or a changed byte is still refused, but they
// cost microseconds, and a fuzz harness can sign and seal every step. They are NOT secure: anyone
// can forge them from public values. The reference node and the conformance runner refuse to
// compile in this mode (unsafe_fuzzing_crypto below).
#pragma once

#include <peerproto/encoding.hpp>
#include <peerproto/error.hpp>

#include <crypto++/aes.h>
#include <crypto++/cryptlib.h>
#include <crypto++/gcm.h>
#include <crypto++/hkdf.h>
#include <crypto++/hmac.h>
#include <crypto++/misc.h>
#include <crypto++/osrng.h>
#include <crypto++/sha.h>
#include <crypto++/siphash.h>
#include <crypto++/xed25519.h>

#include <algorithm>
#include <array>
#include <functional>
#include <stdexcept>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>

namespace peerproto::crypto {

#ifdef PEERPROTO_FUZZING_UNSAFE_CRYPTO
inline constexpr bool unsafe_fuzzing_crypto = true;
#else
inline constexpr bool unsafe_fuzzing_crypto = false;
#endif

/// A fixed-size secret that is wiped when destroyed or reassigned from.
template <std::size_t N>
class secret {
 public:
  secret() = default;
  explicit secret(std::span<const std::uint8_t, N> src) { std::copy(src.begin(), src.end(), b_.begin()); }
  secret(const secret&) = default;
  secret& operator=(const secret&) = default;
  ~secret() { wipe(); }
  void wipe() noexcept { CryptoPP::SecureWipeBuffer(b_.data(), N); }
  std::uint8_t* data() noexcept { return b_.data(); }
  const std::uint8_t* data() const noexcept { return b_.data(); }
  static constexpr std::size_t size() noexcept { return N; }
  std::span<const std::uint8_t, N> view() const noexcept { return std::span<const std::uint8_t, N>(b_); }
  std::span<std::uint8_t, N> span() noexcept { return std::span<std::uint8_t, N>(b_); }

 private:
  std::array<std::uint8_t, N> b_{};
};

/// Overwrites `b` with zeros in a way the compiler does not remove (for secrets outside secret<N>).
inline void wipe(std::span<std::uint8_t> b) noexcept { CryptoPP::SecureWipeBuffer(b.data(), b.size()); }

using public_key = std::array<std::uint8_t, 32>;
using signature = std::array<std::uint8_t, 64>;
using digest = std::array<std::uint8_t, 32>;

// ---------------------------------------------------------------- randomness

/// Fills `out` from a CSPRNG seeded by the operating system (one generator per thread, since
/// Crypto++ generators are not thread-safe). Never fails; aborts the process if the operating
/// system cannot supply entropy, because no caller can continue safely without it.
inline void random_bytes(std::span<std::uint8_t> out) noexcept {
  try {
    thread_local CryptoPP::AutoSeededRandomPool rng;
    rng.GenerateBlock(out.data(), out.size());
  } catch (...) {
    std::terminate();
  }
}

template <std::size_t N>
std::array<std::uint8_t, N> random_array() noexcept {
  std::array<std::uint8_t, N> a;
  random_bytes(a);
  return a;
}

// ---------------------------------------------------------------- hashes and MACs

inline digest sha256(byte_view data) noexcept {
  digest d;
  CryptoPP::SHA256().CalculateDigest(d.data(), data.data(), data.size());
  return d;
}

/// SipHash-2-4 of `data` under a 128-bit key (Aumasson and Bernstein, 2012): a hash for tables
/// whose keys others choose, which they cannot make collide without the key.
inline std::uint64_t siphash24(const std::array<std::uint8_t, 16>& key, byte_view data) noexcept {
  CryptoPP::SipHash<2, 4, false> h(key.data(), static_cast<unsigned>(key.size()));
  h.Update(data.data(), data.size());
  std::array<std::uint8_t, 8> out;
  h.Final(out.data());
  std::uint64_t v;
  std::memcpy(&v, out.data(), sizeof v);
  return v;
}

/// SHA-256 of data given in pieces (a reassembled transfer hashed as its chunks arrive).
class sha256_stream {
 public:
  void update(byte_view data) noexcept { h_.Update(data.data(), data.size()); }
  /// The digest of everything given so far; the stream starts again empty.
  digest final() noexcept {
    digest d;
    h_.Final(d.data());
    return d;
  }

 private:
  CryptoPP::SHA256 h_;
};

namespace detail {
/// SHA-256 over the concatenation of `parts`.
inline digest sha256_of(std::initializer_list<byte_view> parts) noexcept {
  sha256_stream h;
  for (const auto p : parts) h.update(p);
  return h.final();
}
}  // namespace detail

/// SHA-256 of the concatenation a ‖ b (the transcript salt of HS-11).
inline digest sha256(byte_view a, byte_view b) noexcept { return detail::sha256_of({a, b}); }

inline digest hmac_sha256(byte_view key, byte_view data) noexcept {
  CryptoPP::HMAC<CryptoPP::SHA256> mac(key.data(), key.size());
  mac.Update(data.data(), data.size());
  digest d;
  mac.Final(d.data());
  return d;
}

/// Constant-time comparison of equal-length byte strings; false when the lengths differ.
inline bool equal_constant_time(byte_view a, byte_view b) noexcept {
  return a.size() == b.size() && CryptoPP::VerifyBufsEqual(a.data(), b.data(), a.size());
}

/// HKDF-SHA256 into `out`. Fails with errc::invalid_argument when out is longer than
/// 255 × 32 bytes (RFC 5869 §2.3); nothing else can fail.
inline std::error_code hkdf_sha256(byte_view ikm, byte_view salt, byte_view info, std::span<std::uint8_t> out) noexcept {
  if (out.size() > 255 * 32) return errc::invalid_argument;
  try {
    CryptoPP::HKDF<CryptoPP::SHA256> kdf;
    // Crypto++ treats a null salt pointer as "no salt" (a zero-filled salt, as RFC 5869 says).
    kdf.DeriveKey(out.data(), out.size(), ikm.data(), ikm.size(), salt.data(), salt.size(), info.data(), info.size());
  } catch (const CryptoPP::Exception&) {
    return errc::invalid_argument;
  }
  return {};
}

// ---------------------------------------------------------------- Ed25519

/// An Ed25519 identity key pair. Signing with a prepared key pair costs one signature and no
/// public-key derivation.
class ed25519_keypair {
 public:
  /// Derives the key pair from a 32-byte seed (the RFC 8032 private key).
#ifndef PEERPROTO_FUZZING_UNSAFE_CRYPTO
  explicit ed25519_keypair(std::span<const std::uint8_t, 32> seed) : signer_(seed.data()) {
    const auto& key = static_cast<const CryptoPP::ed25519PrivateKey&>(signer_.GetPrivateKey());
    std::copy_n(key.GetPublicKeyBytePtr(), 32, public_key_.begin());
  }
#else
  explicit ed25519_keypair(std::span<const std::uint8_t, 32> seed)
      : seed_(seed), public_key_(detail::sha256_of({as_bytes("fuzzing public key"), seed})) {}
#endif

  /// A fresh key pair from the CSPRNG.
  static ed25519_keypair generate() {
    secret<32> seed;
    random_bytes(seed.span());
    return ed25519_keypair(seed.view());
  }

  /// A key pair whose private key is held elsewhere (a hardware token): `sign` asks `external`,
  /// which throws std::runtime_error when it cannot sign; seed() is unavailable.
  static ed25519_keypair held_elsewhere(const public_key& key, std::function<signature(byte_view)> external) {
    ed25519_keypair k = generate();  // a placeholder; never used to sign
    k.public_key_ = key;
    k.external_ = std::move(external);
    return k;
  }
  bool held_here() const noexcept { return !external_; }

  const public_key& public_key_bytes() const noexcept { return public_key_; }

  /// The 32-byte seed, for storing the key (the caller must protect it). std::logic_error for a
  /// key held elsewhere.
#ifndef PEERPROTO_FUZZING_UNSAFE_CRYPTO
  secret<32> seed() const {
    if (external_) throw std::logic_error("the private key is held in a token; it has no seed here");
    const auto& key = static_cast<const CryptoPP::ed25519PrivateKey&>(signer_.GetPrivateKey());
    return secret<32>(std::span<const std::uint8_t, 32>(key.GetPrivateKeyBytePtr(), 32));
  }
#else
  secret<32> seed() const { return seed_; }
#endif

  /// Signs `message` (deterministic, RFC 8032 §5.1.6). Only a key held elsewhere can fail
  /// (std::runtime_error from its token).
  signature sign(byte_view message) const;

 private:
  std::function<signature(byte_view)> external_;
#ifndef PEERPROTO_FUZZING_UNSAFE_CRYPTO
  CryptoPP::ed25519::Signer signer_;
#else
  secret<32> seed_;
#endif
  public_key public_key_{};
};

namespace detail {
// The order L of the Ed25519 base point, little-endian (RFC 8032 §5.1).
inline constexpr std::array<std::uint8_t, 32> ed25519_order{
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};

// True when the little-endian scalar s is below L (SIG-3: reject malleable signatures).
inline bool scalar_below_order(const std::uint8_t* s) noexcept {
  for (std::size_t i = 32; i-- > 0;) {
    if (s[i] != ed25519_order[i]) return s[i] < ed25519_order[i];
  }
  return false;
}

// Fuzzing mode's signature: two SHA-256 digests binding the public key and the message, the
// second half's top byte cleared so that it passes the S < L check like a real one.
inline signature fuzzing_signature(byte_view key, byte_view message) noexcept {
  signature sig;
  const auto r = sha256_of({as_bytes("R"), key, message});
  const auto s = sha256_of({as_bytes("S"), key, message});
  std::copy(r.begin(), r.end(), sig.begin());
  std::copy(s.begin(), s.end(), sig.begin() + 32);
  sig[63] = 0;
  return sig;
}
}  // namespace detail

inline signature ed25519_keypair::sign(byte_view message) const {
  if (external_) return external_(message);
#ifdef PEERPROTO_FUZZING_UNSAFE_CRYPTO
  return detail::fuzzing_signature(public_key_, message);
#else
  signature sig{};
  try {
    signer_.SignMessage(CryptoPP::NullRNG(), message.data(), message.size(), sig.data());
  } catch (...) {
    std::terminate();  // signing with a valid key cannot fail; continuing would emit garbage
  }
  return sig;
#endif
}

/// Verifies an Ed25519 signature. Any malformed input (wrong lengths, S ≥ L, a key or R that is
/// not a point) is simply "does not verify": authentication failures are one opaque outcome.
inline bool ed25519_verify(byte_view key, byte_view message, byte_view sig) noexcept {
  if (key.size() != 32 || sig.size() != 64) return false;
  if (!detail::scalar_below_order(sig.data() + 32)) return false;
#ifdef PEERPROTO_FUZZING_UNSAFE_CRYPTO
  return equal_constant_time(detail::fuzzing_signature(key, message), sig);
#else
  try {
    CryptoPP::ed25519::Verifier verifier(key.data());
    return verifier.VerifyMessage(message.data(), message.size(), sig.data(), sig.size());
  } catch (const CryptoPP::Exception&) {
    return false;
  }
#endif
}

// ---------------------------------------------------------------- X25519

/// An X25519 key pair for one handshake. The private key is wiped when the object dies or when
/// wipe() is called (HS-14).
class x25519_keypair {
 public:
  explicit x25519_keypair(std::span<const std::uint8_t, 32> private_key) : private_(private_key) {
    // Clamp as RFC 7748 §5 says, so the stored scalar is the one actually used.
    private_.data()[0] &= 248;
    private_.data()[31] &= 127;
    private_.data()[31] |= 64;
#ifdef PEERPROTO_FUZZING_UNSAFE_CRYPTO
    std::copy_n(private_.data(), 32, public_.begin());  // agreement is XOR (see x25519_agree)
#else
    try {
      CryptoPP::x25519 domain;
      domain.GeneratePublicKey(CryptoPP::NullRNG(), private_.data(), public_.data());
    } catch (...) {
      std::terminate();
    }
#endif
  }
  static x25519_keypair generate() {
    secret<32> k;
    random_bytes(k.span());
    return x25519_keypair(k.view());
  }
  const public_key& public_key_bytes() const noexcept { return public_; }
  const secret<32>& private_key() const noexcept { return private_; }
  void wipe() noexcept { private_.wipe(); }

 private:
  secret<32> private_;
  public_key public_{};
};

/// X25519(own private key, peer public key) (RFC 7748 §5), with the peer key's top bit ignored as
/// the RFC requires. Fails with errc::challenge_invalid when the result is all zeros (a low-order
/// peer key; HS-10), and with errc::invalid_argument for a key of the wrong length.
inline std::error_code x25519_agree(const secret<32>& own_private, byte_view peer_public, secret<32>& shared) noexcept {
  if (peer_public.size() != 32) return errc::invalid_argument;
#ifdef PEERPROTO_FUZZING_UNSAFE_CRYPTO
  // Symmetric, since each side's public key is its private key: a ^ B == b ^ A.
  for (std::size_t i = 0; i < 32; ++i) shared.data()[i] = static_cast<std::uint8_t>(own_private.data()[i] ^ peer_public[i]);
#else
  try {
    CryptoPP::x25519 domain;
    // validateOtherPublicKey=false: we check the documented condition (all-zero output) ourselves,
    // rather than depending on the library's own list of rejected points.
    domain.Agree(shared.data(), own_private.data(), peer_public.data(), false);
  } catch (const CryptoPP::Exception&) {
    return errc::challenge_invalid;
  }
#endif
  std::uint8_t acc = 0;
  for (std::size_t i = 0; i < 32; ++i) acc = static_cast<std::uint8_t>(acc | shared.data()[i]);
  if (acc == 0) {
    shared.wipe();
    return errc::challenge_invalid;
  }
  return {};
}

// ---------------------------------------------------------------- AES-GCM

inline constexpr int gcm_nonce_bytes = 12;  // int: the type Crypto++'s AEAD interface takes
inline constexpr int gcm_tag_bytes = 16;

namespace detail {
// Fuzzing mode's AEAD: the ciphertext is the plaintext, the tag a SHA-256 over key, nonce,
// associated data and plaintext, so that only the holder of the key produces a valid one.
inline void fuzzing_tag(byte_view key, byte_view nonce, byte_view aad, byte_view plaintext, std::uint8_t* tag) noexcept {
  const auto d = sha256_of({key, nonce, aad, plaintext});
  std::copy_n(d.begin(), gcm_tag_bytes, tag);
}
}  // namespace detail

/// AES-GCM keyed once, for the many messages of one session direction: the key schedule and the
/// GHASH tables are computed on first use instead of for every message, which at 64 bytes is most
/// of the cost. Each direction of a session only seals or only opens, so each half is made when
/// first needed. The key is 16, 24 or 32 bytes (the protocol uses 32); any other size gives an
/// unkeyed context, on which every call fails. Movable, not copyable; wipe() (or destruction)
/// forgets the key: Crypto++ zeroes its key schedule when it is destroyed, and the copy kept here
/// is wiped.
class aes_gcm_key {
 public:
  aes_gcm_key() = default;
  explicit aes_gcm_key(byte_view key) {
    if (key.size() != 16 && key.size() != 24 && key.size() != 32) return;
    state_ = std::make_unique<state>();
    std::copy(key.begin(), key.end(), state_->key.data());
    state_->size = key.size();
  }
  bool keyed() const noexcept { return state_ != nullptr; }
  void wipe() noexcept { state_.reset(); }

  /// Encryption with a 96-bit nonce and a 128-bit tag; writes ciphertext ‖ tag into `out`, which
  /// must hold plaintext.size() + 16 bytes. Fails only with errc::invalid_argument for wrong sizes
  /// or an unkeyed context.
  std::error_code seal(byte_view nonce, byte_view aad, byte_view plaintext, std::span<std::uint8_t> out) const noexcept {
    if (!state_ || nonce.size() != gcm_nonce_bytes || out.size() != plaintext.size() + gcm_tag_bytes) return errc::invalid_argument;
#ifdef PEERPROTO_FUZZING_UNSAFE_CRYPTO
    std::copy(plaintext.begin(), plaintext.end(), out.begin());
    detail::fuzzing_tag(state_->view(), nonce, aad, plaintext, out.data() + plaintext.size());
#else
    try {
      if (!state_->enc) {
        state_->enc.emplace();
        state_->enc->SetKeyWithIV(state_->key.data(), state_->size, nonce.data(), nonce.size());
      }
      state_->enc->EncryptAndAuthenticate(out.data(), out.data() + plaintext.size(), gcm_tag_bytes, nonce.data(), gcm_nonce_bytes,
                                          aad.data(), aad.size(), plaintext.data(), plaintext.size());
    } catch (const CryptoPP::Exception&) {
      return errc::invalid_argument;
    }
#endif
    return {};
  }

  /// Decryption of ciphertext ‖ tag into `out` (sized sealed.size() - 16). On any failure (wrong
  /// sizes, a tag that does not verify) returns errc::decryption_failed and zeroes `out`, so no
  /// unauthenticated plaintext escapes.
  std::error_code open(byte_view nonce, byte_view aad, byte_view sealed, std::span<std::uint8_t> out) const noexcept {
    if (!state_ || nonce.size() != gcm_nonce_bytes || sealed.size() < gcm_tag_bytes || out.size() != sealed.size() - gcm_tag_bytes)
      return errc::decryption_failed;
    bool ok = false;
#ifdef PEERPROTO_FUZZING_UNSAFE_CRYPTO
    std::array<std::uint8_t, gcm_tag_bytes> tag;
    detail::fuzzing_tag(state_->view(), nonce, aad, sealed.first(out.size()), tag.data());
    ok = equal_constant_time(tag, sealed.subspan(out.size()));
    if (ok) std::copy_n(sealed.begin(), out.size(), out.begin());
#else
    try {
      if (!state_->dec) {
        state_->dec.emplace();
        state_->dec->SetKeyWithIV(state_->key.data(), state_->size, nonce.data(), nonce.size());
      }
      ok = state_->dec->DecryptAndVerify(out.data(), sealed.data() + out.size(), gcm_tag_bytes, nonce.data(), gcm_nonce_bytes,
                                         aad.data(), aad.size(), sealed.data(), out.size());
    } catch (const CryptoPP::Exception&) {
      ok = false;
    }
#endif
    if (!ok) {
      std::fill(out.begin(), out.end(), std::uint8_t{0});
      return errc::decryption_failed;
    }
    return {};
  }

 private:
  struct state {
    secret<32> key;
    std::size_t size = 0;
    byte_view view() const noexcept { return key.view().first(size); }
#ifndef PEERPROTO_FUZZING_UNSAFE_CRYPTO
    std::optional<CryptoPP::GCM<CryptoPP::AES>::Encryption> enc;
    std::optional<CryptoPP::GCM<CryptoPP::AES>::Decryption> dec;
#endif
  };
  std::unique_ptr<state> state_;
};

/// One message with a key used once (a key wrap, a test): aes_gcm_key's seal for this key.
inline std::error_code aes_gcm_seal(byte_view key, byte_view nonce, byte_view aad, byte_view plaintext,
                                    std::span<std::uint8_t> out) noexcept {
  return aes_gcm_key(key).seal(nonce, aad, plaintext, out);
}

/// Convenience form returning ciphertext ‖ tag (empty on failure).
inline bytes aes_gcm_seal(byte_view key, byte_view nonce, byte_view aad, byte_view plaintext) {
  bytes out(plaintext.size() + gcm_tag_bytes);
  if (aes_gcm_seal(key, nonce, aad, plaintext, out)) out.clear();
  return out;
}

/// One message with a key used once: aes_gcm_key's open for this key.
inline std::error_code aes_gcm_open(byte_view key, byte_view nonce, byte_view aad, byte_view sealed,
                                    std::span<std::uint8_t> out) noexcept {
  return aes_gcm_key(key).open(nonce, aad, sealed, out);
}

/// Convenience form returning the plaintext, or nothing when the tag does not verify.
inline std::optional<bytes> aes_gcm_open(byte_view key, byte_view nonce, byte_view aad, byte_view sealed) {
  if (sealed.size() < gcm_tag_bytes) return std::nullopt;
  bytes out(sealed.size() - gcm_tag_bytes);
  if (aes_gcm_open(key, nonce, aad, sealed, out)) return std::nullopt;
  return out;
}

}  // namespace peerproto::crypto
