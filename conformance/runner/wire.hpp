// The runner's side of the wire: blocking HTTP/1.1 and WebSocket connections, plain or over TLS,
// with a deadline on every operation, optionally bound to a chosen source address. Every failure is a wire_failure
// that says what happened (timeout, closed, refused), so a case can tell a node that refuses a
// connection from one that stops answering.
#pragma once

#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace peerproto::conformance {

struct endpoint {
  std::string host, port;
  std::string source;  ///< local address to bind before connecting; empty: the system's choice
  std::shared_ptr<boost::asio::ssl::context> tls;  ///< for https:// and wss://: TLS, the peer verified for `host`
};

struct wire_failure : std::runtime_error {
  enum class kind { timeout, closed, refused, io };
  wire_failure(kind k, const std::string& what, int close_code = 0) : std::runtime_error(what), what_kind(k), ws_close_code(close_code) {}
  kind what_kind;
  int ws_close_code;  ///< WebSocket close status when the peer closed with one
};

struct http_response {
  int status = 0;
  std::map<std::string, std::string> headers;  ///< names in lower case
  std::string body;
  bool keep_alive = true;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

using deadline = std::chrono::steady_clock::time_point;

/// One HTTP/1.1 connection. Requests are written and responses read separately, so a case can
/// leave a request outstanding while it uses another connection.
class http_connection {
 public:
  http_connection(const endpoint& ep, deadline until);
  ~http_connection();
  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;

  void send(const std::string& method, const std::string& target, const std::string& body, deadline until,
            const std::optional<std::string>& content_type = "application/json",
            const std::map<std::string, std::string>& extra = {});
  /// Sends a request and reads its response at the same time, as a client must when the server
  /// may answer (413, for example) and close before the whole body is written.
  http_response exchange(const std::string& method, const std::string& target, const std::string& body, deadline until,
                         const std::optional<std::string>& content_type = "application/json");
  /// Writes bytes as they are (for malformed requests).
  void write_raw(const std::string& bytes, deadline until);
  http_response receive(deadline until);
  /// Reads until the peer closes the connection: what it sent before closing (at most 64 KiB
  /// kept, the rest read and dropped), or nullopt when the connection is still open at `until`.
  std::optional<std::string> read_until_closed(deadline until);

 private:
  struct impl;
  std::unique_ptr<impl> p_;
};

/// GET `path` on a new connection (no request body, no Content-Type).
http_response http_get(const endpoint& ep, const std::string& path, deadline until);

struct ws_message {
  std::string data;
  bool binary = false;
};

/// One WebSocket connection to /ws.
class ws_connection {
 public:
  ws_connection(const endpoint& ep, const std::string& target, deadline until);
  ~ws_connection();
  ws_connection(const ws_connection&) = delete;
  ws_connection& operator=(const ws_connection&) = delete;

  void send_text(const std::string& text, deadline until);
  void send_binary(const std::string& data, deadline until);
  ws_message receive(deadline until);

 private:
  struct impl;
  std::unique_ptr<impl> p_;
};

}  // namespace peerproto::conformance
