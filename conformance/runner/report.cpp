#include "report.hpp"

#include <boost/json.hpp>

#include <fstream>
#include <map>
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
}  // namespace

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
    json::object c{{"id", r.test->id},
                   {"title", r.test->title},
                   {"group", r.test->group},
                   {"role", to_string(r.test->side())},
                   {"level", r.level},
                   {"requirements", json::array(r.test->requirements.begin(), r.test->requirements.end())},
                   {"verdict", to_string(r.outcome)},
                   {"duration_ms", r.duration.count()},
                   {"transcript", std::move(transcript)}};
    if (!r.reason.empty()) c["reason"] = valid_utf8(r.reason);
    if (!r.setup_step.empty()) c["setup_failed"] = r.setup_step;
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

}  // namespace peerproto::conformance
