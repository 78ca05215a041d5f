#include "client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace peerproto::node {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {
// Runs one asynchronous operation to completion on `ioc` (the stream's own timeout bounds it).
template <class Start>
beast::error_code run(asio::io_context& ioc, Start&& start) {
  beast::error_code result = asio::error::would_block;
  start([&](beast::error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

failure transport_failure(const std::string& what, const beast::error_code& ec) {
  return failure{errc::internal_error, what + ": " + ec.message()};
}
}  // namespace

struct client::http_conn {
  explicit http_conn(asio::io_context& ioc) : stream(ioc) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  std::chrono::steady_clock::time_point last_used;
  bool reused = false;
};

struct client::ws_conn {
  explicit ws_conn(asio::io_context& ioc) : ws(ioc) {}
  websocket::stream<beast::tcp_stream> ws;
  beast::flat_buffer buffer;
};

client::client(identity self, engine_options opt, client_options copt) : self_(std::move(self)), copt_(copt) {
  opt.self_id = self_.entity_id;
  engine_ = std::make_unique<engine>(std::move(opt), self_.key, trust_, no_handlers_);
}

client::~client() = default;

std::size_t client::pooled_connections() const {
  std::size_t n = 0;
  for (const auto& [k, v] : idle_) n += v.size();
  return n;
}

std::unique_ptr<client::http_conn> client::acquire(const peer_url& peer) {
  auto& list = idle_[peer.key()];
  const auto cutoff = std::chrono::steady_clock::now() - copt_.idle_eviction;
  std::erase_if(list, [&](const auto& c) { return c->last_used < cutoff; });  // idle eviction
  if (!list.empty()) {
    auto c = std::move(list.back());
    list.pop_back();
    c->reused = true;
    return c;
  }
  return std::make_unique<http_conn>(ioc_);
}

void client::release(const peer_url& peer, std::unique_ptr<http_conn> c) {
  auto& list = idle_[peer.key()];
  c->last_used = std::chrono::steady_clock::now();
  if (list.size() < copt_.max_connections_per_peer) list.push_back(std::move(c));
}

result<wire_reply> client::post(const peer_url& peer, const std::string& target, const std::string* body) {
  for (int attempt = 0;; ++attempt) {
    auto c = acquire(peer);
    beast::error_code ec;
    if (!c->reused) {
      tcp::resolver resolver(ioc_);
      const auto endpoints = resolver.resolve(peer.host, peer.port, ec);
      if (ec) return transport_failure("cannot resolve " + peer.host, ec);
      c->stream.expires_after(copt_.timeout);
      ec = run(ioc_, [&](auto h) { c->stream.async_connect(endpoints, h); });
      if (ec) return transport_failure("cannot connect to " + peer.key(), ec);
    }
    http::request<http::string_body> req{body ? http::verb::post : http::verb::get, target, 11};
    req.set(http::field::host, peer.host);
    req.keep_alive(true);
    if (body) {
      req.set(http::field::content_type, "application/json");
      req.body() = *body;
      req.prepare_payload();
    }
    c->stream.expires_after(copt_.timeout);
    ec = run(ioc_, [&](auto h) { http::async_write(c->stream, req, h); });
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    if (!ec) ec = run(ioc_, [&](auto h) { http::async_read(c->stream, c->buffer, parser, h); });
    // Reconnect once when a pooled connection turns out to have been closed by the peer.
    if (ec && c->reused && attempt == 0 && (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
                                            ec == asio::error::broken_pipe || ec == asio::error::eof))
      continue;
    if (ec) return transport_failure("HTTP exchange with " + peer.key() + " failed", ec);
    auto res = parser.release();
    wire_reply out{static_cast<int>(res.result_int()), std::move(res.body()), std::nullopt};
    if (const auto it = res.find(http::field::retry_after); it != res.end()) out.retry_after = std::string(it->value());
    if (res.keep_alive()) release(peer, std::move(c));
    return out;
  }
}

result<client::ws_conn*> client::websocket(const peer_url& peer) {
  auto& slot = ws_[peer.key()];
  if (slot) return slot.get();
  auto c = std::make_unique<ws_conn>(ioc_);
  tcp::resolver resolver(ioc_);
  beast::error_code ec;
  const auto endpoints = resolver.resolve(peer.host, peer.port, ec);
  if (ec) return transport_failure("cannot resolve " + peer.host, ec);
  beast::get_lowest_layer(c->ws).expires_after(copt_.timeout);
  ec = run(ioc_, [&](auto h) { beast::get_lowest_layer(c->ws).async_connect(endpoints, h); });
  if (!ec) ec = run(ioc_, [&](auto h) { c->ws.async_handshake(peer.host + ":" + peer.port, peer.path.empty() ? "/ws" : peer.path, h); });
  if (ec) return transport_failure("WebSocket connection to " + peer.key() + " failed", ec);
  c->ws.read_message_max(64 * 1024 * 1024);
  slot = std::move(c);
  return slot.get();
}

result<std::vector<wire_reply>> client::exchange(const peer_url& peer, const std::vector<std::string>& envelopes) {
  std::vector<wire_reply> out;
  if (!peer.websocket) {
    for (const auto& e : envelopes) {
      auto r = post(peer, "/message", &e);
      if (!r) return r.error();
      out.push_back(std::move(*r));
    }
    return out;
  }
  auto c = websocket(peer);
  if (!c) return c.error();
  auto& ws = (*c)->ws;
  std::size_t sent = 0;
  while (out.size() < envelopes.size()) {
    beast::error_code ec;
    while (sent < envelopes.size() && sent - out.size() < copt_.ws_window && !ec) {
      beast::get_lowest_layer(ws).expires_after(copt_.timeout);
      ws.text(true);
      ec = run(ioc_, [&](auto h) { ws.async_write(asio::buffer(envelopes[sent]), h); });
      ++sent;
    }
    beast::get_lowest_layer(ws).expires_after(copt_.timeout);
    if (!ec) ec = run(ioc_, [&](auto h) { ws.async_read((*c)->buffer, h); });
    if (ec) {
      ws_.erase(peer.key());
      return transport_failure("WebSocket exchange with " + peer.key() + " failed", ec);
    }
    out.push_back({0, beast::buffers_to_string((*c)->buffer.data()), std::nullopt});
    (*c)->buffer.consume((*c)->buffer.size());
  }
  return out;
}

// The engine's timers, run before each use: a session idle or old past its limits ends here as it
// does at the peer (SES-4, SES-5) instead of being used once more. A client receives no requests,
// so poll() has nothing for it to answer.
void client::poll() { (void)engine_->poll(system_now()); }

result<std::vector<accepted_reply>> client::accept(const wire_reply& r) {
  if (r.body.empty()) return failure{errc::invalid_format, "the peer answered status " + std::to_string(r.status) + " without an envelope"};
  return engine_->accept_reply(r.body, system_now());
}

result<std::string> client::learn_identity(const peer_url& peer) {
  peer_url http_peer = peer;
  http_peer.websocket = false;
  auto r = post(http_peer, "/public-key", nullptr);
  if (!r) return r.error();
  auto peer_identity = read_published_identity(r->status, r->body);
  if (!peer_identity) return peer_identity.error();
  if (const auto b = trust_.accept_handshake_key(peer_identity->entity_id, peer_identity->key, system_now()); !b) return b.error();
  return std::move(peer_identity->entity_id);
}

result<uuid> client::handshake(const peer_url& peer, const std::string& peer_id) {
  poll();
  auto m2 = exchange(peer, {engine_->begin_handshake(peer_id, system_now())});
  if (!m2) return m2.error();
  if ((*m2)[0].body.empty()) return failure{errc::invalid_format, "no handshake_ack"};
  auto m3 = engine_->finish_handshake((*m2)[0].body, system_now());
  if (!m3) return m3.error();
  auto m4 = exchange(peer, {*m3});
  if (!m4) return m4.error();
  return engine::session_ready(accept((*m4)[0]));
}

result<std::vector<accepted_reply>> client::send(const peer_url& peer, const uuid& session, std::string_view msg_type,
                                                 const boost::json::object& payload) {
  poll();
  auto msg = engine_->send(session, msg_type, payload, system_now());
  if (!msg) return msg.error();
  auto r = exchange(peer, {*msg});
  if (!r) return r.error();
  // SES-8: our side closed when the session_close was sealed, so the peer's ack in the session
  // cannot be opened (its keys are gone); an `error` reply is still verified and returned.
  if (msg_type == msg::session_close)
    if (const auto e = parse_envelope((*r)[0].body); e && e->session_id == session && e->msg_type == msg::ack)
      return std::vector<accepted_reply>{};
  return accept((*r)[0]);
}

result<std::vector<accepted_reply>> client::send_sessionless(const peer_url& peer, const std::string& peer_id,
                                                            std::string_view msg_type, const boost::json::object& payload) {
  auto r = exchange(peer, {engine_->send_sessionless(peer_id, msg_type, payload, system_now())});
  if (!r) return r.error();
  return accept((*r)[0]);
}

result<accepted_reply> client::send_chunked(const peer_url& peer, const uuid& session, std::string_view msg_type,
                                            const boost::json::object& payload, std::size_t chunk_size) {
  poll();
  auto chunks = engine_->chunk_payloads(msg_type, payload, chunk_size);
  if (!chunks) return chunks.error();
  std::vector<std::string> messages;
  messages.reserve(chunks->size());
  for (const auto& c : *chunks) {
    auto m = engine_->send(session, "chunk", c, system_now());
    if (!m) return m.error();
    messages.push_back(std::move(*m));
  }
  chunks->clear();
  auto replies = exchange(peer, messages);
  if (!replies) return replies.error();
  std::vector<accepted_reply> delivered;
  for (const auto& r : *replies) {
    auto got = accept(r);
    if (!got) return got.error();
    for (auto& a : *got) delivered.push_back(std::move(a));
  }
  if (delivered.size() != messages.size()) return failure{errc::sequence_error, "not every chunk was answered in order"};
  return std::move(delivered.back());
}

}  // namespace peerproto::node
