// Key rotation statements (SPEC §2.2): a node moves its entity id from one identity key to the
// next, or revokes it, with a statement signed by the key it leaves and countersigned by the key
// it takes. Statements are self-authenticating: whoever relays them, a receiver checks them
// against the key it has bound. A node's statements form its chain, counters 1, 2, 3, ...
#pragma once

#include <peerproto/crypto.hpp>
#include <peerproto/encoding.hpp>
#include <peerproto/envelope.hpp>
#include <peerproto/error.hpp>
#include <peerproto/jcs.hpp>
#include <peerproto/version.hpp>

#include <boost/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace peerproto {

/// The `schema` member of every statement (KR-1); it also keeps a statement's signing input
/// apart from any envelope's.
inline constexpr std::string_view key_rotation_schema = "peerproto.key_rotation.v1";

/// One statement (KR-1). `new_key` and `new_signature` are absent together: a revocation.
struct key_rotation {
  std::string entity_id;
  crypto::public_key old_key{};
  std::optional<crypto::public_key> new_key;
  std::uint64_t counter = 0;                ///< 1 for an identity's first rotation, then +1 each
  utc_timestamp effective{};                ///< from when the new key is used
  crypto::signature old_signature{};
  std::optional<crypto::signature> new_signature;

  bool revokes() const noexcept { return !new_key; }
};

/// The statement as JSON; without its two signatures, it is the signing input's object (KR-2).
inline boost::json::object to_json(const key_rotation& r, bool with_signatures = true) {
  boost::json::object o;
  o.emplace("schema", key_rotation_schema);
  o.emplace("entity_id", r.entity_id);
  o.emplace("old_key", hex_encode(r.old_key));
  o.emplace("new_key", r.new_key ? boost::json::value(hex_encode(*r.new_key)) : boost::json::value(nullptr));
  o.emplace("counter", r.counter);
  o.emplace("effective", format_timestamp(r.effective));
  if (with_signatures) {
    o.emplace("old_signature", hex_encode(r.old_signature));
    o.emplace("new_signature", r.new_signature ? boost::json::value(hex_encode(*r.new_signature)) : boost::json::value(nullptr));
  }
  return o;
}

/// KR-2: JCS of the statement without `old_signature` and `new_signature`.
inline std::string signing_input(const key_rotation& r) { return jcs::canonicalize(to_json(r, false)); }

/// A statement moving `entity_id` from `old_key` to `next` (nullptr: revoking it), signed by both.
/// Only a key held in a token can fail to sign (std::runtime_error).
inline key_rotation make_key_rotation(std::string entity_id, const crypto::ed25519_keypair& old_key,
                                      const crypto::ed25519_keypair* next, std::uint64_t counter, utc_timestamp effective) {
  key_rotation r;
  r.entity_id = std::move(entity_id);
  r.old_key = old_key.public_key_bytes();
  if (next) r.new_key = next->public_key_bytes();
  r.counter = counter;
  r.effective = effective;
  const auto input = signing_input(r);
  r.old_signature = old_key.sign(as_bytes(input));
  if (next) r.new_signature = next->sign(as_bytes(input));
  return r;
}

/// KR-2: both signatures verify (the old key's alone for a revocation).
inline bool verify(const key_rotation& r) {
  const auto input = signing_input(r);
  if (!crypto::ed25519_verify(r.old_key, as_bytes(input), r.old_signature)) return false;
  return !r.new_key || (r.new_signature && crypto::ed25519_verify(*r.new_key, as_bytes(input), *r.new_signature));
}

namespace detail {
// Lowercase hex of exactly N bytes (ID-1); nullopt otherwise.
template <std::size_t N>
std::optional<std::array<std::uint8_t, N>> lower_hex_member(const boost::json::object& o, std::string_view name) {
  const auto* s = string_member(o, name);
  if (!s) return std::nullopt;
  auto b = hex_decode_fixed<N>(*s);
  if (b && hex_encode(*b) != *s) return std::nullopt;
  return b;
}
}  // namespace detail

/// KR-1: a statement's form. INVALID_FORMAT naming the first member that is wrong.
inline result<key_rotation> key_rotation_from_json(const boost::json::value& v) {
  const auto* o = v.if_object();
  if (!o) return failure{errc::invalid_format, "a key rotation statement is a JSON object"};
  if (auto m = detail::check_members(*o, "the key rotation statement", errc::invalid_format,
                                     {"schema", "entity_id", "old_key", "new_key", "counter", "effective", "old_signature",
                                      "new_signature"});
      !m)
    return failure{errc::invalid_format, m.error().message};
  const auto bad = [](std::string_view member, std::string_view why) {
    return failure{errc::invalid_format, "key rotation member '" + std::string(member) + "' " + std::string(why)};
  };
  key_rotation r;
  if (const auto* s = detail::string_member(*o, "schema"); !s || *s != key_rotation_schema)
    return bad("schema", "is not \"peerproto.key_rotation.v1\"");
  const auto* id = detail::string_member(*o, "entity_id");
  if (!id || !is_entity_id(*id)) return bad("entity_id", "is not an entity id");
  r.entity_id = std::string(*id);
  const auto old_key = detail::lower_hex_member<32>(*o, "old_key");
  if (!old_key) return bad("old_key", "is not 64 lowercase hex characters");
  r.old_key = *old_key;
  const bool revocation = o->at("new_key").is_null();
  if (!revocation) {
    r.new_key = detail::lower_hex_member<32>(*o, "new_key");
    if (!r.new_key) return bad("new_key", "is neither null nor 64 lowercase hex characters");
    if (*r.new_key == r.old_key) return bad("new_key", "is the old key");
  }
  const auto& counter = o->at("counter");
  const auto n = counter.is_uint64() ? counter.get_uint64() : counter.is_int64() ? static_cast<std::uint64_t>(std::max<std::int64_t>(counter.get_int64(), 0)) : 0;
  if (n < 1 || n > limits::max_sequence_num) return bad("counter", "is not an integer from 1 to 2^53-1");
  r.counter = n;
  const auto* eff = detail::string_member(*o, "effective");
  const auto ts = eff ? parse_timestamp(*eff) : std::nullopt;
  if (!ts) return bad("effective", "is not an RFC 3339 UTC timestamp");
  r.effective = *ts;
  const auto old_sig = detail::lower_hex_member<64>(*o, "old_signature");
  if (!old_sig) return bad("old_signature", "is not 128 lowercase hex characters");
  r.old_signature = *old_sig;
  if (o->at("new_signature").is_null() != revocation)
    return bad("new_signature", revocation ? "must be null in a revocation" : "must be a signature when new_key is a key");
  if (!revocation) {
    r.new_signature = detail::lower_hex_member<64>(*o, "new_signature");
    if (!r.new_signature) return bad("new_signature", "is not 128 lowercase hex characters");
  }
  return r;
}

/// KR-3: the payload of a `key_rotation` message, {"chain": [statement, ...]}: 1 to `max_chain`
/// statements of one chain in order (each counter one more than the last, each old_key the last
/// new_key), a revocation only last. Signatures are not checked here (KR-4 orders that).
inline result<std::vector<key_rotation>> parse_rotation_chain(const boost::json::object& payload,
                                                              std::size_t max_chain = limits::max_rotation_chain) {
  if (auto m = detail::check_members(payload, "the key_rotation payload", errc::invalid_format, {"chain"}); !m)
    return failure{errc::invalid_format, m.error().message};
  const auto* arr = payload.at("chain").if_array();
  if (!arr || arr->empty() || arr->size() > max_chain)
    return failure{errc::invalid_format, "'chain' is an array of 1 to " + std::to_string(max_chain) + " statements"};
  std::vector<key_rotation> chain;
  for (const auto& v : *arr) {
    auto r = key_rotation_from_json(v);
    if (!r) return r.error();
    if (!chain.empty()) {
      const auto& last = chain.back();
      if (last.revokes()) return failure{errc::invalid_format, "a revocation can only be the last statement of a chain"};
      if (r->counter != last.counter + 1 || r->old_key != *last.new_key || r->entity_id != last.entity_id)
        return failure{errc::invalid_format,
                       "the chain's statements do not follow each other (one entity_id, counter + 1, old_key = the last new_key)"};
    }
    chain.push_back(std::move(*r));
  }
  return chain;
}

/// The JSON of a chain, as a `key_rotation` payload and GET /key-rotation carry it.
inline boost::json::array to_json(const std::vector<key_rotation>& chain) {
  boost::json::array a;
  for (const auto& r : chain) a.push_back(to_json(r));
  return a;
}

}  // namespace peerproto
