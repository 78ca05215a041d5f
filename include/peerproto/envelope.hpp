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
#include <charconv>
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

namespace detail {
enum member_index : std::size_t {
  m_version, m_msg_type, m_sender, m_recipient, m_timestamp, m_nonce,
  m_session, m_sequence, m_payload, m_sealed, m_signature
};

/// An envelope's members as read from its text, before their forms are checked. Two readers fill
/// it (the direct one for the common case, the strict JSON parser for everything else) and one
/// validator, envelope_from_members(), checks it, so there is one statement of §4's rules. It
/// points into the text read and into `storage`, so it is neither copied nor moved.
struct envelope_members_read {
  enum class form : std::uint8_t { absent, string, integer, object, other };
  std::array<form, envelope_members.size()> forms{};
  std::array<std::string_view, envelope_members.size()> strings{};  ///< where the form is string
  std::uint64_t sequence_num = 0;                                   ///< where it is integer: a token above 0
  boost::json::object* payload = nullptr;                           ///< where it is object
  boost::json::value storage;  ///< the parsed JSON (general reader) or the payload (direct reader)

  envelope_members_read() = default;
  envelope_members_read(const envelope_members_read&) = delete;
  envelope_members_read& operator=(const envelope_members_read&) = delete;

  bool has(std::size_t i) const { return forms[i] != form::absent; }
  const std::string_view* string(std::size_t i) const { return forms[i] == form::string ? &strings[i] : nullptr; }
};

/// The direct reader: an envelope's members straight from its text, without building a JSON
/// object for the envelope itself (only the payload is parsed, by the strict parser). It gives up
/// (false, leaving `m` as it was) at anything it does not handle: an escape or a non-ASCII byte in
/// a member's string, a value that is not a string (but for the payload and a sequence number of
/// plain digits), an unknown or repeated member, or anything after the object. The general reader
/// then decides, so the members read here are those the general reader gives for the same text (a
/// property and the envelope fuzz target check this).
inline bool read_members_direct(std::string_view text, const jcs::parse_limits& lim, envelope_members_read& m) {
  if (text.size() > lim.max_bytes || lim.max_depth < 2) return false;
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
  std::array<std::string_view, envelope_members.size()> strings{};
  unsigned seen = 0;
  std::uint64_t sequence_num = 0;
  boost::json::value payload;
  ws();
  if (p == end || *p != '{') return false;
  ++p;
  for (;;) {
    ws();
    std::string_view name;
    if (!plain_string(name)) return false;
    const auto i = static_cast<std::size_t>(std::find(envelope_members.begin(), envelope_members.end(), name) - envelope_members.begin());
    if (i == envelope_members.size() || (seen & (1u << i))) return false;
    seen |= 1u << i;
    ws();
    if (p == end || *p != ':') return false;
    ++p;
    ws();
    if (i == m_payload) {
      if (p == end || *p != '{') return false;
      jcs::detail::strict_parser parser(std::string_view(p, static_cast<std::size_t>(end - p)), lim);
      p = parser.value_at(payload, 2);  // the envelope is depth 1
      if (!p) return false;
    } else if (i == m_sequence) {  // plain digits without a leading zero, short enough for int64
      const char* digits = p;
      while (p != end && *p >= '0' && *p <= '9' && p - digits < 17) ++p;
      if (p == digits || *digits == '0' || p - digits > 16) return false;
      std::from_chars(digits, p, sequence_num);
    } else if (!plain_string(strings[i])) {
      return false;
    }
    ws();
    if (p == end) return false;
    if (*p == '}') break;
    if (*p != ',') return false;
    ++p;
  }
  ++p;
  ws();
  if (p != end) return false;

  using form = envelope_members_read::form;
  for (std::size_t i = 0; i < envelope_members.size(); ++i)
    if (seen & (1u << i)) m.forms[i] = i == m_payload ? form::object : i == m_sequence ? form::integer : form::string;
  m.strings = strings;
  m.sequence_num = sequence_num;
  if (seen & (1u << m_payload)) {
    m.storage = std::move(payload);
    m.payload = &m.storage.get_object();
  }
  return true;
}

/// The general reader: the members of a parsed JSON value (in m.storage). INVALID_FORMAT for a
/// non-object or an unknown member (the first in the text); the known members are read either
/// way, for an error reply that names what it can (ERR-3, ERR-4).
inline result<void> read_members_json(envelope_members_read& m) {
  auto* obj = m.storage.if_object();
  if (!obj) return failure{errc::invalid_format, "the envelope is not a JSON object"};
  using form = envelope_members_read::form;
  std::optional<failure> unknown;
  for (auto& kv : *obj) {
    const auto i = static_cast<std::size_t>(std::find(envelope_members.begin(), envelope_members.end(), kv.key()) - envelope_members.begin());
    if (i == envelope_members.size()) {
      if (!unknown && !PEERPROTO_FAULT(ignore_unknown_members)) unknown = bad(kv.key(), "is not an envelope member");
      continue;
    }
    auto& v = kv.value();
    if (const auto* s = v.if_string()) {
      m.forms[i] = form::string;
      m.strings[i] = *s;
    } else if (v.is_int64() && v.get_int64() > 0) {  // ENV-14: `1.0` and `1e0` stay doubles: other
      m.forms[i] = form::integer;
      if (i == m_sequence) m.sequence_num = static_cast<std::uint64_t>(v.get_int64());
    } else if (auto* o = v.if_object()) {
      m.forms[i] = form::object;
      if (i == m_payload) m.payload = o;
    } else {
      m.forms[i] = form::other;
    }
  }
  if (unknown) return *unknown;
  return {};
}

/// The one validator of an envelope's members (SPEC §4), taking the payload out of them. Checks
/// run in the order of the member table, so the reported failure is the first rule broken in that
/// order (ERR-9): MISSING_FIELDS for an absent required member; INVALID_FORMAT for a wrong form;
/// INVALID_VERSION, last, for an unsupported version on anything but a handshake (ENV-4, VER-4).
/// Does not check the recipient, the clock, or the signature.
inline result<envelope> envelope_from_members(envelope_members_read& m) {
  using form = envelope_members_read::form;
  for (std::size_t i = 0; i <= m_nonce; ++i)
    if (!m.has(i)) return missing(envelope_members[i]);

  envelope e;
  const auto* version = m.string(m_version);
  if (!version) return bad("version", "is not a string");
  e.version = *version;

  const auto* msg_type = m.string(m_msg_type);
  if (!msg_type || !is_msg_type(*msg_type)) return bad("msg_type", "is not a message type (^[a-z][a-z0-9_]{0,63}$)");
  e.msg_type = *msg_type;

  for (auto [i, field] : {std::pair{m_sender, &e.sender_id}, std::pair{m_recipient, &e.recipient_id}}) {
    const auto* s = m.string(i);
    if (!s || !is_entity_id(*s)) return bad(envelope_members[i], "is not an entity id (1-128 of A-Z a-z 0-9 . _ : @ -)");
    *field = *s;
  }

  const auto* ts = m.string(m_timestamp);
  const auto parsed_ts = ts ? parse_timestamp(*ts) : std::nullopt;
  if (!parsed_ts) return bad("timestamp", "is not an RFC 3339 UTC timestamp (YYYY-MM-DDTHH:MM:SS[.fff]Z)");
  e.timestamp = *parsed_ts;

  const auto* nonce = m.string(m_nonce);
  if (!nonce || !hex_decode_into(*nonce, e.nonce)) return bad("nonce", "is not 32 lowercase hex characters");

  if (m.has(m_session) && !m.has(m_sequence)) return missing("sequence_num");
  if (m.has(m_sequence) && !m.has(m_session)) return missing("session_id");
  if (m.has(m_session)) {
    const auto* s = m.string(m_session);
    if (!s || !(e.session_id = parse_uuid_v4(*s))) return bad("session_id", "is not a lowercase canonical UUID v4");
    // ENV-14: an integer token, 1 .. 2^53-1.
    if (m.forms[m_sequence] != form::integer || m.sequence_num > limits::max_sequence_num)
      return bad("sequence_num", "is not an integer from 1 to 2^53-1");
    e.sequence_num = m.sequence_num;
  }

  if (!m.has(m_payload) && !m.has(m_sealed)) return missing("payload");
  if (m.has(m_payload) && m.has(m_sealed)) return bad("encrypted_payload", "appears together with 'payload'");
  if (m.has(m_payload)) {
    if (!m.payload) return bad("payload", "is not a JSON object");
    if (e.is_sealed_session_message()) return bad("payload", "is not allowed in a v1.1 session message (use encrypted_payload)");
    e.payload = std::move(*m.payload);
  } else {
    if (!e.is_sealed_session_message()) return bad("encrypted_payload", "is only allowed in a v1.1 session message");
    const auto* s = m.string(m_sealed);
    auto decoded = s ? base64_decode(*s) : std::nullopt;
    if (!decoded || decoded->size() < crypto::gcm_tag_bytes)
      return bad("encrypted_payload", "is not padded base64 of at least 16 bytes");
    e.encrypted_payload = std::move(*decoded);
  }

  if (e.is_sealed_session_message()) {
    if (m.has(m_signature)) return bad("signature", "is not allowed in a v1.1 session message");
  } else {
    if (!m.has(m_signature)) return missing("signature");
    const auto* s = m.string(m_signature);
    if (!s || !hex_decode_into(*s, e.signature.emplace())) return bad("signature", "is not 128 lowercase hex characters");
  }

  if (!is_supported_version(e.version) && e.msg_type != "handshake")
    return failure{errc::invalid_version, "version '" + e.version + "' is not supported"};
  return e;
}

/// Reads envelope text into `m`: the direct reader when it can, the strict JSON rules of §3
/// otherwise (PAYLOAD_TOO_LARGE over lim.max_bytes, INVALID_FORMAT for what is not JSON), then
/// read_members_json.
inline result<void> read_members(std::string_view text, const jcs::parse_limits& lim, envelope_members_read& m) {
  if (read_members_direct(text, lim, m)) return {};
  auto value = jcs::parse_strict(text, lim);
  if (!value) return value.error();
  m.storage = std::move(*value);
  return read_members_json(m);
}
}  // namespace detail

/// Validates a parsed JSON value as an envelope (SPEC §4): detail::envelope_from_members on its
/// members, taking the payload out of `value`.
inline result<envelope> envelope_from_json(boost::json::value value) {
  detail::envelope_members_read m;
  m.storage = std::move(value);
  if (auto read = detail::read_members_json(m); !read) return read.error();
  return detail::envelope_from_members(m);
}

/// Parses and validates envelope text (SPEC §3, §4).
inline result<envelope> parse_envelope(std::string_view text, const jcs::parse_limits& lim = {}) {
  detail::envelope_members_read m;
  if (auto read = detail::read_members(text, lim, m); !read) return read.error();
  return detail::envelope_from_members(m);
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
