// The client side of the reference node: a blocking client with a keep-alive HTTP connection pool
// and WebSocket connections, which handshakes with peers, sends messages in sessions or
// sessionless, and sends large payloads in chunks. `peerproto-node send` is built on it.
#pragma once

#include "peers.hpp"

#include <peerproto/engine.hpp>
#include <peerproto/peer_url.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace peerproto::node {

struct client_options {
  std::size_t max_connections_per_peer = 4;        ///< idle HTTP connections kept per peer
  std::chrono::seconds idle_eviction{30};          ///< pooled connections unused longer are closed
  std::chrono::seconds timeout{30};                ///< one request and its reply
  std::size_t ws_window = limits::ws_max_in_flight;  ///< WebSocket requests in flight (WS-2)
};

/// An HTTP status and body, or a WebSocket text message (status 0).
struct wire_reply {
  int status = 0;
  std::string body;
  std::optional<std::string> retry_after;
};

class client {
 public:
  client(identity self, engine_options opt = {}, client_options copt = {});
  ~client();

  /// GET /public-key of `peer`: learns and pins its entity id and key (the client trusts on first
  /// use). Returns the entity id.
  result<std::string> learn_identity(const peer_url& peer);

  /// Runs a handshake with `peer` (whose identity must be known) and returns the ready session.
  result<uuid> handshake(const peer_url& peer, const std::string& peer_id);

  /// Sends a message in `session` and returns the replies delivered (usually one). For
  /// session_close, none: the session is closed on our side once the close is sealed (SES-8).
  result<std::vector<accepted_reply>> send(const peer_url& peer, const uuid& session, std::string_view msg_type,
                                          const boost::json::object& payload);
  /// Sends a sessionless signed message.
  result<std::vector<accepted_reply>> send_sessionless(const peer_url& peer, const std::string& peer_id,
                                                      std::string_view msg_type, const boost::json::object& payload);
  /// Sends `payload` in chunks of `chunk_size` bytes in `session`; returns the final reply (the
  /// handler's) after every chunk was acknowledged. Over WebSocket the chunks are pipelined.
  result<accepted_reply> send_chunked(const peer_url& peer, const uuid& session, std::string_view msg_type,
                                      const boost::json::object& payload, std::size_t chunk_size);

  /// Sends already-built envelopes and returns the raw replies in arrival order (for tests and
  /// the conformance runner). Over HTTP one request per envelope on a pooled connection.
  result<std::vector<wire_reply>> exchange(const peer_url& peer, const std::vector<std::string>& envelopes);

  engine& protocol() noexcept { return *engine_; }
  std::size_t pooled_connections() const;

 private:
  struct http_conn;
  struct ws_conn;
  result<wire_reply> post(const peer_url& peer, const std::string& target, const std::string* body);
  std::unique_ptr<http_conn> acquire(const peer_url& peer);
  void release(const peer_url& peer, std::unique_ptr<http_conn> c);
  result<ws_conn*> websocket(const peer_url& peer);
  result<std::vector<accepted_reply>> accept(const wire_reply& r);
  void poll();

  boost::asio::io_context ioc_;
  identity self_;
  trust_store trust_{trust_policy::tofu};
  registry no_handlers_;
  client_options copt_;
  std::unique_ptr<engine> engine_;
  std::map<std::string, std::vector<std::unique_ptr<http_conn>>> idle_;
  std::map<std::string, std::unique_ptr<ws_conn>> ws_;
};

}  // namespace peerproto::node
