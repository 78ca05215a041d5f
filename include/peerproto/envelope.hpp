// The envelope (SPEC §4): a typed value, its strict validation with the exact error code for each
// rule, its canonical serialization, Ed25519 signing and verification (§5), and the sealing of
// v1.1 session payloads with AES-256-GCM (§10).
#pragma once

#include <peerproto/fault.hpp>
#include <peerproto/crypto.hpp>
#include <peerproto/encoding.hpp>
#include <peerproto/error.hpp>
#include <peerproto/jcs.hpp>
#include <peerproto/version.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

namespace peerproto {

using message_nonce = std::array<std::uint8_t, 16>;

/// One envelope. Every field holds a validated value in the one spelling the wire allows, so
/// serialize(parse(x)) reproduces the signed content of x exactly.
struct envelope {
  std::string version;                              ///< "1.0" or "1.1" (a handshake may carry another)
  std::string msg_type;                             ///< ^[a-z][a-z0-9_]{0,63}$
  std::string sender_id;                            ///< entity id (ID-2)
  std::string recipient_id;                         ///< entity id (ID-2)
  utc_timestamp timestamp;                          ///< RFC 3339 UTC (ENV-8)
  message_nonce nonce{};                            ///< 128 random bits; the message id
  std::optional<uuid> session_id;                   ///< session messages only
  std::optional<std::uint64_t> sequence_num;        ///< present iff session_id is
  std::optional<boost::json::object> payload;       ///< exactly one of payload and encrypted_payload
  std::optional<bytes> encrypted_payload;           ///< ciphertext ‖ tag; v1.1 session messages only
  std::optional<crypto::signature> signature;       ///< absent only in v1.1 session messages

  /// True for a v1.1 session message: sealed, not signed (ENV-19, ENV-20).
  bool is_sealed_session_message() const { return version == version_1_1 && session_id.has_value(); }

  /// Equal when every member is equal, payloads compared by their canonical form: a JSON number
  /// means its binary64 value (JSON-7), so `2.0` and `2` are the same payload even though
  /// boost::json keeps them as different kinds.
  friend bool operator==(const envelope& a, const envelope& b);
};

inline bool operator==(const envelope& a, const envelope& b) {
  const auto head = [](const envelope& e) {
    return std::tie(e.version, e.msg_type, e.sender_id, e.recipient_id, e.timestamp, e.nonce, e.session_id,
                    e.sequence_num, e.encrypted_payload, e.signature);
  };
  if (head(a) != head(b) || a.payload.has_value() != b.payload.has_value()) return false;
  return !a.payload || jcs::canonicalize(*a.payload) == jcs::canonicalize(*b.payload);
}

inline bool is_supported_version(std::string_view v) noexcept {
  return std::find(supported_versions.begin(), supported_versions.end(), v) != supported_versions.end();
}

/// ID-2: 1 to 128 characters from A-Z a-z 0-9 . _ : @ -
inline bool is_entity_id(std::string_view s) noexcept {
  if (s.empty() || s.size() > limits::max_entity_id_chars) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == ':' || c == '@' || c == '-';
  });
}

/// ENV-5: ^[a-z][a-z0-9_]{0,63}$
inline bool is_msg_type(std::string_view s) noexcept {
  if (s.empty() || s.size() > limits::max_msg_type_chars || s[0] < 'a' || s[0] > 'z') return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

namespace detail {
inline constexpr std::array<std::string_view, 11> envelope_members{
    "version", "msg_type", "sender_id", "recipient_id", "timestamp", "nonce",
    "session_id", "sequence_num", "payload", "encrypted_payload", "signature"};

inline failure bad(std::string_view member, std::string_view why) {
  return {errc::invalid_format, std::string("member '") + std::string(member) + "' " + std::string(why)};
}
inline failure missing(std::string_view member) {
  return {errc::missing_fields, std::string("missing member '") + std::string(member) + "'"};
}
inline const boost::json::string* string_member(const boost::json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  return v ? v->if_string() : nullptr;
}
inline std::optional<uuid> uuid_member(const boost::json::object& o, std::string_view name) {
  const auto* s = string_member(o, name);
  return s ? parse_uuid_v4(*s) : std::nullopt;
}
// Checks that a payload `o` (called `label` in messages) has every `required` member and no
// member outside `required` and `optional_members`: MISSING_FIELDS for an absent member,
// `extra_code` for an unknown one.
inline result<void> check_members(const boost::json::object& o, std::string_view label, errc extra_code,
                                  std::initializer_list<std::string_view> required,
                                  std::initializer_list<std::string_view> optional_members = {}) {
  for (const auto& kv : o) {
    const auto k = kv.key();
    if (std::find(required.begin(), required.end(), k) == required.end() &&
        std::find(optional_members.begin(), optional_members.end(), k) == optional_members.end())
      return failure{extra_code, std::string(label) + " member '" + std::string(k) + "' is not allowed"};
  }
  for (auto r : required)
    if (!o.contains(r)) return failure{errc::missing_fields, std::string(label) + " is missing '" + std::string(r) + "'"};
  return {};
}
}  // namespace detail

/// Validates a parsed JSON value as an envelope (SPEC §4). Checks run in the order of the member
/// table, so the reported failure is the first rule broken in that order (ERR-9):
/// INVALID_FORMAT for a non-object, an unknown member or a wrong form; MISSING_FIELDS for an
/// absent required member; INVALID_VERSION, last, for an unsupported version on anything but a
/// handshake (ENV-4, VER-4). Does not check the recipient, the clock, or the signature.
inline result<envelope> envelope_from_json(const boost::json::value& value);

/// The same, taking the payload out of `value` instead of copying it.
inline result<envelope> envelope_from_json(boost::json::value&& value) {
  boost::json::object payload;
  if (auto* o = value.if_object())
    if (auto* p = o->if_contains("payload"); p && p->is_object()) {
      payload = std::move(p->get_object());
      *p = boost::json::object();  // an empty object of the same kind: validation is unchanged
    }
  auto e = envelope_from_json(static_cast<const boost::json::value&>(value));
  if (e && e->payload) e->payload = std::move(payload);
  return e;
}

inline result<envelope> envelope_from_json(const boost::json::value& value) {
  using detail::bad;
  using detail::missing;
  const auto* obj = value.if_object();
  if (!obj) return failure{errc::invalid_format, "the envelope is not a JSON object"};
  for (const auto& kv : *obj) {
    if (std::find(detail::envelope_members.begin(), detail::envelope_members.end(), kv.key()) ==
            detail::envelope_members.end() &&
        !PEERPROTO_FAULT(ignore_unknown_members))
      return bad(kv.key(), "is not an envelope member");
  }
  for (std::size_t i = 0; i < 6; ++i)
    if (!obj->contains(detail::envelope_members[i])) return missing(detail::envelope_members[i]);

  envelope e;
  const auto* version = detail::string_member(*obj, "version");
  if (!version) return bad("version", "is not a string");
  e.version = *version;

  const auto* msg_type = detail::string_member(*obj, "msg_type");
  if (!msg_type || !is_msg_type(*msg_type)) return bad("msg_type", "is not a message type (^[a-z][a-z0-9_]{0,63}$)");
  e.msg_type = *msg_type;

  for (auto [name, field] : {std::pair{"sender_id", &e.sender_id}, std::pair{"recipient_id", &e.recipient_id}}) {
    const auto* s = detail::string_member(*obj, name);
    if (!s || !is_entity_id(*s)) return bad(name, "is not an entity id (1-128 of A-Z a-z 0-9 . _ : @ -)");
    *field = *s;
  }

  const auto* ts = detail::string_member(*obj, "timestamp");
  const auto parsed_ts = ts ? parse_timestamp(*ts) : std::nullopt;
  if (!parsed_ts) return bad("timestamp", "is not an RFC 3339 UTC timestamp (YYYY-MM-DDTHH:MM:SS[.fff]Z)");
  e.timestamp = *parsed_ts;

  const auto* nonce = detail::string_member(*obj, "nonce");
  if (!nonce || !hex_decode_into(*nonce, e.nonce)) return bad("nonce", "is not 32 lowercase hex characters");

  const auto* sid = obj->if_contains("session_id");
  const auto* seq = obj->if_contains("sequence_num");
  if (sid && !seq) return missing("sequence_num");
  if (seq && !sid) return missing("session_id");
  if (sid) {
    const auto* s = sid->if_string();
    if (!s || !(e.session_id = parse_uuid_v4(*s))) return bad("session_id", "is not a lowercase canonical UUID v4");
    // ENV-14: an integer token (the parser keeps `1.0` and `1e0` as doubles), 1 .. 2^53-1.
    std::uint64_t n = 0;
    if (seq->is_int64() && seq->get_int64() > 0) n = static_cast<std::uint64_t>(seq->get_int64());
    if (n == 0 || n > limits::max_sequence_num) return bad("sequence_num", "is not an integer from 1 to 2^53-1");
    e.sequence_num = n;
  }

  const auto* payload = obj->if_contains("payload");
  const auto* sealed = obj->if_contains("encrypted_payload");
  if (!payload && !sealed) return missing("payload");
  if (payload && sealed) return bad("encrypted_payload", "appears together with 'payload'");
  if (payload) {
    if (!payload->is_object()) return bad("payload", "is not a JSON object");
    if (e.is_sealed_session_message()) return bad("payload", "is not allowed in a v1.1 session message (use encrypted_payload)");
    e.payload = payload->get_object();
  } else {
    if (!e.is_sealed_session_message()) return bad("encrypted_payload", "is only allowed in a v1.1 session message");
    const auto* s = sealed->if_string();
    auto decoded = s ? base64_decode(*s) : std::nullopt;
    if (!decoded || decoded->size() < crypto::gcm_tag_bytes)
      return bad("encrypted_payload", "is not padded base64 of at least 16 bytes");
    e.encrypted_payload = std::move(*decoded);
  }

  const auto* sig = obj->if_contains("signature");
  if (e.is_sealed_session_message()) {
    if (sig) return bad("signature", "is not allowed in a v1.1 session message");
  } else {
    if (!sig) return missing("signature");
    const auto* s = sig->if_string();
    crypto::signature sig_bytes{};
    if (!s || !hex_decode_into(*s, sig_bytes)) return bad("signature", "is not 128 lowercase hex characters");
    e.signature = sig_bytes;
  }

  if (!is_supported_version(e.version) && e.msg_type != "handshake")
    return failure{errc::invalid_version, "version '" + e.version + "' is not supported"};
  return e;
}

namespace detail {
/// The common case of parsing an envelope, without building a JSON object for the envelope
/// itself: its members are read straight into the fields, and only the payload is built as JSON
/// (by the strict parser). It gives up (nullopt) at anything it does not handle: an escape or a
/// non-ASCII byte in a member's string, an unknown or repeated member, a sequence number that is
/// not plain digits, or any rule of §4 broken. The general path (parse_strict, then
/// envelope_from_json) then decides and names the error, so an envelope read here is the one the
/// general path gives for the same text (a property and the envelope fuzz target check this).
inline std::optional<envelope> read_envelope(std::string_view text, const jcs::parse_limits& lim) {
  if (text.size() > lim.max_bytes || lim.max_depth < 2) return std::nullopt;
  const char* p = text.data();
  const char* const end = p + text.size();
  const auto ws = [&] {
    while (p != end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
  };
  const auto plain_string = [&](std::string_view& out) {
    if (p == end || *p != '"') return false;
    ++p;
    const auto n = jcs::detail::plain_run(p, end, true);
    if (static_cast<std::size_t>(end - p) == n || p[n] != '"') return false;
    out = std::string_view(p, n);
    p += n + 1;
    return true;
  };
  enum : std::size_t { m_version, m_msg_type, m_sender, m_recipient, m_timestamp, m_nonce, m_session, m_sequence, m_payload, m_sealed, m_signature };
  std::array<std::string_view, envelope_members.size()> text_of{};
  unsigned seen = 0;
  std::uint64_t sequence_num = 0;
  boost::json::value payload_value;
  ws();
  if (p == end || *p != '{') return std::nullopt;
  ++p;
  for (;;) {
    ws();
    std::string_view name;
    if (!plain_string(name)) return std::nullopt;
    const auto i = static_cast<std::size_t>(std::find(envelope_members.begin(), envelope_members.end(), name) - envelope_members.begin());
    if (i == envelope_members.size() || (seen & (1u << i))) return std::nullopt;
    seen |= 1u << i;
    ws();
    if (p == end || *p != ':') return std::nullopt;
    ++p;
    ws();
    if (i == m_payload) {
      if (p == end || *p != '{') return std::nullopt;
      jcs::detail::strict_parser parser(std::string_view(p, static_cast<std::size_t>(end - p)), lim);
      p = parser.value_at(payload_value, 2);  // the envelope is depth 1
      if (!p) return std::nullopt;
    } else if (i == m_sequence) {  // ENV-14: 1 .. 2^53-1, written as plain digits
      const char* digits = p;
      while (p != end && *p >= '0' && *p <= '9' && p - digits < 17) ++p;
      if (p == digits || *digits == '0' || p - digits > 16) return std::nullopt;
      std::from_chars(digits, p, sequence_num);
      if (sequence_num > limits::max_sequence_num) return std::nullopt;
    } else if (!plain_string(text_of[i])) {
      return std::nullopt;
    }
    ws();
    if (p == end) return std::nullopt;
    if (*p == '}') break;
    if (*p != ',') return std::nullopt;
    ++p;
  }
  ++p;
  ws();
  if (p != end) return std::nullopt;

  const auto has = [&](std::size_t i) { return (seen & (1u << i)) != 0; };
  for (std::size_t i = 0; i <= m_nonce; ++i)
    if (!has(i)) return std::nullopt;
  envelope e;
  e.version = text_of[m_version];
  if (!is_msg_type(text_of[m_msg_type]) || !is_entity_id(text_of[m_sender]) || !is_entity_id(text_of[m_recipient])) return std::nullopt;
  e.msg_type = text_of[m_msg_type];
  e.sender_id = text_of[m_sender];
  e.recipient_id = text_of[m_recipient];
  const auto ts = parse_timestamp(text_of[m_timestamp]);
  if (!ts || !hex_decode_into(text_of[m_nonce], e.nonce)) return std::nullopt;
  e.timestamp = *ts;
  if (has(m_session) != has(m_sequence)) return std::nullopt;
  if (has(m_session)) {
    if (!(e.session_id = parse_uuid_v4(text_of[m_session]))) return std::nullopt;
    e.sequence_num = sequence_num;
  }
  if (has(m_payload) == has(m_sealed) || has(m_payload) == e.is_sealed_session_message()) return std::nullopt;
  if (has(m_payload)) {
    e.payload = std::move(payload_value.get_object());
  } else {
    auto decoded = base64_decode(text_of[m_sealed]);
    if (!decoded || decoded->size() < crypto::gcm_tag_bytes) return std::nullopt;
    e.encrypted_payload = std::move(*decoded);
  }
  if (has(m_signature) == e.is_sealed_session_message()) return std::nullopt;
  if (has(m_signature) && !hex_decode_into(text_of[m_signature], e.signature.emplace())) return std::nullopt;
  if (!is_supported_version(e.version) && e.msg_type != "handshake") return std::nullopt;
  return e;
}
}  // namespace detail

/// Parses and validates envelope text: the strict JSON rules of §3 (PAYLOAD_TOO_LARGE over
/// lim.max_bytes, INVALID_FORMAT otherwise), then envelope_from_json.
inline result<envelope> parse_envelope(std::string_view text, const jcs::parse_limits& lim = {}) {
  if (auto e = detail::read_envelope(text, lim)) return std::move(*e);
  auto value = jcs::parse_strict(text, lim);
  if (!value) return value.error();
  return envelope_from_json(std::move(*value));
}

/// Which members to leave out when building JSON (for signing input and associated data).
enum class omit : unsigned { none = 0, signature = 1, signature_and_ciphertext = 3 };

/// The envelope as a JSON object; members omitted as asked.
inline boost::json::object to_json(const envelope& e, omit leave_out = omit::none) {
  boost::json::object o;
  o.reserve(11);
  o.emplace("version", e.version);
  o.emplace("msg_type", e.msg_type);
  o.emplace("sender_id", e.sender_id);
  o.emplace("recipient_id", e.recipient_id);
  o.emplace("timestamp", format_timestamp(e.timestamp));
  o.emplace("nonce", hex_encode(e.nonce));
  if (e.session_id) o.emplace("session_id", format_uuid(*e.session_id));
  if (e.sequence_num) o.emplace("sequence_num", *e.sequence_num);
  if (e.payload) o.emplace("payload", *e.payload);
  if (e.encrypted_payload && leave_out != omit::signature_and_ciphertext)
    o.emplace("encrypted_payload", base64_encode(*e.encrypted_payload));
  if (e.signature && leave_out == omit::none) o.emplace("signature", hex_encode(*e.signature));
  return o;
}

/// Appends the canonical form (JCS-1) of to_json(e, leave_out) without building it: the members
/// are written in their fixed order (RFC 8785 §3.2.3 sorts these names the same way every time,
/// and they need no escapes), and only the payload goes through the general canonicalizer.
inline void append_canonical(std::string& out, const envelope& e, omit leave_out = omit::none) {
  // The member names, nonce, timestamp, version, session id and signature take at most 400 bytes.
  out.reserve(out.size() + 400 + e.msg_type.size() + e.sender_id.size() + e.recipient_id.size() +
              (e.encrypted_payload ? e.encrypted_payload->size() * 4 / 3 + 4 : 0));
  char separator = '{';
  const auto name = [&](std::string_view member) {
    jcs::detail::append_plain_quoted(out, separator, member, ':');
    separator = ',';
  };
  const auto quoted = [&](const std::string& text) {
    out += '"';
    out += text;
    out += '"';
  };
  const auto hex = [&](byte_view data) {  // written in place, with no string in between
    out += '"';
    append_hex(out, data);
    out += '"';
  };
  if (e.encrypted_payload && leave_out != omit::signature_and_ciphertext) {
    name("encrypted_payload");
    out += '"';
    append_base64(out, *e.encrypted_payload);
    out += '"';
  }
  name("msg_type");
  jcs::append_string(out, e.msg_type);
  name("nonce");
  hex(e.nonce);
  if (e.payload) {
    name("payload");
    jcs::append_canonical(out, *e.payload);
  }
  name("recipient_id");
  jcs::append_string(out, e.recipient_id);
  name("sender_id");
  jcs::append_string(out, e.sender_id);
  if (e.sequence_num) {
    name("sequence_num");
    jcs::append_number(out, static_cast<double>(*e.sequence_num));
  }
  if (e.session_id) {
    name("session_id");
    quoted(format_uuid(*e.session_id));
  }
  if (e.signature && leave_out == omit::none) {
    name("signature");
    hex(*e.signature);
  }
  name("timestamp");
  quoted(format_timestamp(e.timestamp));
  name("version");
  jcs::append_string(out, e.version);
  out += '}';
}

/// The envelope's canonical JSON text (JCS-3: what senders put on the wire).
inline std::string serialize(const envelope& e) {
  std::string out;
  append_canonical(out, e);
  return out;
}

/// The bytes an Ed25519 signature covers: JCS of the envelope without `signature` (SIG-1).
inline std::string signing_input(const envelope& e) {
  std::string out;
  append_canonical(out, e, omit::signature);
  return out;
}

/// Signs `e` with `key`, replacing any earlier signature.
inline void sign(envelope& e, const crypto::ed25519_keypair& key) {
  e.signature = key.sign(as_bytes(signing_input(e)));  // the signing input never includes it
}

/// True when `e` carries a signature that verifies with the Ed25519 public key `key` (SIG-1..3).
inline bool verify_signature(const envelope& e, byte_view key) {
  if (!e.signature) return false;
  return crypto::ed25519_verify(key, as_bytes(signing_input(e)), *e.signature);
}

/// ENC-2: the 12-byte AES-GCM nonce, 4 zero bytes ‖ big-endian uint64 sequence number.
inline std::array<std::uint8_t, 12> session_nonce(std::uint64_t sequence_num) noexcept {
  std::array<std::uint8_t, 12> n{};
  for (int i = 0; i < 8; ++i) n[static_cast<std::size_t>(11 - i)] = static_cast<std::uint8_t>(sequence_num >> (8 * i));
  return n;
}

/// ENC-3: the associated data, JCS of the envelope without `encrypted_payload` and `signature`.
inline std::string associated_data(const envelope& e) {
  std::string out;
  append_canonical(out, e, omit::signature_and_ciphertext);
  return out;
}

/// Seals `payload` into `e` with the direction's 32-byte key (ENC-1..ENC-3): sets
/// encrypted_payload and clears payload and signature. Precondition: e is a v1.1 session message
/// header (version "1.1", session_id and sequence_num set); otherwise errc::invalid_argument and e
/// is unchanged. The caller guarantees the sequence number is never reused under `key` (ENC-4).
/// seal_text() seals a plaintext given as text (for tests that need one that is not an object).
/// A session seals with its direction's keyed context (crypto::aes_gcm_key); the byte_view forms
/// key one for the call.
inline std::error_code seal_text(envelope& e, const crypto::aes_gcm_key& key, std::string_view plaintext) {
  if (!e.is_sealed_session_message() || !e.sequence_num || !key.keyed()) return errc::invalid_argument;
  e.payload.reset();
  e.signature.reset();
  e.encrypted_payload.reset();
  const auto nonce = session_nonce(*e.sequence_num);
  bytes sealed(plaintext.size() + crypto::gcm_tag_bytes);
  if (const auto ec = key.seal(nonce, as_bytes(associated_data(e)), as_bytes(plaintext), sealed)) return ec;
  e.encrypted_payload = std::move(sealed);
  return {};
}
inline std::error_code seal_text(envelope& e, byte_view key, std::string_view plaintext) {
  return seal_text(e, crypto::aes_gcm_key(key), plaintext);
}
inline std::error_code seal(envelope& e, const crypto::aes_gcm_key& key, const boost::json::object& payload) {
  return seal_text(e, key, jcs::canonicalize(payload));
}
inline std::error_code seal(envelope& e, byte_view key, const boost::json::object& payload) {
  return seal_text(e, crypto::aes_gcm_key(key), jcs::canonicalize(payload));
}

/// Opens the encrypted payload of `e` with the direction's key. DECRYPTION_FAILED when the tag
/// does not verify (ENC-5), INVALID_FORMAT when the plaintext is not a JSON object (ENC-6).
/// Never changes `e`.
inline result<boost::json::object> open(const envelope& e, const crypto::aes_gcm_key& key) {
  if (!e.encrypted_payload || !e.sequence_num || e.encrypted_payload->size() < crypto::gcm_tag_bytes)
    return failure{errc::decryption_failed, "no encrypted payload"};
  const auto nonce = session_nonce(*e.sequence_num);
  bytes plaintext(e.encrypted_payload->size() - crypto::gcm_tag_bytes);
  if (key.open(nonce, as_bytes(associated_data(e)), *e.encrypted_payload, plaintext))
    return failure{errc::decryption_failed, "the authentication tag does not verify"};
  auto value = jcs::parse_strict(std::string_view(reinterpret_cast<const char*>(plaintext.data()), plaintext.size()));
  if (!value) return failure{errc::invalid_format, "the decrypted payload is not valid JSON: " + value.error().message};
  if (!value->is_object()) return failure{errc::invalid_format, "the decrypted payload is not a JSON object"};
  return std::move(value->get_object());
}
inline result<boost::json::object> open(const envelope& e, byte_view key) { return open(e, crypto::aes_gcm_key(key)); }

}  // namespace peerproto
