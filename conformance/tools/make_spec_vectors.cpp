// Writes the specification's test vectors (docs/SPEC.md §22) from fixed keys and fixed
// "randomness": envelopes of several message types with their signing input and signature, and a
// complete v1.1 handshake with its key schedule and sealed session messages.
//
//   peerproto-spec-vectors OUTDIR    writes OUTDIR/envelopes.json and OUTDIR/session.json
//
// ctest runs it and compares the output with the committed conformance/vectors/ files.
#include <peerproto/envelope.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace pp = peerproto;
namespace json = boost::json;
using pp::crypto::ed25519_keypair;
using pp::crypto::x25519_keypair;

namespace {

// Fixed secrets: seed bytes i, i+1, ..., i+31.
template <std::size_t N = 32>
std::array<std::uint8_t, N> counting(std::uint8_t start) {
  std::array<std::uint8_t, N> a{};
  for (std::size_t i = 0; i < N; ++i) a[i] = static_cast<std::uint8_t>(start + i);
  return a;
}

pp::utc_timestamp at(const char* text) { return *pp::parse_timestamp(text); }

pp::envelope header(const char* version, const char* type, const char* from, const char* to, const char* time,
                    std::uint8_t nonce_start) {
  pp::envelope e;
  e.version = version;
  e.msg_type = type;
  e.sender_id = from;
  e.recipient_id = to;
  e.timestamp = at(time);
  e.nonce = counting<16>(nonce_start);
  return e;
}

json::object parse_object(const char* text) { return pp::jcs::parse_strict(text)->as_object(); }

// A small indenting printer so the committed files are readable and diffable.
void pretty(std::string& out, const json::value& v, int indent) {
  const std::string pad(static_cast<std::size_t>(indent + 2), ' ');
  if (const auto* o = v.if_object(); o && !o->empty()) {
    out += "{\n";
    bool first = true;
    for (const auto& kv : *o) {
      if (!first) out += ",\n";
      first = false;
      out += pad;
      pp::jcs::append_string(out, kv.key());
      out += ": ";
      pretty(out, kv.value(), indent + 2);
    }
    out += "\n" + std::string(static_cast<std::size_t>(indent), ' ') + "}";
  } else if (const auto* a = v.if_array(); a && !a->empty()) {
    out += "[\n";
    bool first = true;
    for (const auto& e : *a) {
      if (!first) out += ",\n";
      first = false;
      out += pad;
      pretty(out, e, indent + 2);
    }
    out += "\n" + std::string(static_cast<std::size_t>(indent), ' ') + "]";
  } else {
    pp::jcs::append_canonical(out, v);
  }
}

void write(const std::filesystem::path& path, const json::value& v) {
  std::string text;
  pretty(text, v, 0);
  text += '\n';
  std::ofstream(path, std::ios::binary) << text;
}

json::object key_json(const char* id, const ed25519_keypair& k) {
  return {{"entity_id", id},
          {"seed", pp::hex_encode(k.seed().view())},
          {"public_key", pp::hex_encode(k.public_key_bytes())}};
}

json::object signed_vector(const char* name, const char* signer, pp::envelope e, const ed25519_keypair& key) {
  pp::sign(e, key);
  return {{"name", name},
          {"signer", signer},
          {"signing_input", pp::signing_input(e)},
          {"signature", pp::hex_encode(*e.signature)},
          {"envelope", pp::serialize(e)}};
}

std::string sha256_hex(std::string_view s) { return pp::hex_encode(pp::crypto::sha256(pp::as_bytes(s))); }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTDIR\nwrites OUTDIR/envelopes.json and OUTDIR/session.json\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);

  const ed25519_keypair alice(counting(0x00));
  const ed25519_keypair bob(counting(0x20));

  // ---- envelopes.json: signed sessionless and v1.0 session messages
  json::array envelopes;
  {
    auto e = header("1.1", "ping", "alice", "bob", "2026-01-15T09:30:00.000Z", 0x40);
    e.payload = parse_object(R"({"text":"hello","n":1})");
    envelopes.push_back(signed_vector("ping, v1.1, sessionless", "alice", e, alice));
  }
  {
    auto e = header("1.0", "heartbeat", "alice", "bob", "2026-01-15T09:30:01Z", 0x50);
    e.payload = parse_object(R"({"status":"ok","load":0.25})");
    envelopes.push_back(signed_vector("heartbeat, v1.0, no fraction digits", "alice", e, alice));
  }
  {
    auto e = header("1.1", "task_delegate", "alice", "bob", "2026-01-15T09:30:02.5Z", 0x60);
    e.payload = parse_object(
        R"({"task":{"kind":"summarize","priority":2.50,"limit":1E3,"tags":["\u20ac","caf\u00e9","\ud83d\ude00"],"z":null,"a":[true,false]}})");
    envelopes.push_back(signed_vector("task_delegate, unicode and numbers in the payload", "alice", e, alice));
  }
  {
    auto e = header("1.1", "error", "bob", "alice", "2026-01-15T09:30:03.123Z", 0x70);
    e.payload = parse_object(
        R"({"error_code":"INVALID_VERSION","error_message":"version '2.0' is not supported","original_nonce":"000102030405060708090a0b0c0d0e0f","supported_versions":["1.1","1.0"]})");
    envelopes.push_back(signed_vector("error, INVALID_VERSION", "bob", e, bob));
  }
  {
    auto e = header("1.0", "status_report", "alice", "bob", "2026-01-15T09:30:04.000Z", 0x80);
    e.session_id = pp::make_uuid_v4(counting<16>(0x90));
    e.sequence_num = 7;
    e.payload = parse_object(R"({"state":"idle"})");
    envelopes.push_back(signed_vector("status_report, v1.0 session message", "alice", e, alice));
  }
  write(dir / "envelopes.json",
        json::object{{"description", "Signed envelopes (docs/SPEC.md §4, §5, §22). Keys are Ed25519 seeds; "
                                     "signing_input is JCS of the envelope without signature."},
                     {"keys", json::object{{"alice", key_json("alice", alice)}, {"bob", key_json("bob", bob)}}},
                     {"envelopes", envelopes}});

  // ---- session.json: a v1.1 handshake and sealed messages
  const x25519_keypair a_eph(counting(0xa0));
  const x25519_keypair b_eph(counting(0xc0));
  const auto session_id = pp::make_uuid_v4(counting<16>(0xe0));

  auto m1 = header("1.1", "handshake", "alice", "bob", "2026-01-15T10:00:00.000Z", 0x01);
  m1.payload = json::object{{"identity_key", pp::hex_encode(alice.public_key_bytes())},
                            {"ephemeral_key", pp::hex_encode(a_eph.public_key_bytes())},
                            {"supported_versions", json::array{"1.1", "1.0"}},
                            {"cipher_suites", json::array{pp::suite_x25519_aes256gcm}},
                            {"challenge", pp::hex_encode(counting(0x11))}};
  pp::sign(m1, alice);
  const std::string m1_jcs = pp::serialize(m1);

  auto m2 = header("1.1", "handshake_ack", "bob", "alice", "2026-01-15T10:00:00.250Z", 0x02);
  m2.payload = json::object{{"in_reply_to", pp::hex_encode(m1.nonce)},
                            {"session_id", pp::format_uuid(session_id)},
                            {"selected_version", "1.1"},
                            {"selected_suite", pp::suite_x25519_aes256gcm},
                            {"identity_key", pp::hex_encode(bob.public_key_bytes())},
                            {"ephemeral_key", pp::hex_encode(b_eph.public_key_bytes())},
                            {"challenge", pp::hex_encode(counting(0x33))},
                            {"challenge_response", sha256_hex(m1_jcs)}};
  pp::sign(m2, bob);
  const std::string m2_jcs = pp::serialize(m2);

  pp::crypto::secret<32> ikm;
  if (pp::crypto::x25519_agree(a_eph.private_key(), b_eph.public_key_bytes(), ikm)) return 1;
  const auto salt = pp::crypto::sha256(pp::as_bytes(m1_jcs), pp::as_bytes(m2_jcs));
  std::array<std::uint8_t, 96> okm{};
  if (pp::crypto::hkdf_sha256(pp::byte_view(ikm.data(), 32), salt, pp::as_bytes(pp::hkdf_info_session_key), okm))
    return 1;
  const pp::byte_view k_i2r(okm.data(), 32), k_r2i(okm.data() + 32, 32), k_confirm(okm.data() + 64, 32);
  const auto confirmation = pp::crypto::hmac_sha256(k_confirm, pp::as_bytes(pp::key_confirmation_label));

  auto m3 = header("1.1", "handshake_confirm", "alice", "bob", "2026-01-15T10:00:00.500Z", 0x03);
  m3.payload = json::object{{"session_id", pp::format_uuid(session_id)},
                            {"challenge_response", sha256_hex(m2_jcs)},
                            {"key_confirmation", pp::hex_encode(confirmation)}};
  pp::sign(m3, alice);

  json::array sealed;
  auto seal_vector = [&](const char* name, const char* direction, pp::byte_view key, pp::envelope e,
                         const json::object& payload) {
    e.session_id = session_id;
    if (pp::seal(e, key, payload)) std::exit(1);
    sealed.push_back(json::object{{"name", name},
                                  {"direction", direction},
                                  {"sequence_num", *e.sequence_num},
                                  {"payload", payload},
                                  {"plaintext", pp::jcs::canonicalize(payload)},
                                  {"associated_data", pp::associated_data(e)},
                                  {"gcm_nonce", pp::hex_encode(pp::session_nonce(*e.sequence_num))},
                                  {"encrypted_payload", pp::base64_encode(*e.encrypted_payload)},
                                  {"envelope", pp::serialize(e)}});
  };
  {
    auto e = header("1.1", "ack", "bob", "alice", "2026-01-15T10:00:00.750Z", 0x04);
    e.sequence_num = 1;
    seal_vector("responder's first session message (HS-15)", "r2i", k_r2i, e,
                json::object{{"acked_nonce", pp::hex_encode(m3.nonce)}, {"status", "session_ready"}});
  }
  {
    auto e = header("1.1", "ping", "alice", "bob", "2026-01-15T10:00:01.000Z", 0x05);
    e.sequence_num = 1;
    seal_vector("initiator's first session message", "i2r", k_i2r, e, parse_object(R"({"text":"hello, bob"})"));
  }
  {
    auto e = header("1.1", "pong", "bob", "alice", "2026-01-15T10:00:01.100Z", 0x06);
    e.sequence_num = 2;
    seal_vector("responder's reply, sequence 2", "r2i", k_r2i, e,
                json::object{{"in_reply_to", pp::hex_encode(counting<16>(0x05))},
                             {"echo", parse_object(R"({"text":"hello, bob"})")}});
  }

  write(dir / "session.json",
        json::object{
            {"description", "A v1.1 handshake with suite x25519-hkdf-sha256-aes256gcm and sealed session "
                            "messages (docs/SPEC.md §8, §10, §22). Keys as in envelopes.json."},
            {"initiator", "alice"},
            {"responder", "bob"},
            {"initiator_ephemeral_private", pp::hex_encode(a_eph.private_key().view())},
            {"initiator_ephemeral_public", pp::hex_encode(a_eph.public_key_bytes())},
            {"responder_ephemeral_private", pp::hex_encode(b_eph.private_key().view())},
            {"responder_ephemeral_public", pp::hex_encode(b_eph.public_key_bytes())},
            {"message1", m1_jcs},
            {"message2", m2_jcs},
            {"message3", pp::serialize(m3)},
            {"ikm", pp::hex_encode(ikm.view())},
            {"salt", pp::hex_encode(salt)},
            {"info", pp::hkdf_info_session_key},
            {"okm", pp::hex_encode(okm)},
            {"k_i2r", pp::hex_encode(k_i2r)},
            {"k_r2i", pp::hex_encode(k_r2i)},
            {"k_confirm", pp::hex_encode(k_confirm)},
            {"key_confirmation", pp::hex_encode(confirmation)},
            {"sealed", sealed}});
  std::printf("wrote %s and %s\n", (dir / "envelopes.json").c_str(), (dir / "session.json").c_str());
  return 0;
}
