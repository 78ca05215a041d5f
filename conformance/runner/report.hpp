// What a run produces: the result of each case, and the JSON, JUnit XML and transcript files.
#pragma once

#include "suite.hpp"

#include <filesystem>

namespace peerproto::conformance {

struct case_result {
  const test_case* test = nullptr;
  std::string level;  ///< MUST, SHOULD or MAY, from the specification
  verdict outcome = verdict::pass;
  std::string reason;                      ///< skip reason, or the failure in one line
  std::string rule, expected, actual;      ///< for failures
  std::string setup_step;                  ///< set when a shared setup step (a handshake) failed
  std::chrono::milliseconds duration{0};
  std::vector<transcript_entry> transcript;
  std::vector<std::pair<std::string, std::string>> envelopes;
  std::optional<need> missing_need;  ///< not run: the node does not meet this need of the case
  std::optional<std::string> expected_failure;  ///< the reason given in the expected-failures file
  bool unexpected_pass() const { return expected_failure && outcome == verdict::pass; }
  bool counts_against(bool strict) const {
    if (expected_failure || (outcome != verdict::fail && outcome != verdict::timeout)) return false;
    return level == "MUST" || (strict && level == "SHOULD");
  }
};

/// A step every case goes through that failed before any case ran (discovery, the trust check).
/// `node_fault`: the node answered against SPEC `rule`, and every case fails there; otherwise the
/// node could not be reached or is not set up for a run (exit status 2), and no case ran.
struct gate_failure_info {
  std::string step, rule, expected, actual;
  bool node_fault = false;
};

struct run_info {
  std::string target, transport, node_id, node_fingerprint, runner_id, started;
  std::chrono::milliseconds duration{0};
  std::optional<std::string> target_down;  ///< the case during which the node stopped answering
  std::optional<gate_failure_info> gate;   ///< why no case ran
  std::vector<need_check> needs;           ///< the needs the selected cases have, met or not
  bool interrupted = false;                ///< SIGINT: the cases not run yet were not run
  bool strict = false;
  const node_info* node = nullptr;  ///< what the run learned of the node: its limits, read or assumed
};

/// Members added since (the needs, the stages, each case's missing need) are optional to readers.
inline constexpr std::string_view report_schema = "peerproto.conformance.report.v1";

/// "met", or "NOT MET" with the rule broken, what was expected and what came (or why, for a setting).
std::string need_words(const need_check& n);
/// Setup failures with one root cause: the same step failing the same rule (the expectation may
/// name per-case values such as a session id).
std::string setup_key(const case_result& r);
/// The summary: counts per verdict and group, the needs not met, the standing per stage, then one
/// line per root cause of a failure.
void print_summary(const std::vector<case_result>& results, const run_info& run, bool strict);

/// Where a run's reports go (empty: not written).
struct report_files {
  std::filesystem::path json, junit, html, transcripts;
};
/// The exit status of a run: 130 interrupted; 1 a MUST failed (a gate or a need the node failed,
/// or the node stopping, counts); 2 no case could run (the node not reached), or cases were left
/// not run because the node is not set up for a run (trust pinned); 0 pass.
int exit_status(const std::vector<case_result>& results, const run_info& run);
/// Prints the summary, writes every report asked for, prints the result, and returns exit_status.
int finish_run(const std::vector<case_result>& results, const run_info& run, const report_files& files);

void write_json_report(const std::vector<case_result>& results, const run_info& run, const std::filesystem::path& file);
void write_junit_report(const std::vector<case_result>& results, const run_info& run, const std::filesystem::path& file);
/// One self-contained HTML page: summary by group and level, and each case with the text of its
/// rules, its verdict, expected against actual, and its transcript.
void write_html_report(const std::vector<case_result>& results, const run_info& run, const std::filesystem::path& file);
/// One directory per case: NNN-sent.json / NNN-received.json for each envelope, and transcript.txt.
void save_transcripts(const std::vector<case_result>& results, const std::filesystem::path& dir);

}  // namespace peerproto::conformance
