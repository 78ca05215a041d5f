#include "metrics.hpp"

#include <sstream>

namespace peerproto::node {

void metrics::request(const std::string& msg_type, std::optional<errc> error, std::chrono::nanoseconds took) {
  const std::string type = known_types_.contains(msg_type) ? msg_type : "other";
  ++messages_[{type, error ? "error" : "ok"}];
  if (error) ++errors_[std::string(wire_name(*error))];
  const double seconds = std::chrono::duration<double>(took).count();
  std::size_t i = 0;
  while (i < buckets.size() && seconds > buckets[i]) ++i;
  ++latency_[i];
  latency_sum_ += seconds;
  ++latency_count_;
}

std::string metrics::render(const gauges& g) const {
  std::ostringstream o;
  o << "# HELP peerproto_messages_total Envelopes answered, by request type and result.\n"
       "# TYPE peerproto_messages_total counter\n";
  for (const auto& [k, n] : messages_)
    o << "peerproto_messages_total{type=\"" << k.first << "\",result=\"" << k.second << "\"} " << n << "\n";
  o << "# HELP peerproto_errors_total Error replies, by protocol error code.\n"
       "# TYPE peerproto_errors_total counter\n";
  for (const auto& [code, n] : errors_) o << "peerproto_errors_total{code=\"" << code << "\"} " << n << "\n";
  o << "# HELP peerproto_handshakes_total Handshakes completed (ok) or failed, as responder.\n"
       "# TYPE peerproto_handshakes_total counter\n"
    << "peerproto_handshakes_total{result=\"ok\"} " << handshakes_ok_ << "\n"
    << "peerproto_handshakes_total{result=\"failed\"} " << handshakes_failed_ << "\n"
    << "# HELP peerproto_rate_limited_total Requests refused with RATE_LIMITED.\n"
       "# TYPE peerproto_rate_limited_total counter\n"
    << "peerproto_rate_limited_total " << rate_limit_hits_ << "\n"
    << "# HELP peerproto_held_total Session messages held in the ordering window.\n"
       "# TYPE peerproto_held_total counter\n"
    << "peerproto_held_total " << held_ << "\n"
    << "# HELP peerproto_connections_refused_total Connections closed at accept by a connection limit.\n"
       "# TYPE peerproto_connections_refused_total counter\n"
    << "peerproto_connections_refused_total " << connections_refused_ << "\n"
    << "# HELP peerproto_audit_write_failures_total Audit records that could not be written (AUD-4).\n"
       "# TYPE peerproto_audit_write_failures_total counter\n"
    << "peerproto_audit_write_failures_total " << audit_write_failures_ << "\n"
    << "# HELP peerproto_sessions Sessions the node holds (any state).\n# TYPE peerproto_sessions gauge\n"
    << "peerproto_sessions " << g.sessions << "\n"
    << "# HELP peerproto_connections Open client connections.\n# TYPE peerproto_connections gauge\n"
    << "peerproto_connections " << g.connections << "\n"
    << "# HELP peerproto_tasks_queued Tasks in the durable queue.\n# TYPE peerproto_tasks_queued gauge\n"
    << "peerproto_tasks_queued " << g.tasks_queued << "\n"
    << "# HELP peerproto_ready 1 while the node accepts messages.\n# TYPE peerproto_ready gauge\n"
    << "peerproto_ready " << (g.ready ? 1 : 0) << "\n"
    << "# HELP peerproto_request_duration_seconds Time from a whole request to its reply, inside the node.\n"
       "# TYPE peerproto_request_duration_seconds histogram\n";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    cumulative += latency_[i];
    o << "peerproto_request_duration_seconds_bucket{le=\"" << buckets[i] << "\"} " << cumulative << "\n";
  }
  cumulative += latency_.back();
  o << "peerproto_request_duration_seconds_bucket{le=\"+Inf\"} " << cumulative << "\n"
    << "peerproto_request_duration_seconds_sum " << latency_sum_ << "\n"
    << "peerproto_request_duration_seconds_count " << latency_count_ << "\n";
  return o.str();
}

}  // namespace peerproto::node
