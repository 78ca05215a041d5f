// The three-message handshake (SPEC §8): payload codecs, version and suite negotiation, the
// transcript-bound key schedule, and the initiator's and responder's steps. Functions here build
// and check envelopes; the engine keeps the pending state, the limits and the timers.
#pragma once

#include <peerproto/crypto.hpp>
#include <peerproto/envelope.hpp>
#include <peerproto/error.hpp>
#include <peerproto/jcs.hpp>
#include <peerproto/version.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace peerproto {

/// Where randomness comes from: the CSPRNG in the node, a deterministic stream in fuzz targets.
using random_source = std::function<void(std::span<std::uint8_t>)>;

inline random_source system_random() { return [](std::span<std::uint8_t> out) { crypto::random_bytes(out); }; }

template <std::size_t N>
std::array<std::uint8_t, N> draw(const random_source& rng) {
  std::array<std::uint8_t, N> a{};
  rng(a);
  return a;
}

/// Message 1's payload.
struct hello {
  crypto::public_key identity_key{};
  std::optional<crypto::public_key> ephemeral_key;
  std::vector<std::string> supported_versions;
  std::vector<std::string> cipher_suites;
  std::array<std::uint8_t, 32> challenge{};
};

/// Message 2's payload.
struct hello_ack {
  message_nonce in_reply_to{};
  uuid session_id;
  std::string selected_version;
  std::optional<std::string> selected_suite;
  crypto::public_key identity_key{};
  std::optional<crypto::public_key> ephemeral_key;
  std::array<std::uint8_t, 32> challenge{};
  crypto::digest challenge_response{};
};

/// Message 3's payload.
struct hello_confirm {
  uuid session_id;
  crypto::digest challenge_response{};
  std::optional<crypto::digest> key_confirmation;
};

namespace detail {
template <std::size_t N>
bool hex_member(const boost::json::object& o, std::string_view name, std::array<std::uint8_t, N>& out) {
  const auto* s = o.at(name).if_string();
  return s && hex_decode_into(*s, out);
}

// A non-empty (when required) array of distinct strings of 1..64 characters (HS-3, HS-4).
inline std::optional<std::vector<std::string>> string_list(const boost::json::value& v, bool non_empty) {
  const auto* a = v.if_array();
  if (!a || (non_empty && a->empty()) || a->size() > 16) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& e : *a) {
    const auto* s = e.if_string();
    if (!s || s->empty() || s->size() > 64) return std::nullopt;
    if (std::find(out.begin(), out.end(), *s) != out.end()) return std::nullopt;
    out.emplace_back(*s);
  }
  return out;
}
}  // namespace detail

inline result<hello> parse_hello(const boost::json::object& p) {
  if (auto checked = detail::check_members(p, "handshake payload", errc::invalid_format, {"identity_key", "supported_versions", "cipher_suites", "challenge"},
                                     {"ephemeral_key", "capabilities"}); !checked)
    return checked.error();
  hello h;
  if (!detail::hex_member(p, "identity_key", h.identity_key)) return failure{errc::invalid_format, "identity_key is not 64 lowercase hex"};
  auto versions = detail::string_list(p.at("supported_versions"), true);
  if (!versions) return failure{errc::invalid_format, "supported_versions is not a non-empty list of distinct strings"};
  h.supported_versions = std::move(*versions);
  auto suites = detail::string_list(p.at("cipher_suites"), false);
  if (!suites) return failure{errc::invalid_format, "cipher_suites is not a list of distinct strings"};
  h.cipher_suites = std::move(*suites);
  if (!detail::hex_member(p, "challenge", h.challenge)) return failure{errc::invalid_format, "challenge is not 64 lowercase hex"};
  if (p.contains("capabilities") && !p.at("capabilities").is_object())
    return failure{errc::invalid_format, "capabilities is not an object"};
  if (p.contains("ephemeral_key") != !h.cipher_suites.empty())
    return failure{errc::invalid_format, "ephemeral_key must be present exactly when cipher suites are offered"};  // HS-5
  if (p.contains("ephemeral_key")) {
    crypto::public_key k;
    if (!detail::hex_member(p, "ephemeral_key", k)) return failure{errc::invalid_format, "ephemeral_key is not 64 lowercase hex"};
    h.ephemeral_key = k;
  }
  return h;
}

inline boost::json::object to_json(const hello& h) {
  boost::json::object o{{"identity_key", hex_encode(h.identity_key)},
                        {"supported_versions", boost::json::array(h.supported_versions.begin(), h.supported_versions.end())},
                        {"cipher_suites", boost::json::array(h.cipher_suites.begin(), h.cipher_suites.end())},
                        {"challenge", hex_encode(h.challenge)}};
  if (h.ephemeral_key) o["ephemeral_key"] = hex_encode(*h.ephemeral_key);
  return o;
}

inline result<hello_ack> parse_hello_ack(const boost::json::object& p) {
  if (auto checked = detail::check_members(p, "handshake_ack payload", errc::invalid_format, {"in_reply_to", "session_id", "selected_version", "selected_suite", "identity_key",
                                         "challenge", "challenge_response"},
                                     {"ephemeral_key"}); !checked)
    return checked.error();
  hello_ack a;
  const auto bad = [](const char* what) { return failure{errc::invalid_format, what}; };
  if (!detail::hex_member(p, "in_reply_to", a.in_reply_to)) return bad("in_reply_to is not a nonce");
  const auto sid = detail::uuid_member(p, "session_id");
  if (!sid) return bad("session_id is not a lowercase UUID v4");
  a.session_id = *sid;
  const auto* v = p.at("selected_version").if_string();
  if (!v) return bad("selected_version is not a string");
  a.selected_version = *v;
  const auto& suite = p.at("selected_suite");
  if (suite.is_string()) a.selected_suite = std::string(suite.get_string());
  else if (!suite.is_null()) return bad("selected_suite is neither a string nor null");
  if (!detail::hex_member(p, "identity_key", a.identity_key)) return bad("identity_key is not 64 lowercase hex");
  if (!detail::hex_member(p, "challenge", a.challenge)) return bad("challenge is not 64 lowercase hex");
  if (!detail::hex_member(p, "challenge_response", a.challenge_response)) return bad("challenge_response is not 64 lowercase hex");
  if (p.contains("ephemeral_key") != a.selected_suite.has_value())
    return bad("ephemeral_key must be present exactly when a suite is selected");  // HS-13
  if (a.selected_suite) {
    crypto::public_key k;
    if (!detail::hex_member(p, "ephemeral_key", k)) return bad("ephemeral_key is not 64 lowercase hex");
    a.ephemeral_key = k;
  }
  return a;
}

inline boost::json::object to_json(const hello_ack& a) {
  boost::json::object o{{"in_reply_to", hex_encode(a.in_reply_to)},
                        {"session_id", format_uuid(a.session_id)},
                        {"selected_version", a.selected_version},
                        {"selected_suite", a.selected_suite ? boost::json::value(*a.selected_suite) : boost::json::value(nullptr)},
                        {"identity_key", hex_encode(a.identity_key)},
                        {"challenge", hex_encode(a.challenge)},
                        {"challenge_response", hex_encode(a.challenge_response)}};
  if (a.ephemeral_key) o["ephemeral_key"] = hex_encode(*a.ephemeral_key);
  return o;
}

inline result<hello_confirm> parse_hello_confirm(const boost::json::object& p) {
  if (auto checked = detail::check_members(p, "handshake_confirm payload", errc::invalid_format, {"session_id", "challenge_response"},
                                     {"key_confirmation"}); !checked)
    return checked.error();
  hello_confirm c;
  const auto sid = detail::uuid_member(p, "session_id");
  if (!sid) return failure{errc::invalid_format, "session_id is not a lowercase UUID v4"};
  c.session_id = *sid;
  if (!detail::hex_member(p, "challenge_response", c.challenge_response))
    return failure{errc::invalid_format, "challenge_response is not 64 lowercase hex"};
  if (p.contains("key_confirmation")) {
    crypto::digest d;
    if (!detail::hex_member(p, "key_confirmation", d)) return failure{errc::invalid_format, "key_confirmation is not 64 lowercase hex"};
    c.key_confirmation = d;
  }
  return c;
}

inline boost::json::object to_json(const hello_confirm& c) {
  boost::json::object o{{"session_id", format_uuid(c.session_id)}, {"challenge_response", hex_encode(c.challenge_response)}};
  if (c.key_confirmation) o["key_confirmation"] = hex_encode(*c.key_confirmation);
  return o;
}

/// What both sides agree on.
struct negotiated {
  std::string version;
  std::optional<std::string> suite;
};

/// VER-4..VER-9, HS-6: the highest common version; for 1.1 the first suite in the initiator's
/// order that we support, falling back to 1.0 when none is common. INVALID_VERSION without a
/// common version; ENCRYPTION_REQUIRED when encryption is required and cannot be had.
inline result<negotiated> negotiate(const hello& h, std::span<const std::string> our_versions,
                                    std::span<const std::string> our_suites, bool require_encryption) {
  const auto ours = [&](const std::string& v) { return std::find(our_versions.begin(), our_versions.end(), v) != our_versions.end(); };
  const auto theirs = [&](std::string_view v) { return std::find(h.supported_versions.begin(), h.supported_versions.end(), v) != h.supported_versions.end(); };
  std::optional<std::string> suite;
  for (const auto& s : h.cipher_suites)
    if (std::find(our_suites.begin(), our_suites.end(), s) != our_suites.end()) { suite = s; break; }
  const bool common_1_1 = theirs(version_1_1) && ours(std::string(version_1_1));
  if (common_1_1 && suite) return negotiated{std::string(version_1_1), suite};
  // VER-7: a peer that offers 1.0, or 1.1 without a common suite, could talk to us unencrypted;
  // a peer with no known version at all gets INVALID_VERSION (VER-4) like anywhere else.
  if (require_encryption && (common_1_1 || theirs(version_1_0)))
    return failure{errc::encryption_required, "this node requires an encrypted (1.1) session"};
  if (!require_encryption && theirs(version_1_0) && ours(std::string(version_1_0))) return negotiated{std::string(version_1_0), std::nullopt};
  return failure{errc::invalid_version, "no protocol version in common"};
}

/// The three keys of HS-11.
struct session_keys {
  crypto::secret<32> k_i2r, k_r2i, k_confirm;
};

/// HS-10, HS-11: X25519, then HKDF over the transcript. CHALLENGE_INVALID for an all-zero shared
/// secret. The ikm is wiped before returning.
inline result<session_keys> derive_session_keys(const crypto::secret<32>& own_private, const crypto::public_key& peer_public,
                                                std::string_view msg1_jcs, std::string_view msg2_jcs) {
  crypto::secret<32> ikm;
  if (auto ec = crypto::x25519_agree(own_private, peer_public, ikm))
    return failure{errc::challenge_invalid, "the key exchange gave an all-zero secret"};
  const auto salt = crypto::sha256(as_bytes(msg1_jcs), as_bytes(msg2_jcs));
  crypto::secret<96> okm;
  if (crypto::hkdf_sha256(byte_view(ikm.data(), 32), salt, as_bytes(hkdf_info_session_key), okm.span()))
    return failure{errc::internal_error, "key derivation failed"};  // only for outputs over 8160 bytes
  session_keys k;
  std::copy_n(okm.data(), 32, k.k_i2r.data());
  std::copy_n(okm.data() + 32, 32, k.k_r2i.data());
  std::copy_n(okm.data() + 64, 32, k.k_confirm.data());
  return k;
}

/// HS-12
inline crypto::digest key_confirmation(const crypto::secret<32>& k_confirm) {
  return crypto::hmac_sha256(k_confirm.view(), as_bytes(key_confirmation_label));
}

/// A sessionless, signed envelope header from `from` to `to` at `now`.
inline envelope make_header(std::string_view version, std::string_view msg_type, std::string_view from, std::string_view to,
                            sys_milliseconds now, const random_source& rng) {
  envelope e;
  e.version = std::string(version);
  e.msg_type = std::string(msg_type);
  e.sender_id = std::string(from);
  e.recipient_id = std::string(to);
  e.timestamp = {now, 3};
  e.nonce = draw<16>(rng);
  return e;
}

}  // namespace peerproto
