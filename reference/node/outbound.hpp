// The node's outbound half: it delivers the messages of the outbox (`ctl send`, task results) to
// their peers, with the node's own engine as initiator, on the node's io_context.
//
// One link per peer URL sends the messages queued for it, in outbox order, over one keep-alive
// HTTP connection (one at a time) or one WebSocket (up to W under way, SPEC SND-6: the peer's
// ws_max_in_flight and reorder_window, within --outbound-max-in-flight). A link learns the peer's key (GET /public-key, under the trust
// policy) and limits (GET /capabilities), runs a handshake when it has no ready session, reuses
// the session for later messages, and closes it when idle or at shutdown. What is done with each
// answer (retry when, give up, a new session, unconfirmed) is the library's delivery machine
// (peerproto/delivery.hpp); the link is its transport, and stores its record (the outbox entry)
// before anything it sealed leaves.
//
// A payload too large for one envelope of the peer (the max_envelope_bytes it advertises at GET
// /capabilities; SPEC §18's default when it lists none) goes as a chunked transfer (SPEC §12): one
// transfer at a time per link and one chunk at a time, each sealed, stored and sent like a
// message, the next once the peer answers ack "chunk_received". The transfer's plan and progress
// are stored, so a restart of this node resumes it.
#pragma once

#include "store.hpp"

#include <peerproto/engine.hpp>
#include <peerproto/peer_url.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace peerproto::node {

/// The form of `url` the outbox stores and links are keyed by: http[s]://host:port or
/// ws[s]://host:port/path.
inline std::string canonical_url(const peer_url& url) {
  return url.websocket ? url.key() + (url.path.empty() ? "/ws" : url.path) : url.key();
}

/// The outbound client's settings (all named, with defaults; `serve --outbox-...`).
struct outbound_options {
  outbox_bounds max_outbox;                              ///< messages and payload bytes waiting; ctl send is refused beyond
  std::size_t max_send_bytes = limits::max_transfer_bytes;  ///< the largest payload sent (CHK-9 bounds it)
  std::chrono::seconds default_expiry{24 * 3600};        ///< how long a message is retried
  delivery_options delivery;                             ///< back-off, transfer rounds (delivery.hpp)
  std::chrono::seconds timeout{30};                      ///< one exchange with a peer
  std::size_t max_in_flight = limits::ws_max_in_flight;  ///< messages under way per WebSocket link, at most (SND-6)
  std::chrono::seconds idle_close{60};                   ///< a session unused this long is closed
  std::chrono::hours retention{24 * 7};                  ///< settled messages are listed this long
  std::filesystem::path tls_ca_file;                     ///< CAs for https:// and wss:// peers; default: the system's
};

/// What the outbound client needs from the node: its engine and trust, its store, and a commit
/// that writes the engine's changes together with `extra` in one transaction (throws store_error).
struct outbound_context {
  engine& protocol;
  trust_store& trust;
  store& state;
  std::function<void(state_changes extra)> commit;
  std::shared_ptr<spdlog::logger> log;
};

class outbound {
 public:
  outbound(boost::asio::io_context& ioc, outbound_context ctx, outbound_options opt);
  ~outbound();

  /// Picks up the messages left queued by an earlier run.
  void start();
  /// A message was added to the outbox: its peer's link starts or wakes up.
  void queued(std::int64_t id, const std::string& to);
  /// Closes every session with session_close and stops; `done` runs when every link has stopped.
  void shutdown(std::function<void()> done);

  /// Gives up queued message `id` (failed, "cancelled by the operator") at its link's next step; a
  /// transmission under way finishes first, and a message it delivers stays delivered. False when
  /// `id` is not queued.
  bool cancel(std::int64_t id);

  /// Waits until outbox entry `id` is settled (or `deadline` passes, or the node stops) and returns it as stored.
  boost::asio::awaitable<std::optional<outbox_entry>> settled(std::int64_t id, std::chrono::steady_clock::time_point deadline);

  const outbound_options& options() const noexcept { return opt_; }

 private:
  class link;
  bool commit(state_changes c);  ///< false, logged, when the store failed
  void settle(const outbox_entry& e);
  void link_stopped();

  boost::asio::io_context& ioc_;
  outbound_context ctx_;
  outbound_options opt_;
  std::unique_ptr<boost::asio::ssl::context> tls_;      ///< the client side of https:// and wss://
  std::map<std::string, std::shared_ptr<link>> links_;  ///< by peer URL
  std::multimap<std::int64_t, boost::asio::steady_timer*> waiters_;
  std::set<std::int64_t> cancelled_;  ///< queued messages to give up (cancel)
  random_source rng_ = system_random();  ///< back-off jitter
  std::function<void()> on_stopped_;
  std::size_t stopped_ = 0;
  bool stopping_ = false;
};

}  // namespace peerproto::node
