// The node as a whole peer, over real loopback sockets with real node processes: messages handed
// to one node's control socket reach the other node's inbox exactly once and in order, through
// restarts, refusals and back-off; tasks go back to the queue when their claimer disappears and
// their results travel back as task_result.
#include "node_process.hpp"

#include <peerproto/jcs.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>
#include <optional>
#include <set>

namespace json = boost::json;
using peerproto::testing::free_port;
using peerproto::testing::node_process;
using peerproto::testing::temp_dir;
using namespace std::chrono_literals;

namespace {

// The control socket's line protocol, as `peerproto-node ctl` speaks it.
class control {
 public:
  explicit control(const node_process& n) : socket_(ioc_) {
    socket_.connect(boost::asio::local::stream_protocol::endpoint((n.state_dir() / "control.sock").string()));
  }
  json::object call(const json::object& request) {
    boost::asio::write(socket_, boost::asio::buffer(json::serialize(request) + "\n"));
    const auto n = boost::asio::read_until(socket_, boost::asio::dynamic_buffer(buffer_), '\n');
    auto v = json::parse(std::string_view(buffer_).substr(0, n - 1));
    buffer_.erase(0, n);
    return v.as_object();
  }
  json::object send(const std::string& to, const std::string& type, json::object payload, int wait_s = 0) {
    json::object r{{"op", "send"}, {"to", to}, {"type", type}, {"payload", std::move(payload)}};
    if (wait_s) r["wait_s"] = wait_s;
    return call(r);
  }
  json::array sessions() { return call({{"op", "sessions"}}).at("sessions").as_array(); }
  json::array inbox(std::int64_t after = 0) { return call({{"op", "inbox"}, {"after", after}, {"limit", 10000}}).at("messages").as_array(); }
  json::array outbox() { return call({{"op", "outbox"}, {"limit", 10000}}).at("messages").as_array(); }
  std::string public_key_of(const std::string& entity) {
    const auto answer = call({{"op", "peers"}});
    for (const auto& p : answer.at("peers").as_array())
      if (p.at("entity_id") == json::value(entity)) return std::string(p.at("public_key").as_string());
    return {};
  }

 private:
  boost::asio::io_context ioc_;
  boost::asio::local::stream_protocol::socket socket_;
  std::string buffer_;
};

std::string state(const json::object& entry) { return std::string(entry.at("state").as_string()); }

// Waits until `done` holds, up to `limit`.
template <class F>
bool eventually(F done, std::chrono::seconds limit = 60s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return done();
}

std::size_t count_state(control& c, const std::string& s) {
  std::size_t n = 0;
  for (const auto& e : c.outbox()) n += state(e.as_object()) == s ? 1 : 0;
  return n;
}

// Queues status_report {i} for i = 0 .. total-1.
void queue_numbered(control& from, const std::string& to, int total) {
  for (int i = 0; i < total; ++i) ASSERT_EQ(state(from.send(to, "status_report", {{"i", i}})), "queued");
}

// Exactly once, in order: the inbox of `n` holds 0 .. total-1, each once.
void expect_each_once_in_order(const node_process& n, int total) {
  control c(n);
  const auto inbox = c.inbox();
  ASSERT_EQ(inbox.size(), static_cast<std::size_t>(total));
  for (int i = 0; i < total; ++i) EXPECT_EQ(inbox[static_cast<std::size_t>(i)].at("payload").at("i"), i) << "at " << i;
}

// A self-signed certificate for 127.0.0.1 and its key, made with openssl; false when it failed.
bool make_certificate(const std::filesystem::path& cert, const std::filesystem::path& key) {
  const std::string make = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 "
                           "-addext subjectAltName=IP:127.0.0.1 -keyout " + key.string() + " -out " + cert.string();
  return std::system(make.c_str()) == 0;
}

// Runs `peerproto-node ctl --state-dir DIR ARGS` and returns its exit status and standard output.
std::pair<int, std::string> ctl(const node_process& n, const std::string& args) {
  const std::string cmd = std::string(PEERPROTO_NODE_BINARY) + " ctl --state-dir " + n.state_dir().string() + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (const auto got = std::fread(buf, 1, sizeof buf, p)) out.append(buf, got);
  const int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

}  // namespace

TEST(Peer, TwoNodesTalkBothWaysThroughCtlOverHttpAndWebSocket) {
  temp_dir dir;
  node_process alice(dir.path, "alice", {"--trust", "tofu"});
  node_process bob(dir.path, "bob", {"--trust", "tofu"});
  control a(alice), b(bob);
  for (const auto& [from, to, name] : {std::tuple{&a, &bob, "bob"}, std::tuple{&b, &alice, "alice"}}) {
    for (const auto& target : {to->http_url(), to->ws_url()})
      for (int i = 0; i < 3; ++i) {
        const auto r = from->send(target, "status_report", {{"i", i}, {"via", target}}, 30);
        ASSERT_EQ(state(r), "delivered") << json::serialize(r);
        EXPECT_EQ(r.at("result").at("reply_type"), "ack");
      }
    // Sessions are reused: one per peer URL, opened by the sender.
    std::size_t initiated = 0;
    for (const auto& s : from->sessions())
      initiated += s.at("role") == "initiator" && s.at("peer_id") == name && s.at("state") == "ready" ? 1 : 0;
    EXPECT_EQ(initiated, 2u);
  }
  // Each side's inbox has the other's six messages, in the order they were sent, exactly once.
  for (const auto& [c, sender] : {std::pair{&b, "alice"}, std::pair{&a, "bob"}}) {
    const auto inbox = c->inbox();
    ASSERT_EQ(inbox.size(), 6u);
    for (std::size_t k = 0; k < 6; ++k) {
      EXPECT_EQ(inbox[k].at("sender_id"), sender);
      EXPECT_EQ(inbox[k].at("payload").at("i"), static_cast<int>(k % 3));
    }
    // Acknowledged messages are not listed again.
    EXPECT_EQ(c->call({{"op", "inbox_ack"}, {"through", inbox[2].at("seq")}}).at("acknowledged"), 3);
    EXPECT_EQ(c->inbox().size(), 3u);
  }
  // The CLI prints the same, one JSON object per line.
  const auto [status, out] = ctl(bob, "inbox");
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 3);

  // SIGTERM: alice closes her sessions with session_close before she exits.
  alice.kill(SIGTERM);
  EXPECT_EQ(alice.wait(), 0);
  std::size_t closed = 0;
  for (const auto& s : b.sessions())
    closed += s.at("peer_id") == "alice" && s.at("role") == "responder" && s.at("state") == "closed" ? 1 : 0;
  EXPECT_EQ(closed, 2u);
}

TEST(Peer, ReceiverKilledAndRestartedWhileTheOutboxHolds200Messages) {
  temp_dir dir;
  const int port = free_port();
  node_process bob(dir.path, "bob", {"--trust", "tofu", "--port", std::to_string(port), "--rate-multiplier", "100"});
  node_process alice(dir.path, "alice", {"--trust", "tofu", "--outbound-retry-initial-ms", "100", "--outbound-retry-max-ms", "1000"});
  control a(alice);
  constexpr int total = 200;
  queue_numbered(a, bob.http_url(), total);
  // Killed in the middle of the stream, restarted on the same port a second later.
  ASSERT_TRUE(eventually([&] { return count_state(a, "delivered") >= 40; }));
  bob.kill(SIGKILL);
  const auto delivered_before = count_state(a, "delivered");
  std::this_thread::sleep_for(1s);
  bob.start();
  const auto restarted = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return count_state(a, "delivered") == total; }, 120s)) << alice.stderr_text();
  std::cout << "[ report ] " << total << " messages, " << delivered_before << " delivered before the kill; the rest "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - restarted).count()
            << " ms after the restart\n";
  expect_each_once_in_order(bob, total);
}

// The window the kill above may miss, every time: the receiver stores a delivery and dies before
// its reply leaves (every 50th message). The sender resends the stored bytes and takes
// REPLAY_DETECTED as "delivered"; a sender that sealed the message again would duplicate it.
// Over WebSocket a link keeps several messages under way at once (SPEC SND-6), never more than
// the peer takes on one connection (WS-2): bob takes 3, and would answer a fourth RATE_LIMITED,
// which the sender would have to transmit again.
TEST(Peer, OverWebSocketSeveralMessagesAreUnderWayWithinThePeersLimit) {
  temp_dir dir;
  const int port = free_port();
  node_process bob(dir.path, "bob", {"--trust", "tofu", "--port", std::to_string(port), "--rate-multiplier", "100", "--ws-max-in-flight", "3"});
  node_process alice(dir.path, "alice", {"--trust", "tofu", "--outbound-retry-initial-ms", "50", "--outbound-retry-max-ms", "200"});
  bob.kill(SIGKILL);  // every message is queued before the link has a session
  control a(alice);
  constexpr int total = 100;
  queue_numbered(a, bob.ws_url(), total);
  bob.start();
  ASSERT_TRUE(eventually([&] { return count_state(a, "delivered") == total; }, 60s)) << alice.stderr_text();
  EXPECT_NE(alice.stderr_text().find("up to 3 messages under way"), std::string::npos) << alice.stderr_text();
  for (const auto& e : a.outbox()) EXPECT_EQ(e.at("attempts"), 1) << json::serialize(e);
  expect_each_once_in_order(bob, total);
  // The sender's own bound, when it is the smaller.
  node_process carol(dir.path, "carol", {"--trust", "tofu", "--outbound-max-in-flight", "2"});
  control c(carol);
  queue_numbered(c, bob.ws_url(), 20);
  ASSERT_TRUE(eventually([&] { return count_state(c, "delivered") == 20; }, 60s)) << carol.stderr_text();
  EXPECT_NE(carol.stderr_text().find("up to 2 messages under way"), std::string::npos) << carol.stderr_text();
}

TEST(Peer, AReceiverThatDiesBetweenCommitAndReplyNeitherLosesNorDuplicates) {
  temp_dir dir;
  const int port = free_port();
  const auto with_fault = [](auto start) {
    ::setenv("PEERPROTO_FAULT", "exit_before_reply", 1);
    start();
    ::unsetenv("PEERPROTO_FAULT");
  };
  std::optional<node_process> bob;
  with_fault([&] {
    bob.emplace(dir.path, "bob", std::vector<std::string>{"--trust", "tofu", "--port", std::to_string(port), "--rate-multiplier", "100"},
                PEERPROTO_NODE_FAULTS_BINARY);
  });
  node_process alice(dir.path, "alice", {"--trust", "tofu", "--outbound-retry-initial-ms", "50", "--outbound-retry-max-ms", "500"});
  control a(alice);
  constexpr int total = 120;
  queue_numbered(a, bob->http_url(), total);
  int deaths = 0;
  ASSERT_TRUE(eventually([&] {
    if (bob->exited()) {
      ++deaths;
      with_fault([&] { bob->start(); });
    }
    return count_state(a, "delivered") == total;
  }, 120s)) << alice.stderr_text();
  EXPECT_GE(deaths, 2);
  expect_each_once_in_order(*bob, total);
}

TEST(Peer, AClaimedTaskReturnsToTheQueueWhenItsClaimerDisappearsAndItsResultTravelsBack) {
  temp_dir dir;
  node_process alice(dir.path, "alice", {"--trust", "tofu"});
  node_process bob(dir.path, "bob", {"--trust", "tofu"});
  control a(alice), b(bob);
  const auto accepted = a.send(bob.http_url(), "task_delegate", {{"task", {{"sum", {1, 2}}}}}, 30);
  ASSERT_EQ(state(accepted), "delivered") << json::serialize(accepted);
  const auto task_id = accepted.at("result").at("reply").at("task_id");

  // The consumer claims with a 1 s lease and dies before completing.
  const auto first = b.call({{"op", "task_claim"}, {"lease_s", 1}}).at("task");
  ASSERT_TRUE(first.is_object());
  EXPECT_EQ(first.at("task_id"), task_id);
  EXPECT_TRUE(b.call({{"op", "task_claim"}}).at("task").is_null());  // held by the first claim
  std::this_thread::sleep_for(1500ms);
  bob.restart();  // the queue and the claims are durable
  control b2(bob);
  const auto second = b2.call({{"op", "task_claim"}, {"lease_s", 60}}).at("task");
  ASSERT_TRUE(second.is_object());
  EXPECT_EQ(second.at("task_id"), task_id);
  EXPECT_NE(second.at("claim"), first.at("claim"));

  // The first claimer's late completion is refused; the second's goes to alice as task_result,
  // once bob knows where alice is.
  const json::object done{{"op", "task_complete"}, {"task_id", task_id}, {"claim", first.at("claim")}, {"result", {{"sum", 3}}}};
  EXPECT_TRUE(b2.call(done).contains("error"));
  auto good = done;
  good["claim"] = second.at("claim");
  EXPECT_TRUE(b2.call(good).contains("error"));  // no address known for alice yet
  ASSERT_FALSE(b2.call({{"op", "pin"}, {"entity_id", "alice"}, {"public_key", b2.public_key_of("alice")}, {"url", alice.http_url()}})
                   .contains("error"));
  const auto queued = b2.call(good);
  ASSERT_TRUE(queued.contains("outbox_id")) << json::serialize(queued);
  EXPECT_TRUE(b2.call({{"op", "task_claim"}}).at("task").is_null());
  ASSERT_TRUE(eventually([&] { return a.inbox().size() == 1; }));
  const auto result = a.inbox()[0];
  EXPECT_EQ(result.at("type"), "task_result");
  EXPECT_EQ(result.at("sender_id"), "bob");
  EXPECT_EQ(result.at("payload"), (json::object{{"task_id", task_id}, {"status", "completed"}, {"result", {{"sum", 3}}}}));
}

TEST(Peer, AFullInboxRefusesWithRetryAfterAndTheSenderRetriesUntilItIsRead) {
  temp_dir dir;
  node_process bob(dir.path, "bob", {"--trust", "tofu", "--max-inbox", "3"});
  node_process alice(dir.path, "alice", {"--trust", "tofu", "--outbound-retry-initial-ms", "100"});
  control a(alice), b(bob);
  for (int i = 0; i < 5; ++i) a.send(bob.http_url(), "heartbeat", {{"i", i}});
  ASSERT_TRUE(eventually([&] { return b.inbox().size() == 3; }));
  // The fourth is refused with RATE_LIMITED and waits at least its Retry-After (RL-7).
  ASSERT_TRUE(eventually([&] {
    const auto o = a.outbox();
    return o.size() == 5 && o[1].at("state") == "queued" && o[1].as_object().contains("result") &&
           o[1].at("result").as_object().contains("error_code") && o[1].at("result").at("error_code") == "RATE_LIMITED";
  })) << json::serialize(a.outbox());
  EXPECT_EQ(b.inbox().size(), 3u);
  b.call({{"op", "inbox_ack"}, {"through", b.inbox()[2].at("seq")}});
  ASSERT_TRUE(eventually([&] { return count_state(a, "delivered") == 5; }));
  bob.restart();  // unacknowledged messages survive; acknowledged ones do not come back
  control b2(bob);
  const auto left = b2.inbox();
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].at("payload").at("i"), 3);
  EXPECT_EQ(left[1].at("payload").at("i"), 4);
}

TEST(Peer, TheOutboxIsBoundedMessagesExpireAndBadRequestsChangeNothing) {
  temp_dir dir;
  node_process alice(dir.path, "alice", {"--max-outbox", "2"});
  control a(alice);
  const std::string nobody = "http://127.0.0.1:" + std::to_string(free_port());  // nothing listens there
  EXPECT_EQ(state(a.call({{"op", "send"}, {"to", nobody}, {"type", "ping"}, {"payload", json::object{}}, {"expires_in_s", 1}})), "queued");
  EXPECT_EQ(state(a.send(nobody, "ping", {})), "queued");
  const auto full = a.send(nobody, "ping", {});
  ASSERT_TRUE(full.contains("error"));
  EXPECT_NE(std::string(full.at("error").as_string()).find("outbox is full"), std::string::npos);
  for (const auto& bad : {json::object{{"op", "send"}, {"to", nobody}, {"type", "ack"}, {"payload", json::object{}}},
                          json::object{{"op", "send"}, {"to", nobody}, {"type", "ping"}, {"payload", 5}},
                          json::object{{"op", "send"}, {"to", "ftp://x:1"}, {"type", "ping"}, {"payload", json::object{}}},
                          json::object{{"op", "send"}, {"to", "carol"}, {"type", "ping"}, {"payload", json::object{}}},
                          json::object{{"op", "no_such_op"}}})
    EXPECT_TRUE(a.call(bad).contains("error")) << json::serialize(bad);
  EXPECT_EQ(a.outbox().size(), 2u);
  // The first gives up after its second: nothing was ever written to the peer, so it is expired.
  ASSERT_TRUE(eventually([&] { return count_state(a, "expired") == 1; }, 20s));
  const auto [status, out] = ctl(alice, "send --to " + nobody + " --type ping --payload '{}'");
  EXPECT_EQ(status, 0) << out;  // the expired one made room
  // The control socket is the owner's only.
  struct stat st {};
  ASSERT_EQ(::stat((alice.state_dir() / "control.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
}

TEST(Peer, TwoNodesOverTlsWithACertificateTheTestMakes) {
  temp_dir dir;
  const auto cert = dir.path / "tls.crt", key = dir.path / "tls.key";
  ASSERT_TRUE(make_certificate(cert, key)) << "openssl is needed (scripts/bootstrap installs it)";
  node_process bob(dir.path, "bob", {"--trust", "tofu", "--tls-cert", cert.string(), "--tls-key", key.string()});
  node_process alice(dir.path, "alice", {"--trust", "tofu", "--tls-cert", cert.string(), "--tls-key", key.string(), "--tls-ca-file", cert.string()});
  node_process carol(dir.path, "carol", {"--trust", "tofu"});  // trusts only the system's CAs
  control a(alice), b(bob), c(carol);
  const auto https = [](const node_process& n) { return "https://127.0.0.1:" + std::to_string(n.port()); };
  const auto wss = [](const node_process& n) { return "wss://127.0.0.1:" + std::to_string(n.port()) + "/ws"; };
  for (const auto& to : {https(bob), wss(bob)}) {
    const auto r = a.send(to, "status_report", {{"over", to}}, 30);
    EXPECT_EQ(state(r), "delivered") << json::serialize(r);
  }
  EXPECT_EQ(b.inbox().size(), 2u);
  // Carol cannot verify bob's certificate: nothing is sent, the message waits and says why.
  c.send(https(bob), "ping", {});
  ASSERT_TRUE(eventually([&] {
    const auto o = c.outbox();
    return !o.empty() && o[0].as_object().contains("result") &&
           json::serialize(o[0].at("result")).find("certificate verify failed") != std::string::npos;
  }, 20s)) << json::serialize(c.outbox());
  EXPECT_EQ(state(c.outbox()[0].as_object()), "queued");
  EXPECT_EQ(b.inbox().size(), 2u);
  // A TLS node does not speak plain HTTP.
  c.send("http://127.0.0.1:" + std::to_string(bob.port()), "ping", {});
  ASSERT_TRUE(eventually([&] {
    const auto o = c.outbox();
    return o.size() == 2 && o[0].as_object().contains("result");
  }, 20s));
  EXPECT_EQ(state(c.outbox()[0].as_object()), "queued");

  // The TLS key, like the identity key, must be its owner's only: a node does not start with one
  // that its group or others may read.
  std::filesystem::permissions(key, std::filesystem::perms::group_read | std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  const auto err = dir.path / "shared-key.err";
  const std::string cmd = std::string(PEERPROTO_NODE_BINARY) + " serve --key " + carol.key_file().string() + " --port 0 --state-dir " +
                          (dir.path / "dan").string() + " --tls-cert " + cert.string() + " --tls-key " + key.string() + " >/dev/null 2>" +
                          err.string();
  const int status = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << status;
  std::ifstream in(err);
  const std::string said((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(said.find("--tls-key " + key.string() + " is accessible by group or others; run: chmod 600"), std::string::npos) << said;
}

// Tracing: the outbox entry's trace id travels as `traceparent` and links the receiver's audit
// records of the handshake it caused and the inbox entry it delivered.
TEST(Peer, ATraceIdLinksTheOutboxEntryTheReceiversAuditRecordsAndItsInbox) {
  temp_dir dir;
  node_process alice(dir.path, "alice", {"--trust", "tofu"});
  node_process bob(dir.path, "bob", {"--trust", "tofu"});
  control a(alice), b(bob);
  const auto sent = a.send(bob.http_url(), "status_report", {{"n", 1}}, 30);
  ASSERT_EQ(state(sent), "delivered");
  const auto trace = sent.at("trace_id");
  ASSERT_EQ(trace.as_string().size(), 32u);
  EXPECT_EQ(b.inbox().at(0).at("trace_id"), trace);
  std::ifstream audit(bob.state_dir() / "audit.jsonl");
  std::set<std::string> events;
  for (std::string line; std::getline(audit, line);) {
    const auto r = json::parse(line).as_object();
    if (r.contains("trace_id") && r.at("trace_id") == trace) events.insert(std::string(r.at("event").as_string()));
  }
  EXPECT_TRUE(events.contains("handshake_succeeded") && events.contains("session_opened")) << events.size();
}

namespace {

// A payload of `bytes` bytes of JSON text: {"blob":"..."} with letters that depend on `seed`.
std::string large_payload(std::size_t bytes, unsigned seed) {
  std::string blob(bytes - 11, 'a');
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& ch : blob) {
    x = x * 1664525u + 1013904223u;
    ch = static_cast<char>('a' + (x >> 24) % 26);
  }
  return R"({"blob":")" + blob + R"("})";
}

std::string hex_sha256(std::string_view text) { return peerproto::hex_encode(peerproto::crypto::sha256(peerproto::as_bytes(text))); }

// The outbox entry `id` of `n`, read through a new control connection (the node may have restarted).
std::optional<json::object> outbox_entry(const node_process& n, std::int64_t id) {
  control c(n);
  for (const auto& e : c.outbox())
    if (e.at("id") == id) return e.as_object();
  return std::nullopt;
}

std::int64_t chunks_acknowledged(const json::object& e) {
  const auto* t = e.if_contains("transfer");
  return t ? t->at("chunks_acknowledged").as_int64() + t->at("rounds").as_int64() * t->at("chunks").as_int64() : 0;
}

// Peak resident memory of a running process (VmHWM), in bytes; 0 when it cannot be read.
std::uint64_t peak_rss(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

// `ctl send --payload-file` of 50 MiB, 50 times the envelope limit, goes as a chunked transfer
// (SPEC §12, CHK-15, CHK-16) to `scheme`://bob (TLS for https and wss). The receiver is killed
// twice in the middle of it (its reassembly is lost: the transfer goes again, CHK-16) and the
// sender once (it resumes from its stored progress). The payload arrives once, byte for byte.
// Each node's peak memory is reported, not bounded: the goal of 3 times the payload is not met
// yet (a release build measured 6.4 times at the sender, 3.4 times at the receiver).
void large_payload_through_kills(const std::string& scheme) {
  temp_dir dir;
  constexpr std::size_t size = 50u << 20;
  const auto text = large_payload(size, 7);
  const auto file = dir.path / "payload.json";
  std::ofstream(file, std::ios::binary) << text;
  const int port = free_port();
  std::vector<std::string> bob_args{"--trust", "tofu", "--port", std::to_string(port), "--rate-multiplier", "100"};
  std::vector<std::string> alice_args{"--trust", "tofu", "--outbound-retry-initial-ms", "50", "--outbound-retry-max-ms", "500"};
  if (scheme == "https" || scheme == "wss") {
    const auto cert = dir.path / "tls.crt", key = dir.path / "tls.key";
    ASSERT_TRUE(make_certificate(cert, key)) << "openssl is needed (scripts/bootstrap installs it)";
    bob_args.insert(bob_args.end(), {"--tls-cert", cert.string(), "--tls-key", key.string()});
    alice_args.insert(alice_args.end(), {"--tls-ca-file", cert.string()});
  }
  node_process bob(dir.path, "bob", bob_args);
  node_process alice(dir.path, "alice", alice_args);
  const bool ws = scheme == "ws" || scheme == "wss";
  const auto to = scheme + "://127.0.0.1:" + std::to_string(port) + (ws ? "/ws" : "");
  const auto [status, out] = ctl(alice, "send --to " + to + " --type status_report --payload-file " + file.string());
  ASSERT_EQ(status, 0) << out;
  const auto id = json::parse(out).at("id").as_int64();
  std::uint64_t bob_peak = 0, alice_peak = 0;
  const auto note_peaks = [&] {
    bob_peak = std::max(bob_peak, peak_rss(bob.pid()));
    alice_peak = std::max(alice_peak, peak_rss(alice.pid()));
  };
  // Each kill waits for some progress after the last one.
  std::int64_t progress = 0;
  const auto after_progress = [&](std::int64_t more) {
    ASSERT_TRUE(eventually([&] {
      const auto e = outbox_entry(alice, id);
      return e && chunks_acknowledged(*e) >= progress + more;
    }, 120s)) << alice.stderr_text();
    progress = chunks_acknowledged(*outbox_entry(alice, id));
    note_peaks();
  };
  after_progress(10);
  bob.kill(SIGKILL);
  bob.start();
  after_progress(10);
  alice.restart();
  after_progress(5);
  bob.kill(SIGKILL);
  bob.start();
  ASSERT_TRUE(eventually([&] {
    const auto e = outbox_entry(alice, id);
    return e && state(*e) != "queued";
  }, 300s)) << alice.stderr_text();
  const auto e = *outbox_entry(alice, id);
  ASSERT_EQ(state(e), "delivered") << json::serialize(e) << "\nalice:\n" << alice.stderr_text() << "\nbob:\n" << bob.stderr_text();
  control b(bob);
  const auto inbox = b.inbox();
  note_peaks();
  ASSERT_EQ(inbox.size(), 1u);
  EXPECT_EQ(inbox[0].at("sender_id"), "alice");
  EXPECT_EQ(hex_sha256(peerproto::jcs::canonicalize(inbox[0].at("payload"))), hex_sha256(text));
  std::cout << "[ report ] " << (size >> 20) << " MiB over " << to << ": " << e.at("transfer").at("chunks") << " chunks, "
            << e.at("transfer").at("rounds") << " rounds, " << e.at("attempts") << " transmissions; peak memory: sender "
            << (alice_peak >> 20) << " MiB (" << static_cast<double>(alice_peak) / size << "x the payload), receiver " << (bob_peak >> 20)
            << " MiB (" << static_cast<double>(bob_peak) / size << "x)\n";
}

}  // namespace

TEST(Peer, AFiftyMiBPayloadGoesInChunksThroughKillsOverHttp) { large_payload_through_kills("http"); }
TEST(Peer, AFiftyMiBPayloadGoesInChunksThroughKillsOverWebSocket) { large_payload_through_kills("ws"); }
TEST(Peer, AFiftyMiBPayloadGoesInChunksThroughKillsOverTls) { large_payload_through_kills("wss"); }

// The limits of what ctl send takes, each refused with its name and changing nothing; a queued
// message can be cancelled.
TEST(Peer, SendLimitsAndCancelledMessages) {
  temp_dir dir;
  node_process alice(dir.path, "alice", {"--max-send-bytes", "100000", "--max-outbox-bytes", "150000"});
  control a(alice);
  const std::string nobody = "http://127.0.0.1:" + std::to_string(free_port());  // nothing listens there
  const auto payload = [](std::size_t bytes) { return json::parse(large_payload(bytes, 1)).as_object(); };
  const auto too_large = a.send(nobody, "status_report", payload(100001));
  EXPECT_NE(json::serialize(too_large).find("--max-send-bytes"), std::string::npos) << json::serialize(too_large);
  const auto first = a.send(nobody, "status_report", payload(90000));
  ASSERT_EQ(state(first), "queued") << json::serialize(first);
  const auto full = a.send(nobody, "status_report", payload(90000));
  EXPECT_NE(json::serialize(full).find("--max-outbox-bytes"), std::string::npos) << json::serialize(full);
  EXPECT_EQ(a.outbox().size(), 1u);
  EXPECT_EQ(a.outbox()[0].at("payload_bytes"), 90000);
  // A request line longer than any request can be is refused, and the connection goes on.
  const auto long_line = a.send(nobody, "status_report", payload(1200000));
  EXPECT_NE(json::serialize(long_line).find("request line exceeds"), std::string::npos) << json::serialize(long_line);
  // Cancelled: it ends failed, and makes room.
  const auto [status, out] = ctl(alice, "outbox cancel " + std::to_string(first.at("id").as_int64()));
  EXPECT_EQ(status, 0) << out;
  ASSERT_TRUE(eventually([&] { return state(a.outbox()[0].as_object()) == "failed"; }, 20s)) << json::serialize(a.outbox());
  EXPECT_NE(json::serialize(a.outbox()[0]).find("cancelled by the operator"), std::string::npos);
  EXPECT_NE(ctl(alice, "outbox cancel " + std::to_string(first.at("id").as_int64())).first, 0);  // no longer queued
  EXPECT_EQ(state(a.send(nobody, "status_report", payload(90000))), "queued");
  // --payload-file: a missing file and a file that is not a JSON object are clear errors.
  const auto missing = ctl(alice, "send --to " + nobody + " --payload-file " + (dir.path / "none.json").string());
  EXPECT_NE(missing.first, 0);
  EXPECT_NE(missing.second.find("cannot read"), std::string::npos) << missing.second;
  std::ofstream(dir.path / "array.json") << "[1,2]";
  const auto array = ctl(alice, "send --to " + nobody + " --payload-file " + (dir.path / "array.json").string());
  EXPECT_NE(array.first, 0);
  EXPECT_NE(array.second.find("must be a JSON object"), std::string::npos) << array.second;
  EXPECT_EQ(a.outbox().size(), 2u);
}

// The handler refuses the payload of a completed transfer (a full inbox: RATE_LIMITED). The
// transfer was not delivered, so the receiver forgets it and the sender's chunks, sent again
// (CHK-16), deliver it once the inbox has room.
TEST(Peer, ALargePayloadRefusedByAFullInboxArrivesOnceTheInboxIsRead) {
  temp_dir dir;
  const auto text = large_payload(2u << 20, 3);
  const auto file = dir.path / "payload.json";
  std::ofstream(file, std::ios::binary) << text;
  node_process bob(dir.path, "bob", {"--trust", "tofu", "--max-inbox", "1"});
  node_process alice(dir.path, "alice", {"--trust", "tofu", "--outbound-retry-initial-ms", "50", "--outbound-retry-max-ms", "500"});
  control a(alice), b(bob);
  ASSERT_EQ(state(a.send(bob.http_url(), "heartbeat", {{"fills", "the inbox"}}, 30)), "delivered");
  const auto [status, out] = ctl(alice, "send --to " + bob.http_url() + " --type status_report --payload-file " + file.string());
  ASSERT_EQ(status, 0) << out;
  const auto id = json::parse(out).at("id").as_int64();
  ASSERT_TRUE(eventually([&] {
    const auto e = outbox_entry(alice, id);
    return e && json::serialize(*e).find("RATE_LIMITED") != std::string::npos;
  })) << alice.stderr_text();
  b.call({{"op", "inbox_ack"}, {"through", b.inbox().at(0).at("seq")}});
  ASSERT_TRUE(eventually([&] {
    const auto e = outbox_entry(alice, id);
    return e && state(*e) != "queued";
  }, 120s)) << alice.stderr_text();
  EXPECT_EQ(state(*outbox_entry(alice, id)), "delivered") << json::serialize(*outbox_entry(alice, id));
  const auto inbox = b.inbox();
  ASSERT_EQ(inbox.size(), 1u);
  EXPECT_EQ(hex_sha256(peerproto::jcs::canonicalize(inbox[0].at("payload"))), hex_sha256(text));
}
