// Replay protection for signed messages (SPEC §6): the timestamp tolerance and the bounded
// (sender_id, nonce) cache, which fails closed when full instead of evicting live entries.
//
// An entry is kept exactly as long as the same envelope would pass the timestamp check (RPL-2):
// until the node's clock is past the envelope's timestamp plus the tolerance. After that, RPL-1
// refuses the envelope by its timestamp, so the nonce need not be remembered. The cache also
// remembers how far it has forgotten (RPL-5), and refuses any envelope whose entry it may already
// have forgotten, so that a clock stepping back never makes a used nonce acceptable again.
#pragma once

#include <peerproto/crypto.hpp>
#include <peerproto/encoding.hpp>
#include <peerproto/error.hpp>
#include <peerproto/fault.hpp>
#include <peerproto/version.hpp>

#include <boost/unordered/unordered_flat_map.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace peerproto {

/// Limits of the replay cache (SPEC §18).
struct replay_options {
  std::chrono::milliseconds tolerance = limits::timestamp_tolerance;  ///< RPL-1, and how long an entry lives (RPL-2)
  std::size_t max_entries = limits::max_replay_entries;               ///< RPL-4
  /// RPL-6 for nodes without durable storage: refuse signed messages with a timestamp earlier
  /// than this (start time + tolerance). Leave at the epoch when the cache is persisted instead.
  sys_milliseconds not_before{};
  /// Keep a journal of inserted entries for take_journal(), so that a node can persist each one
  /// before it replies (RPL-6's first way). Off by default: nobody would drain it.
  bool journal = false;
};

/// One accepted (sender, nonce) and when it may be forgotten.
struct replay_entry {
  std::string sender;
  std::array<std::uint8_t, 16> nonce;
  sys_milliseconds expiry;
};

class replay_cache {
 public:
  explicit replay_cache(replay_options opt = {})
      : opt_(opt), hash_key_(crypto::random_array<16>()), seen_(0, key_hash{hash_key_}) {}

  /// RPL-1 (and RPL-6's alternative): REPLAY_DETECTED when `ts` is more than the tolerance away
  /// from `now` in either direction, or earlier than not_before.
  std::error_code check_time(const utc_timestamp& ts, sys_milliseconds now) const noexcept {
    const auto skew = ts.time > now ? ts.time - now : now - ts.time;
    if (skew > opt_.tolerance || ts.time < opt_.not_before) return errc::replay_detected;
    return {};
  }

  /// RPL-5: true when an envelope with timestamp `ts` could have been forgotten already, which
  /// happens only after the clock stepped back (now, or across a restart).
  bool may_have_forgotten(sys_milliseconds ts) const noexcept { return expiry_of(ts) <= forgotten_through_; }

  /// RPL-2: REPLAY_DETECTED when (sender, nonce) is still remembered, or when
  /// may_have_forgotten(ts). Changes nothing.
  std::error_code check(std::string_view sender, const std::array<std::uint8_t, 16>& nonce, sys_milliseconds ts,
                        sys_milliseconds now) const {
    if (may_have_forgotten(ts)) return errc::replay_detected;
    const auto it = seen_.find(key(sender, nonce));
    if (it != seen_.end() && it->second > now) return errc::replay_detected;
    return {};
  }

  /// Records an accepted (sender, nonce) with its envelope's timestamp, after its signature
  /// verified (RPL-3). Forgets expired entries first (RPL-5); if the cache is still full, returns
  /// RATE_LIMITED and records nothing (RPL-4); retry_after() then says when a slot frees up.
  std::error_code insert(std::string_view sender, const std::array<std::uint8_t, 16>& nonce, sys_milliseconds ts,
                         sys_milliseconds now) {
    purge(now);
    if (seen_.size() >= opt_.max_entries) return errc::rate_limited;
    auto expiry = expiry_of(ts);
    if (PEERPROTO_FAULT(short_replay_memory)) expiry = now + std::chrono::seconds(1);  // forgets too soon
    if (PEERPROTO_FAULT(replay_memory_from_arrival)) expiry = expiry_of(now);  // the window anchored at arrival
    add(key(sender, nonce), expiry);
    if (opt_.journal) journal_.push_back({std::string(sender), nonce, expiry});
    return {};
  }

  /// The entries inserted since the last call (only with replay_options::journal). The journal
  /// grows by at most one entry per accepted message between two calls.
  std::vector<replay_entry> take_journal() { return std::exchange(journal_, {}); }

  /// Seconds (at least 1) until the earliest entries expire: the retry hint when the cache is full.
  std::chrono::seconds retry_after(sys_milliseconds now) const {
    if (by_second_.empty()) return std::chrono::seconds(1);
    const auto wait = std::chrono::ceil<std::chrono::seconds>(by_second_.begin()->first - now);
    return std::max(wait, std::chrono::seconds(1));
  }

  std::size_t size() const noexcept { return seen_.size(); }

  /// Every entry that expires at or before this time may have been forgotten (RPL-5). A node that
  /// persists the cache persists this with each purge and restores it after a restart.
  sys_milliseconds forgotten_through() const noexcept { return forgotten_through_; }

  /// Restores a persisted entry after a restart; expired ones are ignored. Entries beyond the bound
  /// are restored too (the bound may have been lowered): the cache then refuses new entries
  /// until enough expire, rather than forget a live one.
  void restore(std::string_view sender, const std::array<std::uint8_t, 16>& nonce, sys_milliseconds expiry,
               sys_milliseconds now) {
    if (expiry > now) add(key(sender, nonce), expiry);
  }

  /// Restores forgotten_through() after a restart, and forgets nothing later than `now` was.
  void restore_forgotten_through(sys_milliseconds t, sys_milliseconds now) {
    forgotten_through_ = std::max({forgotten_through_, t, now});
  }

 private:
  // The sender is kept as a 64-bit keyed hash beside the exact nonce: 24 bytes an entry instead of
  // a string. Two senders whose hashes collide would share their nonces' entries, which can only
  // refuse a message (a nonce is random and used once), never accept one. Both that hash and the
  // table's are SipHash under a key of this process, so nobody can choose senders or nonces that
  // collide and make lookups (done before the signature is checked) walk long chains.
  struct entry_key {
    std::uint64_t sender;
    std::array<std::uint8_t, 16> nonce;
    bool operator==(const entry_key&) const = default;
  };
  struct key_hash {
    std::array<std::uint8_t, 16> key;
    std::size_t operator()(const entry_key& k) const noexcept {
      std::array<std::uint8_t, 24> packed;
      std::memcpy(packed.data(), &k.sender, 8);
      std::memcpy(packed.data() + 8, k.nonce.data(), 16);
      return static_cast<std::size_t>(crypto::siphash24(key, packed));
    }
  };

  sys_milliseconds expiry_of(sys_milliseconds ts) const noexcept { return ts + opt_.tolerance + std::chrono::milliseconds(1); }
  entry_key key(std::string_view sender, const std::array<std::uint8_t, 16>& nonce) const {
    return {crypto::siphash24(hash_key_, as_bytes(sender)), nonce};
  }

  // Entries are grouped by the second after their expiry, so that forgetting walks whole groups
  // in time order whatever order the timestamps arrived in.
  void add(const entry_key& k, sys_milliseconds expiry) {
    const auto [it, inserted] = seen_.try_emplace(k, expiry);
    if (!inserted) {
      if (it->second >= expiry) return;
      it->second = expiry;  // the later expiry wins; the earlier group's copy is skipped when purged
    }
    by_second_[std::chrono::ceil<std::chrono::seconds>(expiry)].push_back(k);
  }

  // Forgets every entry that expires by `now` (or by the floor, if the clock stepped back: those
  // are refused by the floor anyway). Whole groups go first; when the cache is still full, the
  // group the limit falls in is sifted entry by entry, so that nothing the cache need not
  // remember counts towards the bound (RPL-5).
  void purge(sys_milliseconds now) {
    const auto limit = std::max(now, forgotten_through_);
    const auto forget = [&](const entry_key& k) {
      const auto it = seen_.find(k);
      if (it == seen_.end()) return true;  // forgotten already: only this stale copy was left
      if (it->second > limit) return false;
      seen_.erase(it);
      return true;
    };
    while (!by_second_.empty() && by_second_.begin()->first <= limit) {
      for (const auto& k : by_second_.begin()->second) forget(k);
      by_second_.erase(by_second_.begin());
    }
    if (seen_.size() >= opt_.max_entries && !by_second_.empty()) std::erase_if(by_second_.begin()->second, forget);
    forgotten_through_ = limit;
  }

  replay_options opt_;
  std::array<std::uint8_t, 16> hash_key_;
  boost::unordered_flat_map<entry_key, sys_milliseconds, key_hash> seen_;
  std::map<sys_milliseconds, std::vector<entry_key>> by_second_;  ///< whole seconds
  sys_milliseconds forgotten_through_{};
  std::vector<replay_entry> journal_;
};

}  // namespace peerproto
