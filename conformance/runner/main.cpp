// peerproto-conformance: runs the conformance suite against a node over the network and reports
// a verdict per case (console, JSON, JUnit XML, transcripts). This file only reads the command
// line and calls a command (commands.hpp).
#include "commands.hpp"

#include <peerproto/crypto.hpp>
#include <peerproto/key_file.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

using namespace peerproto;
using namespace peerproto::conformance;

static_assert(!peerproto::crypto::unsafe_fuzzing_crypto, "the fuzzing-mode crypto stand-ins are not secure; build without PEERPROTO_FUZZING_UNSAFE_CRYPTO");

int main(int argc, char** argv) {
  options o;
  CLI::App app{"peerproto-conformance: checks a peer-protocol node against docs/SPEC.md over the network.\n"
               "Every case names the requirements it checks; a MUST failure makes the exit status 1."};
  app.add_option("--target", o.target,
                 "the node: http://HOST:PORT (messages over POST /message) or ws://HOST:PORT/ws; https:// and wss:// over TLS");
  app.add_option("--ca-file", o.ca_file, "PEM CA certificates that the node's TLS certificate is verified against (default: the system's)");
  app.add_option("--transport", o.transport, "carry the message cases over http or ws (default: from --target)")
      ->check(CLI::IsMember({"http", "ws"}));
  app.add_option("--node-key", o.node_key, "the node's Ed25519 public key (64 hex); refuses to run if /public-key differs");
  app.add_option("--key", o.key_file, "the runner's identity file (peerproto-node keygen); default: a new identity per run");
  app.add_option("--role", o.role,
                 "which half of the node to test: responder (the runner sends, the node answers), initiator (the node "
                 "sends to the runner, driven by --shim), or all (for --list)")
      ->capture_default_str()->check(CLI::IsMember({"responder", "initiator", "all"}));
  app.add_option("--shim", o.shim,
                 "initiator role: the command that makes the node send a message, with {url}, {type}, {payload}, "
                 "{payload_file} and {expires_in} filled in; exit 0 delivered, 1 refused by the peer, 3 given up "
                 "(README.md: the shim contract)");
  app.add_option("--rotate-shim", o.rotate_shim,
                 "initiator role: the command that makes the node rotate its identity key to the key file {key_file} (SPEC "
                 "ID-12, written by the runner for the node's entity id) and announce it; {url} is the runner's URL for the case. "
                 "Exit 0 once rotated. The node's key changes for good: give it only for a node you can throw away. Without it "
                 "the KR-*/initiator-* cases skip");
  app.add_option("--listen", o.listen, "initiator role: the address the runner's peer listens on (the node must reach it)")
      ->capture_default_str();
  app.add_option("--cases", o.cases, "run only cases whose id matches one of these globs (comma-separated), e.g. 'HS-*'");
  app.add_option("--exclude", o.exclude, "skip cases whose id matches one of these globs");
  std::string shard;
  app.add_option("--shard", shard,
                 "I/N: run the I-th of N disjoint parts of the selected cases (1 <= I <= N), so that N jobs "
                 "together run each case once; the parts are the same in every job");
  app.add_flag("--list", o.list, "list the selected cases and exit (no traffic)");
  app.add_flag("--coverage", o.coverage,
               "print every requirement of docs/SPEC.md with the cases that check it; exit 1 if a MUST has none and no reason");
  app.add_flag("--strict", o.strict, "SHOULD failures also make the exit status 1");
  app.add_option("--timeout", o.timeout_s, "time limit of one case in seconds")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--jobs", o.jobs, "cases run in parallel")->capture_default_str()->check(CLI::Range(1u, 64u));
  app.add_option("--json", o.json_file, "write the JSON report (schema peerproto.conformance.report.v1) to this file");
  app.add_option("--junit", o.junit_file, "write a JUnit XML report to this file");
  app.add_option("--html", o.html_file, "write a self-contained HTML report (no network fetches) to this file");
  app.add_option("--save-transcripts", o.transcripts_dir, "write each case's envelopes and transcript under this directory");
  app.add_option("--expected-failures", o.xfail_file, "file of known failures: one 'CASE-ID reason' per line");
  app.add_option("--source-addresses", o.source_addresses,
                 "local addresses to spread cases over (comma-separated), 'none', or 'auto' (for a loopback target: 500 "
                 "addresses in a 127.N.0.0/16 drawn for each run)")
      ->capture_default_str();
  app.add_flag("-v,--verbose", o.verbose, "print the transcript of every failed case");
  merge_options m;
  auto* merge = app.add_subcommand("merge", "join the JSON reports of the jobs of a sharded run (--shard I/N) into one report and "
                                            "one JUnit file; exit 1 if the whole fails, as a run would");
  merge->add_option("reports", m.reports, "the JSON reports (--json) of the parts")->required()->check(CLI::ExistingFile);
  merge->add_option("--json", m.json_file, "write the joined JSON report to this file");
  merge->add_option("--junit", m.junit_file, "write the joined JUnit XML report to this file");
  merge->add_option("--html", m.html_file, "write the joined HTML report to this file");
  fuzz_options f;
  auto* fuzz = app.add_subcommand("fuzz", "send mutated messages to a node for a while and report what breaks it: a node that goes "
                                          "down, 5xx, no answer, an answer that is not a signed envelope, a session broken by a "
                                          "refused message, memory growth; exit 1 when there are findings");
  fuzz->add_option("--target", f.base.target, "the node, as for a run (http://, ws://, https://, wss://)");
  fuzz->add_option("--print-inputs", f.print_inputs, "print the first N inputs of --seed and exit, without traffic");
  fuzz->add_option("--ca-file", f.base.ca_file, "PEM CA certificates for an https:// or wss:// target");
  fuzz->add_option("--duration", f.duration, "how long: seconds, or a number with s, m or h (10m)")->capture_default_str();
  fuzz->add_option("--seed", f.seed, "the inputs' generator seed: the same seed makes the same inputs (default: random, printed)");
  fuzz->add_option("--seeds", f.seeds_dir, "a --save-transcripts directory whose sent envelopes are added to the built-in seeds");
  fuzz->add_option("--findings", f.findings_dir, "where finding files are written")->capture_default_str();
  fuzz->add_option("--replay", f.replay, "send the input of one finding file again and check it (exit 1 if it still fails)");
  fuzz->add_option("--pid", f.pid, "the node's process id, when it runs on this machine: its resident memory is watched");
  fuzz->add_option("--max-rss-growth", f.max_rss_growth_mib, "MiB of resident memory growth after the first 5 s that is a finding")
      ->capture_default_str();
  fuzz->add_option("--max-findings", f.max_findings, "stop after this many findings")->capture_default_str()->check(CLI::PositiveNumber);
  fuzz->add_option("--source-addresses", f.base.source_addresses, "as for a run")->capture_default_str();
  fuzz->add_option("--node-trust", f.node_trust,
                   "the node's trust policy (pinned, tofu or open): under pinned, a handshake from a new identity must be refused "
                   "(the only forgery then, since no identity of the fuzzer is bound)")
      ->capture_default_str();
  fuzz->add_option("--forgery", f.forgery,
                   "send only this forgery, to check one rule: tampered, other_key, replayed, stale, wrong_key, reused_sequence, "
                   "closed_session, expired_session (a node whose session_idle_ttl_ms is 5000 or less), unknown_sender (with --node-trust pinned)");
  fuzz->add_option("--jobs", f.jobs, "workers sending in parallel, each its own generator (the seed and its number) and identities")
      ->capture_default_str()->check(CLI::Range(1u, 64u));
  CLI11_PARSE(app, argc, argv);
  try {
    if (*merge) return merge_command(m);
    if (*fuzz) return fuzz_command(f);
    if (!shard.empty()) {
      unsigned i = 0, n = 0;
      char slash = 0, extra = 0;
      if (std::sscanf(shard.c_str(), "%u%c%u%c", &i, &slash, &n, &extra) != 3 || slash != '/' || i < 1 || i > n || n > 10000)
        throw setup_error("--shard takes I/N with 1 <= I <= N <= 10000, as in --shard 2/4 (got " + shard + ")");
      o.shard = i;
      o.shards = n;
    }
    o.cases = split_commas(o.cases);
    o.exclude = split_commas(o.exclude);
    return o.list || o.coverage ? list_command(o) : run_command(o);
  } catch (const setup_error& e) {
    std::cerr << "peerproto-conformance: " << e.what() << "\n";
    return 2;
  } catch (const config_error& e) {
    std::cerr << "peerproto-conformance: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {  // a report or seed file that is not what it should be, say
    std::cerr << "peerproto-conformance: " << e.what() << "\n";
    return 2;
  }
}
