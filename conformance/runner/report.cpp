#include "report.hpp"
#include "spec.hpp"

#include <boost/json.hpp>

#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

namespace peerproto::conformance {
namespace {
void write_file(const std::filesystem::path& file, const std::string& text) {
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

// Transcripts hold what was on the wire, including the invalid UTF-8 of the JSON-1 cases; reports
// must be valid UTF-8, so each byte that is not part of a well-formed sequence is shown as \xNN.
std::string valid_utf8(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    bool ok = n > 0 && i + n <= s.size();
    for (std::size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok && n > 1) {
      std::uint32_t cp = b & (0x7F >> n);
      for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
      const std::uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= least[n] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);  // no overlong forms or surrogates
    }
    if (ok) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\x%02x", b);
      out += esc;
      ++i;
    }
  }
  return out;
}

std::string xml_escape(std::string_view raw) {
  const std::string s = valid_utf8(raw);
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default:
        // XML 1.0 forbids most control characters even as references; show them as '?'.
        if (c < 0x20 && ch != '\n' && ch != '\t' && ch != '\r') out += '?';
        else out += ch;
    }
  }
  return out;
}

std::string file_name(std::string id) {
  for (auto& c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') c = '_';
  return id;
}

double to_seconds(std::chrono::milliseconds d) { return std::chrono::duration<double>(d).count(); }

std::string transcript_text(const case_result& r) {
  std::string out;
  for (const auto& t : r.transcript) out += t.what + ": " + t.text + "\n";
  return out;
}
// A stage's cases by verdict ("not run" apart from other skips), and its standing in a few words.
struct stage_standing {
  std::map<std::string, int> counts;
  int cases = 0, failing = 0, not_run = 0;
  std::set<std::string> missing;  ///< the needs that left its cases not run
  std::string words() const {
    auto needs = std::string{};
    for (const auto& m : missing) needs += (needs.empty() ? "" : ", ") + m;
    if (failing) return "FAILING: " + std::to_string(failing) + " of " + std::to_string(cases) + " cases fail" +
                        (not_run ? ", " + std::to_string(not_run) + " not run (needs " + needs + ")" : "");
    if (not_run == cases) return "not reached: needs " + needs;
    if (not_run) return "partial: " + std::to_string(not_run) + " of " + std::to_string(cases) + " not run (needs " + needs + ")";
    return "complete";
  }
};

std::string verdict_name(const case_result& r) { return r.missing_need ? "not run" : std::string(to_string(r.outcome)); }

// In the order of `stages` (suite.hpp), the stages the run has cases of.
std::vector<std::pair<std::string_view, stage_standing>> standings(const std::vector<case_result>& results, bool strict) {
  std::map<std::string_view, stage_standing> by;
  for (const auto& r : results) {
    auto& s = by[stage_of(*r.test)];
    ++s.cases;
    ++s.counts[verdict_name(r)];
    s.failing += r.counts_against(strict);
    if (r.missing_need) {
      ++s.not_run;
      s.missing.insert(std::string(to_string(*r.missing_need)));
    }
  }
  std::vector<std::pair<std::string_view, stage_standing>> out;
  for (const auto stage : stages)
    if (const auto it = by.find(stage); it != by.end()) out.emplace_back(stage, it->second);
  return out;
}

// The cases each need left not run.
std::map<need, int> not_run_by_need(const std::vector<case_result>& results) {
  std::map<need, int> out;
  for (const auto& r : results)
    if (r.missing_need) ++out[*r.missing_need];
  return out;
}

std::string_view result_word(int status) {
  return status == 130 ? "INTERRUPTED" : status == 2 ? "NOT RUN" : status == 1 ? "FAIL" : "PASS";
}

}  // namespace

std::string need_words(const need_check& n) {
  if (n.met) return "met";
  return (n.node_fault ? "NOT MET, rule " + n.rule + ": expected " + n.expected + ", got " : std::string("NOT MET: ")) + n.actual;
}

std::string setup_key(const case_result& r) { return r.setup_step + "|" + r.rule; }

int exit_status(const std::vector<case_result>& results, const run_info& run) {
  if (run.interrupted) return 130;
  const auto left = not_run_by_need(results);
  bool failed = run.target_down.has_value(), not_set_up = run.gate && !run.gate->node_fault;
  for (const auto& r : results) failed = failed || r.counts_against(run.strict);
  for (const auto& n : run.needs)
    if (!n.met && left.count(n.which)) (n.node_fault ? failed : not_set_up) = true;
  return failed ? 1 : not_set_up ? 2 : 0;
}

void print_summary(const std::vector<case_result>& results, const run_info& run, bool strict) {
  std::map<std::string, std::map<verdict, int>> by_group;
  std::map<verdict, int> total;
  int unexpected = 0;
  for (const auto& r : results) {
    ++by_group[r.test->group][r.outcome];
    ++total[r.outcome];
    unexpected += r.unexpected_pass();
  }
  std::cout << "\n" << results.size() << " cases in " << to_seconds(run.duration) << " s:";
  for (const auto v : {verdict::pass, verdict::fail, verdict::timeout, verdict::skip, verdict::info})
    std::cout << " " << total[v] << " " << to_string(v);
  std::cout << "\n";
  for (const auto& [g, counts] : by_group) {
    std::cout << "  " << g << ":";
    for (const auto& [v, n] : counts) std::cout << " " << n << " " << to_string(v);
    std::cout << "\n";
  }
  // What the node meets and where it stands, stage by stage: a half-built node learns all of it
  // from one run.
  const auto left = not_run_by_need(results);
  for (const auto& n : run.needs)
    if (!n.met) {
      std::cout << "NEED NOT MET: " << to_string(n.which) << " (" << describe(n.which) << "): " << need_words(n) << "; "
                << (left.count(n.which) ? left.at(n.which) : 0) << " case(s) not run: ";
      for (const auto& r : results)
        if (r.missing_need == n.which) std::cout << r.test->id << " ";
      std::cout << "\n";
    }
  if (!run.gate) {
    std::cout << "stages:\n";
    for (const auto& [stage, st] : standings(results, strict)) {
      std::cout << "  " << stage << ": " << st.words() << " (";
      bool first = true;
      for (const auto& [v, n] : st.counts) std::cout << (std::exchange(first, false) ? "" : ", ") << n << " " << v;
      std::cout << ")\n";
    }
  }
  if (run.target_down) std::cout << "THE NODE STOPPED ANSWERING during " << *run.target_down << "; later cases were not run\n";
  if (run.gate && !run.gate->node_fault) std::cout << "NO CASE RAN: " << run.gate->step << ": " << run.gate->actual << "\n";
  if (run.interrupted) std::cout << "INTERRUPTED (SIGINT): the cases not started by then were not run\n";
  if (unexpected) std::cout << unexpected << " case(s) listed as expected failures passed: remove them from the file\n";
  // One line per root cause of a setup step, then one per case that failed its own check.
  std::map<std::string, std::vector<const case_result*>> setups;
  for (const auto& r : results)
    if (!r.setup_step.empty() && r.counts_against(strict)) setups[setup_key(r)].push_back(&r);
  for (const auto& [key, rs] : setups) {
    std::cout << "SETUP FAILED: " << rs.front()->setup_step << ": rule " << rs.front()->rule << ": expected "
              << rs.front()->expected << ", got " << rs.front()->actual << "; " << rs.size()
              << " case(s) stopped there, their own checks not run: ";
    for (const auto* r : rs) std::cout << r->test->id << " ";
    std::cout << "\n";
  }
  for (const auto& r : results)
    if (r.counts_against(strict) && r.setup_step.empty())
      std::cout << "FAILED " << r.test->id << " (" << r.level << "): " << r.reason << "\n";
}

int finish_run(const std::vector<case_result>& results, const run_info& run, const report_files& files) {
  print_summary(results, run, run.strict);
  if (!files.json.empty()) write_json_report(results, run, files.json);
  if (!files.junit.empty()) write_junit_report(results, run, files.junit);
  if (!files.html.empty()) write_html_report(results, run, files.html);
  if (!files.transcripts.empty()) save_transcripts(results, files.transcripts);
  const int status = exit_status(results, run);
  std::cout << "RESULT: " << result_word(status) << "\n";
  return status;
}

void write_json_report(const std::vector<case_result>& results, const run_info& run, const std::filesystem::path& file) {
  namespace json = boost::json;
  json::object summary;
  for (const auto v : {verdict::pass, verdict::fail, verdict::timeout, verdict::skip, verdict::info}) summary[to_string(v)] = 0;
  json::array cases;
  std::size_t must_failures = 0, unexpected_passes = 0, expected_failures = 0;
  for (const auto& r : results) {
    summary[to_string(r.outcome)] = summary[to_string(r.outcome)].as_int64() + 1;
    must_failures += r.counts_against(false);
    unexpected_passes += r.unexpected_pass();
    expected_failures += r.expected_failure && !r.unexpected_pass();
    json::array transcript;
    for (const auto& t : r.transcript) transcript.push_back(json::object{{"what", t.what}, {"text", valid_utf8(t.text)}});
    json::array needs;
    for (const auto n : all_needs)
      if (has(r.test->needs, n)) needs.emplace_back(to_string(n));
    json::object c{{"id", r.test->id},
                   {"title", r.test->title},
                   {"group", r.test->group},
                   {"stage", stage_of(*r.test)},
                   {"needs", std::move(needs)},
                   {"role", to_string(r.test->side())},
                   {"level", r.level},
                   {"requirements", json::array(r.test->requirements.begin(), r.test->requirements.end())},
                   {"verdict", to_string(r.outcome)},
                   {"duration_ms", r.duration.count()},
                   {"transcript", std::move(transcript)}};
    if (!r.reason.empty()) c["reason"] = valid_utf8(r.reason);
    if (!r.setup_step.empty()) c["setup_failed"] = r.setup_step;
    if (r.missing_need) c["not_run_need"] = to_string(*r.missing_need);
    if (!r.rule.empty()) c["failure"] = json::object{{"rule", r.rule}, {"expected", valid_utf8(r.expected)}, {"actual", valid_utf8(r.actual)}};
    if (r.expected_failure) {
      c["expected_failure"] = *r.expected_failure;
      c["unexpected_pass"] = r.unexpected_pass();
    }
    cases.push_back(std::move(c));
  }
  summary["must_failures"] = must_failures;
  summary["expected_failures"] = expected_failures;
  summary["unexpected_passes"] = unexpected_passes;
  json::object read, assumed;
  if (run.node)
    for (const auto& [name, value] : run.node->limits) {
      if (const auto a = run.node->assumed.find(name); a != run.node->assumed.end())
        assumed[name] = json::object{{"value", value}, {"why", a->second}};
      else
        read[name] = value;
    }
  json::array needs, assumptions;
  for (const auto& n : run.needs) {
    json::object o{{"need", to_string(n.which)}, {"description", describe(n.which)}, {"met", n.met}};
    if (!n.met) {
      o["node_fault"] = n.node_fault;
      o["rule"] = n.rule;
      o["expected"] = valid_utf8(n.expected);
      o["actual"] = valid_utf8(n.actual);
    }
    needs.push_back(std::move(o));
  }
  if (run.node)
    for (const auto& a : run.node->assumptions) assumptions.emplace_back(valid_utf8(a));
  json::object stages_out;
  for (const auto& [stage, st] : standings(results, run.strict)) {
    json::object counts(st.counts.begin(), st.counts.end());
    stages_out[stage] = json::object{{"standing", st.words()}, {"counts", std::move(counts)}};
  }
  json::object root{{"schema", report_schema},
                    {"target", json::object{{"url", run.target},
                                            {"transport", run.transport},
                                            {"entity_id", run.node_id},
                                            {"fingerprint", run.node_fingerprint}}},
                    {"runner_identity", run.runner_id},
                    {"started", run.started},
                    {"duration_ms", run.duration.count()},
                    {"strict", run.strict},
                    {"limits", json::object{{"read", std::move(read)}, {"assumed_spec_defaults", std::move(assumed)}}},
                    {"target_down_during", run.target_down ? json::value(*run.target_down) : json::value(nullptr)},
                    {"gate_failure", run.gate ? json::value(json::object{{"step", run.gate->step},
                                                                         {"rule", run.gate->rule},
                                                                         {"expected", valid_utf8(run.gate->expected)},
                                                                         {"actual", valid_utf8(run.gate->actual)},
                                                                         {"node_fault", run.gate->node_fault}})
                                              : json::value(nullptr)},
                    {"interrupted", run.interrupted},
                    {"needs", std::move(needs)},
                    {"assumptions", std::move(assumptions)},
                    {"stages", std::move(stages_out)},
                    {"summary", std::move(summary)},
                    {"cases", std::move(cases)}};
  write_file(file, json::serialize(root) + "\n");
}

void write_junit_report(const std::vector<case_result>& results, const run_info& run, const std::filesystem::path& file) {
  std::map<std::string, std::vector<const case_result*>> groups;
  for (const auto& r : results) groups[r.test->group].push_back(&r);
  std::ostringstream x;
  x << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  x << "<testsuites name=\"peerproto-conformance\" time=\"" << to_seconds(run.duration) << "\">\n";
  for (const auto& [group, list] : groups) {
    std::size_t failures = 0, skipped = 0;
    double seconds = 0;
    for (const auto* r : list) {
      const bool failed = (r->outcome == verdict::fail || r->outcome == verdict::timeout) && !r->expected_failure;
      failures += failed;
      skipped += r->outcome == verdict::skip || (r->expected_failure && !r->unexpected_pass());
      seconds += to_seconds(r->duration);
    }
    x << "  <testsuite name=\"" << xml_escape(group) << "\" tests=\"" << list.size() << "\" failures=\"" << failures
      << "\" errors=\"0\" skipped=\"" << skipped << "\" time=\"" << seconds << "\">\n";
    for (const auto* r : list) {
      x << "    <testcase classname=\"" << xml_escape(group) << "\" name=\"" << xml_escape(r->test->id + " (" + r->level + ") " + r->test->title)
        << "\" time=\"" << to_seconds(r->duration) << "\">\n";
      const bool failed = r->outcome == verdict::fail || r->outcome == verdict::timeout;
      if (failed && r->expected_failure) {
        x << "      <skipped message=\"expected failure: " << xml_escape(*r->expected_failure) << "\"/>\n";
      } else if (failed) {
        x << "      <failure message=\"" << xml_escape(r->reason) << "\" type=\"" << to_string(r->outcome) << "\">"
          << xml_escape("rule: " + r->rule + "\nexpected: " + r->expected + "\nactual: " + r->actual + "\n") << "</failure>\n";
      } else if (r->outcome == verdict::skip) {
        x << "      <skipped message=\"" << xml_escape(r->reason) << "\"/>\n";
      }
      x << "      <system-out>" << xml_escape(transcript_text(*r)) << "</system-out>\n";
      x << "    </testcase>\n";
    }
    x << "  </testsuite>\n";
  }
  x << "</testsuites>\n";
  write_file(file, x.str());
}

void save_transcripts(const std::vector<case_result>& results, const std::filesystem::path& dir) {
  for (const auto& r : results) {
    const auto d = dir / file_name(r.test->id);
    std::filesystem::create_directories(d);
    write_file(d / "transcript.txt", transcript_text(r));
    std::size_t n = 0;
    for (const auto& [what, text] : r.envelopes) {
      char name[32];
      std::snprintf(name, sizeof name, "%03zu-%s.json", n++, what.c_str());
      write_file(d / name, text);
    }
  }
}

// One self-contained page: the style is inline and nothing is fetched, so the file can be opened
// from a CI artifact anywhere. Each case is a <details> element, open when it failed.
void write_html_report(const std::vector<case_result>& results, const run_info& run, const std::filesystem::path& file) {
  const auto esc = [](std::string_view t) { return xml_escape(t); };
  const auto& spec = spec_requirements();
  std::map<std::string, std::map<verdict, int>> by_group, by_level;
  std::map<verdict, int> total;
  for (const auto& r : results) {
    ++by_group[r.test->group][r.outcome];
    ++by_level[r.level][r.outcome];
    ++total[r.outcome];
  }
  const auto status = exit_status(results, run);
  const std::array verdicts{verdict::pass, verdict::fail, verdict::timeout, verdict::skip, verdict::info};
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>peerproto conformance: " << esc(run.node_id)
    << "</title>\n<style>\n"
       "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}h1{font-size:1.4em}table{border-collapse:collapse;margin:1em 0}"
       "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top;overflow-wrap:anywhere}"
       ".counts td,.counts th{text-align:right}.counts td:first-child,.counts th:first-child{text-align:left}"
       ".failure{width:100%;table-layout:fixed}.failure th{width:6em}"
       ".pass{color:#17702a}.fail,.timeout{color:#b3261e;font-weight:bold}.skip{color:#8a6d00}.info{color:#33589b}"
       "details{border:1px solid #ddd;margin:.3em 0;padding:.3em .6em}summary{cursor:pointer}"
       "pre{white-space:pre-wrap;word-break:break-all;background:#f6f6f6;padding:.5em;font-size:12px}"
       ".rule{background:#fffbe6;padding:.4em;border-left:3px solid #e0c000}.sent{color:#1d4f91}.received{color:#6b2b8c}.note{color:#555}"
       "#result{font-size:1.2em}\n</style></head><body>\n";
  h << "<h1>peerproto conformance report</h1>\n<p id=\"result\" class=\"" << (status == 0 ? "pass" : status == 1 ? "fail" : "skip")
    << "\">RESULT: " << result_word(status) << "</p>\n<table>"
    << "<tr><th>node</th><td>" << esc(run.node_id) << " (fingerprint " << esc(run.node_fingerprint) << ")</td></tr>"
    << "<tr><th>target</th><td>" << esc(run.target) << ", messages over " << esc(run.transport) << "</td></tr>"
    << "<tr><th>started</th><td>" << esc(run.started) << ", " << to_seconds(run.duration) << " s</td></tr>"
    << "<tr><th>runner</th><td>" << esc(run.runner_id) << (run.strict ? ", strict" : "") << "</td></tr></table>\n";
  if (run.target_down) h << "<p class=\"fail\">The node stopped answering during " << esc(*run.target_down) << "; later cases were not run.</p>\n";
  if (run.gate)
    h << "<p class=\"" << (run.gate->node_fault ? "fail" : "skip") << "\" id=\"gate\">" << (run.gate->node_fault ? "Every case stopped at " : "No case ran: ")
      << esc(run.gate->step) << ": " << (run.gate->rule.empty() ? "" : "rule " + esc(run.gate->rule) + ": expected " + esc(run.gate->expected) + ", got ")
      << esc(run.gate->actual) << "</p>\n";
  if (run.interrupted) h << "<p class=\"skip\">Interrupted (SIGINT): the cases not started by then were not run.</p>\n";
  if (!run.needs.empty()) {
    const auto left = not_run_by_need(results);
    h << "<h2>What the node needs for the cases</h2>\n<table id=\"needs\"><tr><th>need</th><th>met</th><th>cases not run</th></tr>\n";
    for (const auto& n : run.needs)
      h << "<tr><td>" << esc(to_string(n.which)) << ": " << esc(describe(n.which)) << "</td><td class=\""
        << (n.met ? "pass" : n.node_fault ? "fail" : "skip") << "\">" << esc(need_words(n)) << "</td><td>"
        << (left.count(n.which) ? left.at(n.which) : 0) << "</td></tr>\n";
    h << "</table>\n";
  }
  if (run.node && !run.node->assumptions.empty()) {
    h << "<p>Assumed without a /capabilities document:</p><ul>";
    for (const auto& a : run.node->assumptions) h << "<li>" << esc(a) << "</li>";
    h << "</ul>\n";
  }
  if (!run.gate) {
    h << "<h2>By stage</h2>\n<table id=\"stages\">";
    for (const auto& [stage, st] : standings(results, run.strict))
      h << "<tr><td>" << esc(stage) << "</td><td class=\"" << (st.failing ? "fail" : st.not_run ? "skip" : "pass") << "\">" << esc(st.words())
        << "</td></tr>\n";
    h << "</table>\n";
  }
  const auto table = [&](const char* title, const std::map<std::string, std::map<verdict, int>>& rows) {
    h << "<h2>" << title << "</h2>\n<table class=\"counts\"><tr><th></th>";
    for (const auto v : verdicts) h << "<th>" << to_string(v) << "</th>";
    h << "</tr>\n";
    for (const auto& [name, counts] : rows) {
      h << "<tr><td>" << esc(name) << "</td>";
      for (const auto v : verdicts) {
        const auto it = counts.find(v);
        h << "<td" << (it != counts.end() ? " class=\"" + std::string(to_string(v)) + "\"" : "") << ">" << (it == counts.end() ? 0 : it->second) << "</td>";
      }
      h << "</tr>\n";
    }
    h << "<tr><th>all " << results.size() << "</th>";
    for (const auto v : verdicts) h << "<th>" << total[v] << "</th>";
    h << "</tr></table>\n";
  };
  table("By group", by_group);
  table("By level", by_level);
  h << "<h2>Cases</h2>\n";
  for (const auto& r : results) {
    const bool bad = r.outcome == verdict::fail || r.outcome == verdict::timeout;
    h << "<details id=\"" << esc(r.test->id) << "\"" << (bad ? " open" : "") << "><summary><span class=\"" << to_string(r.outcome) << "\">"
      << to_string(r.outcome) << "</span> <b>" << esc(r.test->id) << "</b> (" << esc(r.level) << ", " << esc(to_string(r.test->side()))
      << ", " << r.duration.count() << " ms) " << esc(r.test->title);
    if (r.expected_failure) h << (r.unexpected_pass() ? " <b>unexpected pass</b>" : " <i>expected failure</i>");
    h << "</summary>\n";
    for (const auto& id : r.test->requirements)
      if (const auto it = spec.find(id); it != spec.end())
        h << "<p class=\"rule\"><b>" << esc(id) << "</b> (" << esc(it->second.level) << ") " << esc(it->second.text) << "</p>\n";
    if (!r.rule.empty())
      h << "<table class=\"failure\"><tr><th>rule</th><td>" << esc(r.rule) << (r.setup_step.empty() ? "" : " (setup: " + esc(r.setup_step) + ")")
        << "</td></tr><tr><th>expected</th><td>" << esc(r.expected) << "</td></tr><tr><th>actual</th><td>" << esc(r.actual) << "</td></tr></table>\n";
    else if (!r.reason.empty())
      h << "<p>" << esc(r.reason) << "</p>\n";
    if (!r.transcript.empty()) {
      h << "<pre>";
      for (const auto& t : r.transcript) h << "<span class=\"" << esc(t.what) << "\">" << esc(t.what) << ": " << esc(t.text) << "</span>\n";
      h << "</pre>\n";
    }
    h << "</details>\n";
  }
  h << "</body></html>\n";
  write_file(file, h.str());
}

}  // namespace peerproto::conformance
