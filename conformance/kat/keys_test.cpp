// Keys from secrets a person keeps (key_derivation.hpp, key_file.hpp) against outside vectors:
// the BIP39 English wordlist and vectors (trezor/python-mnemonic), SLIP-0010 ed25519 derivation
// (satoshilabs/slips), RFC 7914 scrypt; then the specification's own vectors for ID-11 and ID-12
// and the refusals of key files.
#include "vectors.hpp"

#include <peerproto/key_derivation.hpp>
#include <peerproto/key_file.hpp>
#include <peerproto/key_rotation.hpp>

#include <gtest/gtest.h>

#include <sstream>

namespace peerproto {
namespace {

const auto keys = kat::vectors_dir() / "keys";

// docs/SPEC.md §22.5, checked against the specification's text below.
constexpr std::string_view spec_phrase_private = "b4db4ee56060b47af0232c0f4b704dbc4bb766fae0caf12dc0f6aa9ae87db31d";
constexpr std::string_view spec_phrase_public = "70d96dd31acc9e5eeaef951b705d259febbca3d2bc77bebfc728c56a5bcb9f9c";
const std::string spec_encrypted_file =
    R"({"encrypted_private_key":"291761e8e67fb72485ffba5943a05f1dbf6dadea7a3570081ae32f8c1fe8285acac45b44c5c9eea6e71af9f5844d5035",)"
    R"("encryption":{"cipher":"aes-256-gcm","kdf":"scrypt","log2_n":14,"nonce":"000000000000000000000001","p":1,"r":8,)"
    R"("salt":"000102030405060708090a0b0c0d0e0f"},"entity_id":"agent-a",)"
    R"("public_key":"4cb5abf6ad79fbf5abbccafcc269d85cd2651ed4b885b5869f241aedf0a5ba29"})";

TEST(SpecVectors, AreTheSpecificationsText) {
  const auto spec = kat::read_file(PEERPROTO_SPEC_MD);
  for (const auto v : {spec_phrase_private, spec_phrase_public, std::string_view(spec_encrypted_file)})
    EXPECT_NE(spec.find(v), std::string::npos) << "docs/SPEC.md §22.5 does not have " << v;
}

TEST(Bip39, WordlistIsTheVectorsCopy) {
  std::istringstream in(kat::read_file(keys / "bip39_english.txt"));
  std::size_t i = 0;
  for (std::string word; in >> word; ++i) {
    ASSERT_LT(i, bip39::english.size());
    EXPECT_EQ(bip39::english[i], word) << "word " << i;
  }
  EXPECT_EQ(i, 2048u);
}

TEST(Bip39, EnglishVectors) {
  const auto v = kat::load_json(keys / "bip39_vectors.json");
  const std::string passphrase(v.at("passphrase").as_string());
  std::size_t n = 0;
  for (const auto& row : v.at("english").as_array()) {
    const auto entropy = kat::hex(row.at(0));
    const std::string phrase(row.at(1).as_string());
    EXPECT_EQ(bip39::mnemonic_from_entropy(entropy), phrase);
    const auto back = bip39::entropy_from_mnemonic(phrase);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, entropy);
    const auto seed = bip39::seed_from_mnemonic(phrase, passphrase);
    EXPECT_EQ(hex_encode(seed.view()), row.at(2).as_string()) << phrase;
    ++n;
  }
  EXPECT_EQ(n, 24u);
}

TEST(Bip39, RefusesWhatIsNotAPhrase) {
  const std::string good = "legal winner thank year wave sausage worth useful legal winner thank yellow";
  ASSERT_TRUE(bip39::entropy_from_mnemonic(good));
  const auto message = [](std::string_view phrase) {
    const auto r = bip39::entropy_from_mnemonic(phrase);
    return r ? std::string("accepted") : r.error().message;
  };
  EXPECT_EQ(message("legal winner thank year wave sausage worth useful legal winner thank yelow"),
            "word 12 (\"yelow\") is not in the BIP39 English list");
  EXPECT_EQ(message("legal winner thank year wave sausage worth useful legal winner thank"),
            "a recovery phrase has 12, 15, 18, 21 or 24 words, not 11");
  EXPECT_EQ(message("winner legal thank year wave sausage worth useful legal winner thank yellow"),
            "the recovery phrase's checksum does not match: a word is mistyped, missing or out of order");
  EXPECT_EQ(message("Legal winner thank year wave sausage worth useful legal winner thank yellow"),
            "word 1 (\"Legal\") is not in the BIP39 English list");
  EXPECT_EQ(message(""), "a recovery phrase has 12, 15, 18, 21 or 24 words, not 0");
}

TEST(Slip10, Ed25519Vectors) {
  const auto v = kat::load_json(keys / "slip10_ed25519.json");
  std::size_t n = 0;
  for (const auto& vector : v.at("vectors").as_array()) {
    const auto seed = kat::hex(vector.at("seed"));
    for (const auto& chain : vector.at("chains").as_array()) {
      const std::string path(chain.at("path").as_string());
      const auto indices = slip10::parse_path(path);
      ASSERT_TRUE(indices) << path;
      const auto node = slip10::derive_ed25519(seed, *indices);
      ASSERT_TRUE(node);
      EXPECT_EQ(hex_encode(node->key.view()), chain.at("private").as_string()) << path;
      EXPECT_EQ(hex_encode(node->chain_code.view()), chain.at("chain_code").as_string()) << path;
      const crypto::ed25519_keypair key(node->key.view());
      EXPECT_EQ("00" + hex_encode(key.public_key_bytes()), chain.at("public").as_string()) << path;
      ++n;
    }
  }
  EXPECT_EQ(n, 12u);
  EXPECT_FALSE(slip10::parse_path("m/0"));  // ed25519: hardened only
  EXPECT_FALSE(slip10::parse_path("m/2147483648'"));
  EXPECT_FALSE(slip10::parse_path("n/0'"));
  const std::uint32_t unhardened[] = {0};
  EXPECT_FALSE(slip10::derive_ed25519(kat::hex(boost::json::value("000102030405060708090a0b0c0d0e0f")), unhardened));
}

TEST(Scrypt, Rfc7914Vectors) {
  const auto v = kat::load_json(keys / "scrypt_rfc7914.json");
  std::size_t n = 0;
  for (const auto& t : v.at("vectors").as_array()) {
    const auto big_n = t.at("N").to_number<std::uint64_t>();
    unsigned log2_n = 0;
    while ((std::uint64_t{1} << log2_n) < big_n) ++log2_n;
    const std::string password(t.at("password").as_string()), salt(t.at("salt").as_string());
    bytes out(t.at("dkLen").to_number<std::size_t>());
    ASSERT_FALSE(scrypt(password, as_bytes(salt), log2_n, t.at("r").to_number<unsigned>(), t.at("p").to_number<unsigned>(), out));
    EXPECT_EQ(hex_encode(out), t.at("dk").as_string()) << password;
    ++n;
  }
  EXPECT_EQ(n, 3u);
}

// ---------------------------------------------------------------- SPEC ID-11 and ID-12

// §22.5: the identity of the all-zero 24-word phrase ("abandon" x 23, "art").
TEST(SpecVectors, IdentityFromRecoveryPhrase) {
  const std::string phrase = bip39::mnemonic_from_entropy(bytes(32, 0));
  ASSERT_EQ(phrase, "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon "
                    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art");
  const auto path = slip10::parse_path("m/28784'/0'/0'");
  ASSERT_TRUE(path);
  EXPECT_TRUE(std::equal(path->begin(), path->end(), identity_path.begin(), identity_path.end()));
  const auto seed = bip39::seed_from_mnemonic(phrase, "");
  const auto node = slip10::derive_ed25519(seed.view(), identity_path);
  ASSERT_TRUE(node);
  const crypto::ed25519_keypair key(node->key.view());
  EXPECT_EQ(hex_encode(node->key.view()), spec_phrase_private);
  EXPECT_EQ(hex_encode(key.public_key_bytes()), spec_phrase_public);
}

struct temp_dir {
  std::filesystem::path path = std::filesystem::temp_directory_path() / ("peerproto-kat-" + hex_encode(crypto::random_array<8>()));
  temp_dir() { std::filesystem::create_directories(path); }
  ~temp_dir() { std::filesystem::remove_all(path); }
};

std::string load_error(const std::filesystem::path& file, const std::string& passphrase) {
  try {
    load_key_file(file, [&] { return passphrase; });
    return "loaded";
  } catch (const config_error& e) {
    return e.what();
  }
}

void write_text(const std::filesystem::path& file, const std::string& text) {
  std::filesystem::remove(file);
  std::ofstream(file) << text;
  std::filesystem::permissions(file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

// §22.5: an encrypted key file made with fixed salt and nonce opens with its passphrase.
TEST(SpecVectors, EncryptedKeyFile) {
  temp_dir d;
  const auto file = d.path / "spec.key";
  write_text(file, spec_encrypted_file);
  const auto id = load_key_file(file, [] { return std::string("correct horse battery staple"); });
  EXPECT_EQ(id.entity_id, "agent-a");
  EXPECT_EQ(hex_encode(id.key.seed().view()), std::string(64, '0').replace(62, 2, "01"));
  EXPECT_EQ(load_error(file, "Correct horse battery staple"), "key file " + file.string() + ": wrong passphrase (or the file was changed)");
  // Every member is bound: a changed entity id, cost or salt no longer opens.
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"\"agent-a\"", "\"agent-b\""}, {"\"log2_n\":14", "\"log2_n\":15"},
                                 {"\"salt\":\"00", "\"salt\":\"01"}}) {
    std::string changed = spec_encrypted_file;
    changed.replace(changed.find(from), from.size(), to);
    write_text(file, changed);
    EXPECT_EQ(load_error(file, "correct horse battery staple"), "key file " + file.string() + ": wrong passphrase (or the file was changed)") << from;
  }
  // A cost beyond what a reader accepts is refused before any work (at most 1 GiB).
  std::string costly = spec_encrypted_file;
  costly.replace(costly.find("\"log2_n\":14"), 11, "\"log2_n\":30");
  write_text(file, costly);
  EXPECT_EQ(load_error(file, "x"), "key file " + file.string() + ": encryption.log2_n must be a whole number from 14 to 20");
}

TEST(KeyFile, EncryptedRoundTripAndPassphraseChange) {
  temp_dir d;
  const auto file = d.path / "node.key";
  const auto made = generate_key_file(file, "agent-z", std::string("first"));
  EXPECT_TRUE(key_file_encrypted(file));
  EXPECT_EQ(load_error(file, "second"), "key file " + file.string() + ": wrong passphrase (or the file was changed)");
  try {
    load_key_file(file);
    ADD_FAILURE() << "an encrypted key file loaded with no passphrase to ask";
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("it is encrypted: give its passphrase"), std::string::npos) << e.what();
  }
  EXPECT_THROW(change_key_passphrase(file, [] { return std::string("wrong"); }, std::string("second")), config_error);
  EXPECT_EQ(load_error(file, "first"), "loaded");  // unchanged by the failed change
  change_key_passphrase(file, [] { return std::string("first"); }, std::string("second"));
  EXPECT_EQ(load_error(file, "first"), "key file " + file.string() + ": wrong passphrase (or the file was changed)");
  const auto again = load_key_file(file, [] { return std::string("second"); });
  EXPECT_EQ(again.key.public_key_bytes(), made.key.public_key_bytes());
  change_key_passphrase(file, [] { return std::string("second"); }, std::nullopt);
  EXPECT_FALSE(key_file_encrypted(file));
  EXPECT_EQ(load_key_file(file).key.public_key_bytes(), made.key.public_key_bytes());
  EXPECT_THROW(generate_key_file(d.path / "empty.key", "agent-y", std::string()), config_error);
  EXPECT_FALSE(std::filesystem::exists(d.path / "node.key.new"));
}

// ---------------------------------------------------------------- SPEC §22.6 (KR-1, KR-2, KR-3)

// The library makes §22.6's statements byte for byte (Ed25519 is deterministic), they verify and
// parse as one chain, and the text is the specification's.
TEST(SpecVectors, KeyRotationChain) {
  const auto seed = [](std::uint8_t first) {
    std::array<std::uint8_t, 32> s{};
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(first + i);
    return s;
  };
  const crypto::ed25519_keypair alice(seed(0x00)), next(seed(0x40));
  const auto r1 = make_key_rotation("alice", alice, &next, 1, *parse_timestamp("2026-01-15T10:00:00.000Z"));
  const auto r2 = make_key_rotation("alice", next, nullptr, 2, *parse_timestamp("2026-01-16T10:00:00.000Z"));
  const auto spec = kat::read_file(PEERPROTO_SPEC_MD);
  for (const auto& r : {r1, r2}) {
    EXPECT_TRUE(verify(r));
    EXPECT_NE(spec.find("\n" + signing_input(r) + "\n"), std::string::npos) << "§22.6 lacks the signing input " << signing_input(r);
    EXPECT_NE(spec.find("\n" + jcs::canonicalize(to_json(r)) + "\n"), std::string::npos) << "§22.6 lacks " << jcs::canonicalize(to_json(r));
  }
  const auto chain = parse_rotation_chain(boost::json::object{{"chain", to_json(std::vector<key_rotation>{r1, r2})}});
  ASSERT_TRUE(chain) << chain.error().message;
  EXPECT_TRUE(chain->back().revokes());
}

}  // namespace
}  // namespace peerproto
