#include "server.hpp"

#include "connections.hpp"
#include "limits.hpp"
#include "pkcs11.hpp"

#include <peerproto/fault.hpp>

#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>

#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

namespace peerproto::node {
namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

engine_options node_config::engine(const std::string& self_id) const {
  engine_options o = protocol;
  o.self_id = self_id;
  o.require_encryption = require_encryption;
  if (require_encryption) o.versions = {std::string(version_1_1)};  // VER-2: 1.0 only without the requirement
  o.json.max_bytes = max_body_bytes;
  o.replay.journal = true;  // every accepted nonce is persisted before the reply (RPL-6)
  for (auto* b : {&o.rate.pre_auth, &o.rate.handshake, &o.rate.heartbeat, &o.rate.task, &o.rate.discovery,
                  &o.rate.chunk, &o.rate.other}) {
    b->per_minute *= rate_multiplier;
    b->burst *= rate_multiplier;
  }
  return o;
}

identity load_identity(const node_config& cfg) {
  const auto key = cfg.key_file.string();
  if (!pkcs11::is_uri(key)) {
    if (!cfg.entity_id.empty()) throw config_error("--entity-id goes with a pkcs11: --key; a key file carries its entity id");
    return load_key_file(cfg.key_file, cfg.key_passphrase);
  }
  if (!is_entity_id(cfg.entity_id)) throw config_error("a pkcs11: --key needs --entity-id, this node's entity id");
  return identity{cfg.entity_id, pkcs11::open_key(pkcs11::parse_uri(key))};
}

namespace {
std::string address_of(const tcp::socket& s) {
  boost::system::error_code ec;
  const auto ep = s.remote_endpoint(ec);
  return ec ? std::string("unknown") : ep.address().to_string();
}
}  // namespace

// ---------------------------------------------------------------- server

namespace {
// TLS 1.2 or later (RFC 8996 retires 1.0 and 1.1), the certificate chain and key in PEM.
std::unique_ptr<asio::ssl::context> tls_context(const node_config& cfg) {
  if (cfg.tls_cert.empty() || cfg.tls_key.empty()) throw config_error("--tls-cert and --tls-key are given together");
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                   asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(cfg.tls_cert.string(), ec);
  if (ec) throw config_error("--tls-cert " + cfg.tls_cert.string() + ": " + ec.message());
  refuse_if_shared(cfg.tls_key, "--tls-key");  // like the identity key (ID-11)
  ctx->use_private_key_file(cfg.tls_key.string(), asio::ssl::context::pem, ec);
  if (ec) throw config_error("--tls-key " + cfg.tls_key.string() + ": " + ec.message());
  return ctx;
}
}  // namespace

server::server(asio::io_context& ioc, node_config cfg)
    : ioc_(ioc),
      cfg_(std::move(cfg)),
      id_(std::make_unique<identity>(load_identity(cfg_))),
      trust_(parse_trust_policy(cfg_.trust), PEERPROTO_FAULT(no_pin_limit) ? SIZE_MAX : cfg_.max_pinned_keys),
      metrics_({}),
      acceptor_(ioc),
      poll_timer_(ioc),
      maintenance_timer_(ioc),
      drain_timer_(ioc) {
  log_ = spdlog::get("peerproto-node");
  if (!log_) log_ = spdlog::stderr_color_mt("peerproto-node");
  // Everything the node writes (state, audit log and its rotations) is for its owner only.
  ::umask(S_IRWXG | S_IRWXO);
  std::error_code fs_ec;
  std::filesystem::create_directories(cfg_.state_dir, fs_ec);
  if (fs_ec) throw config_error("cannot create state directory " + cfg_.state_dir.string() + ": " + fs_ec.message());
  ::chmod(cfg_.state_dir.c_str(), 0700);
  store_ = std::make_unique<store>(cfg_.state_dir / "state.sqlite3", id_->key);
  own_chain_ = store_->own_chain();
  // KR-9: a key this node rotated away from is never used again.
  if (!own_chain_.empty() && own_chain_.back().new_key != id_->key.public_key_bytes())
    throw config_error("this node's identity rotated to key " +
                       (own_chain_.back().new_key ? fingerprint(*own_chain_.back().new_key) : std::string("(revoked)")) +
                       " (rotation " + std::to_string(own_chain_.back().counter) + ", recorded in " + cfg_.state_dir.string() +
                       "); the key given has fingerprint " + fingerprint(id_->key.public_key_bytes()) + ": start with the new key");
  if (!cfg_.tls_cert.empty() || !cfg_.tls_key.empty()) tls_ = tls_context(cfg_);

  if (!cfg_.peers_file.empty())
    for (auto& [peer, key] : load_peers_file(cfg_.peers_file)) trust_.pin(peer, key);
  // Pins made with `ctl peers pin` hold under every policy; tofu and open also keep what
  // handshakes of earlier runs bound.
  std::map<std::string, crypto::public_key, std::less<>> stored;
  for (const auto& p : store_->peer_records()) {
    stored.emplace(p.entity_id, p.key);
    if (p.configured || (trust_.policy() != trust_policy::pinned && (!trust_.key_for(p.entity_id) || trust_.policy() == trust_policy::open)))
      trust_.pin(p.entity_id, p.key);
  }
  // KR-5, KR-7, KR-8: what peers' rotations left. A binding a rotation moved stands over the peers
  // file, which names an older key; a revoked entity stays blocked whatever the file says.
  for (const auto& [peer, r] : store_->peer_rotations()) {
    trust_.restore_rotation(peer, r);
    const auto it = stored.find(peer);
    if (r.revoked || it == stored.end()) {
      trust_.unpin(peer);
      continue;
    }
    if (const auto configured = trust_.key_for(peer); configured && *configured != it->second)
      log_->warn("peer {} rotated its key to {} (rotation {}); the peers file still names {}", peer, fingerprint(it->second), r.counter,
                 fingerprint(*configured));
    trust_.pin(peer, it->second);
  }
  if (trust_.policy() == trust_policy::open)  // ID-7
    log_->warn("trust policy is OPEN: any key presented in a handshake is accepted and replaces the known one. "
               "Use open only for tests and demonstrations.");
  if (trust_.policy() == trust_policy::pinned && trust_.keys().empty())
    log_->warn("trust policy is pinned and no peers are configured: every peer will get UNKNOWN_SENDER (use --peers)");

  engine_opt_ = cfg_.engine(id_->entity_id);
  limits_ = advertised_limits(cfg_);
  // Faults of the fault-injection node that advertise the configured limit and apply another.
  if (PEERPROTO_FAULT(wide_timestamp_tolerance)) engine_opt_.replay.tolerance *= 2;
  if (PEERPROTO_FAULT(long_handshake_timeout)) engine_opt_.handshake_timeout *= 2;
  if (PEERPROTO_FAULT(long_session_idle)) engine_opt_.session.idle_ttl *= 2;
  if (PEERPROTO_FAULT(long_session_lifetime)) engine_opt_.session.lifetime *= 2;
  if (PEERPROTO_FAULT(long_transfer_idle)) engine_opt_.chunks.idle_timeout *= 2;
  if (PEERPROTO_FAULT(window_one_short)) engine_opt_.session.ordering.window -= 1;
  if (PEERPROTO_FAULT(rotation_no_grace)) engine_opt_.rotation_grace = std::chrono::milliseconds(0);
  if (PEERPROTO_FAULT(long_rotation_grace)) engine_opt_.rotation_grace *= 2;
  if (PEERPROTO_FAULT(backoff_one_late)) engine_opt_.rate.backoff.threshold += 1;
  if (PEERPROTO_FAULT(no_address_pending_limit)) engine_opt_.max_pending_per_address = SIZE_MAX;
  if (PEERPROTO_FAULT(no_sessions_per_peer_limit)) engine_opt_.max_sessions_per_peer = SIZE_MAX;
  register_builtin_handlers(handlers_, {engine_opt_, limits_, trust_, *store_, pending_, cfg_.max_task_queue, cfg_.max_inbox});
  engine_ = std::make_unique<engine>(engine_opt_, id_->key, trust_, handlers_);
  const auto t = system_now();
  std::size_t nonces = 0, sessions = 0;
  for (const auto& n : store_->nonces(t)) {
    engine_->replay().restore(n.sender, n.nonce, n.expiry, t);
    ++nonces;
  }
  engine_->replay().restore_forgotten_through(store_->nonces_forgotten_through(), t);
  for (const auto& s : store_->sessions()) sessions += engine_->restore_session(s) ? 1 : 0;
  (void)engine_->take_changed_sessions();
  for (const auto& done : store_->completed_transfers(t)) engine_->reassembly().restore_completed(done, t);

  std::set<std::string> known(msg::core_requests.begin(), msg::core_requests.end());
  for (const auto& type : handlers_.types()) known.insert(type);
  for (const auto reply : msg::reply_types) known.insert(std::string(reply));
  metrics_ = metrics(std::move(known));

  const auto audit_file = cfg_.audit_log.empty() ? cfg_.state_dir / "audit.jsonl" : cfg_.audit_log;
  // AUD-4: bounded on disk by rotation, and a record that cannot be written is counted in
  // /metrics and logged (the first time, then every 1000th), never retried from memory.
  audit_ = std::make_shared<spdlog::logger>(
      "audit", std::make_shared<spdlog::sinks::rotating_file_sink_mt>(audit_file.string(), cfg_.audit_max_bytes, cfg_.audit_files));
  audit_->set_pattern("%v");
  audit_->flush_on(spdlog::level::info);
  audit_->set_error_handler([this](const std::string& why) {
    if (const auto failures = metrics_.audit_write_failed(); failures % 1000 == 1)
      log_->error("audit record not written ({} so far; peerproto_audit_write_failures_total): {}", failures, why);
  });
  log_->info("{} ({}) restored {} sessions, {} replay entries, {} pinned peers, {} queued tasks, {} outbox messages waiting",
             id_->entity_id, fingerprint(id_->key.public_key_bytes()), sessions, nonces, trust_.keys().size(), store_->task_count(),
             store_->outbox_waiting());
  outbound_ = std::make_unique<outbound>(
      ioc_, outbound_context{*engine_, trust_, *store_, [this](state_changes c) { commit(std::move(c)); }, log_}, cfg_.outbound);
  control_ = std::make_unique<control>(*this, control_parts{ioc_, engine_opt_, *store_, trust_, *engine_, *outbound_, *log_, draining_},
                                       cfg_.control_socket.empty() ? cfg_.state_dir / "control.sock" : cfg_.control_socket);
}

// The transport threads stop first: a connection destroyed with their io_context still finds the
// server whole (closed() runs).
server::~server() {
  if (!transport_) return;
  transport_work_.reset();
  transport_->stop();
  for (auto& t : transport_threads_) t.join();
  // After an abnormal exit, callbacks to connections may still be waiting: they go first.
  waiting_.clear();
  batch_.clear();
  transport_.reset();
}

std::vector<std::thread::native_handle_type> server::transport_threads() {
  std::vector<std::thread::native_handle_type> out;
  for (auto& t : transport_threads_) out.push_back(t.native_handle());
  return out;
}

void server::start() {
  if (cfg_.threads > 1) {
    transport_ = std::make_unique<asio::io_context>(static_cast<int>(cfg_.threads - 1));
    transport_work_.emplace(transport_->get_executor());
    for (unsigned i = 1; i < cfg_.threads; ++i) transport_threads_.emplace_back([this] { transport_->run(); });
    // Until it has drained, the core keeps running while connections live on the other threads.
    core_work_.emplace(ioc_.get_executor());
  }
  refresh_keys();
  const tcp::endpoint ep(asio::ip::make_address(cfg_.bind), cfg_.port);
  acceptor_.open(ep.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(ep);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  control_->start();
  log_->info("listening on {}://{}:{} (WebSocket at /ws), trust {}, state in {}, control socket {}", tls_ ? "https" : "http",
             cfg_.bind, port(), cfg_.trust, cfg_.state_dir.string(), control_->path().string());
  accept();
  outbound_->start();
  maintenance();
  rearm();
}

std::uint16_t server::port() const { return acceptor_.local_endpoint().port(); }

void server::accept() {
  // A connection's socket, and so its handlers, live on a strand of the transport threads.
  const asio::any_io_executor ex = transport_ ? asio::any_io_executor(asio::make_strand(*transport_)) : ioc_.get_executor();
  acceptor_.async_accept(ex, [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      std::string address = address_of(socket);
      if (!admit(address)) {
        metrics_.connection_refused();  // the socket closes as it goes out of scope
      } else {
        serve(*this, std::move(socket), std::move(address), tls_.get());
      }
    }
    accept();
  });
}

bool server::admit(const std::string& address) {
  const std::lock_guard lock(connections_mutex_);
  if (draining_ || connections_.size() >= cfg_.max_connections) return false;
  auto& n = per_address_[address];
  if (n >= cfg_.max_connections_per_address) {
    if (n == 0) per_address_.erase(address);
    return false;
  }
  ++n;
  return true;
}

void server::opened(const std::shared_ptr<connection>& c) {
  const std::lock_guard lock(connections_mutex_);
  connections_.emplace(c.get(), c);
}

void server::handed_over(connection* c) {
  const std::lock_guard lock(connections_mutex_);
  connections_.erase(c);
}

void server::closed(connection* c, const std::string& address) {
  {
    const std::lock_guard lock(connections_mutex_);
    connections_.erase(c);
    if (const auto it = per_address_.find(address); it != per_address_.end() && --it->second == 0) per_address_.erase(it);
  }
  on_core([this] { finish_if_drained(); });
}

std::size_t server::connection_count() {
  const std::lock_guard lock(connections_mutex_);
  return connections_.size();
}

void server::each_connection(void (connection::*f)()) {
  std::vector<std::weak_ptr<connection>> all;
  {
    const std::lock_guard lock(connections_mutex_);
    for (const auto& [raw, weak] : connections_) all.push_back(weak);
  }
  for (const auto& weak : all)
    if (const auto c = weak.lock()) ((*c).*f)();
}

void server::shutdown() {
  if (draining_) return;
  draining_ = true;
  log_->info("draining: no new connections; finishing {} connections", connection_count());
  beast::error_code ec;
  acceptor_.close(ec);
  maintenance_timer_.cancel();
  control_->stop();
  // Armed before anything can finish the drain: finish_if_drained() cancels it, and the outbound
  // client may report it has stopped before shutdown() returns (no links open). A timer armed
  // after that would keep an idle node alive for the whole drain timeout.
  drain_timer_.expires_after(cfg_.drain_timeout);
  drain_timer_.async_wait([this](beast::error_code e) {
    if (e) return;
    log_->warn("drain timeout: closing {} connections", connection_count());
    each_connection(&connection::abort);
  });
  outbound_->shutdown([this] {
    outbound_stopped_ = true;
    finish_if_drained();
  });
  each_connection(&connection::drain);
  finish_if_drained();
}

void server::finish_if_drained() {
  if (!draining_ || drained_ || connection_count() > 0 || !waiting_.empty() || !outbound_stopped_) return;
  drained_ = true;
  poll_timer_.cancel();
  drain_timer_.cancel();
  core_work_.reset();
  log_->info("drained; state is stored; exiting");
}

}  // namespace peerproto::node
