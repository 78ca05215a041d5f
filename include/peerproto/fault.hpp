// Test-only fault switches, so the conformance suite can be shown to catch nodes that break its
// rules. Only a build that defines PEERPROTO_FAULT_INJECTION has them: the fault-injection node
// of the tests. In every other build, the shipped node and every user of the library included,
// PEERPROTO_FAULT(name) is the constant `false` and the code it guards is the normal path.
//
// The active fault is named by the environment variable PEERPROTO_FAULT, read once.
//
// Where a fault can act on the engine's input or output (a node that dies on a chunk, errors with
// a broken signature, a shortened timer or a wrong HTTP status), it lives in the test node
// (reference/node). The hooks left in the library break one decision in the middle of processing
// (skip a check, reuse a number, seal with the wrong key), which no step before or after the
// engine can imitate without re-implementing it.
#pragma once

#ifdef PEERPROTO_FAULT_INJECTION
#include <cstdlib>
#include <string_view>

namespace peerproto::fault {
inline bool active(std::string_view name) noexcept {
  static const std::string_view chosen = [] {
    const char* v = std::getenv("PEERPROTO_FAULT");
    return v ? std::string_view(v) : std::string_view();
  }();
  return chosen == name;
}
}  // namespace peerproto::fault

#define PEERPROTO_FAULT(name) (::peerproto::fault::active(#name))
#else
#define PEERPROTO_FAULT(name) false
#endif
