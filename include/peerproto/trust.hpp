// Binding entity ids to identity keys (SPEC §2): the pinned, tofu and open policies.
#pragma once

#include <peerproto/crypto.hpp>
#include <peerproto/error.hpp>
#include <peerproto/fault.hpp>
#include <peerproto/key_rotation.hpp>
#include <peerproto/version.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace peerproto {

enum class trust_policy { pinned, tofu, open };

/// What the rotations an entity made left behind (KR-5..KR-7): the last counter applied, the key
/// still accepted during the grace period, and whether the entity revoked its key.
struct rotation_record {
  std::uint64_t counter = 0;                     ///< the last statement applied; 0: never rotated
  std::optional<crypto::public_key> previous;    ///< the key the last statement replaced or revoked
  sys_milliseconds previous_until{};             ///< `previous` is accepted before this instant (KR-6)
  bool revoked = false;                          ///< KR-7: nothing from this entity is accepted
};

/// What applying a chain did, for the reply and the audit record.
struct rotation_applied {
  std::uint64_t from_counter = 0, to_counter = 0;
  crypto::public_key from_key{};
  std::optional<crypto::public_key> to_key;      ///< nullopt: revoked
};

class trust_store {
 public:
  /// What accepting a handshake key did, so that the node can persist new pins and audit them.
  enum class binding { known, pinned_now, replaced };

  /// A handshake may bind a new entity id only while the table holds fewer than `max_bound` keys
  /// (ID-10); pin() (configuration, pins restored after a restart) is not bounded.
  explicit trust_store(trust_policy policy, std::size_t max_bound = limits::max_pinned_keys)
      : policy_(policy), max_bound_(max_bound) {}

  trust_policy policy() const noexcept { return policy_; }

  /// Configures a key (pinned policy) or restores a persisted tofu pin.
  void pin(std::string entity_id, const crypto::public_key& key) {
    keys_[std::move(entity_id)] = key;
    ++generation_;
  }

  /// Forgets the key of `entity_id`; false when none was bound. A revocation is lifted by the
  /// operator pinning a key again; the counter stays, so no older statement applies again.
  bool unpin(std::string_view entity_id) {
    const auto it = keys_.find(entity_id);
    if (it == keys_.end()) return false;
    keys_.erase(it);
    ++generation_;
    return true;
  }
  /// An operator's pin (`ctl peers pin`): binds the key and lifts a revocation.
  void pin_by_operator(std::string entity_id, const crypto::public_key& key) {
    if (auto it = rotations_.find(entity_id); it != rotations_.end()) it->second.revoked = false;
    pin(std::move(entity_id), key);
  }

  /// Restores what rotations left (after a restart).
  void restore_rotation(std::string entity_id, const rotation_record& r) { rotations_[std::move(entity_id)] = r; }
  const rotation_record* rotation_of(std::string_view entity_id) const {
    const auto it = rotations_.find(entity_id);
    return it == rotations_.end() ? nullptr : &it->second;
  }

  /// KR-4, KR-5, KR-7: applies a chain (parsed by parse_rotation_chain) that `sender_id` sent, or
  /// changes nothing. UNKNOWN_SENDER for a chain about another entity, a revoked entity, or a
  /// chain with no newer statement leaving the bound key; REPLAY_DETECTED when no statement is
  /// newer than the last one applied, or one to apply takes effect after now + tolerance;
  /// INVALID_SIGNATURE when one to apply does not verify. Statements already applied, and those
  /// before the one that leaves the bound key (a peer may have bound a later key of the chain), are
  /// passed over. The replaced key stays acceptable until its statement's effective time + grace
  /// (KR-6); a revocation removes the binding and blocks the entity (KR-7).
  result<rotation_applied> apply_rotation(std::string_view sender_id, const std::vector<key_rotation>& chain, sys_milliseconds now,
                                          std::chrono::milliseconds grace, std::chrono::milliseconds tolerance) {
    if (PEERPROTO_FAULT(rotation_ignores_entity)) sender_id = chain.front().entity_id;  // follows the statement's entity
    if (chain.front().entity_id != sender_id)  // one chain is about one entity (KR-3)
      return failure{errc::unknown_sender, "the statement is about entity '" + chain.front().entity_id + "', not its sender"};
    const auto* applied = rotation_of(sender_id);
    rotation_record record = applied ? *applied : rotation_record{};
    if (record.revoked) return failure{errc::unknown_sender, "this entity revoked its key"};
    auto newer = chain.begin();
    while (newer != chain.end() && newer->counter <= record.counter && !PEERPROTO_FAULT(rotation_ignores_counter)) ++newer;
    if (newer == chain.end())
      return failure{errc::replay_detected, "the last rotation applied for this entity has counter " +
                                                std::to_string(record.counter) + "; the chain holds nothing newer"};
    const auto bound = key_for(sender_id);
    const auto first = std::find_if(newer, chain.end(), [&](const key_rotation& r) { return bound && r.old_key == *bound; });
    if (first == chain.end()) return failure{errc::unknown_sender, "no newer statement's old_key is the key bound to this entity"};
    auto end = first;  // the statements to apply are [first, end)
    std::optional<failure> refused;
    for (; end != chain.end() && !refused; ++end) {
      if (!verify(*end) && !PEERPROTO_FAULT(rotation_skips_signatures))
        refused = failure{errc::invalid_signature, "statement " + std::to_string(end->counter) + "'s signatures do not verify"};
      else if (end->effective.time > now + tolerance)
        refused = failure{errc::replay_detected, "statement " + std::to_string(end->counter) + " takes effect in the future"};
    }
    if (refused) {
      --end;  // the statement refused
      if (!PEERPROTO_FAULT(rotation_keeps_valid_prefix) || end == first) return *refused;  // changes nothing
    }
    const auto& last = *std::prev(end);
    rotation_applied done{record.counter, last.counter, *bound, last.new_key};
    record.counter = last.counter;
    record.previous = last.old_key;
    if (last.revokes()) {
      record.revoked = true;
      record.previous_until = {};  // no grace after a revocation
      keys_.erase(std::string(sender_id));
    } else {
      record.previous_until = last.effective.time + grace;
      keys_.insert_or_assign(std::string(sender_id), *last.new_key);
    }
    rotations_.insert_or_assign(std::string(sender_id), record);
    ++generation_;
    if (refused) return *refused;  // the fault: the statements before the refused one applied
    return done;
  }

  /// KR-6: the replaced key of `entity_id`, while its grace period lasts.
  std::optional<crypto::public_key> grace_key(std::string_view entity_id, sys_milliseconds now) const {
    const auto* r = rotation_of(entity_id);
    if (!r || !r->previous || now >= r->previous_until) return std::nullopt;
    return r->previous;
  }

  /// ID-5..ID-7: whether a verified handshake may bind `entity_id` to `key`. UNKNOWN_SENDER when
  /// the policy refuses it; otherwise records it (tofu: first key; open: replaces).
  /// `now` decides whether a key replaced by a rotation is still in its grace period (KR-6).
  result<binding> accept_handshake_key(std::string_view entity_id, const crypto::public_key& key, sys_milliseconds now) {
    const auto it = keys_.find(entity_id);
    if (revoked(entity_id)) return failure{errc::unknown_sender, "this entity revoked its key (KR-7)"};
    if ((it != keys_.end() && it->second == key) || grace_key(entity_id, now) == key) return binding::known;
    if (!acceptable(entity_id, key, now))
      return failure{errc::unknown_sender, policy_ == trust_policy::pinned
                                               ? "the sender's key is not pinned on this node"
                                               : "the sender presented a different key than the one pinned"};
    const bool had_key = it != keys_.end();
    // ID-10: a full table refuses new entity ids; it never evicts a binding to make room.
    if (!had_key && keys_.size() >= max_bound_)
      return failure{errc::unknown_sender, "this node binds no more new keys (its table of bound keys is full)"};
    keys_.insert_or_assign(std::string(entity_id), key);  // tofu: first key; open: replaces
    ++generation_;
    return had_key ? binding::replaced : binding::pinned_now;
  }

  /// ID-8: the key a sessionless message from `entity_id` is verified with.
  std::optional<crypto::public_key> key_for(std::string_view entity_id) const {
    const auto it = keys_.find(entity_id);
    if (it == keys_.end()) return std::nullopt;
    return it->second;
  }

  /// Would a handshake with this key be accepted at `now`? (No change.)
  bool acceptable(std::string_view entity_id, const crypto::public_key& key, sys_milliseconds now) const {
    if (revoked(entity_id)) return false;
    if (grace_key(entity_id, now) == key) return true;
    const auto it = keys_.find(entity_id);
    if (it != keys_.end()) return it->second == key || policy_ == trust_policy::open;
    return policy_ != trust_policy::pinned;
  }

  const std::map<std::string, crypto::public_key, std::less<>>& keys() const noexcept { return keys_; }
  /// Changes whenever keys() does (for copies kept elsewhere).
  std::uint64_t generation() const noexcept { return generation_; }

 private:
  bool revoked(std::string_view entity_id) const {
    const auto* r = rotation_of(entity_id);
    return r && r->revoked;
  }

  trust_policy policy_;
  std::size_t max_bound_;
  std::map<std::string, crypto::public_key, std::less<>> keys_;
  std::map<std::string, rotation_record, std::less<>> rotations_;
  std::uint64_t generation_ = 0;
};

}  // namespace peerproto
