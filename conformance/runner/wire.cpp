#include "wire.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

namespace peerproto::conformance {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {
std::chrono::steady_clock::duration left(deadline until) {
  const auto d = until - std::chrono::steady_clock::now();
  return d.count() > 0 ? d : std::chrono::steady_clock::duration::zero();
}

wire_failure failure_of(const beast::error_code& ec, const std::string& during) {
  using k = wire_failure::kind;
  if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == websocket::error::closed || ec == asio::error::broken_pipe || ec == asio::ssl::error::stream_truncated)
    return {k::closed, "the node closed the connection during " + during};
  if (ec == asio::error::connection_refused) return {k::refused, "connection refused"};
  return {k::io, during + ": " + ec.message()};
}

// Runs one asynchronous operation on `ioc` until it completes or `until` passes; on timeout the
// socket is closed (which completes the operation) and a timeout failure is thrown.
template <class Start>
void run(asio::io_context& ioc, tcp::socket& socket, deadline until, const std::string& during, Start&& start) {
  bool done = false;
  beast::error_code result;
  start([&](beast::error_code ec, auto&&...) {
    done = true;
    result = ec;
  });
  ioc.restart();
  ioc.run_for(left(until));
  if (!done) {
    beast::error_code ignored;
    socket.close(ignored);
    ioc.restart();
    ioc.run();
    throw wire_failure(wire_failure::kind::timeout, "no answer within the time limit during " + during);
  }
  if (result) throw failure_of(result, during);
}

void open_and_connect(asio::io_context& ioc, tcp::socket& socket, const endpoint& ep, deadline until) {
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  const auto found = resolver.resolve(ep.host, ep.port, ec);
  if (ec || found.empty()) throw wire_failure(wire_failure::kind::io, "cannot resolve " + ep.host + ": " + ec.message());
  const tcp::endpoint target = *found.begin();
  socket.open(target.protocol());
  if (!ep.source.empty()) {
    socket.bind(tcp::endpoint(asio::ip::make_address(ep.source), 0), ec);
    if (ec) throw wire_failure(wire_failure::kind::io, "cannot bind source address " + ep.source + ": " + ec.message());
  }
  socket.set_option(tcp::no_delay(true));
  run(ioc, socket, until, "connect", [&](auto&& done) { socket.async_connect(target, done); });
}

// The TLS handshake of a client that verifies the node's certificate for the target's host name.
void tls_handshake(asio::io_context& ioc, asio::ssl::stream<tcp::socket>& tls, const endpoint& ep, deadline until) {
  if (!SSL_set_tlsext_host_name(tls.native_handle(), ep.host.c_str()))
    throw wire_failure(wire_failure::kind::io, "cannot set the TLS server name");
  tls.set_verify_mode(asio::ssl::verify_peer);
  tls.set_verify_callback(asio::ssl::host_name_verification(ep.host));
  run(ioc, tls.next_layer(), until, "TLS handshake", [&](auto&& done) { tls.async_handshake(asio::ssl::stream_base::client, done); });
}

// A connected stream, plain or TLS: `with(f)` calls f with whichever it is.
struct stream_pair {
  explicit stream_pair(asio::io_context& ioc, const endpoint& ep) : plain(ioc) {
    if (ep.tls) tls.emplace(ioc, *ep.tls);
  }
  tcp::socket& socket() { return tls ? tls->next_layer() : plain; }
  template <class F>
  decltype(auto) with(F&& f) {
    return tls ? f(*tls) : f(plain);
  }
  tcp::socket plain;
  std::optional<asio::ssl::stream<tcp::socket>> tls;
};
}  // namespace

struct http_connection::impl {
  explicit impl(const endpoint& e) : ep(e), stream(ioc, e) {}
  endpoint ep;
  asio::io_context ioc;
  stream_pair stream;
  beast::flat_buffer buffer;
};

http_connection::http_connection(const endpoint& ep, deadline until) : p_(std::make_unique<impl>(ep)) {
  open_and_connect(p_->ioc, p_->stream.socket(), ep, until);
  if (p_->stream.tls) tls_handshake(p_->ioc, *p_->stream.tls, ep, until);
}
http_connection::~http_connection() = default;

namespace {
http::request<http::string_body> make_request(const endpoint& ep, const std::string& method, const std::string& target,
                                              const std::string& body, const std::optional<std::string>& content_type,
                                              const std::map<std::string, std::string>& extra = {}) {
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, ep.host + ":" + ep.port);
  req.set(http::field::user_agent, "peerproto-conformance");
  if (content_type) req.set(http::field::content_type, *content_type);
  for (const auto& [name, value] : extra) req.set(name, value);
  req.body() = body;
  if (method != "GET" || !body.empty()) req.prepare_payload();
  return req;
}

http_response to_response(http::response<http::string_body>&& res) {
  http_response out;
  out.status = static_cast<int>(res.result_int());
  for (const auto& field : res) {
    std::string name(field.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.headers[name] = std::string(field.value());
  }
  out.body = std::move(res.body());
  out.keep_alive = res.keep_alive();
  return out;
}
}  // namespace

void http_connection::send(const std::string& method, const std::string& target, const std::string& body, deadline until,
                           const std::optional<std::string>& content_type, const std::map<std::string, std::string>& extra) {
  auto req = make_request(p_->ep, method, target, body, content_type, extra);
  run(p_->ioc, p_->stream.socket(), until, "HTTP request",
      [&](auto&& done) { p_->stream.with([&](auto& s) { http::async_write(s, req, done); }); });
}

http_response http_connection::exchange(const std::string& method, const std::string& target, const std::string& body,
                                        deadline until, const std::optional<std::string>& content_type) {
  auto req = make_request(p_->ep, method, target, body, content_type);
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  bool read_done = false, write_done = false;
  beast::error_code read_ec, write_ec;
  p_->stream.with([&](auto& s) {
    http::async_write(s, req, [&](beast::error_code ec, std::size_t) { write_done = true; write_ec = ec; });
    http::async_read(s, p_->buffer, parser, [&](beast::error_code ec, std::size_t) { read_done = true; read_ec = ec; });
  });
  p_->ioc.restart();
  while (!read_done && std::chrono::steady_clock::now() < until) p_->ioc.run_one_for(left(until));
  if (!read_done || !write_done) {
    beast::error_code ignored;
    p_->stream.socket().close(ignored);
    p_->ioc.restart();
    p_->ioc.run();
  }
  // The response decides; a write cut short by the node's answer and close does not matter.
  if (!read_done) throw wire_failure(wire_failure::kind::timeout, "no answer within the time limit during HTTP response");
  if (read_ec) throw failure_of(read_ec, "HTTP response");
  return to_response(parser.release());
}

void http_connection::write_raw(const std::string& bytes, deadline until) {
  run(p_->ioc, p_->stream.socket(), until, "raw write",
      [&](auto&& done) { p_->stream.with([&](auto& s) { asio::async_write(s, asio::buffer(bytes), done); }); });
}

http_response http_connection::receive(deadline until) {
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  run(p_->ioc, p_->stream.socket(), until, "HTTP response",
      [&](auto&& done) { p_->stream.with([&](auto& s) { http::async_read(s, p_->buffer, parser, done); }); });
  return to_response(parser.release());
}

std::optional<std::string> http_connection::read_until_closed(deadline until) {
  std::string got(beast::buffers_to_string(p_->buffer.data()));  // already read past the last response
  std::array<char, 4096> chunk;
  for (;;) {
    std::size_t n = 0;
    try {
      run(p_->ioc, p_->stream.socket(), until, "wait for close", [&](auto&& done) {
        p_->stream.with([&](auto& s) {
          s.async_read_some(asio::buffer(chunk), [&n, done](beast::error_code ec, std::size_t k) mutable {
            n = k;
            done(ec, k);
          });
        });
      });
    } catch (const wire_failure& f) {
      if (f.what_kind == wire_failure::kind::closed) return got;
      return std::nullopt;
    }
    if (got.size() < (64u << 10)) got.append(chunk.data(), std::min(n, (64u << 10) - got.size()));
  }
}

http_response http_get(const endpoint& ep, const std::string& path, deadline until) {
  http_connection c(ep, until);
  c.send("GET", path, "", until, std::nullopt);
  return c.receive(until);
}

struct ws_connection::impl {
  explicit impl(const endpoint& ep) {
    if (ep.tls) tls.emplace(ioc, *ep.tls);
    else plain.emplace(ioc);
  }
  tcp::socket& socket() { return tls ? tls->next_layer().next_layer() : plain->next_layer(); }
  template <class F>
  decltype(auto) with(F&& f) {
    return tls ? f(*tls) : f(*plain);
  }
  asio::io_context ioc;
  std::optional<websocket::stream<tcp::socket>> plain;
  std::optional<websocket::stream<asio::ssl::stream<tcp::socket>>> tls;
  beast::flat_buffer buffer;
};

ws_connection::ws_connection(const endpoint& ep, const std::string& target, deadline until) : p_(std::make_unique<impl>(ep)) {
  open_and_connect(p_->ioc, p_->socket(), ep, until);
  if (p_->tls) tls_handshake(p_->ioc, p_->tls->next_layer(), ep, until);
  p_->with([](auto& ws) { ws.read_message_max(64u << 20); });
  run(p_->ioc, p_->socket(), until, "WebSocket upgrade",
      [&](auto&& done) { p_->with([&](auto& ws) { ws.async_handshake(ep.host + ":" + ep.port, target, done); }); });
}
ws_connection::~ws_connection() = default;

void ws_connection::send_text(const std::string& text, deadline until) {
  run(p_->ioc, p_->socket(), until, "WebSocket write", [&](auto&& done) {
    p_->with([&](auto& ws) {
      ws.text(true);
      ws.async_write(asio::buffer(text), done);
    });
  });
}

void ws_connection::send_binary(const std::string& data, deadline until) {
  run(p_->ioc, p_->socket(), until, "WebSocket write", [&](auto&& done) {
    p_->with([&](auto& ws) {
      ws.binary(true);
      ws.async_write(asio::buffer(data), done);
    });
  });
}

ws_message ws_connection::receive(deadline until) {
  p_->buffer.clear();
  const auto code = [&] { return p_->with([](auto& ws) { return static_cast<int>(ws.reason().code); }); };
  try {
    run(p_->ioc, p_->socket(), until, "WebSocket read",
        [&](auto&& done) { p_->with([&](auto& ws) { ws.async_read(p_->buffer, done); }); });
  } catch (const wire_failure& f) {
    if (f.what_kind == wire_failure::kind::closed)
      throw wire_failure(f.what_kind, "the node closed the WebSocket (status " + std::to_string(code()) + ")", code());
    throw;
  }
  return {beast::buffers_to_string(p_->buffer.data()), !p_->with([](auto& ws) { return ws.got_text(); })};
}

}  // namespace peerproto::conformance
