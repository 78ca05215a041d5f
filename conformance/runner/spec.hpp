// The requirements of docs/SPEC.md, read from the copy of the text built into the runner, so a
// case can quote the rule it checks and its level comes from the specification, not from the case.
#pragma once

#include <map>
#include <string>

namespace peerproto::conformance {

struct requirement {
  std::string id;     ///< e.g. "ENV-5"
  std::string level;  ///< "MUST", "SHOULD" or "MAY"
  std::string text;   ///< the requirement as the specification words it
};

/// Every requirement of the specification, by id.
const std::map<std::string, requirement>& spec_requirements();

}  // namespace peerproto::conformance
