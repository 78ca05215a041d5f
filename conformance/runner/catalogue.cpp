#include "suite.hpp"

#include <set>
#include <stdexcept>

namespace peerproto::conformance {

const std::vector<test_case>& catalogue() {
  static const auto all = [] {
    std::vector<test_case> out;
    for (auto add : {add_transport_cases, add_json_cases, add_envelope_cases, add_signature_cases,
                     add_version_cases, add_handshake_cases, add_session_cases, add_ordering_cases, add_chunk_cases,
                     add_message_cases, add_rate_limit_cases})
      add(out);
    std::set<std::string> ids;
    for (const auto& c : out)
      if (!ids.insert(c.id).second) throw std::logic_error("two cases are called " + c.id);
    return out;
  }();
  return all;
}

}  // namespace peerproto::conformance
