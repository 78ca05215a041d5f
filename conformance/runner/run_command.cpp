// The run command: discovers the node, checks that it accepts the runner's identities, runs the
// selected cases (in parallel, then the exclusive ones alone), prints progress and a summary, and
// writes the reports.
#include "commands.hpp"
#include "report.hpp"

#include <peerproto/encoding.hpp>
#include <peerproto/key_file.hpp>
#include <peerproto/message_types.hpp>
#include <peerproto/peer_url.hpp>
#include <peerproto/version.hpp>

#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

namespace peerproto::conformance {
namespace {

// "CASE-ID reason..." per line; '#' starts a comment. A line without a reason is refused.
std::map<std::string, std::string> load_expected_failures(const std::string& file, const std::vector<test_case>& all) {
  std::ifstream in(file);
  if (!in) throw setup_error("cannot read the expected-failures file " + file);
  std::map<std::string, std::string> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    const auto space = line.find_first_of(" \t", first);
    const std::string id = line.substr(first, space - first);
    const auto reason_at = space == std::string::npos ? std::string::npos : line.find_first_not_of(" \t", space);
    if (reason_at == std::string::npos)
      throw setup_error(file + ":" + std::to_string(n) + ": " + id + " has no reason; write \"CASE-ID why it fails\"");
    if (std::none_of(all.begin(), all.end(), [&](const test_case& c) { return c.id == id; }))
      throw setup_error(file + ":" + std::to_string(n) + ": no case is called " + id + " (see --list)");
    out[id] = line.substr(reason_at, line.find_last_not_of(" \t\r") - reason_at + 1);
  }
  return out;
}

// https:// and wss:// targets are reached over TLS 1.2 or later, their certificate verified for
// the target's host name against --ca-file or, without it, the system's CAs.
std::shared_ptr<boost::asio::ssl::context> tls_context(const std::string& ca_file) {
  namespace ssl = boost::asio::ssl;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                   ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  if (ca_file.empty()) ctx->set_default_verify_paths(ec);
  else ctx->load_verify_file(ca_file, ec);
  if (ec) throw setup_error("--ca-file " + ca_file + ": " + ec.message());
  return ctx;
}

endpoint parse_target(const std::string& url, const std::string& ca_file, bool& websocket, std::string& ws_path) {
  const auto u = parse_peer_url(url);
  if (!u) throw setup_error("--target: " + u.error().message + " (got " + url + ")");
  if (!u->tls && !ca_file.empty()) throw setup_error("--ca-file is for https:// and wss:// targets");
  websocket = u->websocket;
  if (websocket && !u->path.empty()) ws_path = u->path;
  return {u->host, u->port, "", u->tls ? tls_context(ca_file) : nullptr};
}

std::vector<std::string> choose_sources(const std::string& spec, const std::string& host) {
  if (spec == "none") return {};
  if (spec != "auto") return split_commas({spec});
  // Back-off (RL-4) and the pre-authentication bucket (RL-1) are kept per remote address, and the
  // suite spends both on purpose. Against a loopback IPv4 target, spread the cases over 500
  // addresses of 127.0.0.0/8, in a /16 drawn anew for each run, so that neither another case nor
  // an earlier run has left anything in their buckets and counters.
  if (!host.starts_with("127.")) return {};
  std::array<std::uint8_t, 1> r{};
  crypto::random_bytes(r);
  const auto net = "127." + std::to_string(1 + r[0] % 254) + ".";
  std::vector<std::string> out;
  for (int k = 0; k < 2; ++k)
    for (int j = 2; j < 252; ++j) out.push_back(net + std::to_string(k) + "." + std::to_string(j));
  return out;
}

}  // namespace

node_info discover(const settings& cfg, const std::string& pinned_key, need_check* capabilities) {
  node_info n;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  endpoint ep = cfg.target;
  // A document that breaks HTTP-6 or HTTP-7 fails the gate as the node's fault.
  const auto wrong = [](const std::string& path, std::string expected, std::string actual) {
    return gate_failure({"discovery", path == "/public-key" ? "HTTP-6" : "HTTP-7", std::move(expected), std::move(actual), true});
  };
  auto get = [&](const std::string& path) {
    const std::string expected = "GET " + path + " answered 200 with a JSON object";
    try {
      const auto r = http_get(ep, path, until);
      if (r.status != 200) throw wrong(path, expected, "HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 200));
      return json::parse(r.body).as_object();
    } catch (const wire_failure& f) {
      throw gate_failure({"discovery", "", "", "cannot reach the node at " + ep.host + ":" + ep.port + " (GET " + path + "): " + f.what(), false});
    } catch (const std::invalid_argument&) {
      throw wrong(path, expected, "JSON that is not an object");
    } catch (const boost::system::system_error& e) {
      throw wrong(path, expected, std::string("text that is not JSON (") + e.what() + ")");
    }
  };
  const auto pk = get("/public-key");
  const auto* id = pk.if_contains("entity_id");
  const auto* key = pk.if_contains("public_key");
  if (!id || !id->is_string() || !key || !key->is_string())
    throw wrong("/public-key", "{entity_id, public_key, fingerprint}", json::serialize(pk).substr(0, 300));
  n.entity_id = std::string(id->get_string());
  auto decoded = hex_decode_fixed<32>(key->get_string());
  if (!decoded) throw wrong("/public-key", "a public_key of 64 hex characters", std::string(key->get_string()).substr(0, 100));
  n.key = *decoded;
  if (!pinned_key.empty() && pinned_key != key->get_string())
    throw setup_error("the node's /public-key (" + std::string(key->get_string()) + ") is not the key given with --node-key");
  n.fingerprint = fingerprint(n.key);
  // Without a /capabilities document the run goes on with SPEC's versions, suite, core types and
  // default limits, each listed in the report; the cases that read the document are not run.
  try {
    n.capabilities = get("/capabilities");
    if (const auto* v = n.capabilities.if_contains("versions"); !v || !v->is_array() || v->as_array().empty())
      throw wrong("/capabilities", "a list of versions", json::serialize(n.capabilities).substr(0, 300));
  } catch (const gate_failure& g) {
    if (!g.info.node_fault) throw;
    if (capabilities) *capabilities = need_check(need::capabilities, "HTTP-7", g.info.expected, g.info.actual);
    const auto why = " (GET /capabilities: " + g.info.actual.substr(0, 120) + ")";
    json::array versions(supported_versions.begin(), supported_versions.end()), suites{suite_x25519_aes256gcm}, types{msg::ping};
    types.insert(types.begin(), msg::core_requests.begin(), msg::core_requests.end());
    n.capabilities = {{"versions", versions}, {"suites", suites}, {"message_types", types}};
    for (const auto& [name, list] : n.capabilities) n.assumptions.push_back(std::string(name) + " " + json::serialize(list) + why);
  }
  const auto strings = [&](const char* name) {
    std::vector<std::string> out;
    if (const auto* a = n.capabilities.if_contains(name); a && a->is_array())
      for (const auto& v : a->get_array())
        if (v.is_string()) out.emplace_back(v.get_string());
    return out;
  };
  n.versions = strings("versions");
  n.suites = strings("suites");
  n.message_types = strings("message_types");
  n.read_limits();
  return n;
}

namespace {

// One handshake as an identity the node has never seen (the suite speaks as a new identity in
// every case) checks three needs: trust (the node does not refuse the identity as unknown), the
// handshake (it completes), and the session (a ping in it is answered in it).
void check_handshake(const settings& cfg, const node_info& node, need_check& trust, need_check& handshake, need_check& session) {
  context c(cfg, node, 0, std::chrono::seconds(300));
  const auto& who = c.fresh();
  auto p = c.begin_handshake(who);
  auto r = c.exchange(p.text1);
  // A run that just ended may have filled the node's handshake table (HS-18 leaves it full for the
  // handshake timeout): wait what the node says, twice at most, rather than fail every case.
  for (int wait = 0; wait < 2 && r.body.find("\"RATE_LIMITED\"") != std::string::npos; ++wait) {
    boost::system::error_code ec;
    const auto v = json::parse(r.body, ec);
    const auto* payload = !ec && v.is_object() ? v.as_object().if_contains("payload") : nullptr;
    const auto* after = payload && payload->is_object() ? payload->as_object().if_contains("retry_after") : nullptr;
    const auto seconds = after && after->is_int64() ? after->as_int64() : 0;
    if (seconds <= 0 || seconds > 120) break;
    std::cout << "the node is rate limiting handshakes (left full by an earlier run?): waiting its retry_after, " << seconds
              << " s" << std::endl;
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    p = c.begin_handshake(who);
    r = c.exchange(p.text1);
  }
  session.actual = "not checked: the handshake need is not met";
  const std::string expected = "a handshake_ack to a new identity's handshake";
  // Refusing new identities, or rate limiting, is the node's setting, not a fault.
  trust.met = true;
  if (r.body.find("\"UNKNOWN_SENDER\"") != std::string::npos) {
    trust.met = false;
    trust.expected = expected;
    trust.actual = "UNKNOWN_SENDER: the node refuses new identities. The suite runs every case as its own identity (" + who.id +
                   " and so on), so the node must accept new senders: run it with trust policy tofu or open, for the reference "
                   "node `peerproto-node serve --trust tofu`.";
    handshake.actual = "not checked: the trust need is not met";
    return;
  }
  if (r.body.find("\"RATE_LIMITED\"") != std::string::npos) {
    handshake.expected = expected;
    handshake.actual = "the node is rate limiting the runner's first handshake (" + c.describe(r) +
                       "). A run that just ended may have filled its handshake limits (case HS-18 leaves them full for the "
                       "handshake timeout): wait that long and run again.";
    return;
  }
  try {
    auto a = c.check_ack(p, r);
    handshake.met = true;
    session.actual.clear();
    auto s = c.confirm(p, a);
    const auto text = c.session_message(s, "ping", {{"text", "hello"}});
    c.expect_reply(c.exchange(text), text, "pong", "SES-2", &s);
    session.met = true;
  } catch (const case_failure& f) {
    auto& n = handshake.met ? session : handshake;
    n = need_check(n.which, f.rule, f.expected, f.actual);
  }
}

// The websocket need: GET /ws upgrades (WS-1).
need_check check_websocket(const settings& cfg) {
  need_check n(need::websocket);
  try {
    ws_connection ws(cfg.target, cfg.ws_path, std::chrono::steady_clock::now() + std::chrono::seconds(10));
    n.met = true;
  } catch (const wire_failure& f) {
    n = need_check(need::websocket, "WS-1", "a WebSocket upgrade at " + cfg.ws_path, f.what());
  }
  return n;
}

std::string now_text() { return timestamp_at({}, 3); }


}  // namespace

settings settings_from(const options& o) {
  settings cfg;
  cfg.target = parse_target(o.target, o.ca_file, cfg.websocket, cfg.ws_path);
  if (!o.transport.empty()) cfg.websocket = o.transport == "ws";
  cfg.case_timeout = std::chrono::milliseconds(static_cast<long>(o.timeout_s * 1000));
  cfg.source_addresses = choose_sources(o.source_addresses, cfg.target.host);
  if (o.key_file.empty()) {
    cfg.base_id = "conformance";
    crypto::random_bytes(cfg.base_seed.span());
  } else {
    auto id = load_key_file(o.key_file);
    cfg.base_id = id.entity_id;
    cfg.base_seed = id.key.seed();
  }
  cfg.run_tag = random_hex(4);
  cfg.shim = o.shim;
  cfg.rotate_shim = o.rotate_shim;
  cfg.listen = o.listen;
  return cfg;
}

namespace {

void print_preamble(const options& o, const settings& cfg, const node_info& node, std::size_t cases) {
  std::cout << "peerproto-conformance " << library_version << ": " << cases << " cases against " << node.entity_id
            << " (fingerprint " << node.fingerprint << ") at " << o.target << ", messages over "
            << (cfg.websocket ? "WebSocket" : "HTTP") << "\n";
  std::cout << "runner identities: " << cfg.base_id << "." << cfg.run_tag << ".N, one per case; the node must accept new "
            << "senders (trust tofu or open)\n";
  std::cout << "limits: " << node.limits.size() - node.assumed.size() << " of " << node.limits.size()
            << " read from /capabilities";
  std::map<std::string, std::string> assumed_by_reason;  // why -> "name=value, ..."
  for (const auto& [name, why] : node.assumed)
    assumed_by_reason[why] += (assumed_by_reason[why].empty() ? "" : ", ") + name + "=" + std::to_string(node.limit(name));
  std::cout << "\n";
  for (const auto& [why, names] : assumed_by_reason) std::cout << "  SPEC §18 defaults assumed for: " << names << " (" << why << ")\n";
  if (node.requires_encryption())
    std::cout << "the node requires encryption (it does not list version 1.0): cases that need a sessionless or 1.0 "
                 "message to pass the encryption requirement are skipped with that reason\n";
  if (!cfg.source_addresses.empty())
    std::cout << "source addresses: " << cfg.source_addresses.size() << " (" << cfg.source_addresses.front() << " to "
              << cfg.source_addresses.back() << ")\n";
}

// Runs a case and turns how it ended into its result, with the transcript of its log. `wire_trouble`
// says that it lost the connection (the node may be down).
// `log` is the case's fixture once it exists.
case_result judge(const test_case& t, const std::function<void()>& run, case_log* const& log, bool& wire_trouble) {
  case_result r;
  r.test = &t;
  r.level = level_of(t);
  try {
    run();
    r.outcome = verdict::pass;
  } catch (const setup_failure& f) {
    r.outcome = verdict::fail;
    r.setup_step = f.step;
    r.rule = f.rule;
    r.expected = f.expected;
    r.actual = f.actual;
    r.reason = "setup failed: " + f.step + ": " + f.what();
  } catch (const case_failure& f) {
    r.outcome = r.level == "MAY" ? verdict::info : verdict::fail;
    // The failure names the rule the case checks; a check of another rule on the way (the
    // reply's sequence number in an ordering case, say) is said, not substituted.
    const bool own = std::find(t.requirements.begin(), t.requirements.end(), f.rule) != t.requirements.end();
    r.rule = own ? f.rule : t.requirements.front();
    r.expected = f.expected;
    r.actual = f.actual;
    r.reason = own ? f.what() : r.rule + " (failed at its " + f.rule + " check): expected " + f.expected + ", got " + f.actual;
  } catch (const case_skip& s) {
    r.outcome = verdict::skip;
    r.reason = s.what();
  } catch (const wire_failure& w) {
    wire_trouble = true;
    r.outcome = w.what_kind == wire_failure::kind::timeout ? verdict::timeout : verdict::fail;
    r.reason = w.what();
    r.rule = t.requirements.front();
    r.expected = "an answer";
    r.actual = w.what();
  } catch (const undeclared_need& e) {
    // A bug of the catalogue: not the node's fault, but never a pass. A run against the reference
    // node shows it.
    r.outcome = verdict::fail;
    r.reason = std::string("the runner's own error, not the node's: ") + e.what();
  } catch (const std::exception& e) {
    // An answer the case could not read (a member missing or of another type): say which.
    std::string last = "nothing received";
    if (log)
      for (auto it = log->transcript.rbegin(); it != log->transcript.rend(); ++it)
        if (it->what == "received") {
          last = it->text.substr(0, 300);
          break;
        }
    r.outcome = verdict::fail;
    r.rule = t.requirements.front();
    r.expected = "an answer of the form " + r.rule + " requires";
    r.actual = "one the case could not read (" + std::string(e.what()) + "): " + last;
    r.reason = r.rule + ": expected " + r.expected + ", got " + r.actual;
  }
  if (log) {
    r.transcript = std::move(log->transcript);
    r.envelopes = std::move(log->envelopes);
  }
  return r;
}

// Runs one case with the fixture of its role.
case_result run_case(const test_case& t, const settings& cfg, const node_info& node, std::size_t index, bool& wire_trouble) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto timeout = t.timeout.count() ? t.timeout : cfg.case_timeout;
  std::unique_ptr<context> responder;
  std::unique_ptr<peer_context> initiator;
  case_log* log = nullptr;
  auto r = judge(t, [&] {
    if (t.side() == role::initiator) {
      log = (initiator = std::make_unique<peer_context>(cfg, node, index + 1, timeout)).get();
      t.run_peer(*initiator);
    } else {
      log = (responder = std::make_unique<context>(cfg, node, index + 1, timeout)).get();
      responder->declared = with_implied(t.needs);
      t.run(*responder);
    }
  }, log, wire_trouble);
  r.duration = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  return r;
}

// One progress line per case, with the details of a failure (the first time for a setup step).
void print_progress(const case_result& r, std::size_t n, std::size_t total, bool verbose, std::set<std::string>& setup_seen) {
  std::string line = "[" + std::to_string(n) + "/" + std::to_string(total) + "] " + std::string(to_string(r.outcome));
  line.resize(std::max<std::size_t>(line.size(), 18), ' ');
  std::cout << line << r.test->id << " (" << r.level << ", " << r.duration.count() << " ms)";
  if (r.unexpected_pass()) std::cout << "  UNEXPECTED PASS (listed as expected failure: " << *r.expected_failure << ")";
  else if (r.expected_failure && r.outcome != verdict::pass) std::cout << "  expected failure";
  std::cout << "\n";
  if (!r.setup_step.empty() && !setup_seen.insert(setup_key(r)).second) {
    std::cout << "      setup failed (" << r.setup_step << ", rule " << r.rule << "), as above\n";
  } else if (r.outcome == verdict::fail || r.outcome == verdict::timeout || r.outcome == verdict::info) {
    if (!r.setup_step.empty()) std::cout << "      setup failed: " << r.setup_step << "\n";
    std::cout << "      " << r.test->title << "\n";
    if (r.rule.empty()) std::cout << "      " << r.reason << "\n";
    else std::cout << "      rule " << r.rule << ": expected " << r.expected << "\n      got " << r.actual << "\n";
    if (verbose)
      for (const auto& e : r.transcript) std::cout << "        " << e.what << ": " << e.text.substr(0, 400) << "\n";
  } else if (r.outcome == verdict::skip && verbose) {
    std::cout << "      " << r.reason << "\n";
  }
  std::cout.flush();
}

int finish(const options& o, const std::vector<case_result>& results, const run_info& run) {
  return finish_run(results, run, {o.json_file, o.junit_file, o.html_file, o.transcripts_dir});
}

// SIGINT during a run: the cases not started yet are not run, the reports are still written. A
// second SIGINT ends the runner at once.
std::atomic<bool> interrupted{false};
extern "C" void on_sigint(int) {
  interrupted = true;
  std::signal(SIGINT, SIG_DFL);
}

}  // namespace

int run_command(const options& o) {
  const auto selected = select_cases(o);
  if (o.target.empty()) throw setup_error("--target is required (or --list)");
  const auto expected_failures = o.xfail_file.empty() ? std::map<std::string, std::string>{} : load_expected_failures(o.xfail_file, catalogue());
  const settings cfg = settings_from(o);
  const auto count = [&](role r) { return std::count_if(selected.begin(), selected.end(), [&](const test_case* c) { return c->side() == r; }); };
  if (count(role::initiator) && o.shim.empty())
    throw setup_error("the initiator cases need --shim, the command that makes the node send (README.md: the shim contract)");

  run_info run;
  run.target = o.target;
  run.transport = cfg.websocket ? "ws" : "http";
  run.runner_id = cfg.base_id + "." + cfg.run_tag;
  run.started = now_text();
  run.strict = o.strict;
  // Discovery comes before every case (each needs the node's key): when it fails, every case is
  // reported as stopped there, with the rule and the answer (or as not run, when the node was not
  // reached). Then the runner finds out which needs the node meets (suite.hpp).
  node_info node;
  need_check capabilities(need::capabilities, true);
  try {
    node = discover(cfg, o.node_key, &capabilities);
  } catch (const gate_failure& g) {
    run.gate = g.info;
  }
  if (run.gate) {
    std::cout << "peerproto-conformance " << library_version << ": " << selected.size() << " cases against " << o.target << "\n"
              << (run.gate->node_fault ? "STOPPED AT " : "NOT RUN: ") << run.gate->step << ": "
              << (run.gate->rule.empty() ? "" : "rule " + run.gate->rule + ": expected " + run.gate->expected + ", got ")
              << run.gate->actual << "\n";
    std::vector<case_result> results;
    for (const auto* t : selected) {
      case_result r;
      r.test = t;
      r.level = level_of(*t);
      if (run.gate->node_fault) {
        r.outcome = verdict::fail;
        r.setup_step = run.gate->step;
        r.rule = run.gate->rule;
        r.expected = run.gate->expected;
        r.actual = run.gate->actual;
        r.reason = "setup failed: " + r.setup_step + ": " + r.rule + ": expected " + r.expected + ", got " + r.actual;
      } else {
        r.outcome = verdict::skip;
        r.reason = "not run: " + run.gate->step + ": " + run.gate->actual;
      }
      results.push_back(std::move(r));
    }
    return finish(o, results, run);
  }
  run.node_id = node.entity_id;
  run.node_fingerprint = node.fingerprint;
  run.node = &node;
  print_preamble(o, cfg, node, selected.size());
  if (count(role::initiator))
    std::cout << "initiator cases: the node sends to the runner at " << cfg.listen << " (a port per case), driven by: " << o.shim << "\n";

  // A need is checked only when a selected case has it. Over WebSocket every responder case needs /ws.
  const auto needs_of = [&](const test_case& t) {
    const auto n = with_implied(t.needs);
    return cfg.websocket && t.side() == role::responder ? n | need::websocket : n;
  };
  need_set wanted;
  for (const auto* t : selected) wanted = wanted | needs_of(*t);
  if (has(wanted, need::capabilities)) run.needs.push_back(capabilities);
  need_check websocket(need::websocket, true);
  if (has(wanted, need::websocket) || cfg.websocket) run.needs.push_back(websocket = check_websocket(cfg));
  if (has(wanted, need::trust)) {
    need_check trust(need::trust), handshake(need::handshake), session(need::session);
    if (cfg.websocket && !websocket.met) {
      trust.actual = handshake.actual = session.actual = "not checked: the messages go over WebSocket, and the websocket need is not met";
    } else {
      try {
        check_handshake(cfg, node, trust, handshake, session);
      } catch (const wire_failure& w) {
        trust.met = trust.actual.empty();  // the node did not say UNKNOWN_SENDER: not a matter of trust
        auto& n = handshake.met ? session : handshake;
        n = need_check(n.which, handshake.met ? "SES-2" : "HS-2", "an answer", std::string("the connection failed: ") + w.what());
      }
    }
    run.needs.push_back(trust);
    if (has(wanted, need::handshake)) run.needs.push_back(handshake);
    if (has(wanted, need::session)) run.needs.push_back(session);
  }
  if (has(wanted, need::shim)) run.needs.emplace_back(need::shim, true);
  const auto missing = [&](const test_case& t) -> const need_check* {
    for (const auto& n : run.needs)
      if (!n.met && has(needs_of(t), n.which)) return &n;
    return nullptr;
  };
  for (const auto& n : run.needs) std::cout << "need " << to_string(n.which) << " (" << describe(n.which) << "): " << need_words(n) << "\n";

  interrupted = false;
  std::signal(SIGINT, on_sigint);

  // Parallel cases first, then the exclusive ones alone. Cases that wait out a node timer (they
  // have their own, longer time limit) start first, so the others run while they wait.
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < selected.size(); ++i)
    if (!selected[i]->exclusive) order.push_back(i);
  const std::size_t parallel = order.size();
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return selected[a]->timeout > selected[b]->timeout; });
  for (std::size_t i = 0; i < selected.size(); ++i)
    if (selected[i]->exclusive) order.push_back(i);

  std::vector<case_result> results(selected.size());
  std::mutex lock;
  std::set<std::string> setup_seen;  // setup failures already printed in full
  std::atomic<std::size_t> next{0}, done{0};
  const auto started = std::chrono::steady_clock::now();
  const auto alive = [&] {
    try {
      return http_get(cfg.target, "/health", std::chrono::steady_clock::now() + std::chrono::seconds(3)).status == 200;
    } catch (const wire_failure&) {
      return false;
    }
  };
  const auto not_run = [&](const test_case& t) {
    case_result r;
    r.test = &t;
    r.level = level_of(t);
    r.outcome = verdict::skip;
    r.reason = run.target_down ? "not run: the node stopped answering during " + *run.target_down : "not run: the run was interrupted (SIGINT)";
    return r;
  };

  const auto without = [&](const test_case& t, const need_check& n) {
    case_result r;
    r.test = &t;
    r.level = level_of(t);
    r.outcome = verdict::skip;
    r.missing_need = n.which;
    r.reason = "not run: needs " + std::string(to_string(n.which)) + " (" + std::string(describe(n.which)) + "), not met: " +
               (n.rule.empty() ? "" : "rule " + n.rule + ": expected " + n.expected + ", got ") + n.actual;
    return r;
  };
  const auto run_one = [&](std::size_t index) {
    const test_case& t = *selected[index];
    bool skip = false;
    {
      std::lock_guard g(lock);
      run.interrupted = run.interrupted || interrupted;
      skip = run.target_down.has_value() || run.interrupted;
    }
    bool wire_trouble = false;
    const auto* lacking = missing(t);
    case_result r = lacking ? without(t, *lacking) : skip ? not_run(t) : run_case(t, cfg, node, index, wire_trouble);
    // A case that lost the connection may have killed the node: ask /health once.
    if (wire_trouble && !alive()) {
      std::lock_guard g(lock);
      if (!run.target_down) {
        run.target_down = t.id;
        r.reason += " (and the node no longer answers /health)";
      } else {
        r = not_run(t);
      }
    }
    if (auto it = expected_failures.find(t.id); it != expected_failures.end()) r.expected_failure = it->second;
    std::lock_guard g(lock);
    print_progress(r, ++done, selected.size(), o.verbose, setup_seen);
    results[index] = std::move(r);
  };

  std::vector<std::thread> workers;
  for (unsigned w = 0; w < std::min<std::size_t>(o.jobs, std::max<std::size_t>(parallel, 1)); ++w)
    workers.emplace_back([&] {
      for (std::size_t k; (k = next++) < parallel;) run_one(order[k]);
    });
  for (auto& w : workers) w.join();
  for (std::size_t k = parallel; k < order.size(); ++k) run_one(order[k]);
  run.duration = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  std::signal(SIGINT, SIG_DFL);
  return finish(o, results, run);
}

}  // namespace peerproto::conformance
