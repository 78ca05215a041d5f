// The conformance suite: a case is a function of the case fixture `context` (fixture/context.hpp)
// that builds envelopes as JSON objects (so it can break any rule), sends them to the node over
// the chosen transport, and checks each answer completely: status, error code, the reply's
// signature or session seal, and the reply's reference to the request.
#pragma once

#include "fixture/context.hpp"
#include "fixture/peer.hpp"
#include "vocabulary.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace peerproto::conformance {

// ---------------------------------------------------------------- cases

/// Which half of the node a case tests: the node answering the runner (responder), or the node
/// sending to the runner, which answers as its peer (initiator).
enum class role { responder, initiator };
std::string_view to_string(role r);

struct test_case {
  std::string id;                         ///< names its requirement, e.g. "ENV-5/uppercase"
  std::vector<std::string> requirements;  ///< the first one gives the level
  std::string group;
  std::string title;
  std::function<void(context&)> run;      ///< a responder case
  std::chrono::milliseconds timeout{0};   ///< 0: the runner's default
  bool exclusive = false;                 ///< runs alone, after the others (it fills a node-wide limit)
  std::function<void(peer_context&)> run_peer = {};  ///< an initiator case (instead of `run`)
  need_set needs = {};  ///< declared by its group (catalogue.cpp) and by the case; the fixture checks it
  role side() const { return run_peer ? role::initiator : role::responder; }
};

/// The stages of a node's standing, in the order an implementer builds them; each group of cases
/// belongs to one (catalogue.cpp).
inline constexpr std::string_view stages[] = {"transport",  "envelopes and signatures", "handshake", "sessions and encryption",
                                              "message types", "ordering and chunking", "limits", "rotation", "sender"};
std::string_view stage_of(const test_case& c);

/// Adds the cases of each group to the catalogue.
void add_json_cases(std::vector<test_case>& out);
void add_envelope_cases(std::vector<test_case>& out);
void add_signature_cases(std::vector<test_case>& out);  ///< and replay protection
void add_version_cases(std::vector<test_case>& out);
void add_handshake_cases(std::vector<test_case>& out);
void add_session_cases(std::vector<test_case>& out);
void add_ordering_cases(std::vector<test_case>& out);
void add_chunk_cases(std::vector<test_case>& out);
void add_rate_limit_cases(std::vector<test_case>& out);
void add_message_cases(std::vector<test_case>& out);
void add_transport_cases(std::vector<test_case>& out);
void add_rotation_cases(std::vector<test_case>& out);   ///< key rotation, the node as receiver
void add_initiator_cases(std::vector<test_case>& out);  ///< the initiator role

/// The whole catalogue, in run order.
const std::vector<test_case>& catalogue();
/// MUST requirements no case can check over the wire within a run, each with the reason.
const std::map<std::string, std::string>& not_on_the_wire();

}  // namespace peerproto::conformance
