// Ordered delivery for one direction of one session (SPEC §11): a reorder window W, a gap timeout
// G, duplicate detection, and "only delivered messages are recorded". Holds at most W items.
// No clock: `now` comes in, and next_deadline() says when expire() must be called.
#pragma once

#include <peerproto/fault.hpp>
#include <peerproto/encoding.hpp>
#include <peerproto/error.hpp>
#include <peerproto/version.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace peerproto {

/// Limits of a sequencer (SPEC §18).
struct sequencer_options {
  std::uint64_t window = limits::reorder_window;                  ///< W: at most this many ahead (ORD-3, ORD-5)
  std::chrono::milliseconds gap_timeout = limits::gap_timeout;    ///< G (ORD-6)
};

/// Delivers items of type T in sequence order, starting at sequence number 1.
template <class T>
class sequencer {
 public:
  /// `next` is the first sequence number to deliver: 1 for a new session, more for a restored one.
  explicit sequencer(sequencer_options opt = {}, std::uint64_t next = 1) : opt_(opt), next_(next) {}

  /// The next sequence number to deliver.
  std::uint64_t next_expected() const noexcept { return next_; }
  /// Number of items held, waiting for a gap to fill (at most window).
  std::size_t held() const noexcept { return held_.size(); }

  /// Classifies `seq` without changing anything (PROC-4 runs this before decryption):
  /// REPLAY_DETECTED if already delivered or held (ORD-4), SEQUENCE_ERROR at or beyond
  /// next + W (ORD-5), success otherwise.
  std::error_code check(std::uint64_t seq) const noexcept {
    if (seq < next_ && PEERPROTO_FAULT(accept_replayed_sequence)) return {};  // delivered again by accept()
    if (seq < next_ || held_.contains(seq)) return errc::replay_detected;
    if (seq - next_ >= opt_.window) return errc::sequence_error;
    return {};
  }

  /// Accepts an authenticated item. Returns the items now deliverable, in order: empty when the
  /// item is held behind a gap. Precondition: check(seq) succeeded (otherwise the item is dropped
  /// and nothing changes).
  std::vector<T> accept(std::uint64_t seq, T item, sys_milliseconds now) {
    std::vector<T> out;
    if (check(seq)) return out;
    if (PEERPROTO_FAULT(accept_replayed_sequence) && seq < next_) {  // a test-only fault: deliver it again
      out.push_back(std::move(item));
      return out;
    }
    if (seq != next_) {
      held_.emplace(seq, held_item{std::move(item), now});
      return out;
    }
    out.push_back(std::move(item));
    ++next_;
    for (auto it = held_.begin(); it != held_.end() && it->first == next_; it = held_.erase(it)) {
      out.push_back(std::move(it->second.item));
      ++next_;
    }
    return out;
  }

  /// When the gap before the held items times out: G after the earliest held item arrived.
  std::optional<sys_milliseconds> next_deadline() const noexcept {
    std::optional<sys_milliseconds> earliest;
    for (const auto& [seq, h] : held_)  // (the test-only fault takes the latest arrival instead)
      if (!earliest || (h.arrived < *earliest) != PEERPROTO_FAULT(gap_timer_from_latest)) earliest = h.arrived;
    if (!earliest) return std::nullopt;
    return ends_at(*earliest, opt_.gap_timeout);
  }

  /// At or after next_deadline(), fails every held item (ORD-6): returns them with their sequence
  /// numbers, undelivered and unrecorded, so retransmissions are accepted (ORD-7). next_expected()
  /// does not change.
  std::vector<std::pair<std::uint64_t, T>> expire(sys_milliseconds now) {
    std::vector<std::pair<std::uint64_t, T>> failed;
    const auto deadline = next_deadline();
    if (!deadline || now < *deadline) return failed;
    for (auto& [seq, h] : held_) failed.emplace_back(seq, std::move(h.item));
    held_.clear();
    return failed;
  }

 private:
  struct held_item {
    T item;
    sys_milliseconds arrived;
  };
  sequencer_options opt_;
  std::uint64_t next_ = 1;
  std::map<std::uint64_t, held_item> held_;
};

}  // namespace peerproto
