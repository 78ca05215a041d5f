#include "suite.hpp"

#include <map>
#include <set>
#include <stdexcept>

namespace peerproto::conformance {

std::string_view to_string(role r) { return r == role::initiator ? "initiator" : "responder"; }

std::string_view stage_of(const test_case& c) {
  static const std::map<std::string, std::string_view, std::less<>> by_group{
      {"http", stages[0]},       {"websocket", stages[0]},  {"json", stages[1]},     {"envelope", stages[1]},
      {"signature", stages[1]},  {"replay", stages[1]},     {"version", stages[2]},  {"handshake", stages[2]},
      {"session", stages[3]},    {"encryption", stages[3]}, {"messages", stages[4]}, {"ordering", stages[5]},
      {"chunking", stages[5]},   {"rate-limit", stages[6]}, {"rotation", stages[7]}, {"initiator", stages[8]}};
  const auto it = by_group.find(c.group);
  if (it == by_group.end()) throw std::logic_error("the group " + c.group + " of " + c.id + " has no stage");
  return it->second;
}

const std::vector<test_case>& catalogue() {
  static const auto all = [] {
    std::vector<test_case> out;
    for (auto add : {add_transport_cases, add_json_cases, add_envelope_cases, add_signature_cases,
                     add_version_cases, add_handshake_cases, add_session_cases, add_ordering_cases, add_chunk_cases,
                     add_message_cases, add_rate_limit_cases, add_rotation_cases, add_initiator_cases})
      add(out);
    std::set<std::string> ids;
    for (const auto& c : out) {
      if (!ids.insert(c.id).second) throw std::logic_error("two cases are called " + c.id);
      stage_of(c);  // every group has a stage
    }
    return out;
  }();
  return all;
}

const std::map<std::string, std::string>& not_on_the_wire() {
  static const std::map<std::string, std::string> reasons{
      {"ID-1", "a node's key pair is its own business; the wire shows one key per entity id (ID-6)"},
      {"ID-5", "pinned trust refuses the runner's new identities by design; the node tests cover it"},
      {"ID-11", "keys at rest are local to a node; kat.keys checks the derivation against its vectors"},
      {"ID-12", "keys at rest are local to a node; kat.keys checks the file format against its vectors"},
      {"JCS-2", "which serializer a node uses inside is not visible; JCS-1 cases check the result"},
      {"VER-1", "where a node keeps its constants is not visible"},
      {"RPL-4", "filling 1 000 000 nonce entries at the default limits takes longer than a run"},
      {"RPL-5", "needs the node's clock stepped back, or a full cache (RPL-4); props.replay_cache_props checks it"},
      {"RPL-6", "needs a restart of the node; the reference node's tests kill and restart it"},
      {"HS-14", "wiping memory is not visible on the wire"},
      {"HS-25", "10 000 sessions at the default limits take longer than a run"},
      {"SES-1", "no sequence of valid wire messages reaches an event outside the table that another rule does not answer first"},
      {"SES-6", "needs 2^32 - 1 messages"},
      {"ENC-7", "wiping memory is not visible on the wire"},
      {"CHK-13", "256 MiB of reassembly at the default limits takes longer than a run"},
      {"CHK-17", "needs a restart of the node; the reference node's tests kill and restart it, props.delivery_props models it"},
      {"RL-3", "configuration is not visible on the wire"},
      {"RL-8", "100 000 tracked keys at the default limits take longer than a run"},
      {"MSG-5", "needs a handler that fails; the reference node's handlers fail only on storage faults"},
      {"AUD-1", "audit records are written locally, not sent"},
      {"AUD-2", "audit records are written locally, not sent"},
      {"AUD-4", "audit records are written locally, not sent"},
  };
  return reasons;
}

}  // namespace peerproto::conformance
