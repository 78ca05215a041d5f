#include <peerproto/envelope.hpp>

#include <peerproto/testing/generators.hpp>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

namespace pp = peerproto;
namespace json = boost::json;

namespace {

const pp::crypto::ed25519_keypair& test_key() {
  static const pp::crypto::ed25519_keypair key(pp::crypto::random_array<32>());
  return key;
}
const std::array<std::uint8_t, 32> session_key = pp::crypto::random_array<32>();

// A complete envelope: signed, or sealed for v1.1 session messages.
rc::Gen<pp::envelope> complete_envelope() {
  return rc::gen::exec([] {
    auto e = *pp::gen::header();
    const auto payload = *pp::gen::payload_object();
    if (e.is_sealed_session_message()) {
      RC_ASSERT(!pp::seal(e, session_key, payload));
    } else {
      e.payload = payload;
      pp::sign(e, test_key());
    }
    return e;
  });
}

// A valid signed sessionless envelope as JSON, for the example tests to break one rule at a time.
json::object valid_json() {
  pp::envelope e;
  e.version = "1.1";
  e.msg_type = "ping";
  e.sender_id = "alice";
  e.recipient_id = "bob";
  e.timestamp = *pp::parse_timestamp("2026-01-15T09:30:00.000Z");
  e.nonce = pp::crypto::random_array<16>();
  e.payload = json::object{{"text", "hi"}};
  pp::sign(e, test_key());
  return pp::to_json(e);
}

pp::errc code_of(const json::object& o) {
  auto r = pp::parse_envelope(json::serialize(o));
  return r ? pp::errc{} : r.code();
}

}  // namespace

RC_GTEST_PROP(Envelope, SerializeThenParseGivesTheSameEnvelope, ()) {
  const auto e = *complete_envelope();
  const auto text = pp::serialize(e);
  const auto parsed = pp::parse_envelope(text, {pp::limits::max_envelope_bytes * 64, 64});
  RC_ASSERT(parsed.ok());
  RC_ASSERT(*parsed == e);
  RC_ASSERT(pp::serialize(*parsed) == text);
}

// The direct reader (detail::read_members_direct) reads the members the general reader reads,
// whenever it reads a text at all, so the one validator gives the same envelope or the same error:
// for canonical texts, which it must read, for texts whose members have other values and forms,
// and for texts changed in the ways that it leaves to the general path (whitespace, member order,
// a byte changed, a member dropped, repeated or added).
RC_GTEST_PROP(Envelope, TheDirectReaderGivesWhatTheGeneralPathGives, ()) {
  const auto e = *complete_envelope();
  const pp::jcs::parse_limits lim{pp::limits::max_envelope_bytes * 64, 64};
  const auto general = [&](std::string_view text) -> pp::result<pp::envelope> {
    auto v = pp::jcs::parse_strict(text, lim);
    if (!v) return v.error();
    return pp::envelope_from_json(std::move(*v));
  };
  const auto direct = [&](std::string_view text) -> std::optional<pp::result<pp::envelope>> {
    pp::detail::envelope_members_read m;
    if (!pp::detail::read_members_direct(text, lim, m)) return std::nullopt;
    return pp::detail::envelope_from_members(m);
  };
  const auto canonical = pp::serialize(e);
  const bool plain = std::all_of(e.version.begin(), e.version.end(), [](char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; });
  const auto read = direct(canonical);
  if (plain) RC_ASSERT(read.has_value());
  if (read) RC_ASSERT(read->ok() && **read == e);

  // Every member dropped, every member given each of a set of values, each insertion, and one
  // random whitespace insertion and one random byte change.
  const auto obj = pp::to_json(e);
  std::vector<std::string> texts{json::serialize(obj)};  // Boost's member order
  for (const auto name : pp::detail::envelope_members) {
    auto dropped = obj;
    dropped.erase(name);
    texts.push_back(pp::jcs::canonicalize(dropped));
    for (const auto& v : {json::value(nullptr), json::value(0), json::value(1), json::value(-1), json::value(9007199254740991),
                          json::value(9007199254740992), json::value(1.5), json::value("x"), json::value(json::object{})}) {
      auto changed = obj;
      changed[name] = v;
      texts.push_back(pp::jcs::canonicalize(changed));
    }
  }
  for (const auto* insert : {R"("msg_type":"ping",)", R"("extra":1,)", R"("sequence_num":1,)", R"("session_id":"x",)"})
    texts.push_back(canonical.substr(0, 1) + insert + canonical.substr(1));
  texts.push_back(canonical);
  texts.back().insert(*rc::gen::inRange<std::size_t>(0, canonical.size()), *rc::gen::element<std::string>(" ", "\n", "\t ", "\r\n"));
  texts.push_back(canonical);
  texts.back()[*rc::gen::inRange<std::size_t>(0, canonical.size())] = *rc::gen::element('"', '\\', ',', '}', '0', '9', 'a', '-', ' ', '\x80');
  for (const auto& text : texts)
    if (const auto got = direct(text)) {
      const auto expected = general(text);
      RC_ASSERT(got->ok() == expected.ok());
      if (expected) RC_ASSERT(**got == *expected);
      else RC_ASSERT(got->code() == expected.code() && got->error().message == expected.error().message);
    }
}

// The direct writer (members in their fixed order) gives exactly the JCS of the envelope's JSON
// object, for the wire form, the signing input and the associated data.
RC_GTEST_PROP(Envelope, DirectCanonicalFormEqualsJcsOfTheJsonObject, ()) {
  auto e = *complete_envelope();
  if (*rc::gen::arbitrary<bool>()) e.signature = pp::crypto::signature{};  // both members at once
  for (const auto leave_out : {pp::omit::none, pp::omit::signature, pp::omit::signature_and_ciphertext}) {
    std::string direct;
    pp::append_canonical(direct, e, leave_out);
    RC_ASSERT(direct == pp::jcs::canonicalize(pp::to_json(e, leave_out)));
  }
}

RC_GTEST_PROP(Envelope, SealedPayloadOpensToWhatWasSealed, ()) {
  auto e = *pp::gen::header();
  e.version = "1.1";
  e.session_id = pp::make_uuid_v4(*pp::gen::byte_array<16>());
  e.sequence_num = *rc::gen::inRange<std::uint64_t>(1, pp::limits::max_sequence_num + 1);
  const auto payload = *pp::gen::payload_object();
  RC_ASSERT(!pp::seal(e, session_key, payload));
  const auto opened = pp::open(e, session_key);
  RC_ASSERT(opened.ok());
  RC_ASSERT(*opened == payload);
  // Any changed header member changes the associated data, so the tag no longer verifies.
  auto tampered = e;
  tampered.sequence_num = *e.sequence_num % pp::limits::max_sequence_num + 1;
  RC_ASSERT(pp::open(tampered, session_key).code() == pp::errc::decryption_failed);
}

RC_GTEST_PROP(Envelope, AnyChangeToASignedMemberFailsVerification, ()) {
  auto e = *pp::gen::header();
  if (e.is_sealed_session_message()) e.version = "1.0";  // signed form of a session message
  e.payload = *pp::gen::payload_object();
  pp::sign(e, test_key());
  RC_ASSERT(pp::verify_signature(e, test_key().public_key_bytes()));

  auto t = e;
  switch (*rc::gen::inRange(0, 10)) {
    case 0: t.version = e.version == "1.0" ? "1.1" : "1.0"; break;
    case 1: t.msg_type += "x"; break;
    case 2: t.sender_id = e.sender_id == "mallory" ? "eve" : "mallory"; break;
    case 3: t.recipient_id += "x"; break;
    case 4: t.timestamp.time += std::chrono::milliseconds(*rc::gen::inRange(1, 100000)); break;
    case 5: t.nonce[*rc::gen::inRange<std::size_t>(0, 16)] ^= static_cast<std::uint8_t>(*rc::gen::inRange(1, 256)); break;
    case 6:
      if (t.session_id) t.session_id.reset(), t.sequence_num.reset();
      else t.session_id = pp::make_uuid_v4({}), t.sequence_num = 1;
      break;
    case 7: t.sequence_num = t.sequence_num ? *t.sequence_num + 1 : 1, t.session_id = pp::make_uuid_v4({}); break;
    case 8: (*t.payload)["body"] = json::array{(*t.payload)["body"]}; break;  // nested change
    default: (*t.payload)["extra"] = nullptr; break;
  }
  RC_ASSERT(!pp::verify_signature(t, test_key().public_key_bytes()));
}

RC_GTEST_PROP(Envelope, AnyChangeToTheSignatureFailsVerification, ()) {
  auto e = *pp::gen::header();
  e.session_id.reset();
  e.sequence_num.reset();
  e.payload = json::object{};
  pp::sign(e, test_key());
  const auto i = *rc::gen::inRange<std::size_t>(0, 64);
  (*e.signature)[i] ^= static_cast<std::uint8_t>(*rc::gen::inRange(1, 256));
  RC_ASSERT(!pp::verify_signature(e, test_key().public_key_bytes()));
}

TEST(Envelope, ValidExampleParses) { EXPECT_EQ(code_of(valid_json()), pp::errc{}); }

TEST(Envelope, EachRuleGivesItsCode) {
  using pp::errc;
  const auto with = [](const char* member, json::value v) {
    auto o = valid_json();
    o[member] = std::move(v);
    return o;
  };
  const auto without = [](const char* member) {
    auto o = valid_json();
    o.erase(member);
    return o;
  };
  EXPECT_EQ(code_of(with("extra", 1)), errc::invalid_format);                                    // ENV-2
  for (const char* m : {"version", "msg_type", "sender_id", "recipient_id", "timestamp", "nonce"})
    EXPECT_EQ(code_of(without(m)), errc::missing_fields) << m;                                   // ENV-3
  EXPECT_EQ(code_of(with("version", 1.1)), errc::invalid_format);                                // ENV-4
  EXPECT_EQ(code_of(with("version", "2.0")), errc::invalid_version);
  EXPECT_EQ(code_of(with("msg_type", "Ping")), errc::invalid_format);                            // ENV-5
  EXPECT_EQ(code_of(with("msg_type", "1ping")), errc::invalid_format);
  EXPECT_EQ(code_of(with("msg_type", json::string(65, 'a'))), errc::invalid_format);
  EXPECT_EQ(code_of(with("msg_type", json::string(64, 'a'))), errc{});  // parsing does not verify
  EXPECT_EQ(code_of(with("sender_id", "")), errc::invalid_format);                               // ENV-6
  EXPECT_EQ(code_of(with("sender_id", "a b")), errc::invalid_format);
  EXPECT_EQ(code_of(with("recipient_id", json::string(129, 'a'))), errc::invalid_format);
  EXPECT_EQ(code_of(with("timestamp", 1767225600)), errc::invalid_format);                       // ENV-8
  EXPECT_EQ(code_of(with("timestamp", "2026-01-15T09:30:00+01:00")), errc::invalid_format);
  EXPECT_EQ(code_of(with("nonce", "0123456789ABCDEF0123456789ABCDEF")), errc::invalid_format);  // ENV-10
  EXPECT_EQ(code_of(with("nonce", "0123456789abcdef")), errc::invalid_format);
  EXPECT_EQ(code_of(with("session_id", "123e4567-e89b-42d3-a456-426614174000")), errc::missing_fields);  // ENV-13
  EXPECT_EQ(code_of(with("sequence_num", 1)), errc::missing_fields);
  auto session = with("session_id", "123e4567-e89b-42d3-a456-426614174000");
  session["version"] = "1.0";
  session["sequence_num"] = 1;
  EXPECT_EQ(code_of(session), errc{});
  for (json::value bad : {json::value(0), json::value(-1), json::value(1.0), json::value(9007199254740992),
                          json::value("1")}) {
    session["sequence_num"] = bad;
    EXPECT_EQ(code_of(session), errc::invalid_format) << bad;                                     // ENV-14
  }
  session["sequence_num"] = 9007199254740991;
  EXPECT_EQ(code_of(session), errc{});
  session["session_id"] = "123e4567-e89b-12d3-a456-426614174000";
  EXPECT_EQ(code_of(session), errc::invalid_format);                                             // ENV-12
  EXPECT_EQ(code_of(without("payload")), errc::missing_fields);                                 // ENV-15
  EXPECT_EQ(code_of(with("encrypted_payload", "AAAAAAAAAAAAAAAAAAAAAA==")), errc::invalid_format);
  EXPECT_EQ(code_of(with("payload", json::array{})), errc::invalid_format);                     // ENV-16
  EXPECT_EQ(code_of(with("payload", "text")), errc::invalid_format);
  EXPECT_EQ(code_of(without("signature")), errc::missing_fields);                               // ENV-19
  EXPECT_EQ(code_of(with("signature", json::string(128, 'A'))), errc::invalid_format);           // ENV-18
  EXPECT_EQ(code_of(with("signature", json::string(126, 'a'))), errc::invalid_format);
  EXPECT_EQ(code_of(with("nonce", 5)), errc::invalid_format);                                   // ENV-21

  // v1.1 session messages: sealed, unsigned (ENV-17, ENV-20).
  auto sealed = valid_json();
  sealed.erase("payload");
  sealed.erase("signature");
  sealed["session_id"] = "123e4567-e89b-42d3-a456-426614174000";
  sealed["sequence_num"] = 3;
  sealed["encrypted_payload"] = "AAAAAAAAAAAAAAAAAAAAAA==";
  EXPECT_EQ(code_of(sealed), errc{});
  auto signed_sealed = sealed;
  signed_sealed["signature"] = valid_json()["signature"];
  EXPECT_EQ(code_of(signed_sealed), errc::invalid_format);
  auto short_ct = sealed;
  short_ct["encrypted_payload"] = "AAAA";
  EXPECT_EQ(code_of(short_ct), errc::invalid_format);
  auto bad_b64 = sealed;
  bad_b64["encrypted_payload"] = "AAAAAAAAAAAAAAAAAAAAAB==";
  EXPECT_EQ(code_of(bad_b64), errc::invalid_format);
  auto plain_in_session = sealed;
  plain_in_session.erase("encrypted_payload");
  plain_in_session["payload"] = json::object{};
  EXPECT_EQ(code_of(plain_in_session), errc::invalid_format);
  auto v10_sealed = sealed;
  v10_sealed["version"] = "1.0";
  EXPECT_EQ(code_of(v10_sealed), errc::invalid_format);

  // ENV-1, JSON-5
  EXPECT_EQ(pp::parse_envelope("[]").code(), errc::invalid_format);
  EXPECT_EQ(pp::parse_envelope(std::string(pp::limits::max_envelope_bytes + 1, ' ')).code(), errc::payload_too_large);
}

TEST(Envelope, FirstViolationInTableOrderIsReported) {
  auto o = valid_json();
  o.erase("signature");
  o["nonce"] = "bad";
  EXPECT_EQ(code_of(o), pp::errc::invalid_format);  // nonce comes before signature in the table
  auto p = valid_json();
  p["version"] = "9.9";
  p["nonce"] = "bad";
  EXPECT_EQ(code_of(p), pp::errc::invalid_format);  // form before version support (PROC-1, PROC-3)
}

TEST(Envelope, HandshakeIsParsedWhateverItsVersion) {
  auto o = valid_json();
  o["msg_type"] = "handshake";
  o["version"] = "2.0";
  EXPECT_EQ(code_of(o), pp::errc{});  // VER-4 is decided by the handshake payload, not here
}
