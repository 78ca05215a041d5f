// The node's local application interface: a Unix socket in the state directory (mode 0600, so
// only the node's user can connect), on which `peerproto-node ctl` sends one JSON object per line
// and reads one JSON object per line back. It is not reachable from the network and does not
// change how the node treats its peers.
//
// Requests ({"op": NAME, ...}) and their answers:
//   send {to, type, payload, expires_in_s?, wait_s?}  {id, state}; with wait_s, once settled:
//                                                     {id, state, result} (outbox_entry)
//   outbox {limit?}                                   {messages: [...]}, newest first; a chunked
//                                                     transfer with its progress
//   outbox_cancel {id}                                {id, cancelled: true}: a queued message is
//                                                     given up (state failed, "cancelled")
//   inbox {after?, limit?, wait_s?}                   {messages: [...]} unacknowledged, in delivery
//                                                     order; with wait_s, waits for one when none
//   inbox_ack {through}                               {acknowledged: n}
//   task_claim {lease_s?}                             {task: {...} | null}
//   task_complete {task_id, claim, result}            {task_id, outbox_id}: task_result queued
//   task_fail {task_id, claim, error}                 {task_id, outbox_id}
//   peers {}                                          {peers: [...]}
//   pin {entity_id, public_key, url?}, unpin {entity_id}
//   sessions {}                                       {sessions: [...]}
// A bad request gets {error: "..."} and changes nothing.
#pragma once

#include "wakeup.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <filesystem>
#include <set>

namespace spdlog {
class logger;
}
namespace peerproto {
class engine;
struct engine_options;
class trust_store;
}  // namespace peerproto

namespace peerproto::node {

class server;
class store;
class outbound;

/// The parts of the node the control socket reads or changes, handed over by the server (which
/// keeps them): with the server's public operations on its own key (server.hpp), all that the
/// control socket reaches.
struct control_parts {
  boost::asio::io_context& ioc;
  const engine_options& protocol;  ///< the JSON limits, max_rotation_chain
  store& state;
  trust_store& trust;
  const engine& sessions;          ///< read only: the sessions op
  outbound& out;                   ///< the outbox's delivery: queued, cancel, settled
  spdlog::logger& log;
  const std::atomic<bool>& draining;
};

class control {
 public:
  control(server& srv, control_parts parts, std::filesystem::path socket_path);
  ~control();

  /// Binds the socket (mode 0600). Throws config_error when another node uses the state directory.
  void start();
  /// Closes the socket and every connection (shutdown).
  void stop();
  /// New inbox messages are stored: waiting `inbox` requests answer.
  void inbox_changed();

  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  using socket = boost::asio::local::stream_protocol::socket;
  boost::asio::awaitable<void> accept();
  boost::asio::awaitable<void> serve(socket s);
  boost::asio::awaitable<boost::json::object> handle(const boost::json::object& req);
  boost::asio::awaitable<boost::json::object> send(const boost::json::object& req);
  boost::asio::awaitable<boost::json::object> inbox(const boost::json::object& req);
  boost::json::object settle_task(const boost::json::object& req, bool completed);
  boost::asio::awaitable<boost::json::object> rotate(const boost::json::object& req, bool to_new_key);
  std::int64_t enqueue(const std::string& to, const std::string& type, const boost::json::object& payload,
                       std::chrono::seconds expires_in);

  server& srv_;  ///< its public operations only (config, self, own_chain, record_rotation, adopt_identity)
  control_parts node_;
  std::filesystem::path path_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::set<socket*> open_;
  wakeup inbox_changed_;  ///< an inbox op with wait_s waits here
};

}  // namespace peerproto::node
