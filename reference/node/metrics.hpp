// Prometheus counters of the node (HTTP-8), rendered in the text exposition format 0.0.4.
// Label values come from closed sets (known message types, error codes), so the number of series
// is bounded whatever peers send.
#pragma once

#include <peerproto/error.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace peerproto::node {

class metrics {
 public:
  /// `known_types`: the message types that get their own label; others count as "other".
  explicit metrics(std::set<std::string> known_types) : known_types_(std::move(known_types)) {}

  /// One answered request: its type, "ok" or "error", the error code, and the time the node took.
  void request(const std::string& msg_type, std::optional<errc> error, std::chrono::nanoseconds took);
  void rate_limited() { ++rate_limit_hits_; }
  void handshake(bool ok) { ++(ok ? handshakes_ok_ : handshakes_failed_); }
  void connection_refused() { ++connections_refused_; }
  void held() { ++held_; }
  /// Counts one audit record that could not be written; returns the count so far.
  std::uint64_t audit_write_failed() { return ++audit_write_failures_; }

  /// Gauges are read when rendering.
  struct gauges {
    std::size_t sessions, connections, tasks_queued;
    bool ready;
  };
  std::string render(const gauges& g) const;

 private:
  static constexpr std::array<double, 12> buckets{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                  0.01,   0.025,   0.05,   0.1,   0.25,   1.0};
  std::set<std::string> known_types_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> messages_;  // (type, result)
  std::map<std::string, std::uint64_t> errors_;                            // code
  std::array<std::uint64_t, buckets.size() + 1> latency_{};                // last: +Inf
  double latency_sum_ = 0;
  std::uint64_t latency_count_ = 0;
  std::uint64_t rate_limit_hits_ = 0, handshakes_ok_ = 0, handshakes_failed_ = 0, connections_refused_ = 0, held_ = 0;
  std::uint64_t audit_write_failures_ = 0;
};

}  // namespace peerproto::node
