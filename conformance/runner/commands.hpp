// The runner's commands, each in its own file: main.cpp parses the command line into `options`
// and calls one of them. run_command.cpp runs the suite against a node; list_command.cpp lists
// the cases (--list) or the requirements with their cases (--coverage) without any traffic.
#pragma once

#include "report.hpp"
#include "suite.hpp"

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace peerproto::conformance {

/// Everything the command line says.
struct options {
  std::string target, transport, node_key, key_file, json_file, junit_file, html_file, transcripts_dir, xfail_file, ca_file;
  std::string source_addresses = "auto";
  std::string role = "responder";  ///< responder, initiator or all: which cases are selected
  std::string shim, rotate_shim, listen = "127.0.0.1";
  std::vector<std::string> cases, exclude;  ///< globs, comma-separated lists already split
  bool list = false, coverage = false, strict = false, verbose = false;
  double timeout_s = 20;
  unsigned jobs = 4;
  unsigned shard = 1, shards = 1;  ///< --shard I/N: this run takes the selected cases at I, I+N, I+2N, ...
};

/// `merge`: the JSON reports of a sharded run, joined into one report.
struct merge_options {
  std::vector<std::string> reports;
  std::string json_file, junit_file, html_file;
};

/// `fuzz`: mutated messages against a node for a while (fuzz_command.cpp).
struct fuzz_options {
  options base;  ///< --target, --ca-file and --source-addresses as for a run
  std::string duration = "60s", seeds_dir, findings_dir = "fuzz-findings", replay;
  std::optional<std::uint64_t> seed;
  int pid = 0;                      ///< the node's process, for the memory oracle
  std::size_t max_rss_growth_mib = 256;
  std::size_t max_findings = 10;
  std::size_t print_inputs = 0;     ///< print this many inputs (of worker 0) and exit (no traffic)
  unsigned jobs = 8;                ///< workers sending in parallel
  std::string node_trust = "tofu";  ///< the node's trust policy: under pinned, a new identity is a forgery
  std::string forgery;              ///< send only this forgery (netfuzz/mutator.hpp)
};

/// A run that cannot start (a bad option, a node that cannot be reached): exit status 2.
struct setup_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A gate before every case failed (discover, the trust check); the run still reports every case.
struct gate_failure : setup_error {
  explicit gate_failure(gate_failure_info i)
      : setup_error(i.step + ": " + (i.rule.empty() ? "" : "rule " + i.rule + ": expected " + i.expected + ", got ") + i.actual),
        info(std::move(i)) {}
  gate_failure_info info;
};

/// "a,b" "c" -> a b c.
std::vector<std::string> split_commas(const std::vector<std::string>& in);
/// The cases --cases and --exclude select, in catalogue order, and of those this run's shard.
/// Throws setup_error when none.
std::vector<const test_case*> select_cases(const options& o);
/// The level of the requirement a case checks first (MUST, SHOULD or MAY).
std::string level_of(const test_case& c);

/// The run's settings from the command line (the target, TLS, identities, source addresses).
settings settings_from(const options& o);
/// What the node says of itself at /public-key and /capabilities; gate_failure when it cannot be
/// reached or answers /public-key against HTTP-6, setup_error when it is not the node --node-key
/// names. A /capabilities that breaks HTTP-7 is replaced by SPEC's defaults (node_info::assumptions)
/// and said in `capabilities`.
node_info discover(const settings& cfg, const std::string& pinned_key, need_check* capabilities = nullptr);

/// --list and --coverage: no traffic.
int list_command(const options& o);
/// Runs the selected cases against --target; the exit status is the verdict (0 pass, 1 fail).
int run_command(const options& o);
/// Joins the reports; the exit status is the verdict of the whole, as for a run.
int merge_command(const merge_options& o);
/// Fuzzes the node (or replays one finding); exit 1 when there are findings.
int fuzz_command(const fuzz_options& o);

}  // namespace peerproto::conformance
