// A node's address as a URL, for the two transports of SPEC §16: http://host:port (POST /message)
// or ws://host:port/path (WebSocket), and the same over TLS: https://, wss://. The reference
// node's clients and the conformance runner read their --to and --target with it.
#pragma once

#include <peerproto/error.hpp>

#include <algorithm>
#include <iterator>
#include <string>
#include <string_view>

namespace peerproto {

struct peer_url {
  std::string host, port;
  bool websocket = false;
  bool tls = false;  ///< https:// or wss://
  std::string path;  ///< as given, starting with '/', or empty

  std::string scheme() const { return websocket ? (tls ? "wss" : "ws") : (tls ? "https" : "http"); }
  /// scheme://host:port, without the path: one key per peer and transport.
  std::string key() const { return scheme() + "://" + host + ":" + port; }
};

/// Parses http[s]://host:port[/] or ws[s]://host:port[/path]; INVALID_FORMAT names what is wrong.
/// An HTTP URL takes no path: the protocol's endpoints are fixed (POST /message, GET /public-key).
inline result<peer_url> parse_peer_url(std::string_view text) {
  struct form {
    std::string_view prefix;
    bool websocket, tls;
  };
  static constexpr form forms[] = {{"http://", false, false}, {"https://", false, true}, {"ws://", true, false}, {"wss://", true, true}};
  const auto* f = std::find_if(std::begin(forms), std::end(forms), [&](const form& x) { return text.starts_with(x.prefix); });
  if (f == std::end(forms)) return failure{errc::invalid_format, "a node URL starts with http://, https://, ws:// or wss://"};
  text.remove_prefix(f->prefix.size());
  peer_url u;
  u.websocket = f->websocket;
  u.tls = f->tls;
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
