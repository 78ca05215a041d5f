// The merge command: joins the JSON reports of the jobs of a sharded run (--shard I/N) into one
// report and one JUnit file, as if one job had run every case. The parts must be reports of this
// runner's schema about the same node, and no case may appear in two of them.
#include "commands.hpp"
#include "report.hpp"

#include <boost/json.hpp>

#include <fstream>
#include <iostream>
#include <iterator>
#include <set>

namespace peerproto::conformance {
namespace {

json::object read_report(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw setup_error("cannot read the report " + file);
  const std::string text{std::istreambuf_iterator<char>(in), {}};
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) throw setup_error(file + " is not a JSON report");
  const auto* schema = v.as_object().if_contains("schema");
  if (!schema || *schema != json::value(report_schema))
    throw setup_error(file + " is not a report of schema " + std::string(report_schema));
  return std::move(v.as_object());
}

std::string text_at(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  return v && v->is_string() ? std::string(v->get_string()) : "";
}

verdict verdict_of(const std::string& name, const std::string& file) {
  for (const auto v : {verdict::pass, verdict::fail, verdict::timeout, verdict::skip, verdict::info})
    if (to_string(v) == name) return v;
  throw setup_error(file + ": unknown verdict " + name);
}

// One case of a report, with its case in this runner's catalogue.
case_result result_of(const json::object& c, const std::string& file) {
  const auto id = text_at(c, "id");
  const auto& all = catalogue();
  const auto it = std::find_if(all.begin(), all.end(), [&](const test_case& t) { return t.id == id; });
  if (it == all.end()) throw setup_error(file + ": case " + id + " is not in this runner's catalogue (a report of another version?)");
  case_result r;
  r.test = &*it;
  r.level = text_at(c, "level");
  r.outcome = verdict_of(text_at(c, "verdict"), file);
  r.reason = text_at(c, "reason");
  r.setup_step = text_at(c, "setup_failed");
  if (const auto* f = c.if_contains("failure"); f && f->is_object()) {
    r.rule = text_at(f->as_object(), "rule");
    r.expected = text_at(f->as_object(), "expected");
    r.actual = text_at(f->as_object(), "actual");
  }
  if (c.contains("not_run_need")) {
    r.missing_need = need_named(text_at(c, "not_run_need"));
    if (!r.missing_need) throw setup_error(file + ": case " + id + " names an unknown need " + text_at(c, "not_run_need"));
  }
  if (c.contains("expected_failure")) r.expected_failure = text_at(c, "expected_failure");
  if (const auto* d = c.if_contains("duration_ms"); d && d->is_int64()) r.duration = std::chrono::milliseconds(d->as_int64());
  if (const auto* t = c.if_contains("transcript"); t && t->is_array())
    for (const auto& e : t->as_array())
      if (e.is_object()) r.transcript.push_back({text_at(e.as_object(), "what"), text_at(e.as_object(), "text")});
  return r;
}

}  // namespace

int merge_command(const merge_options& o) {
  if (o.reports.empty()) throw setup_error("merge needs the JSON reports to join");
  if (o.json_file.empty() && o.junit_file.empty() && o.html_file.empty())
    throw setup_error("merge writes --json FILE, --junit FILE, --html FILE, or several of them");
  std::vector<case_result> results;
  std::set<std::string> seen;
  run_info run;
  node_info node;
  std::set<std::string> runners;
  for (const auto& file : o.reports) {
    const auto report = read_report(file);
    const auto& target = report.at("target").as_object();
    if (results.empty() && seen.empty()) {
      run.target = text_at(target, "url");
      run.transport = text_at(target, "transport");
      run.node_id = text_at(target, "entity_id");
      run.node_fingerprint = text_at(target, "fingerprint");
      run.started = text_at(report, "started");
      // The limits as the first part read them (every part reads the same /capabilities).
      const auto& limits = report.at("limits").as_object();
      for (const auto& [name, value] : limits.at("read").as_object()) node.limits[std::string(name)] = value.to_number<std::int64_t>();
      for (const auto& [name, value] : limits.at("assumed_spec_defaults").as_object()) {
        node.limits[std::string(name)] = value.at("value").to_number<std::int64_t>();
        node.assumed[std::string(name)] = text_at(value.as_object(), "why");
      }
      run.node = &node;
    } else if (run.node_fingerprint.empty()) {  // the first part stopped before discovery: this one names the node
      run.node_id = text_at(target, "entity_id");
      run.node_fingerprint = text_at(target, "fingerprint");
    } else if (!text_at(target, "fingerprint").empty() &&
               (text_at(target, "fingerprint") != run.node_fingerprint || text_at(target, "entity_id") != run.node_id)) {
      throw setup_error(file + " is a report about another node (" + text_at(target, "entity_id") + ", fingerprint " +
                        text_at(target, "fingerprint") + ") than " + o.reports.front() + " (" + run.node_id + ")");
    }
    run.started = std::min(run.started, text_at(report, "started"));
    if (const auto* d = report.if_contains("duration_ms"); d && d->is_int64())
      run.duration = std::max(run.duration, std::chrono::milliseconds(d->as_int64()));  // the parts run side by side
    run.strict = run.strict || report.at("strict").as_bool();
    runners.insert(text_at(report, "runner_identity"));
    if (const auto* down = report.if_contains("target_down_during"); down && down->is_string() && !run.target_down)
      run.target_down = std::string(down->get_string());
    if (const auto* g = report.if_contains("gate_failure"); g && g->is_object() && !run.gate) {
      const auto& gate = g->as_object();
      const auto* fault = gate.if_contains("node_fault");
      run.gate = gate_failure_info{text_at(gate, "step"), text_at(gate, "rule"), text_at(gate, "expected"), text_at(gate, "actual"),
                                   fault && fault->is_bool() && fault->as_bool()};
    }
    if (const auto* i = report.if_contains("interrupted"); i && i->is_bool()) run.interrupted = run.interrupted || i->as_bool();
    // Each part checked the needs of its own cases: a need is met when no part found it unmet.
    if (const auto* ns = report.if_contains("needs"); ns && ns->is_array())
      for (const auto& v : ns->as_array()) {
        const auto& entry = v.as_object();
        const auto which = need_named(text_at(entry, "need"));
        if (!which) throw setup_error(file + ": unknown need " + text_at(entry, "need"));
        const auto* met = entry.if_contains("met");
        const auto* fault = entry.if_contains("node_fault");
        need_check n(*which, text_at(entry, "rule"), text_at(entry, "expected"), text_at(entry, "actual"));
        n.met = met && met->is_bool() && met->as_bool();
        n.node_fault = fault && fault->is_bool() && fault->as_bool();
        const auto it = std::find_if(run.needs.begin(), run.needs.end(), [&](const need_check& c) { return c.which == n.which; });
        if (it == run.needs.end()) run.needs.push_back(std::move(n));
        else if (it->met && !n.met) *it = std::move(n);
      }
    if (const auto* as = report.if_contains("assumptions"); as && as->is_array() && node.assumptions.empty())
      for (const auto& a : as->as_array())
        if (a.is_string()) node.assumptions.emplace_back(a.get_string());
    for (const auto& c : report.at("cases").as_array()) {
      auto r = result_of(c.as_object(), file);
      if (!seen.insert(r.test->id).second) throw setup_error(file + ": case " + r.test->id + " is in two of the reports (overlapping shards?)");
      results.push_back(std::move(r));
    }
  }
  // Catalogue order, as one run would have listed them.
  const auto position = [&](const case_result& r) { return r.test - catalogue().data(); };
  std::sort(results.begin(), results.end(), [&](const case_result& a, const case_result& b) { return position(a) < position(b); });
  for (const auto& id : runners) run.runner_id += (run.runner_id.empty() ? "" : ",") + id;
  std::cout << "merged " << o.reports.size() << " reports about " << run.node_id << " at " << run.target << "\n";
  return finish_run(results, run, {o.json_file, o.junit_file, o.html_file, {}});
}

}  // namespace peerproto::conformance
