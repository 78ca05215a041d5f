// --list and --coverage, and the case selection both commands share.
#include "commands.hpp"
#include "spec.hpp"

#include <fnmatch.h>
#include <iostream>

namespace peerproto::conformance {
namespace {

bool matches_any(const std::string& id, const std::vector<std::string>& globs) {
  for (const auto& g : globs)
    if (fnmatch(g.c_str(), id.c_str(), 0) == 0) return true;
  return false;
}

}  // namespace

std::vector<std::string> split_commas(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& s : in) {
    std::size_t start = 0;
    while (start <= s.size()) {
      const auto end = std::min(s.find(',', start), s.size());
      if (end > start) out.push_back(s.substr(start, end - start));
      start = end + 1;
    }
  }
  return out;
}

std::vector<const test_case*> select_cases(const options& o) {
  std::vector<const test_case*> selected;
  std::size_t position = 0;  // among the cases --cases and --exclude select: the same in every shard
  for (const auto& c : catalogue())
    if ((o.role == "all" || o.role == to_string(c.side())) && (o.cases.empty() || matches_any(c.id, o.cases)) &&
        !matches_any(c.id, o.exclude) && position++ % o.shards == o.shard - 1)
      selected.push_back(&c);
  if (selected.empty()) throw setup_error("no case matches the selection (see --list)");
  return selected;
}

std::string level_of(const test_case& c) {
  const auto& spec = spec_requirements();
  const auto it = spec.find(c.requirements.front());
  return it == spec.end() ? std::string("MUST") : it->second.level;
}

namespace {
// Every requirement with the cases citing it. A MUST without a case must be listed, with its
// reason, in not_on_the_wire(); anything else is a gap and the exit status is 1.
int print_coverage(const std::vector<test_case>& all, const std::map<std::string, requirement>& spec) {
  std::map<std::string, std::vector<std::string>> cited;
  for (const auto& c : all)
    for (const auto& r : c.requirements) {
      if (!spec.contains(r)) {
        std::cout << "case " << c.id << " cites " << r << ", which docs/SPEC.md does not have\n";
        return 1;
      }
      cited[r].push_back(c.id);
    }
  int gaps = 0;
  std::size_t covered = 0;
  for (const auto& [id, req] : spec) {
    const auto it = cited.find(id);
    const auto reason = not_on_the_wire().find(id);
    if (it != cited.end()) {
      ++covered;
      std::cout << id << "\t" << req.level << "\t" << it->second.size() << " case(s): " << it->second.front()
                << (it->second.size() > 1 ? " ..." : "") << "\n";
    } else if (reason != not_on_the_wire().end()) {
      std::cout << id << "\t" << req.level << "\tnot on the wire: " << reason->second << "\n";
    } else {
      std::cout << id << "\t" << req.level << "\tNO CASE\n";
      gaps += req.level == "MUST";
    }
  }
  std::cout << covered << " of " << spec.size() << " requirements have cases; " << not_on_the_wire().size()
            << " MUST requirements are not observable within a run; " << gaps << " MUST requirement(s) without a case\n";
  return gaps ? 1 : 0;
}

}  // namespace

int list_command(const options& o) {
  if (o.coverage) return print_coverage(catalogue(), spec_requirements());
  const auto selected = select_cases(o);
  for (const auto* c : selected) {
    std::string reqs;
    for (const auto& r : c->requirements) reqs += (reqs.empty() ? "" : ",") + r;
    std::string needs;
    for (const auto n : all_needs)
      if (has(c->needs, n)) needs += (needs.empty() ? "" : ",") + std::string(to_string(n));
    std::cout << c->id << "\t" << level_of(*c) << "\t" << c->group << "\t" << c->title << "\t[" << reqs << "]\tneeds: "
              << (needs.empty() ? "-" : needs) << "\n";
  }
  std::cout << selected.size() << " cases\n";
  return 0;
}

}  // namespace peerproto::conformance
