#include "server.hpp"

#include "limits.hpp"
#include "openapi.hpp"
#include "pkcs11.hpp"
#include "trace.hpp"

#include <peerproto/fault.hpp>

#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <deque>
#include <iterator>

namespace peerproto::node {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

engine_options node_config::engine(const std::string& self_id) const {
  engine_options o = protocol;
  o.self_id = self_id;
  o.require_encryption = require_encryption;
  if (require_encryption) o.versions = {std::string(version_1_1)};  // VER-2: 1.0 only without the requirement
  o.json.max_bytes = max_body_bytes;
  o.replay.journal = true;  // every accepted nonce is persisted before the reply (RPL-6)
  for (auto* b : {&o.rate.pre_auth, &o.rate.handshake, &o.rate.heartbeat, &o.rate.task, &o.rate.discovery,
                  &o.rate.chunk, &o.rate.other}) {
    b->per_minute *= rate_multiplier;
    b->burst *= rate_multiplier;
  }
  return o;
}

identity load_identity(const node_config& cfg) {
  const auto key = cfg.key_file.string();
  if (!pkcs11::is_uri(key)) {
    if (!cfg.entity_id.empty()) throw config_error("--entity-id goes with a pkcs11: --key; a key file carries its entity id");
    return load_key_file(cfg.key_file, cfg.key_passphrase);
  }
  if (!is_entity_id(cfg.entity_id)) throw config_error("a pkcs11: --key needs --entity-id, this node's entity id");
  return identity{cfg.entity_id, pkcs11::open_key(pkcs11::parse_uri(key))};
}

namespace {


// ERR-6: the status of an outcome: the table's for an `error`, 200 for any other reply, 400 for
// an `error` request, which gets no envelope (MSG-3, ERR-8).
http::status status_of(const outcome& o) {
  if (o.what == outcome::kind::silent) return http::status::bad_request;
  if (!o.error) return http::status::ok;
  if (PEERPROTO_FAULT(wrong_http_status)) return http::status::bad_request;
  return static_cast<http::status>(http_status(*o.error));
}

// HTTP-1: application/json, optionally with charset=utf-8, nothing else.
bool is_json_media_type(std::string_view v) {
  const auto lower = [](std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
  };
  const auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  const auto semi = v.find(';');
  if (lower(trim(v.substr(0, semi))) != "application/json") return false;
  if (semi == std::string_view::npos) return true;
  std::string param = lower(trim(v.substr(semi + 1)));
  return param == "charset=utf-8" || param == "charset=\"utf-8\"";
}

std::string address_of(const tcp::socket& s) {
  boost::system::error_code ec;
  const auto ep = s.remote_endpoint(ec);
  return ec ? std::string("unknown") : ep.address().to_string();
}

// ---------------------------------------------------------------- WebSocket

// Stream: beast::tcp_stream, or beast::ssl_stream<beast::tcp_stream> with --tls-cert.
template <class Stream>
class ws_connection : public connection, public std::enable_shared_from_this<ws_connection<Stream>> {
 public:
  ws_connection(server& srv, Stream&& stream, std::string address)
      : srv_(srv), ex_(stream.get_executor()), ws_(std::move(stream)), address_(std::move(address)) {}
  ~ws_connection() override { srv_.closed(this, address_); }

  void run(http::request<http::string_body> req) {
    const auto& cfg = srv_.config();
    beast::get_lowest_layer(ws_).expires_never();  // the websocket stream's own timeouts apply
    websocket::stream_base::timeout t{};
    t.handshake_timeout = cfg.read_timeout;
    t.idle_timeout = cfg.idle_timeout;
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.read_message_max(cfg.max_body_bytes);  // WS-4: beyond it Beast closes with 1009
    ws_.async_accept(req, [self = this->shared_from_this()](beast::error_code ec) {
      if (!ec) self->read();
    });
  }

  void drain() override {
    asio::post(ex_, [self = this->shared_from_this()] {
      self->draining_ = true;
      if (self->in_flight_ == 0 && self->queue_.empty()) self->close();
    });
  }
  void abort() override {
    asio::post(ex_, [self = this->shared_from_this()] {
      beast::error_code ec;
      beast::get_lowest_layer(self->ws_).socket().close(ec);
    });
  }

 private:
  void read() {
    if (reading_ || closing_ || draining_) return;
    // Back-pressure: a peer that does not read its replies stops being read (bounded memory), and
    // so does one whose refusals are still being made (requests in flight are capped by WS-2).
    if (queue_.size() >= srv_.config().ws_max_in_flight || in_flight_ > srv_.config().ws_max_in_flight) return;
    reading_ = true;
    ws_.async_read(buffer_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    reading_ = false;
    if (ec) return;  // closed, timed out, or too big (Beast has sent close 1009)
    std::string text = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    // A refusal is in flight too until it is written, so that draining does not close before it.
    const auto write_reply = [self = this->shared_from_this()](const outcome& o) {
      --self->in_flight_;
      self->write(o.reply);
      self->read();
    };
    if (!ws_.got_text()) {
      if (PEERPROTO_FAULT(ws_binary_closes)) return ws_.async_close(websocket::close_code::policy_error, [self = this->shared_from_this()](beast::error_code) {});
      ++in_flight_;
      srv_.refuse(ex_, {errc::invalid_format, "binary messages are not envelopes; send text"}, "", address_, write_reply);  // WS-3
    } else if (in_flight_ >= srv_.config().ws_max_in_flight) {
      ++in_flight_;
      srv_.refuse(ex_, {errc::rate_limited, "too many requests in flight on this connection"}, std::move(text), address_, write_reply,
                  std::chrono::seconds(1));  // WS-2
    } else {
      ++in_flight_;
      srv_.submit(ex_, std::move(text), address_, [self = this->shared_from_this()](const outcome& o) {
        --self->in_flight_;
        // MSG-3: a reply type received as a request is matched to our own requests (we have
        // none as a server) and not answered; ERR-8: an error is never answered.
        const bool unanswered = !o.sends_envelope(false);
        if (!unanswered) self->write(o.reply);
        else if (self->draining_ && self->in_flight_ == 0 && self->queue_.empty()) self->close();
        self->read();
      });
    }
    read();
  }

  void write(std::string text) {
    queue_.push_back(std::move(text));
    if (queue_.size() == 1) do_write();
  }
  void do_write() {
    ws_.text(true);
    ws_.async_write(asio::buffer(queue_.front()), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->queue_.pop_front();
      if (ec) return;
      if (!self->queue_.empty()) return self->do_write();
      if (self->draining_ && self->in_flight_ == 0) return self->close();
      self->read();
    });
  }
  void close() {
    if (closing_) return;
    closing_ = true;
    ws_.async_close(websocket::close_code::going_away, [self = this->shared_from_this()](beast::error_code) {});
  }

  server& srv_;
  const asio::any_io_executor ex_;  ///< the connection's strand (kept: the stream may not be read from other threads)
  websocket::stream<Stream> ws_;
  std::string address_;
  beast::flat_buffer buffer_;
  std::deque<std::string> queue_;
  std::size_t in_flight_ = 0;
  bool reading_ = false, draining_ = false, closing_ = false;
};

// ---------------------------------------------------------------- HTTP

template <class Stream>
class http_connection : public connection, public std::enable_shared_from_this<http_connection<Stream>> {
 public:
  http_connection(server& srv, Stream&& stream, std::string address)
      : srv_(srv), ex_(stream.get_executor()), stream_(std::move(stream)), address_(std::move(address)) {}
  ~http_connection() override {
    if (!handed_over_) srv_.closed(this, address_);
  }

  const asio::any_io_executor& executor() const { return ex_; }

  // A new connection has read_timeout for its TLS handshake, if any, and its first request.
  void start() {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      read_request();
    } else {
      lowest().expires_after(srv_.config().read_timeout);
      stream_.async_handshake(asio::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) return self->cut();  // not TLS, a bad handshake, or too slow
        self->read_request();
      });
    }
  }

  // Both are posted from the core thread; a connection handed over to WebSocket no longer owns its stream.
  void drain() override {
    asio::post(ex_, [self = this->shared_from_this()] {
      if (self->handed_over_) return;
      self->draining_ = true;
      if (!self->busy_) self->cut();
    });
  }
  void abort() override {
    asio::post(ex_, [self = this->shared_from_this()] {
      if (!self->handed_over_) self->cut();
    });
  }

 private:
  void cut() {
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().socket().close(ec);
  }

  // HTTP-11: between requests the idle timeout applies; once a request starts, the read timeout.
  void wait_for_request() {
    if (buffer_.size() > 0) return read_request();
    lowest().expires_after(srv_.config().idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
      if (ec) return;  // idle timeout or closed
      self->buffer_.commit(n);
      self->read_request();
    });
  }

  void read_request() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(srv_.config().max_header_bytes));
    parser_->body_limit(PEERPROTO_FAULT(no_body_limit) ? 64u << 20 : srv_.config().max_body_bytes);
    lowest().expires_after(srv_.config().read_timeout);
    if (PEERPROTO_FAULT(read_timeout_answers_408)) answer_408_at_read_timeout();
    http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_read(ec);
    });
  }

  // Another reading of HTTP-11 that SPEC allows (a status, then the close), for the test that the
  // runner accepts it: answer 408 just before the read timeout closes the stream.
  void answer_408_at_read_timeout() {
    timer_408_.expires_after(srv_.config().read_timeout - std::chrono::milliseconds(200));
    timer_408_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->busy_) return;
      static const std::string response = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
      asio::async_write(self->stream_, asio::buffer(response), [self](beast::error_code, std::size_t) { self->cut(); });
    });
  }

  void on_read(beast::error_code ec) {
    timer_408_.cancel();
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted) return cut();
    busy_ = true;
    if (ec == http::error::body_limit)  // HTTP-3: declared or received length over the limit
      return srv_.refuse(ex_, {errc::payload_too_large, "the body exceeds the envelope limit"}, "", address_,
                         [self = this->shared_from_this()](const outcome& o) { self->respond(self->envelope_response(o), true); });
    if (ec == http::error::header_limit) return respond(plain(http::status::request_header_fields_too_large, "headers too large\n"), true);
    if (ec.category() == http::make_error_code(http::error::bad_target).category())
      return respond(plain(http::status::bad_request, "malformed HTTP request\n"), true);  // HTTP-10
    if (ec) return cut();
    request_ = parser_->release();
    dispatch();
  }

  void dispatch() {
    std::string_view target = request_.target();
    const std::string_view path = target.substr(0, target.find('?'));
    if (path == "/ws" && !PEERPROTO_FAULT(no_websocket)) {
      if (!websocket::is_upgrade(request_)) return respond(plain(http::status::bad_request, "expected a WebSocket upgrade\n"), false);
      if (srv_.draining()) return respond(plain(http::status::service_unavailable, "shutting down\n"), true);
      // The WebSocket connection takes over the socket and the address count.
      auto ws = std::make_shared<ws_connection<Stream>>(srv_, std::move(stream_), address_);
      srv_.opened(ws);
      handed_over_ = true;
      srv_.handed_over(this);
      ws->run(std::move(request_));
      if (srv_.draining()) ws->drain();  // shutdown began after the check above: it may have missed both
      return;
    }
    const auto respond_with = [self = this->shared_from_this()](const outcome& o) { self->respond(self->envelope_response(o), false); };
    if (path == "/message") {
      if (request_.method() != http::verb::post) return respond(not_allowed("POST"), false);  // HTTP-12
      if (!is_json_media_type(request_[http::field::content_type]))
        return srv_.refuse(ex_, {errc::invalid_format, "Content-Type must be application/json"},
                           std::move(request_.body()), address_, respond_with);
      return srv_.submit(ex_, std::move(request_.body()), address_, respond_with,
                         trace_id_of(request_["traceparent"]));
    }
    srv_.get(ex_, std::string(path), [self = this->shared_from_this()](std::optional<server::resource> res) {
      if (!res) return self->respond(self->plain(http::status::not_found, "no such resource\n"), false);
      if (self->request_.method() != http::verb::get) return self->respond(self->not_allowed("GET"), false);
      http::response<http::string_body> r{static_cast<http::status>(res->status), self->request_.version()};
      r.set(http::field::content_type, res->content_type);
      r.body() = std::move(res->body);
      self->respond(std::move(r), false);
    });
  }

  http::response<http::string_body> envelope_response(const outcome& o) {
    http::response<http::string_body> r{status_of(o), request_.version()};
    if (o.sends_envelope(true)) {  // ERR-8/MSG-3: an `error` request gets 400 and no body
      r.set(http::field::content_type, "application/json");
      r.body() = o.reply;
    }
    if (o.retry_after) r.set(http::field::retry_after, std::to_string(o.retry_after->count()));  // RL-7
    return r;
  }
  http::response<http::string_body> plain(http::status s, std::string body) {
    http::response<http::string_body> r{s, 11};
    r.set(http::field::content_type, "text/plain");
    r.body() = std::move(body);
    return r;
  }
  http::response<http::string_body> not_allowed(const char* allow) {
    auto r = plain(http::status::method_not_allowed, "method not allowed\n");
    r.set(http::field::allow, allow);
    return r;
  }

  void respond(http::response<http::string_body> r, bool close) {
    close = close || srv_.draining() || !request_.keep_alive();
    r.set(http::field::server, "peerproto-node");
    r.keep_alive(!close);
    r.prepare_payload();
    response_ = std::move(r);
    lowest().expires_after(srv_.config().idle_timeout);  // a client that does not read is cut off
    http::async_write(stream_, response_, [self = this->shared_from_this(), close](beast::error_code ec, std::size_t) {
      self->busy_ = false;
      self->request_ = {};
      if (ec || self->draining_) return self->cut();
      if (close) return self->linger();
      self->wait_for_request();
    });
  }

  // After a refusal the client may still be sending its body. Closing at once would reset the
  // connection, which can destroy the response before the client reads it (RFC 9112 §9.6), so
  // shut down our side and discard what arrives for a short while, in a fixed-size buffer.
  void linger() {
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    lowest().expires_after(srv_.config().linger_timeout);
    discard_input();
  }
  void discard_input() {
    stream_.async_read_some(asio::buffer(discard_), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->cut();  // the client closed, or the linger timeout is up
      self->discard_input();
    });
  }

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  server& srv_;
  const asio::any_io_executor ex_;  ///< the connection's strand (kept: the stream moves to WebSocket)
  Stream stream_;
  asio::steady_timer timer_408_{stream_.get_executor()};  ///< read_timeout_answers_408 only
  std::string address_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  std::array<char, 4096> discard_;
  bool busy_ = false, draining_ = false, handed_over_ = false;
};

}  // namespace

// ---------------------------------------------------------------- server

namespace {
// TLS 1.2 or later (RFC 8996 retires 1.0 and 1.1), the certificate chain and key in PEM.
std::unique_ptr<asio::ssl::context> tls_context(const node_config& cfg) {
  if (cfg.tls_cert.empty() || cfg.tls_key.empty()) throw config_error("--tls-cert and --tls-key are given together");
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                   asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(cfg.tls_cert.string(), ec);
  if (ec) throw config_error("--tls-cert " + cfg.tls_cert.string() + ": " + ec.message());
  refuse_if_shared(cfg.tls_key, "--tls-key");  // like the identity key (ID-11)
  ctx->use_private_key_file(cfg.tls_key.string(), asio::ssl::context::pem, ec);
  if (ec) throw config_error("--tls-key " + cfg.tls_key.string() + ": " + ec.message());
  return ctx;
}
}  // namespace

server::server(asio::io_context& ioc, node_config cfg)
    : ioc_(ioc),
      cfg_(std::move(cfg)),
      id_(std::make_unique<identity>(load_identity(cfg_))),
      trust_(parse_trust_policy(cfg_.trust), PEERPROTO_FAULT(no_pin_limit) ? SIZE_MAX : cfg_.max_pinned_keys),
      metrics_({}),
      acceptor_(ioc),
      poll_timer_(ioc),
      maintenance_timer_(ioc),
      drain_timer_(ioc) {
  log_ = spdlog::get("peerproto-node");
  if (!log_) log_ = spdlog::stderr_color_mt("peerproto-node");
  // Everything the node writes (state, audit log and its rotations) is for its owner only.
  ::umask(S_IRWXG | S_IRWXO);
  std::error_code fs_ec;
  std::filesystem::create_directories(cfg_.state_dir, fs_ec);
  if (fs_ec) throw config_error("cannot create state directory " + cfg_.state_dir.string() + ": " + fs_ec.message());
  ::chmod(cfg_.state_dir.c_str(), 0700);
  store_ = std::make_unique<store>(cfg_.state_dir / "state.sqlite3", id_->key);
  own_chain_ = store_->own_chain();
  // KR-9: a key this node rotated away from is never used again.
  if (!own_chain_.empty() && own_chain_.back().new_key != id_->key.public_key_bytes())
    throw config_error("this node's identity rotated to key " +
                       (own_chain_.back().new_key ? fingerprint(*own_chain_.back().new_key) : std::string("(revoked)")) +
                       " (rotation " + std::to_string(own_chain_.back().counter) + ", recorded in " + cfg_.state_dir.string() +
                       "); the key given has fingerprint " + fingerprint(id_->key.public_key_bytes()) + ": start with the new key");
  if (!cfg_.tls_cert.empty() || !cfg_.tls_key.empty()) tls_ = tls_context(cfg_);

  if (!cfg_.peers_file.empty())
    for (auto& [peer, key] : load_peers_file(cfg_.peers_file)) trust_.pin(peer, key);
  // Pins made with `ctl peers pin` hold under every policy; tofu and open also keep what
  // handshakes of earlier runs bound.
  std::map<std::string, crypto::public_key, std::less<>> stored;
  for (const auto& p : store_->peer_records()) {
    stored.emplace(p.entity_id, p.key);
    if (p.configured || (trust_.policy() != trust_policy::pinned && (!trust_.key_for(p.entity_id) || trust_.policy() == trust_policy::open)))
      trust_.pin(p.entity_id, p.key);
  }
  // KR-5, KR-7, KR-8: what peers' rotations left. A binding a rotation moved stands over the peers
  // file, which names an older key; a revoked entity stays blocked whatever the file says.
  for (const auto& [peer, r] : store_->peer_rotations()) {
    trust_.restore_rotation(peer, r);
    const auto it = stored.find(peer);
    if (r.revoked || it == stored.end()) {
      trust_.unpin(peer);
      continue;
    }
    if (const auto configured = trust_.key_for(peer); configured && *configured != it->second)
      log_->warn("peer {} rotated its key to {} (rotation {}); the peers file still names {}", peer, fingerprint(it->second), r.counter,
                 fingerprint(*configured));
    trust_.pin(peer, it->second);
  }
  if (trust_.policy() == trust_policy::open)  // ID-7
    log_->warn("trust policy is OPEN: any key presented in a handshake is accepted and replaces the known one. "
               "Use open only for tests and demonstrations.");
  if (trust_.policy() == trust_policy::pinned && trust_.keys().empty())
    log_->warn("trust policy is pinned and no peers are configured: every peer will get UNKNOWN_SENDER (use --peers)");

  engine_opt_ = cfg_.engine(id_->entity_id);
  limits_ = advertised_limits(cfg_);
  // Faults of the fault-injection node that advertise the configured limit and apply another.
  if (PEERPROTO_FAULT(wide_timestamp_tolerance)) engine_opt_.replay.tolerance *= 2;
  if (PEERPROTO_FAULT(long_handshake_timeout)) engine_opt_.handshake_timeout *= 2;
  if (PEERPROTO_FAULT(long_session_idle)) engine_opt_.session.idle_ttl *= 2;
  if (PEERPROTO_FAULT(long_session_lifetime)) engine_opt_.session.lifetime *= 2;
  if (PEERPROTO_FAULT(long_transfer_idle)) engine_opt_.chunks.idle_timeout *= 2;
  if (PEERPROTO_FAULT(rotation_no_grace)) engine_opt_.rotation_grace = std::chrono::milliseconds(0);
  if (PEERPROTO_FAULT(long_rotation_grace)) engine_opt_.rotation_grace *= 2;
  if (PEERPROTO_FAULT(backoff_one_late)) engine_opt_.rate.backoff.threshold += 1;
  if (PEERPROTO_FAULT(no_address_pending_limit)) engine_opt_.max_pending_per_address = SIZE_MAX;
  if (PEERPROTO_FAULT(no_sessions_per_peer_limit)) engine_opt_.max_sessions_per_peer = SIZE_MAX;
  register_builtin_handlers(handlers_, {engine_opt_, limits_, trust_, *store_, pending_, cfg_.max_task_queue, cfg_.max_inbox});
  engine_ = std::make_unique<engine>(engine_opt_, id_->key, trust_, handlers_);
  const auto t = system_now();
  std::size_t nonces = 0, sessions = 0;
  for (const auto& n : store_->nonces(t)) {
    engine_->replay().restore(n.sender, n.nonce, n.expiry, t);
    ++nonces;
  }
  engine_->replay().restore_forgotten_through(store_->nonces_forgotten_through(), t);
  for (const auto& s : store_->sessions()) sessions += engine_->restore_session(s) ? 1 : 0;
  (void)engine_->take_changed_sessions();
  for (const auto& done : store_->completed_transfers(t)) engine_->reassembly().restore_completed(done, t);

  std::set<std::string> known(msg::core_requests.begin(), msg::core_requests.end());
  for (const auto& type : handlers_.types()) known.insert(type);
  for (const auto reply : msg::reply_types) known.insert(std::string(reply));
  metrics_ = metrics(std::move(known));

  const auto audit_file = cfg_.audit_log.empty() ? cfg_.state_dir / "audit.jsonl" : cfg_.audit_log;
  // AUD-4: bounded on disk by rotation, and a record that cannot be written is counted in
  // /metrics and logged (the first time, then every 1000th), never retried from memory.
  audit_ = std::make_shared<spdlog::logger>(
      "audit", std::make_shared<spdlog::sinks::rotating_file_sink_mt>(audit_file.string(), cfg_.audit_max_bytes, cfg_.audit_files));
  audit_->set_pattern("%v");
  audit_->flush_on(spdlog::level::info);
  audit_->set_error_handler([this](const std::string& why) {
    if (const auto failures = metrics_.audit_write_failed(); failures % 1000 == 1)
      log_->error("audit record not written ({} so far; peerproto_audit_write_failures_total): {}", failures, why);
  });
  log_->info("{} ({}) restored {} sessions, {} replay entries, {} pinned peers, {} queued tasks, {} outbox messages waiting",
             id_->entity_id, fingerprint(id_->key.public_key_bytes()), sessions, nonces, trust_.keys().size(), store_->task_count(),
             store_->outbox_waiting());
  outbound_ = std::make_unique<outbound>(
      ioc_, outbound_context{*engine_, trust_, *store_, [this](state_changes c) { commit(std::move(c)); }, log_}, cfg_.outbound);
  control_ = std::make_unique<control>(*this, cfg_.control_socket.empty() ? cfg_.state_dir / "control.sock" : cfg_.control_socket);
}

// The transport threads stop first: a connection destroyed with their io_context still finds the
// server whole (closed() runs).
server::~server() {
  if (!transport_) return;
  transport_work_.reset();
  transport_->stop();
  for (auto& t : transport_threads_) t.join();
  // After an abnormal exit, callbacks to connections may still be waiting: they go first.
  waiting_.clear();
  batch_.clear();
  transport_.reset();
}

std::vector<std::thread::native_handle_type> server::transport_threads() {
  std::vector<std::thread::native_handle_type> out;
  for (auto& t : transport_threads_) out.push_back(t.native_handle());
  return out;
}

void server::start() {
  if (cfg_.threads > 1) {
    transport_ = std::make_unique<asio::io_context>(static_cast<int>(cfg_.threads - 1));
    transport_work_.emplace(transport_->get_executor());
    for (unsigned i = 1; i < cfg_.threads; ++i) transport_threads_.emplace_back([this] { transport_->run(); });
    // Until it has drained, the core keeps running while connections live on the other threads.
    core_work_.emplace(ioc_.get_executor());
  }
  refresh_keys();
  const tcp::endpoint ep(asio::ip::make_address(cfg_.bind), cfg_.port);
  acceptor_.open(ep.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(ep);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  control_->start();
  log_->info("listening on {}://{}:{} (WebSocket at /ws), trust {}, state in {}, control socket {}", tls_ ? "https" : "http",
             cfg_.bind, port(), cfg_.trust, cfg_.state_dir.string(), control_->path().string());
  accept();
  outbound_->start();
  maintenance();
  rearm();
}

std::uint16_t server::port() const { return acceptor_.local_endpoint().port(); }

void server::accept() {
  // A connection's socket, and so its handlers, live on a strand of the transport threads.
  const asio::any_io_executor ex = transport_ ? asio::any_io_executor(asio::make_strand(*transport_)) : ioc_.get_executor();
  acceptor_.async_accept(ex, [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      std::string address = address_of(socket);
      if (!admit(address)) {
        metrics_.connection_refused();  // the socket closes as it goes out of scope
      } else if (tls_) {
        using tls_stream = beast::ssl_stream<beast::tcp_stream>;
        auto c = std::make_shared<http_connection<tls_stream>>(*this, tls_stream(beast::tcp_stream(std::move(socket)), *tls_), std::move(address));
        opened(c);
        asio::dispatch(c->executor(), [c] { c->start(); });
      } else {
        auto c = std::make_shared<http_connection<beast::tcp_stream>>(*this, beast::tcp_stream(std::move(socket)), std::move(address));
        opened(c);
        asio::dispatch(c->executor(), [c] { c->start(); });
      }
    }
    accept();
  });
}

bool server::admit(const std::string& address) {
  const std::lock_guard lock(connections_mutex_);
  if (draining_ || connections_.size() >= cfg_.max_connections) return false;
  auto& n = per_address_[address];
  if (n >= cfg_.max_connections_per_address) {
    if (n == 0) per_address_.erase(address);
    return false;
  }
  ++n;
  return true;
}

void server::opened(const std::shared_ptr<connection>& c) {
  const std::lock_guard lock(connections_mutex_);
  connections_.emplace(c.get(), c);
}

void server::handed_over(connection* c) {
  const std::lock_guard lock(connections_mutex_);
  connections_.erase(c);
}

void server::closed(connection* c, const std::string& address) {
  {
    const std::lock_guard lock(connections_mutex_);
    connections_.erase(c);
    if (const auto it = per_address_.find(address); it != per_address_.end() && --it->second == 0) per_address_.erase(it);
  }
  on_core([this] { finish_if_drained(); });
}

std::size_t server::connection_count() {
  const std::lock_guard lock(connections_mutex_);
  return connections_.size();
}

template <class F>
void server::on_core(F&& f) {
  if (transport_) asio::post(ioc_, std::forward<F>(f));
  else f();
}

server::reply_fn server::back_to(const asio::any_io_executor& ex, reply_fn done) const {
  if (!transport_) return done;
  return [ex, done = std::move(done)](const outcome& o) { asio::post(ex, [done, o] { done(o); }); };
}

// The keys the transport threads check signatures with: a copy of the trust store's, replaced
// when it changes (at most every 100 ms; a stale copy only means the engine checks again).
void server::refresh_keys() {
  const auto now = std::chrono::steady_clock::now();
  if (!transport_ || trust_.generation() == keys_generation_ || now < next_keys_refresh_) return;
  auto keys = std::make_shared<const key_map>(trust_.keys());
  keys_generation_ = trust_.generation();
  next_keys_refresh_ = now + std::chrono::milliseconds(100);
  const std::lock_guard lock(keys_mutex_);
  keys_ = std::move(keys);
}

std::optional<signature_check> server::precheck(std::string_view text) {
  std::shared_ptr<const key_map> keys;
  {
    const std::lock_guard lock(keys_mutex_);
    keys = keys_;
  }
  if (!keys) return std::nullopt;
  return precheck_signature(text, engine_opt_.json, [&](std::string_view id) -> std::optional<crypto::public_key> {
    const auto it = keys->find(id);
    if (it == keys->end()) return std::nullopt;
    return it->second;
  });
}

// Test-only faults (fault.hpp) that act on the engine's input or output rather than inside it.
namespace {
void input_faults(std::string_view text) {
  if (PEERPROTO_FAULT(exit_on_chunk))  // a node that dies mid-run
    if (const auto e = parse_envelope(text); e && e->msg_type == msg::chunk) std::_Exit(70);
}
void output_faults(outcome& o) {
  if (PEERPROTO_FAULT(unsigned_errors) && o.error && !o.reply.empty())
    if (auto e = parse_envelope(o.reply); e && e->signature) {
      (*e->signature)[0] ^= 1;
      o.reply = serialize(*e);
    }
  for (auto& r : o.released) output_faults(r);
}
// A node that dies after it stored a delivery and before its reply leaves, every 50th time.
void after_commit_faults(const outcome& o) {
  static int delivered = 0;
  if (PEERPROTO_FAULT(exit_before_reply) && o.what == outcome::kind::answer && !o.error && ++delivered % 50 == 0) std::_Exit(71);
}
}  // namespace

void server::submit(const asio::any_io_executor& ex, std::string text, std::string remote, reply_fn done, std::string trace_id) {
  // A half-built node: it parses envelopes but has no handshake yet (the runner's needs, suite.hpp).
  if (PEERPROTO_FAULT(refuses_handshakes))
    if (const auto e = parse_envelope(text); e && e->msg_type == msg::handshake)
      return refuse(ex, {errc::unsupported_message_type, "no handshake yet"}, std::move(text), std::move(remote), std::move(done));
  const auto started = std::chrono::steady_clock::now();
  std::optional<signature_check> checked;
  if (transport_) checked = precheck(text);  // on this transport thread, not the core's
  on_core([this, text = std::move(text), remote = std::move(remote), done = back_to(ex, std::move(done)),
           trace_id = std::move(trace_id), checked, started]() mutable {
    handle(text, remote, std::move(done), std::move(trace_id), checked, started);
  });
}

void server::handle(const std::string& text, const std::string& remote, reply_fn done, std::string trace_id,
                    const std::optional<signature_check>& checked, std::chrono::steady_clock::time_point started) {
  input_faults(text);
  outcome o = engine_->handle(text, remote, system_now(), checked);
  output_faults(o);
  if (trace_id.empty()) trace_id = new_trace_id();
  for (auto& a : o.audit) a.trace_id = trace_id;
  for (auto& m : pending_.inbox)
    if (m.trace_id.empty()) m.trace_id = trace_id;
  note_trust_changes(o);
  // A held request waits from now: a timer may release it before the flush (ORD-6).
  if (o.what == outcome::kind::held) {
    metrics_.held();
    waiting_[o.request_nonce] = {std::move(done), started};
  }
  // Every request the event loop has ready now is handled before the commit, which it then shares.
  if (batch_.empty()) asio::post(ioc_, [this] { flush(); });
  batch_.push_back({std::move(o), text, remote, std::move(done), started});
}

void server::flush() {
  auto batch = std::exchange(batch_, {});
  bool failed = std::exchange(batch_lost_, false);
  try {
    commit({});
  } catch (const store_error& e) {
    log_->error("{}", e.what());
    failed = true;
  }
  for (auto& h : batch) {
    if (failed) {
      if (h.o.what == outcome::kind::held)  // unless a timer has answered it already
        if (const auto w = waiting_.find(h.o.request_nonce); w != waiting_.end()) {
          h.done = std::move(w->second.done);
          waiting_.erase(w);
        }
      unstored(h.o, h.text, h.remote);
    }
    after_commit_faults(h.o);
    record(h.o, h.started);
    if (h.done && h.o.what != outcome::kind::held) h.done(h.o);
    for (const auto& r : h.o.released) route(r);
  }
  refresh_keys();
  rearm();
}

// ERR-7: nothing is acknowledged that is not stored. The outcome answers INTERNAL_ERROR instead,
// to the same request, and so do the held requests it released.
void server::unstored(outcome& o, std::string_view text, const std::string& remote) {
  if (o.what == outcome::kind::silent) return;
  auto released = std::move(o.released);
  const auto request = o.request_nonce;
  o = engine_->refuse({errc::internal_error, "the node could not store its state"}, text, remote, system_now());
  o.request_nonce = request;
  for (auto& r : released) {
    unstored(r, "", "");
    o.released.push_back(std::move(r));
  }
}

void server::refuse(const asio::any_io_executor& ex, failure f, std::string text, std::string remote, reply_fn done,
                    std::optional<std::chrono::seconds> retry_after) {
  on_core([this, f = std::move(f), text = std::move(text), remote = std::move(remote), done = back_to(ex, std::move(done)),
           retry_after] {
    auto o = engine_->refuse(f, text, remote, system_now(), retry_after);
    output_faults(o);
    record(o, std::chrono::steady_clock::now());
    done(o);
  });
}

void server::get(const asio::any_io_executor& ex, std::string path, std::function<void(std::optional<resource>)> done) {
  if (!transport_) return done(resource_of(path));
  asio::post(ioc_, [this, ex, path = std::move(path), done = std::move(done)]() mutable {
    asio::post(ex, [done = std::move(done), r = resource_of(path)]() mutable { done(std::move(r)); });
  });
}

void server::note_trust_changes(const outcome& o) {
  for (const auto& a : o.audit) {
    if (a.event == audit_event::key_pinned && a.sender_id)
      if (const auto key = trust_.key_for(*a.sender_id)) pending_.peers.emplace_back(*a.sender_id, *key);
    if ((a.event == audit_event::key_rotated || a.event == audit_event::key_revoked) && a.sender_id)
      if (const auto* r = trust_.rotation_of(*a.sender_id))  // KR-5: durable before the ack leaves
        pending_.rotations.push_back({*a.sender_id, trust_.key_for(*a.sender_id), *r});
  }
  for (const auto& r : o.released) note_trust_changes(r);
}

// Everything the engine changed is written before any reply leaves (RPL-6, SES-13). If the write
// fails, the reply becomes INTERNAL_ERROR (ERR-7): nothing is acknowledged that is not stored.
void server::persist(outcome& o) {
  note_trust_changes(o);
  try {
    commit({});
  } catch (const store_error& e) {
    log_->error("{}", e.what());
    unstored(o, "", "");
  }
}

// Every commit takes everything pending (the handlers' additions too), so that no transaction
// holds part of a request's changes: its nonce or sequence number without its delivery.
void server::commit(state_changes c) {
  c.append(pending_);
  auto j = engine_->replay().take_journal();
  c.nonces.insert(c.nonces.end(), j.begin(), j.end());
  auto done = engine_->reassembly().take_completed();
  c.completed.insert(c.completed.end(), std::make_move_iterator(done.begin()), std::make_move_iterator(done.end()));
  for (const auto& id : engine_->take_changed_sessions()) {
    const auto* s = engine_->find_session(id);
    if (auto snap = s ? s->snapshot() : std::nullopt) c.sessions.push_back(std::move(*snap));
    else c.gone.push_back(id);
  }
  const bool inbox = !c.inbox.empty();
  try {
    store_->apply(c);
  } catch (const store_error&) {
    // The open batch's nonces and sessions were in this transaction: its replies must not claim them.
    if (!batch_.empty()) batch_lost_ = true;
    throw;
  }
  if (inbox) control_->inbox_changed();
  rearm();
}

void server::record(const outcome& o, std::chrono::steady_clock::time_point started) {
  const auto took = std::chrono::steady_clock::now() - started;
  if (o.what != outcome::kind::held) metrics_.request(o.msg_type, o.error, took);
  if (o.error == errc::rate_limited) metrics_.rate_limited();
  for (const auto& a : o.audit) {
    if (a.event == audit_event::handshake_succeeded) metrics_.handshake(true);
    if (a.event == audit_event::handshake_failed) metrics_.handshake(false);
    audit_->info(boost::json::serialize(to_json(a)));
  }
  for (const auto& r : o.released) record(r, started);
}

void server::route(const outcome& o) {
  const auto it = waiting_.find(o.request_nonce);
  if (it == waiting_.end()) return;
  auto w = std::move(it->second);
  waiting_.erase(it);
  w.done(o);
}

void server::rearm() {
  const auto d = engine_->next_deadline();
  if (!d || drained_) {  // once drained, no timer keeps the node running
    poll_timer_.cancel();
    return;
  }
  const auto wait = std::max(std::chrono::milliseconds(0), *d - system_now());
  poll_timer_.expires_after(wait);
  poll_timer_.async_wait([this](beast::error_code ec) {
    if (!ec) on_poll();
  });
}

void server::on_poll() {
  const auto started = std::chrono::steady_clock::now();
  auto outs = engine_->poll(system_now());
  for (auto& o : outs) {
    output_faults(o);
    persist(o);
    record(o, started);
    route(o);
  }
  rearm();
  finish_if_drained();
}

// Expired nonces are deleted a bounded batch at a time, every second, and again at once while
// batches come back full: one large delete would stall every request behind it (at 5,000 signed
// messages per second, a minute's worth took about a second). Old outbox rows go once a minute.
void server::maintenance() {
  if (draining_) return;  // a completion queued before shutdown() cancelled the timer
  constexpr std::size_t nonce_batch = 250;
  bool more = false;
  try {
    more = store_->purge_nonces(system_now(), nonce_batch) == nonce_batch;
    if (const auto now = std::chrono::steady_clock::now(); now >= next_outbox_purge_) {
      store_->purge_outbox(system_now() - cfg_.outbound.retention);
      next_outbox_purge_ = now + std::chrono::minutes(1);
    }
  } catch (const store_error& e) {
    log_->error("{}", e.what());
  }
  maintenance_timer_.expires_after(more ? std::chrono::seconds(0) : std::chrono::seconds(1));
  maintenance_timer_.async_wait([this](beast::error_code ec) {
    if (!ec) maintenance();
  });
}

std::optional<server::resource> server::resource_of(std::string_view path) {
  const auto json = [](const boost::json::value& v) { return resource{200, "application/json", boost::json::serialize(v)}; };
  if (path == "/health") return json(boost::json::object{{"status", "ok"}});
  if (path == "/ready")
    return draining_ ? resource{503, "application/json", R"({"status":"draining"})"} : json(boost::json::object{{"status", "ready"}});
  if (path == "/public-key")
    return json(boost::json::object{{"entity_id", id_->entity_id},
                                    {"public_key", hex_encode(id_->key.public_key_bytes())},
                                    {"fingerprint", fingerprint(id_->key.public_key_bytes())}});
  if (path == "/key-rotation")  // KR-10
    return json(boost::json::object{{"entity_id", id_->entity_id}, {"chain", to_json(own_chain_)}});
  if (path == "/capabilities" && !PEERPROTO_FAULT(no_capabilities)) return json(capabilities(engine_opt_, handlers_, limits_));
  if (path == "/metrics") {
    std::size_t tasks = 0;
    try {
      tasks = store_->task_count();
    } catch (const store_error&) {
    }
    return resource{200, "text/plain; version=0.0.4",
                    metrics_.render({engine_->session_count(), connection_count(), tasks, !draining_})};
  }
  if (path == "/openapi.json") return resource{200, "application/json", std::string(openapi_json)};
  return std::nullopt;
}

key_rotation server::record_rotation(const identity* next) {
  if (next && next->entity_id != id_->entity_id)
    throw config_error("the new key is for entity '" + next->entity_id + "', this node is '" + id_->entity_id + "'");
  if (next && next->key.public_key_bytes() == id_->key.public_key_bytes()) throw config_error("the new key is the current key");
  if (!own_chain_.empty() && own_chain_.back().revokes()) throw config_error("this node's key is revoked");
  if (!own_chain_.empty() && own_chain_.back().new_key != id_->key.public_key_bytes())
    throw config_error("a rotation is being announced; try again when it has finished");
  auto r = make_key_rotation(id_->entity_id, id_->key, next ? &next->key : nullptr, own_chain_.size() + 1, make_timestamp(std::chrono::system_clock::now()));
  if (PEERPROTO_FAULT(rotation_without_countersignature) && r.new_signature) (*r.new_signature)[0] ^= 1;
  store_->rotate_identity(r, next ? next->key : id_->key);
  own_chain_.push_back(r);
  audit_->info(boost::json::serialize(to_json(audit_record{system_now(), r.revokes() ? audit_event::key_revoked : audit_event::key_rotated,
                                                           std::nullopt, id_->entity_id, std::nullopt, std::nullopt, std::nullopt,
                                                           std::nullopt, "this node's own key, rotation " + std::to_string(r.counter), std::nullopt})));
  return r;
}

void server::adopt_identity(std::unique_ptr<identity> next) {
  engine_->set_identity(next->key);
  retired_ids_.push_back(std::exchange(id_, std::move(next)));
  // KR-9: a 1.0 session is authenticated by the identity keys of its handshake, so ours end here.
  std::vector<uuid> old;
  for (const auto& [sid, s] : engine_->sessions())
    if (s.version() == version_1_0 && s.state() == session_state::ready) old.push_back(sid);
  for (const auto& sid : old) engine_->end_session(sid, system_now());
  commit({});
  log_->info("identity key rotated to {} (rotation {})", fingerprint(id_->key.public_key_bytes()), own_chain_.back().counter);
}

// Connections are reached through weak references: one may close on its own thread meanwhile.
void server::each_connection(void (connection::*f)()) {
  std::vector<std::weak_ptr<connection>> all;
  {
    const std::lock_guard lock(connections_mutex_);
    for (const auto& [raw, weak] : connections_) all.push_back(weak);
  }
  for (const auto& weak : all)
    if (const auto c = weak.lock()) ((*c).*f)();
}

void server::shutdown() {
  if (draining_) return;
  draining_ = true;
  log_->info("draining: no new connections; finishing {} connections", connection_count());
  beast::error_code ec;
  acceptor_.close(ec);
  maintenance_timer_.cancel();
  control_->stop();
  // Armed before anything can finish the drain: finish_if_drained() cancels it, and the outbound
  // client may report it has stopped before shutdown() returns (no links open). A timer armed
  // after that would keep an idle node alive for the whole drain timeout.
  drain_timer_.expires_after(cfg_.drain_timeout);
  drain_timer_.async_wait([this](beast::error_code e) {
    if (e) return;
    log_->warn("drain timeout: closing {} connections", connection_count());
    each_connection(&connection::abort);
  });
  outbound_->shutdown([this] {
    outbound_stopped_ = true;
    finish_if_drained();
  });
  each_connection(&connection::drain);
  finish_if_drained();
}

void server::finish_if_drained() {
  if (!draining_ || drained_ || connection_count() > 0 || !waiting_.empty() || !outbound_stopped_) return;
  drained_ = true;
  poll_timer_.cancel();
  drain_timer_.cancel();
  core_work_.reset();
  log_->info("drained; state is stored; exiting");
}

}  // namespace peerproto::node
