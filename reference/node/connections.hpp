// Serving one accepted connection (connections.cpp).
#pragma once

#include "server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <string>

namespace peerproto::node {

/// Serves an accepted socket from `address`: HTTP/1.1, over TLS when `tls` is given, upgraded to
/// a WebSocket on GET /ws. The connection is registered with srv.opened() before it reads, and
/// runs on the socket's executor.
void serve(server& srv, boost::asio::ip::tcp::socket socket, std::string address, boost::asio::ssl::context* tls);

}  // namespace peerproto::node
