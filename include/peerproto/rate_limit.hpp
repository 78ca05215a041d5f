// Rate limiting (SPEC §13): token buckets on injected time, the pre-authentication bucket per
// remote address, post-authentication buckets per (sender, message class), and exponential
// back-off after authentication failures. All state is bounded.
#pragma once

#include <peerproto/encoding.hpp>
#include <peerproto/error.hpp>
#include <peerproto/fault.hpp>
#include <peerproto/version.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace peerproto {

using limits::bucket_default;
using rate_limit_config = bucket_default;  ///< tokens per minute and burst

/// A token bucket: capacity `burst`, refilled continuously at `per_minute` tokens per minute,
/// starting full.
class token_bucket {
 public:
  token_bucket() = default;
  token_bucket(rate_limit_config cfg, sys_milliseconds now) : cfg_(cfg), tokens_(cfg.burst), last_(now) {}

  /// Takes one token if there is one.
  bool try_take(sys_milliseconds now) {
    refill(now);
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }
  /// Time until one token is available (zero if one is).
  std::chrono::milliseconds wait_time(sys_milliseconds now) {
    refill(now);
    if (tokens_ >= 1.0 || cfg_.per_minute <= 0) return std::chrono::milliseconds(0);
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil((1.0 - tokens_) * 60000.0 / cfg_.per_minute)));
  }
  /// True when the bucket is full, so forgetting it changes nothing (RL-8).
  bool idle(sys_milliseconds now) const {
    const auto elapsed = now > last_ ? static_cast<double>((now - last_).count()) : 0.0;
    return tokens_ + elapsed * cfg_.per_minute / 60000.0 >= cfg_.burst;
  }

 private:
  void refill(sys_milliseconds now) {
    if (now > last_) {
      tokens_ = std::min(cfg_.burst, tokens_ + static_cast<double>((now - last_).count()) * cfg_.per_minute / 60000.0);
      last_ = now;
    }
  }
  rate_limit_config cfg_{0, 0};
  double tokens_ = 0;
  sys_milliseconds last_{};
};

/// Exponential back-off after failures (RL-4): once `threshold` failures fall within `window`,
/// the key is blocked for `initial`, doubling with each further failure up to `max`.
struct backoff_config {
  std::size_t threshold = limits::backoff_threshold;
  std::chrono::milliseconds window = limits::backoff_window;
  std::chrono::milliseconds initial = limits::backoff_initial;
  std::chrono::milliseconds max = limits::backoff_max;
};

class backoff {
 public:
  explicit backoff(backoff_config cfg = {}) : cfg_(cfg) {}

  /// Records a failure at `now`; returns the block it starts (zero if none).
  std::chrono::milliseconds fail(sys_milliseconds now) {
    while (!failures_.empty() && has_elapsed(failures_.front(), cfg_.window, now)) failures_.pop_front();
    failures_.push_back(now);
    if (failures_.size() > cfg_.threshold) failures_.pop_front();  // keeps memory at `threshold`
    if (failures_.size() < cfg_.threshold) {
      block_ = {};  // the count fell below the threshold: the next block starts again at `initial`
      return {};
    }
    block_ = block_.count() == 0 ? cfg_.initial : std::min(block_ * 2, cfg_.max);
    blocked_until_ = now + block_;
    return block_;
  }
  /// Time left in the current block (zero if not blocked).
  std::chrono::milliseconds blocked_for(sys_milliseconds now) const {
    return blocked_until_ > now ? blocked_until_ - now : std::chrono::milliseconds(0);
  }
  /// RL-6: a success forgets the failures.
  void reset() {
    failures_.clear();
    block_ = {};
    blocked_until_ = {};
  }
  bool idle(sys_milliseconds now) const {
    return blocked_for(now).count() == 0 && (failures_.empty() || has_elapsed(failures_.back(), cfg_.window, now));
  }

 private:
  backoff_config cfg_;
  std::deque<sys_milliseconds> failures_;
  std::chrono::milliseconds block_{};
  sys_milliseconds blocked_until_{};
};

/// Message classes of RL-2.
enum class message_class { handshake, heartbeat, task, discovery, chunk, other };

inline message_class class_of(std::string_view msg_type) noexcept {
  if (msg_type == "handshake" || msg_type == "handshake_confirm") return message_class::handshake;
  if (msg_type == "heartbeat") return message_class::heartbeat;
  if (msg_type == "task_delegate") return message_class::task;
  if (msg_type == "discovery") return message_class::discovery;
  if (msg_type == "chunk") return message_class::chunk;
  return message_class::other;
}

/// Every rate-limit number (RL-3).
struct rate_limit_options {
  rate_limit_config pre_auth = limits::pre_auth_bucket;
  rate_limit_config handshake = limits::handshake_bucket;
  rate_limit_config heartbeat = limits::heartbeat_bucket;
  rate_limit_config task = limits::task_bucket;
  rate_limit_config discovery = limits::discovery_bucket;
  rate_limit_config chunk = limits::chunk_bucket;
  rate_limit_config other = limits::default_bucket;
  backoff_config backoff{};
  std::size_t max_keys = limits::max_rate_limit_keys;  ///< RL-8, for each of the four tables

  rate_limit_config for_class(message_class c) const noexcept {
    switch (c) {
      case message_class::handshake: return handshake;
      case message_class::heartbeat: return heartbeat;
      case message_class::task: return task;
      case message_class::discovery: return discovery;
      case message_class::chunk: return chunk;
      case message_class::other: break;
    }
    return other;
  }
};

/// The node's rate limiter. Methods that refuse return the wait until the request would pass
/// (rounded up to whole seconds by retry_after_seconds); zero means "go ahead".
class rate_limiter {
 public:
  explicit rate_limiter(rate_limit_options opt = {}) : opt_(opt) {}

  /// PROC-2: back-off blocks for the address and the claimed sender, then the address's bucket.
  std::chrono::milliseconds admit_unauthenticated(std::string_view address, std::string_view sender,
                                                  sys_milliseconds now) {
    std::chrono::milliseconds wait{};
    if (auto* b = find(address_backoff_, address)) wait = std::max(wait, b->blocked_for(now));
    if (auto* b = find(sender_backoff_, sender)) wait = std::max(wait, b->blocked_for(now));
    if (wait.count() > 0) return wait;
    auto* bucket = get(pre_auth_, std::string(address), now, [&] { return token_bucket(opt_.pre_auth, now); });
    if (!bucket) return std::chrono::seconds(1);  // table full of active keys: fail closed (RL-8)
    return bucket->try_take(now) ? std::chrono::milliseconds(0) : bucket->wait_time(now);
  }

  /// PROC-7: the (sender, class) bucket after authentication.
  std::chrono::milliseconds admit_authenticated(std::string_view sender, std::string_view msg_type,
                                                sys_milliseconds now) {
    const auto cls = class_of(msg_type);
    std::string k(sender);
    k += '\0';
    k += static_cast<char>('0' + static_cast<int>(cls));
    auto* bucket = get(post_auth_, std::move(k), now, [&] { return token_bucket(opt_.for_class(cls), now); });
    if (!bucket) return std::chrono::seconds(1);
    return bucket->try_take(now) ? std::chrono::milliseconds(0) : bucket->wait_time(now);
  }

  /// RL-4: an authentication failure from `address` claiming `sender`.
  void authentication_failed(std::string_view address, std::string_view sender, sys_milliseconds now) {
    const auto make = [&] { return backoff(opt_.backoff); };
    if (!PEERPROTO_FAULT(backoff_per_sender_only))
      if (auto* b = get(address_backoff_, std::string(address), now, make)) b->fail(now);
    if (!sender.empty() && !PEERPROTO_FAULT(backoff_per_address_only))
      if (auto* b = get(sender_backoff_, std::string(sender), now, make)) b->fail(now);
  }

  /// RL-6: a successful authentication of `sender`.
  void authenticated(std::string_view sender) {
    if (auto* b = find(sender_backoff_, sender)) b->reset();
  }

  /// Number of keys tracked in all tables (for tests of RL-8).
  std::size_t tracked_keys() const noexcept {
    return pre_auth_.size() + post_auth_.size() + address_backoff_.size() + sender_backoff_.size();
  }

 private:
  template <class V>
  using table = std::unordered_map<std::string, V>;

  template <class V>
  static V* find(table<V>& t, std::string_view k) {
    const auto it = t.find(std::string(k));
    return it == t.end() ? nullptr : &it->second;
  }

  // The entry for k, created if needed. When the table is full, idle entries (full buckets, no
  // failures in the window) are dropped first; if none is idle, returns nullptr (fail closed).
  template <class V, class Make>
  V* get(table<V>& t, std::string k, sys_milliseconds now, Make&& make) {
    if (auto it = t.find(k); it != t.end()) return &it->second;
    if (t.size() >= opt_.max_keys) std::erase_if(t, [&](auto& kv) { return kv.second.idle(now); });
    if (t.size() >= opt_.max_keys) return nullptr;
    return &t.emplace(std::move(k), make()).first->second;
  }

  rate_limit_options opt_;
  table<token_bucket> pre_auth_, post_auth_;
  table<backoff> address_backoff_, sender_backoff_;
};

/// RL-7: a wait as whole seconds, at least 1, rounded up.
inline std::chrono::seconds retry_after_seconds(std::chrono::milliseconds wait) {
  return std::max(std::chrono::ceil<std::chrono::seconds>(wait), std::chrono::seconds(1));
}

}  // namespace peerproto
