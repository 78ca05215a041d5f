// Keys from secrets a person keeps (SPEC §2.1): scrypt for a passphrase that encrypts a key file
// (RFC 7914), and an identity from a BIP39 recovery phrase, derived per SLIP-0010 for ed25519 on
// the path SPEC ID-11 fixes. All of it is local to a node; nothing here is sent on the wire.
#pragma once

#include <peerproto/bip39_english.hpp>
#include <peerproto/crypto.hpp>
#include <peerproto/encoding.hpp>
#include <peerproto/error.hpp>

#include <crypto++/hmac.h>
#include <crypto++/pwdbased.h>
#include <crypto++/scrypt.h>
#include <crypto++/sha.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace peerproto {

// ---------------------------------------------------------------- scrypt

/// RFC 7914 scrypt of `passphrase` and `salt` with cost N = 2^log2_n, block size r and
/// parallelism p, into `out`. errc::invalid_argument for log2_n above 30 or parameters Crypto++
/// refuses, or when the memory cannot be had.
inline std::error_code scrypt(std::string_view passphrase, byte_view salt, unsigned log2_n, unsigned r, unsigned p,
                              std::span<std::uint8_t> out) noexcept {
  if (log2_n > 30) return errc::invalid_argument;
  try {
    CryptoPP::Scrypt kdf;
    kdf.DeriveKey(out.data(), out.size(), reinterpret_cast<const CryptoPP::byte*>(passphrase.data()), passphrase.size(), salt.data(),
                  salt.size(), CryptoPP::word64{1} << log2_n, r, p);
    return {};
  } catch (...) {  // CryptoPP::Exception for its parameter checks, std::bad_alloc for the memory
    return errc::invalid_argument;
  }
}

// ---------------------------------------------------------------- BIP39

namespace bip39 {

/// The words of `entropy` (16, 20, 24, 28 or 32 bytes): 12 to 24 words, the last ones carrying
/// the first bits of SHA-256(entropy) as checksum (BIP39).
inline std::string mnemonic_from_entropy(byte_view entropy) {
  const auto check = crypto::sha256(entropy);
  const std::size_t bits = entropy.size() * 8 + entropy.size() / 4;
  const auto bit = [&](std::size_t i) {
    const std::uint8_t b = i < entropy.size() * 8 ? entropy[i / 8] : check[(i - entropy.size() * 8) / 8];
    return (b >> (7 - i % 8)) & 1;
  };
  std::string out;
  for (std::size_t w = 0; w < bits / 11; ++w) {
    std::size_t index = 0;
    for (std::size_t k = 0; k < 11; ++k) index = (index << 1) | bit(w * 11 + k);
    if (w) out += ' ';
    out += english[index];
  }
  return out;
}

/// The entropy a phrase encodes. INVALID_FORMAT, saying which, for a word not in the list, a
/// word count other than 12, 15, 18, 21 or 24, or a checksum that does not match (a mistyped or
/// missing word). Words are separated by single spaces (runs of white space are accepted).
inline result<bytes> entropy_from_mnemonic(std::string_view phrase) {
  std::vector<std::size_t> indices;
  std::size_t pos = 0;
  while (pos < phrase.size()) {
    const auto start = phrase.find_first_not_of(" \t\r\n", pos);
    if (start == std::string_view::npos) break;
    const auto end = std::min(phrase.find_first_of(" \t\r\n", start), phrase.size());
    const auto word = phrase.substr(start, end - start);
    const auto it = std::lower_bound(english.begin(), english.end(), word);  // the list is sorted
    if (it == english.end() || *it != word)
      return failure{errc::invalid_format, "word " + std::to_string(indices.size() + 1) + " (\"" + std::string(word.substr(0, 32)) +
                                                "\") is not in the BIP39 English list"};
    indices.push_back(static_cast<std::size_t>(it - english.begin()));
    pos = end;
  }
  if (indices.size() < 12 || indices.size() > 24 || indices.size() % 3 != 0)
    return failure{errc::invalid_format, "a recovery phrase has 12, 15, 18, 21 or 24 words, not " + std::to_string(indices.size())};
  const std::size_t total = indices.size() * 11, ent_bits = total * 32 / 33;
  bytes all((total + 7) / 8, 0);
  for (std::size_t i = 0; i < total; ++i)
    if ((indices[i / 11] >> (10 - i % 11)) & 1) all[i / 8] |= static_cast<std::uint8_t>(0x80 >> (i % 8));
  bytes entropy(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(ent_bits / 8));
  const auto check = crypto::sha256(entropy);
  for (std::size_t i = ent_bits; i < total; ++i) {
    const bool got = (all[i / 8] >> (7 - i % 8)) & 1, want = (check[(i - ent_bits) / 8] >> (7 - (i - ent_bits) % 8)) & 1;
    if (got != want) {
      crypto::wipe(entropy);
      crypto::wipe(all);
      return failure{errc::invalid_format, "the recovery phrase's checksum does not match: a word is mistyped, missing or out of order"};
    }
  }
  crypto::wipe(all);
  return entropy;
}

/// The 64-byte seed of a phrase: PBKDF2-HMAC-SHA512(phrase, "mnemonic" + passphrase, 2048).
/// The phrase is taken as given (words of the English list are ASCII, so NFKD leaves them as
/// they are); ID-11 restricts the passphrase to printable ASCII for the same reason.
inline crypto::secret<64> seed_from_mnemonic(std::string_view phrase, std::string_view passphrase) {
  crypto::secret<64> seed;
  const std::string salt = "mnemonic" + std::string(passphrase);
  CryptoPP::PKCS5_PBKDF2_HMAC<CryptoPP::SHA512> kdf;
  kdf.DeriveKey(seed.data(), seed.size(), 0, reinterpret_cast<const CryptoPP::byte*>(phrase.data()), phrase.size(),
                reinterpret_cast<const CryptoPP::byte*>(salt.data()), salt.size(), 2048, 0);
  return seed;
}

}  // namespace bip39

// ---------------------------------------------------------------- SLIP-0010 for ed25519

namespace slip10 {

inline constexpr std::uint32_t hardened = 0x80000000u;

/// A derived key and its chain code.
struct node {
  crypto::secret<32> key, chain_code;
};

namespace detail {
inline node split(const CryptoPP::byte (&i)[64]) {
  node n;
  std::copy_n(i, 32, n.key.data());
  std::copy_n(i + 32, 32, n.chain_code.data());
  return n;
}
}  // namespace detail

/// The key at `path` (each index hardened; ed25519 has no other kind) from a seed of 16 to 64
/// bytes. errc::invalid_argument for a path index that is not hardened.
inline result<node> derive_ed25519(byte_view seed, std::span<const std::uint32_t> path) {
  static constexpr std::string_view curve = "ed25519 seed";
  CryptoPP::byte i[64];
  CryptoPP::HMAC<CryptoPP::SHA512> master(reinterpret_cast<const CryptoPP::byte*>(curve.data()), curve.size());
  master.CalculateDigest(i, seed.data(), seed.size());
  node n = detail::split(i);
  for (const auto index : path) {
    if (!(index & hardened)) {
      crypto::wipe(std::span<std::uint8_t>(i));
      return failure{errc::invalid_argument, "ed25519 derivation has hardened indices only (SLIP-0010)"};
    }
    CryptoPP::byte data[37] = {0};
    std::copy_n(n.key.data(), 32, data + 1);
    for (int k = 0; k < 4; ++k) data[33 + k] = static_cast<CryptoPP::byte>(index >> (24 - 8 * k));
    CryptoPP::HMAC<CryptoPP::SHA512> child(n.chain_code.data(), 32);
    child.CalculateDigest(i, data, sizeof data);
    crypto::wipe(std::span<std::uint8_t>(data));
    n = detail::split(i);
  }
  crypto::wipe(std::span<std::uint8_t>(i));
  return n;
}

/// "m/0'/1'" -> {0 | hardened, 1 | hardened}. INVALID_FORMAT for another form (ed25519 allows
/// hardened indices only, so every index needs its ').
inline result<std::vector<std::uint32_t>> parse_path(std::string_view text) {
  if (text != "m" && !text.starts_with("m/")) return failure{errc::invalid_format, "a path starts with m"};
  std::vector<std::uint32_t> out;
  for (std::size_t pos = 2; text.size() > 1 && pos <= text.size();) {
    const auto end = std::min(text.find('/', pos), text.size());
    const auto part = text.substr(pos, end - pos);
    if (part.size() < 2 || part.back() != '\'' || part.size() > 11) return failure{errc::invalid_format, "each index is a number followed by '"};
    std::uint64_t v = 0;
    for (const char c : part.substr(0, part.size() - 1)) {
      if (c < '0' || c > '9') return failure{errc::invalid_format, "each index is a number followed by '"};
      v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (v >= hardened) return failure{errc::invalid_format, "an index is below 2^31"};
    out.push_back(static_cast<std::uint32_t>(v) | hardened);
    pos = end + 1;
  }
  return out;
}

}  // namespace slip10

/// ID-11: the path of a node identity derived from a recovery phrase, m/28784'/0'/0' (28784 is
/// 0x7070, "pp"; no BIP or SLIP registry assigns it).
inline constexpr std::array<std::uint32_t, 3> identity_path{28784 | slip10::hardened, 0 | slip10::hardened, 0 | slip10::hardened};

}  // namespace peerproto
