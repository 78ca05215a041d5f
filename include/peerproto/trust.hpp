// Binding entity ids to identity keys (SPEC §2): the pinned, tofu and open policies.
#pragma once

#include <peerproto/crypto.hpp>
#include <peerproto/error.hpp>
#include <peerproto/version.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace peerproto {

enum class trust_policy { pinned, tofu, open };

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
  void pin(std::string entity_id, const crypto::public_key& key) { keys_[std::move(entity_id)] = key; }

  /// Forgets the key of `entity_id`; false when none was bound.
  bool unpin(std::string_view entity_id) {
    const auto it = keys_.find(entity_id);
    if (it == keys_.end()) return false;
    keys_.erase(it);
    return true;
  }

  /// ID-5..ID-7: whether a verified handshake may bind `entity_id` to `key`. UNKNOWN_SENDER when
  /// the policy refuses it; otherwise records it (tofu: first key; open: replaces).
  result<binding> accept_handshake_key(std::string_view entity_id, const crypto::public_key& key) {
    const auto it = keys_.find(entity_id);
    if (it != keys_.end() && it->second == key) return binding::known;
    if (!acceptable(entity_id, key))
      return failure{errc::unknown_sender, policy_ == trust_policy::pinned
                                               ? "the sender's key is not pinned on this node"
                                               : "the sender presented a different key than the one pinned"};
    const bool had_key = it != keys_.end();
    // ID-10: a full table refuses new entity ids; it never evicts a binding to make room.
    if (!had_key && keys_.size() >= max_bound_)
      return failure{errc::unknown_sender, "this node binds no more new keys (its table of bound keys is full)"};
    keys_.insert_or_assign(std::string(entity_id), key);  // tofu: first key; open: replaces
    return had_key ? binding::replaced : binding::pinned_now;
  }

  /// ID-8: the key a sessionless message from `entity_id` is verified with.
  std::optional<crypto::public_key> key_for(std::string_view entity_id) const {
    const auto it = keys_.find(entity_id);
    if (it == keys_.end()) return std::nullopt;
    return it->second;
  }

  /// Would a handshake with this key be accepted? (No change.)
  bool acceptable(std::string_view entity_id, const crypto::public_key& key) const {
    const auto it = keys_.find(entity_id);
    if (it != keys_.end()) return it->second == key || policy_ == trust_policy::open;
    return policy_ != trust_policy::pinned;
  }

  const std::map<std::string, crypto::public_key, std::less<>>& keys() const noexcept { return keys_; }

 private:
  trust_policy policy_;
  std::size_t max_bound_;
  std::map<std::string, crypto::public_key, std::less<>> keys_;
};

}  // namespace peerproto
