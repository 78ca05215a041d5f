// A node's address as a URL, for the two transports of SPEC §16: http://host:port (POST /message)
// or ws://host:port/path (WebSocket). The reference node's client and the conformance runner read
// their --to and --target with it.
#pragma once

#include <peerproto/error.hpp>

#include <string>
#include <string_view>

namespace peerproto {

struct peer_url {
  std::string host, port;
  bool websocket = false;
  std::string path;  ///< as given, starting with '/', or empty

  /// scheme://host:port, without the path: one key per peer and transport.
  std::string key() const { return (websocket ? "ws://" : "http://") + host + ":" + port; }
};

/// Parses http://host:port[/] or ws://host:port[/path]; INVALID_FORMAT names what is wrong. An
/// HTTP URL takes no path: the protocol's endpoints are fixed (POST /message, GET /public-key).
inline result<peer_url> parse_peer_url(std::string_view text) {
  peer_url u;
  if (text.starts_with("http://")) {
    text.remove_prefix(7);
  } else if (text.starts_with("ws://")) {
    text.remove_prefix(5);
    u.websocket = true;
  } else {
    return failure{errc::invalid_format, "a node URL starts with http:// or ws://"};
  }
  const auto slash = text.find('/');
  if (slash != std::string_view::npos) u.path = std::string(text.substr(slash));
  text = text.substr(0, slash);
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size())
    return failure{errc::invalid_format, "a node URL names host and port, as in http://127.0.0.1:8700"};
  u.host = std::string(text.substr(0, colon));
  u.port = std::string(text.substr(colon + 1));
  if (!u.websocket && !u.path.empty() && u.path != "/")
    return failure{errc::invalid_format, "give the node's base URL without a path, as in http://127.0.0.1:8700"};
  return u;
}

}  // namespace peerproto
