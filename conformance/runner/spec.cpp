#include "spec.hpp"

#include <regex>
#include <sstream>

namespace peerproto::conformance {
extern const char* const spec_markdown;

namespace {
// A requirement is a block quote that starts "> **ID** (LEVEL) text" and continues on "> " lines.
std::map<std::string, requirement> parse(const std::string& markdown) {
  static const std::regex head(R"(^> \*\*([A-Z]+-[0-9]+)\*\* \((MUST|SHOULD|MAY)\) (.*)$)");
  std::map<std::string, requirement> out;
  std::istringstream in(markdown);
  std::string line;
  requirement* open = nullptr;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, head)) {
      open = &out[m[1]];
      *open = {m[1], m[2], m[3]};
    } else if (open && line.starts_with("> ")) {
      open->text += " " + line.substr(2);
    } else {
      open = nullptr;
    }
  }
  return out;
}
}  // namespace

const std::map<std::string, requirement>& spec_requirements() {
  static const auto table = parse(spec_markdown);
  return table;
}

}  // namespace peerproto::conformance
