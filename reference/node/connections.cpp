// The node's two connection types: HTTP/1.1 (plain or TLS) and the WebSocket it becomes on
// GET /ws. Each runs on its own executor and reaches the core only through the server's
// connection interface (submit, refuse, get, opened, handed_over, closed).
#include "connections.hpp"

#include "trace.hpp"

#include <peerproto/fault.hpp>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <array>
#include <deque>

namespace peerproto::node {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

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
    if (ec == http::error::bad_version && PEERPROTO_FAULT(malformed_version_answers_505))
      return respond(plain(http::status::http_version_not_supported, "HTTP version not supported\n"), true);
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

void serve(server& srv, tcp::socket socket, std::string address, asio::ssl::context* tls) {
  const auto start = [&srv](const auto& c) {
    srv.opened(c);
    asio::dispatch(c->executor(), [c] { c->start(); });
  };
  if (tls) {
    using tls_stream = beast::ssl_stream<beast::tcp_stream>;
    start(std::make_shared<http_connection<tls_stream>>(srv, tls_stream(beast::tcp_stream(std::move(socket)), *tls), std::move(address)));
  } else {
    start(std::make_shared<http_connection<beast::tcp_stream>>(srv, beast::tcp_stream(std::move(socket)), std::move(address)));
  }
}

}  // namespace peerproto::node
