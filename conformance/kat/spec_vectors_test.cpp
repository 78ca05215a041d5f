// The specification's own vectors (conformance/vectors/, docs/SPEC.md §22), checked by their
// relationships rather than by re-running the generator: every envelope parses, re-serializes to
// the same bytes and verifies; signatures are reproduced from the published seeds; the handshake's
// challenge responses, key schedule and key confirmation follow from the published inputs; every
// sealed message opens to its payload and reseals to the same bytes. Also: the limit names of
// §18 are exactly those of include/peerproto/limit_names.hpp.
#include <peerproto/envelope.hpp>
#include <peerproto/limit_names.hpp>

#include "vectors.hpp"

#include <cstdio>
#include <set>
#include <sstream>

namespace pp = peerproto;
namespace json = boost::json;
using peerproto::kat::hex;

namespace {

json::value load(const char* name) {
  return pp::kat::load_json(std::filesystem::path(PEERPROTO_SPEC_VECTORS_DIR) / name);
}

pp::crypto::ed25519_keypair key_of(const json::value& keys, std::string_view who) {
  const auto seed = hex(keys.at(who).at("seed"));
  return pp::crypto::ed25519_keypair(std::span<const std::uint8_t, 32>(seed.data(), 32));
}

pp::envelope parse_exact(const json::value& text) {
  const std::string_view s = text.as_string();
  auto e = pp::parse_envelope(s);
  if (!e) {
    ADD_FAILURE() << e.error().message << " in " << s;
    return {};
  }
  EXPECT_EQ(pp::serialize(*e), s) << "the published text is canonical and round-trips";
  return *e;
}

}  // namespace

TEST(SpecVectors, SignedEnvelopes) {
  const auto doc = load("envelopes.json");
  ASSERT_TRUE(doc.is_object());
  const auto& keys = doc.at("keys");
  for (const char* who : {"alice", "bob"})
    EXPECT_EQ(pp::hex_encode(key_of(keys, who).public_key_bytes()), keys.at(who).at("public_key").as_string());
  int n = 0;
  for (const auto& v : doc.at("envelopes").as_array()) {
    SCOPED_TRACE(std::string(v.at("name").as_string()));
    const auto key = key_of(keys, v.at("signer").as_string());
    auto e = parse_exact(v.at("envelope"));
    EXPECT_EQ(pp::signing_input(e), v.at("signing_input").as_string());
    EXPECT_TRUE(pp::verify_signature(e, key.public_key_bytes()));
    const auto published = e.signature;
    pp::sign(e, key);
    EXPECT_EQ(pp::hex_encode(*e.signature), v.at("signature").as_string());
    EXPECT_EQ(e.signature, published);
    ++n;
  }
  std::printf("spec vectors: %d signed envelopes\n", n);
  EXPECT_GE(n, 5);
}

TEST(SpecVectors, HandshakeAndSealedMessages) {
  const auto keys_doc = load("envelopes.json");
  const auto doc = load("session.json");
  ASSERT_TRUE(doc.is_object() && keys_doc.is_object());
  const auto alice = key_of(keys_doc.at("keys"), "alice");
  const auto bob = key_of(keys_doc.at("keys"), "bob");

  const auto m1 = parse_exact(doc.at("message1"));
  const auto m2 = parse_exact(doc.at("message2"));
  const auto m3 = parse_exact(doc.at("message3"));
  EXPECT_TRUE(pp::verify_signature(m1, alice.public_key_bytes()));
  EXPECT_TRUE(pp::verify_signature(m2, bob.public_key_bytes()));
  EXPECT_TRUE(pp::verify_signature(m3, alice.public_key_bytes()));

  // HS-7, HS-8: challenge responses are SHA-256 of the JCS of the previous message.
  const auto sha_hex = [](std::string_view s) { return pp::hex_encode(pp::crypto::sha256(pp::as_bytes(s))); };
  EXPECT_EQ(m2.payload->at("challenge_response").as_string(), sha_hex(doc.at("message1").as_string()));
  EXPECT_EQ(m3.payload->at("challenge_response").as_string(), sha_hex(doc.at("message2").as_string()));

  // HS-10, HS-11: both sides compute the same ikm; the key schedule follows.
  const auto a_priv = hex(doc.at("initiator_ephemeral_private"));
  const auto b_priv = hex(doc.at("responder_ephemeral_private"));
  const pp::crypto::x25519_keypair a_eph(std::span<const std::uint8_t, 32>(a_priv.data(), 32));
  const pp::crypto::x25519_keypair b_eph(std::span<const std::uint8_t, 32>(b_priv.data(), 32));
  EXPECT_EQ(pp::hex_encode(a_eph.public_key_bytes()), m1.payload->at("ephemeral_key").as_string());
  EXPECT_EQ(pp::hex_encode(b_eph.public_key_bytes()), m2.payload->at("ephemeral_key").as_string());
  pp::crypto::secret<32> ikm_a, ikm_b;
  ASSERT_FALSE(pp::crypto::x25519_agree(a_eph.private_key(), b_eph.public_key_bytes(), ikm_a));
  ASSERT_FALSE(pp::crypto::x25519_agree(b_eph.private_key(), a_eph.public_key_bytes(), ikm_b));
  EXPECT_EQ(pp::hex_encode(ikm_a.view()), pp::hex_encode(ikm_b.view()));
  EXPECT_EQ(pp::hex_encode(ikm_a.view()), doc.at("ikm").as_string());

  const auto salt = pp::crypto::sha256(pp::as_bytes(doc.at("message1").as_string()),
                                       pp::as_bytes(doc.at("message2").as_string()));
  EXPECT_EQ(pp::hex_encode(salt), doc.at("salt").as_string());
  EXPECT_EQ(doc.at("info").as_string(), "peer-v1.1-session-key");
  pp::bytes okm(96);
  ASSERT_FALSE(pp::crypto::hkdf_sha256(pp::byte_view(ikm_a.data(), 32), salt, pp::as_bytes("peer-v1.1-session-key"), okm));
  EXPECT_EQ(pp::hex_encode(okm), doc.at("okm").as_string());
  const pp::byte_view k_i2r(okm.data(), 32), k_r2i(okm.data() + 32, 32), k_confirm(okm.data() + 64, 32);
  EXPECT_EQ(pp::hex_encode(k_i2r), doc.at("k_i2r").as_string());
  EXPECT_EQ(pp::hex_encode(k_r2i), doc.at("k_r2i").as_string());
  EXPECT_EQ(pp::hex_encode(k_confirm), doc.at("k_confirm").as_string());

  // HS-12
  const auto confirmation = pp::crypto::hmac_sha256(k_confirm, pp::as_bytes("peer-v1.1-confirm"));
  EXPECT_EQ(pp::hex_encode(confirmation), doc.at("key_confirmation").as_string());
  EXPECT_EQ(m3.payload->at("key_confirmation").as_string(), doc.at("key_confirmation").as_string());

  int n = 0;
  for (const auto& v : doc.at("sealed").as_array()) {
    SCOPED_TRACE(std::string(v.at("name").as_string()));
    auto e = parse_exact(v.at("envelope"));
    const auto key = v.at("direction").as_string() == "i2r" ? k_i2r : k_r2i;
    const auto wrong = v.at("direction").as_string() == "i2r" ? k_r2i : k_i2r;
    EXPECT_EQ(pp::associated_data(e), v.at("associated_data").as_string());
    EXPECT_EQ(pp::hex_encode(pp::session_nonce(*e.sequence_num)), v.at("gcm_nonce").as_string());
    const auto opened = pp::open(e, key);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    EXPECT_EQ(json::value(*opened), v.at("payload"));
    EXPECT_EQ(pp::jcs::canonicalize(*opened), v.at("plaintext").as_string());
    // The other direction's key does not open it (ENC-1, ENC-5).
    EXPECT_EQ(pp::open(e, wrong).code(), pp::errc::decryption_failed);
    ASSERT_FALSE(pp::seal(e, key, v.at("payload").as_object()));
    EXPECT_EQ(pp::serialize(e), v.at("envelope").as_string());
    ++n;
  }
  std::printf("spec vectors: handshake key schedule and %d sealed messages\n", n);
  EXPECT_GE(n, 3);
}

TEST(SpecVectors, SpecificationShowsTheSameVectors) {
  // docs/SPEC.md §22 reproduces the vector files; a stale copy fails here.
  const auto spec = pp::kat::read_file(PEERPROTO_SPEC_MD);
  const auto envelopes = load("envelopes.json");
  const auto session = load("session.json");
  ASSERT_TRUE(envelopes.is_object() && session.is_object());
  std::vector<std::string> expected;
  for (const auto& v : envelopes.at("envelopes").as_array()) {
    expected.emplace_back(v.at("envelope").as_string());
    expected.emplace_back(v.at("signing_input").as_string());
  }
  for (const char* k : {"message1", "message2", "message3", "okm", "key_confirmation"})
    expected.emplace_back(session.at(k).as_string());
  for (const auto& v : session.at("sealed").as_array()) expected.emplace_back(v.at("envelope").as_string());
  for (const auto& text : expected) EXPECT_NE(spec.find(text), std::string::npos) << "missing from SPEC.md: " << text;
}

TEST(SpecVectors, LimitNamesAreTheTableOfSection18) {
  // MSG-7: a node lists every limit under the name of SPEC §18; limit_names.hpp is that list.
  const auto spec = pp::kat::read_file(PEERPROTO_SPEC_MD);
  const auto from = spec.find("## 18."), to = spec.find("## 19.");
  ASSERT_NE(from, std::string::npos);
  std::set<std::string> in_table;
  std::istringstream lines(spec.substr(from, to - from));
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("| `")) continue;
    const auto first_column = line.substr(2, line.find(" | ") - 2);
    for (std::size_t at = 0; (at = first_column.find('`', at)) != std::string::npos;) {
      const auto end = first_column.find('`', at + 1);
      in_table.insert(first_column.substr(at + 1, end - at - 1));
      at = end + 1;
    }
  }
  std::set<std::string> in_library;
  for (const auto& l : pp::limit_names) in_library.insert(std::string(l.name));
  EXPECT_EQ(in_table, in_library);
  for (const auto& l : pp::limit_names)
    EXPECT_TRUE((l.unit == pp::limit_unit::duration_ms) == std::string_view(l.name).ends_with("_ms")) << l.name;
}
