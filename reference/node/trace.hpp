// W3C Trace Context (https://www.w3.org/TR/trace-context/) as the node uses it: one trace id per
// request, taken from its `traceparent` header when it has a valid one, or made anew. The id
// links the HTTP request, its audit records (AUD-2 trace_id), the inbox entries it delivered, and,
// for outbound messages, the outbox entry and the `traceparent` sent with each of its requests.
#pragma once

#include <peerproto/crypto.hpp>
#include <peerproto/encoding.hpp>

#include <regex>
#include <string>
#include <string_view>

namespace peerproto::node {

/// A new random trace id: 32 lowercase hex characters.
inline std::string new_trace_id() { return hex_encode(crypto::random_array<16>()); }

/// The trace id of a valid version-00 `traceparent`, or empty (an all-zero id is invalid).
inline std::string trace_id_of(std::string_view traceparent) {
  static const std::regex form("00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}");
  std::match_results<std::string_view::const_iterator> m;
  if (!std::regex_match(traceparent.begin(), traceparent.end(), m, form) || m[1] == std::string(32, '0')) return {};
  return m[1].str();
}

/// A `traceparent` for a request of trace `trace_id`, with a new span id, sampled.
inline std::string traceparent(const std::string& trace_id) {
  return "00-" + trace_id + "-" + hex_encode(crypto::random_array<8>()) + "-01";
}

}  // namespace peerproto::node
