// Loopback throughput and latency of peerproto-node over HTTP keep-alive and WebSocket, in signed
// plaintext (1.0) and encrypted (1.1) sessions, with 1 and 4 connections, next to a minimal Beast
// echo server driven the same way by the same client: the baseline is what the transport alone
// costs. Both sides seal (or sign) each request with the client engine, so the client's own work
// is in both figures; only the node's reply is opened and checked.
//
// Names: "<transport>_<mode>/<peerproto|peerproto_2threads|echo>/<connections>" (peerproto: the
// node with --threads 1, its core thread doing everything; peerproto_2threads: --threads 2, a
// core thread and a transport thread); each iteration is 64 round trips per connection; counters
// p50_us and p99_us are per round trip, and server_cpu_us is the CPU time of the server's threads
// per message (their thread CPU clocks over the timed iterations).
//
// outbox_ws/in_flight/<W>: messages an application queues with `ctl send` at a second node, until
// they are in the first node's inbox, over WebSocket with at most W under way (SPEC SND-6).
#include "node/client.hpp"
#include "node/server.hpp"
#include "node/store.hpp"

#include <benchmark/benchmark.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <thread>

namespace pp = peerproto;
namespace pn = peerproto::node;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

constexpr int round_trips = 64;

// CPU time a thread has used so far, in seconds.
double thread_cpu_seconds(std::thread::native_handle_type t) {
  clockid_t id{};
  timespec ts{};
  if (pthread_getcpuclockid(t, &id) != 0 || clock_gettime(id, &ts) != 0) return 0;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}


// ------------------------------------------------------------ the baseline: a Beast echo server

class echo_server {
 public:
  echo_server() : acceptor_(ioc_, {asio::ip::make_address("127.0.0.1"), 0}) {
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~echo_server() {
    ioc_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  double cpu_seconds() { return thread_cpu_seconds(thread_.native_handle()); }

 private:
  struct session : std::enable_shared_from_this<session> {
    explicit session(tcp::socket s) : stream(std::move(s)) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
    std::unique_ptr<websocket::stream<beast::tcp_stream>> ws;

    void read() {
      req = {};
      http::async_read(stream, buffer, req, [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec) return;
        if (websocket::is_upgrade(self->req)) {
          self->ws = std::make_unique<websocket::stream<beast::tcp_stream>>(std::move(self->stream));
          self->ws->read_message_max(64 << 20);
          return self->ws->async_accept(self->req, [self](beast::error_code e) {
            if (!e) self->ws_read();
          });
        }
        self->res = {http::status::ok, 11};
        self->res.set(http::field::content_type, "application/json");
        self->res.body() = std::move(self->req.body());
        self->res.keep_alive(true);
        self->res.prepare_payload();
        http::async_write(self->stream, self->res, [self](beast::error_code e, std::size_t) {
          if (!e) self->read();
        });
      });
    }
    void ws_read() {
      ws->async_read(buffer, [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec) return;
        self->ws->text(true);
        self->ws->async_write(self->buffer.data(), [self](beast::error_code e, std::size_t) {
          self->buffer.consume(self->buffer.size());
          if (!e) self->ws_read();
        });
      });
    }
  };
  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket s) {
      if (!ec) std::make_shared<session>(std::move(s))->read();
      accept();
    });
  }
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

// ------------------------------------------------------------ the node, in-process

class node_under_test {
 public:
  /// `backlog`: messages already in the inbox that the application has not acknowledged.
  explicit node_under_test(unsigned threads, std::size_t backlog = 0) {
    dir_ = std::filesystem::temp_directory_path() /
           ("peerproto-bench-" + std::to_string(::getpid()) + "-" + std::to_string(threads) + "-" + std::to_string(backlog));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    peerproto::generate_key_file(dir_ / "node.key", "bench-node");
    peerproto::generate_key_file(dir_ / "client.key", "bench-client");
    pn::node_config cfg;
    cfg.key_file = dir_ / "node.key";
    cfg.state_dir = dir_ / "state";
    cfg.trust = "tofu";
    cfg.port = 0;
    cfg.rate_multiplier = 1e6;  // measure the node, not its rate limits
    cfg.threads = threads;
    cfg.max_inbox = backlog + 1'000'000;  // never full during a run
    if (backlog > 0) {
      std::filesystem::create_directories(cfg.state_dir);
      pn::store s(cfg.state_dir / "state.sqlite3", peerproto::load_key_file(cfg.key_file).key);
      pn::state_changes c;
      for (std::size_t i = 0; i < backlog; ++i)
        c.inbox.push_back({0, "bench-client", "heartbeat", R"({"n":)" + std::to_string(i) + "}", "", "", "", ""});
      s.apply(c);
    }
    spdlog::set_level(spdlog::level::warn);
    server_ = std::make_unique<pn::server>(ioc_, cfg);
    server_->start();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~node_under_test() {
    asio::post(ioc_, [this] { server_->shutdown(); });
    ioc_.stop();
    thread_.join();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::uint16_t port() const { return server_->port(); }
  std::filesystem::path client_key() const { return dir_ / "client.key"; }
  std::filesystem::path control_socket() const { return dir_ / "state" / "control.sock"; }
  std::filesystem::path dir() const { return dir_; }
  double cpu_seconds() {
    double sum = thread_cpu_seconds(thread_.native_handle());
    for (const auto t : server_->transport_threads()) sum += thread_cpu_seconds(t);
    return sum;
  }

 private:
  std::filesystem::path dir_;
  asio::io_context ioc_;
  std::unique_ptr<pn::server> server_;
  std::thread thread_;
};

// The node with --threads 1 and with --threads 2, each started when first used; and with
// --threads 1 and 100,000 unacknowledged messages in its inbox (threads 100).
node_under_test& node(unsigned threads) {
  if (threads == 100) {
    static node_under_test backlogged(1, 100'000);
    return backlogged;
  }
  if (threads == 2) {
    static node_under_test two(2);
    return two;
  }
  static node_under_test one(1);
  return one;
}
echo_server& echo() {
  static echo_server e;
  return e;
}

std::string url(bool ws, std::uint16_t port) {
  return std::string(ws ? "ws://" : "http://") + "127.0.0.1:" + std::to_string(port) + (ws ? "/ws" : "");
}

// One connection's worth of work: a client with a session to the node, reused across iterations.
struct worker {
  worker(bool ws, bool encrypted, unsigned threads = 1)
      : node_peer(*peerproto::parse_peer_url(url(ws, node(threads).port()))),
                                    echo_peer(*peerproto::parse_peer_url(url(ws, echo().port()))) {
    pp::engine_options opt;
    if (!encrypted) {
      opt.versions = {"1.0"};
      opt.suites = {};
    }
    client = std::make_unique<pn::client>(peerproto::load_key_file(node(threads).client_key()), opt);
    const auto id = client->learn_identity(node_peer);
    session = *client->handshake(node_peer, *id);
  }
  // A round trip; returns false on any failure. `type`: ping, which the node answers itself, or
  // heartbeat, which it delivers to the application's inbox.
  bool round_trip(bool to_node, const boost::json::object& payload, const char* type = "ping") {
    if (to_node) {
      const auto r = client->send(node_peer, session, type, payload);
      return r.ok() && r->size() == 1;
    }
    const auto msg = client->protocol().send(session, "ping", payload, pp::system_now());
    const auto r = client->exchange(echo_peer, {*msg});
    return r.ok() && (*r)[0].body.size() == msg->size();
  }
  peerproto::peer_url node_peer, echo_peer;
  std::unique_ptr<pn::client> client;
  pp::uuid session;
};

// node_threads: 0 for the echo server, else the node's --threads (100: one, with a backlog).
void bench_round_trips(benchmark::State& state, bool ws, bool encrypted, unsigned node_threads, const char* type = "ping") {
  const bool to_node = node_threads > 0;
  const auto connections = static_cast<std::size_t>(state.range(0));
  std::vector<std::unique_ptr<worker>> workers;
  for (std::size_t i = 0; i < connections; ++i) workers.push_back(std::make_unique<worker>(ws, encrypted, to_node ? node_threads : 1));
  const boost::json::object payload{{"text", std::string(100, 'x')}};
  std::vector<double> latencies;
  std::mutex m;
  bool failed = false;
  double server_cpu = 0;
  const auto server_cpu_now = [&] { return to_node ? node(node_threads).cpu_seconds() : echo().cpu_seconds(); };
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto cpu0 = server_cpu_now();
    std::vector<std::thread> threads;
    for (auto& w : workers)
      threads.emplace_back([&, wp = w.get()] {
        std::vector<double> mine;
        bool ok = true;
        for (int i = 0; i < round_trips && ok; ++i) {
          const auto s = std::chrono::steady_clock::now();
          ok = wp->round_trip(to_node, payload, type);
          mine.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - s).count());
        }
        std::lock_guard lock(m);
        failed = failed || !ok;
        latencies.insert(latencies.end(), mine.begin(), mine.end());
      });
    for (auto& t : threads) t.join();
    server_cpu += server_cpu_now() - cpu0;
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (failed) {
      state.SkipWithError("a round trip failed");
      break;
    }
  }
  const auto messages = state.iterations() * static_cast<std::int64_t>(connections) * round_trips;
  state.SetItemsProcessed(messages);
  if (messages > 0) state.counters["server_cpu_us"] = server_cpu * 1e6 / static_cast<double>(messages);
  if (!latencies.empty()) {
    std::sort(latencies.begin(), latencies.end());
    state.counters["p50_us"] = latencies[latencies.size() / 2];
    state.counters["p99_us"] = latencies[latencies.size() * 99 / 100];
  }
}

void bench_chunked(benchmark::State& state, bool ws) {
  worker w(ws, true);
  const std::size_t size = static_cast<std::size_t>(state.range(0));
  const boost::json::object payload{{"data", std::string(size, 'x')}};
  for (auto _ : state) {
    const auto r = w.client->send_chunked(w.node_peer, w.session, "status_report", payload, pp::limits::max_chunk_data_bytes);
    if (!r) {
      state.SkipWithError(r.error().message.c_str());
      break;
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

// ------------------------------------------------------------ the outbox, node to node

// A blocking client of a node's control socket: one JSON object per line each way.
class control_client {
 public:
  explicit control_client(const std::filesystem::path& socket) : socket_(ioc_) { socket_.connect(socket.string()); }
  void write(const boost::json::object& request) { asio::write(socket_, asio::buffer(boost::json::serialize(request) + "\n")); }
  boost::json::object read() {
    const auto n = asio::read_until(socket_, asio::dynamic_buffer(buffer_), '\n');
    auto answer = boost::json::parse(std::string_view(buffer_).substr(0, n - 1)).as_object();
    buffer_.erase(0, n);
    if (answer.contains("error")) throw std::runtime_error(boost::json::serialize(answer));
    return answer;
  }
  boost::json::object call(const boost::json::object& request) {
    write(request);
    return read();
  }

 private:
  asio::io_context ioc_;
  asio::local::stream_protocol::socket socket_;
  std::string buffer_;
};

// A second node that sends to node(1) over WebSocket what its application queues with `ctl send`,
// with at most `in_flight` messages under way (--outbound-max-in-flight).
class sender_node {
 public:
  explicit sender_node(std::size_t in_flight) : dir_(node(1).dir() / ("sender-" + std::to_string(in_flight))) {
    std::filesystem::create_directories(dir_);
    const auto key = node(1).dir() / "sender.key";  // one identity for every sender: node(1) pins it once
    if (!std::filesystem::exists(key)) peerproto::generate_key_file(key, "bench-sender");
    pn::node_config cfg;
    cfg.key_file = key;
    cfg.state_dir = dir_ / "state";
    cfg.trust = "tofu";
    cfg.port = 0;
    cfg.threads = 1;
    cfg.outbound.max_in_flight = in_flight;
    server_ = std::make_unique<pn::server>(ioc_, cfg);
    server_->start();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~sender_node() {
    asio::post(ioc_, [this] { server_->shutdown(); });  // closes its session; run() returns when done
    thread_.join();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path control_socket() const { return dir_ / "state" / "control.sock"; }

 private:
  std::filesystem::path dir_;
  asio::io_context ioc_;
  std::unique_ptr<pn::server> server_;
  std::thread thread_;
};

// Each iteration queues `batch` messages at the sender through its control socket (100 requests
// written at a time, as an application would) and ends when the last of them is in node(1)'s inbox: the path
// from an application to its peer's application. The same run with one message under way at a
// time and with up to 64 gives the ratio.
void bench_outbox(benchmark::State& state) {
  constexpr std::int64_t batch = 2000;
  sender_node sender(static_cast<std::size_t>(state.range(0)));
  control_client out(sender.control_socket()), in(node(1).control_socket());
  const auto to = url(true, node(1).port());
  const boost::json::object payload{{"text", std::string(100, 'x')}};
  for (auto _ : state) {
    in.call({{"op", "inbox_ack"}, {"through", INT64_MAX}});  // the inbox holds only this batch
    const auto t0 = std::chrono::steady_clock::now();
    // 100 requests written at a time, then their answers read (the socket's buffers hold that much).
    for (std::int64_t i = 0; i < batch; i += 100) {
      for (int k = 0; k < 100; ++k) out.write({{"op", "send"}, {"to", to}, {"type", "status_report"}, {"payload", payload}});
      for (int k = 0; k < 100; ++k) out.read();
    }
    // The batch's messages are numbered first .. first + batch - 1 in the inbox, in arrival order.
    const auto arrived = [&](std::int64_t after) { return in.call({{"op", "inbox"}, {"after", after}, {"limit", 1}, {"wait_s", 120}}).at("messages").as_array(); };
    const auto first = arrived(0);
    const auto last = first.empty() ? first : arrived(first.at(0).at("seq").as_int64() + batch - 2);
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (last.empty()) {
      state.SkipWithError("the batch did not arrive within 120 s");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

const bool registered = [] {
  for (const bool ws : {false, true})
    for (const bool encrypted : {false, true})
      for (const unsigned threads : {1u, 2u, 0u}) {
        const std::string name = std::string(ws ? "ws" : "http") + (encrypted ? "_encrypted" : "_signed") + "/" +
                                 (threads == 0 ? "echo" : threads == 1 ? "peerproto" : "peerproto_2threads");
        benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) { bench_round_trips(s, ws, encrypted, threads); })
            ->Arg(1)->Arg(4)->UseManualTime()->Unit(benchmark::kMicrosecond);
      }
  // A message delivered to the application (heartbeat, into the inbox) beside one the node
  // answers itself (ping), with an empty inbox and with 100,000 unacknowledged messages: the
  // delivery path's cost must not grow with the backlog.
  for (const unsigned threads : {1u, 100u}) {
    const std::string backlog = threads == 1 ? "" : "_backlog100k";
    benchmark::RegisterBenchmark(("http_encrypted/delivered" + backlog).c_str(),
                                 [=](benchmark::State& s) { bench_round_trips(s, false, true, threads, "heartbeat"); })
        ->Arg(4)->UseManualTime()->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark("outbox_ws/in_flight", bench_outbox)->Arg(1)->Arg(64)->UseManualTime()->Unit(benchmark::kMillisecond);
  for (const bool ws : {false, true})
    benchmark::RegisterBenchmark(ws ? "chunked_ws/peerproto" : "chunked_http/peerproto", [=](benchmark::State& s) { bench_chunked(s, ws); })
        ->Arg(8 << 20)->Unit(benchmark::kMillisecond)->UseRealTime();
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
