// peerproto-node's server: HTTP/1.1 keep-alive and WebSocket on Boost.Beast, every protocol
// decision made by the engine. The server moves bytes, owns the timers the engine asks for,
// persists what the engine changed before it replies, and writes the audit log. Beside it on the
// same io_context run the outbound client (outbound.hpp), which uses the same engine as
// initiator, and the local control socket (control.hpp).
//
// Threads (--threads N): the engine, the store, the timers, the acceptor, the outbound client
// and the control socket all run on the core io_context, one thread, so the engine's guarantees
// (ordering per session, exactly-once delivery, no sequence number reused) need no locks. With
// N > 1, connections run on N - 1 transport threads, each connection on a strand: HTTP and
// WebSocket parsing, TLS, socket calls, and the signature check of signed requests
// (precheck()) happen there, and every call between a connection and the server is posted to the
// other side's executor. With N = 1 everything shares the core thread and no call is posted.
#pragma once

#include "config.hpp"
#include "control.hpp"
#include "handlers.hpp"
#include "outbound.hpp"
#include "peers.hpp"
#include "metrics.hpp"
#include "store.hpp"

#include <peerproto/engine.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <string>
#include <unordered_map>

namespace spdlog {
class logger;
}

namespace peerproto::node {

/// A client connection, as the server sees it (for limits and for draining on shutdown).
class connection {
 public:
  virtual ~connection() = default;
  /// Shutdown has begun: finish the request in progress, then close; close at once when idle.
  /// Called from the core thread: the connection posts it to its own executor.
  virtual void drain() = 0;
  /// The drain timeout passed: close now. Posted the same way.
  virtual void abort() = 0;
};

/// The identity of `cfg`: a key file (plain or encrypted), or a key in a PKCS#11 token named by a
/// pkcs11: URI, whose entity id comes from cfg.entity_id (a token holds keys, not entity ids).
identity load_identity(const node_config& cfg);

class server {
 public:
  /// Loads the identity, trust configuration and persisted state. Throws config_error or
  /// store_error with a message for the operator.
  server(boost::asio::io_context& ioc, node_config cfg);
  ~server();

  /// Binds and starts accepting. Throws boost::system::system_error when the address is taken.
  void start();
  /// The bound port (useful with port 0).
  std::uint16_t port() const;
  /// Graceful shutdown (SIGTERM): /ready turns 503, no new connections, in-flight requests finish,
  /// then every connection closes; after drain_timeout the rest are cut. io_context::run() returns
  /// when all is done.
  void shutdown();

  const node_config& config() const noexcept { return cfg_; }
  const identity& self() const noexcept { return *id_; }

  /// KR-10: this node's next rotation statement, to `next` (nullptr: a revocation), signed by the
  /// current key and `next`. Recorded, with every stored session key wrapped for `next`, before
  /// it returns; the engine keeps signing with the current key (to announce the statement) until
  /// adopt_identity(). Throws config_error or store_error, changing nothing.
  key_rotation record_rotation(const identity* next);
  /// KR-9: signs with `next` from now on; sessions continue (1.0 sessions, signed by the identity
  /// keys of their handshake, end).
  void adopt_identity(std::unique_ptr<identity> next);
  /// This node's rotation statements (GET /key-rotation).
  const std::vector<key_rotation>& own_chain() const noexcept { return own_chain_; }
  bool draining() const noexcept { return draining_; }

  /// The transport threads' handles (for measuring their CPU time); empty with one thread.
  std::vector<std::thread::native_handle_type> transport_threads();

  // ---- used by the connections, from their executor `ex`; every callback is called on `ex`
  using reply_fn = std::function<void(const outcome&)>;
  /// Runs one inbound envelope through the engine. `done` is called once with the outcome: soon,
  /// or later for a message held in the ordering window (ORD-8, ORD-6). `trace_id` (the request's
  /// traceparent trace id, or a new one) goes into its audit records and inbox entries.
  void submit(const boost::asio::any_io_executor& ex, std::string text, std::string remote, reply_fn done,
              std::string trace_id = {});
  /// An error envelope for a request refused by the transport (see engine::refuse).
  void refuse(const boost::asio::any_io_executor& ex, failure f, std::string text, std::string remote, reply_fn done,
              std::optional<std::chrono::seconds> retry_after = std::nullopt);
  /// The body and content type of a GET endpoint; nullopt for an unknown path.
  struct resource {
    int status;
    std::string content_type;
    std::string body;
  };
  void get(const boost::asio::any_io_executor& ex, std::string path, std::function<void(std::optional<resource>)> done);

  /// A new connection (after admit()); the server keeps a weak reference for draining.
  void opened(const std::shared_ptr<connection>& c);
  /// An HTTP connection became a WebSocket connection, which keeps its address count.
  void handed_over(connection* c);
  /// From a connection's destructor, on any thread.
  void closed(connection* c, const std::string& address);

 private:
  void accept();
  /// Admission at accept time; false when a connection limit is reached.
  bool admit(const std::string& address);
  /// Runs `f` on the core thread: at once with one thread, posted otherwise.
  template <class F>
  void on_core(F&& f) {
    if (transport_) boost::asio::post(ioc_, std::forward<F>(f));
    else f();
  }
  /// A callback that runs `done` on the connection's executor `ex`.
  reply_fn back_to(const boost::asio::any_io_executor& ex, reply_fn done) const;
  /// submit() on the core thread.
  void handle(const std::string& text, const std::string& remote, reply_fn done, std::string trace_id,
              const std::optional<signature_check>& checked, std::chrono::steady_clock::time_point started);
  std::optional<resource> resource_of(std::string_view path);
  /// Checks a request's signature on a transport thread, with the copy of the trusted keys.
  std::optional<signature_check> precheck(std::string_view text);
  /// Replaces that copy when the trust store changed.
  void refresh_keys();
  std::size_t connection_count();
  void each_connection(void (connection::*f)());
  /// Adds the trust changes an outcome's audit records name (pins, rotations) to pending_.
  void note_trust_changes(const outcome& o);
  /// Commits everything pending for an outcome of a timer; on failure, it becomes INTERNAL_ERROR.
  void persist(outcome& o);
  /// Turns an outcome whose changes could not be stored into INTERNAL_ERROR (ERR-7).
  void unstored(outcome& o, std::string_view text, const std::string& remote);
  /// Writes what the engine changed and everything pending, with `extra`, in one transaction.
  /// Throws store_error.
  void commit(state_changes extra);
  /// Group commit: commits what the requests of one turn of the event loop changed, in one
  /// transaction, then sends their replies.
  void flush();
  void record(const outcome& o, std::chrono::steady_clock::time_point started);
  void route(const outcome& o);
  void rearm();
  void on_poll();
  void maintenance();
  void finish_if_drained();

  boost::asio::io_context& ioc_;
  node_config cfg_;
  std::unique_ptr<identity> id_;
  std::vector<std::unique_ptr<identity>> retired_ids_;  ///< keys rotated away (the engine signed with them)
  std::vector<key_rotation> own_chain_;                ///< this node's rotation statements (KR-10)
  trust_store trust_;
  std::unique_ptr<store> store_;
  std::unique_ptr<boost::asio::ssl::context> tls_;  ///< with --tls-cert: every connection is TLS
  engine_options engine_opt_;
  boost::json::object limits_;  ///< advertised at /capabilities and in capability_response
  registry handlers_;
  std::unique_ptr<engine> engine_;
  state_changes pending_;  ///< what the handlers added since the last commit
  std::unique_ptr<outbound> outbound_;
  std::unique_ptr<control> control_;
  bool outbound_stopped_ = false;
  metrics metrics_;
  std::shared_ptr<spdlog::logger> audit_, log_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer poll_timer_, maintenance_timer_, drain_timer_;
  std::chrono::steady_clock::time_point next_outbox_purge_{};
  std::atomic<bool> draining_ = false;
  bool drained_ = false;
  std::mutex connections_mutex_;  ///< connections open and close on the transport threads
  std::map<connection*, std::weak_ptr<connection>> connections_;
  std::map<std::string, std::size_t> per_address_;
  using key_map = std::map<std::string, crypto::public_key, std::less<>>;
  std::mutex keys_mutex_;
  std::shared_ptr<const key_map> keys_;  ///< read by the transport threads (precheck())
  std::uint64_t keys_generation_ = ~std::uint64_t{0};
  std::chrono::steady_clock::time_point next_keys_refresh_{};
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> core_work_;
  struct waiter {
    reply_fn done;
    std::chrono::steady_clock::time_point started;
  };
  std::unordered_map<std::string, waiter> waiting_;  ///< held requests by nonce
  // Requests handled since the last flush(), whose replies wait for its commit (RPL-6, SES-13).
  struct handled {
    outcome o;
    std::string text, remote;
    reply_fn done;
    std::chrono::steady_clock::time_point started;
  };
  std::vector<handled> batch_;
  bool batch_lost_ = false;  ///< a commit failed while a batch was open: its replies become INTERNAL_ERROR
  // Declared last, so that it is stopped and joined first (in ~server, before anything else goes).
  std::unique_ptr<boost::asio::io_context> transport_;  ///< connections' I/O with --threads > 1
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> transport_work_;
  std::vector<std::thread> transport_threads_;
};

}  // namespace peerproto::node
