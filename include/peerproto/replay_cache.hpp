// Replay protection for signed messages (SPEC §6): the timestamp tolerance and the bounded
// (sender_id, nonce) cache, which fails closed when full instead of evicting live entries.
#pragma once

#include <peerproto/encoding.hpp>
#include <peerproto/error.hpp>
#include <peerproto/version.hpp>

#include <chrono>
#include <cstdint>
#include <algorithm>
#include <array>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace peerproto {

/// Limits of the replay cache (SPEC §18).
struct replay_options {
  std::chrono::milliseconds tolerance = limits::timestamp_tolerance;  ///< RPL-1
  std::chrono::milliseconds window = limits::replay_window;           ///< RPL-2
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
  explicit replay_cache(replay_options opt = {}) : opt_(opt) {}

  /// RPL-1 (and RPL-6's alternative): REPLAY_DETECTED when `ts` is more than the tolerance away
  /// from `now` in either direction, or earlier than not_before.
  std::error_code check_time(const utc_timestamp& ts, sys_milliseconds now) const noexcept {
    const auto skew = ts.time > now ? ts.time - now : now - ts.time;
    if (skew > opt_.tolerance || ts.time < opt_.not_before) return errc::replay_detected;
    return {};
  }

  /// RPL-2: REPLAY_DETECTED when (sender, nonce) was accepted within the window. Changes nothing.
  std::error_code check(std::string_view sender, const std::array<std::uint8_t, 16>& nonce,
                        sys_milliseconds now) const {
    const auto it = seen_.find(key(sender, nonce));
    if (it != seen_.end() && it->second > now) return errc::replay_detected;
    return {};
  }

  /// Records an accepted (sender, nonce), after its signature verified (RPL-3). Removes expired
  /// entries first (RPL-5); if the cache is still full, returns RATE_LIMITED and records nothing
  /// (RPL-4); retry_after() then says when a slot frees up.
  std::error_code insert(std::string_view sender, const std::array<std::uint8_t, 16>& nonce, sys_milliseconds now) {
    purge(now);
    if (seen_.size() >= opt_.max_entries) return errc::rate_limited;
    auto k = key(sender, nonce);
    const auto expiry = now + opt_.window;
    if (seen_.insert_or_assign(k, expiry).second) order_.push_back({expiry, std::move(k)});
    if (opt_.journal) journal_.push_back({std::string(sender), nonce, expiry});
    return {};
  }

  /// The entries inserted since the last call (only with replay_options::journal). The journal
  /// grows by at most one entry per accepted message between two calls.
  std::vector<replay_entry> take_journal() { return std::exchange(journal_, {}); }

  /// Seconds (at least 1) until the oldest entry expires: the retry hint when the cache is full.
  std::chrono::seconds retry_after(sys_milliseconds now) const {
    if (order_.empty()) return std::chrono::seconds(1);
    const auto wait = std::chrono::ceil<std::chrono::seconds>(order_.front().expiry - now);
    return std::max(wait, std::chrono::seconds(1));
  }

  std::size_t size() const noexcept { return seen_.size(); }

  /// Visits every live entry as (sender, nonce, expiry), for persisting the cache (RPL-6).
  template <class F>
  void for_each(F&& f) const {
    for (const auto& e : order_) {
      const auto it = seen_.find(e.key);
      if (it == seen_.end() || it->second != e.expiry) continue;
      std::array<std::uint8_t, 16> nonce{};
      std::copy_n(e.key.end() - 16, 16, nonce.begin());
      f(std::string_view(e.key).substr(0, e.key.size() - 16), nonce, e.expiry);
    }
  }

  /// Restores a persisted entry (after a restart). Expired entries and entries beyond the bound
  /// are ignored.
  void restore(std::string_view sender, const std::array<std::uint8_t, 16>& nonce, sys_milliseconds expiry,
               sys_milliseconds now) {
    if (expiry <= now || seen_.size() >= opt_.max_entries) return;
    auto k = key(sender, nonce);
    if (seen_.insert_or_assign(k, expiry).second) order_.push_back({expiry, std::move(k)});
  }

 private:
  struct entry {
    sys_milliseconds expiry;
    std::string key;
  };
  static std::string key(std::string_view sender, const std::array<std::uint8_t, 16>& nonce) {
    std::string k(sender);
    k.append(reinterpret_cast<const char*>(nonce.data()), nonce.size());
    return k;
  }
  void purge(sys_milliseconds now) {
    // Entries are appended with non-decreasing expiry as long as `now` does not go backwards; if it
    // does, an entry may outlive its window by that step, which errs on the side of refusing.
    while (!order_.empty() && order_.front().expiry <= now) {
      const auto it = seen_.find(order_.front().key);
      if (it != seen_.end() && it->second <= now) seen_.erase(it);
      order_.pop_front();
    }
  }

  replay_options opt_;
  std::unordered_map<std::string, sys_milliseconds> seen_;
  std::deque<entry> order_;
  std::vector<replay_entry> journal_;
};

}  // namespace peerproto
