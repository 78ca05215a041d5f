// peerproto-node: the reference node. `serve` runs it, `keygen` makes an identity, `ctl` talks to
// a running node (its outbox, inbox, tasks, peers and sessions), `send` talks to a node directly
// (handshake, then one message or a chunked payload) and prints the replies.
#include "ctl.hpp"
#include "node/client.hpp"
#include "node/limits.hpp"
#include "node/server.hpp"

#include <boost/asio/signal_set.hpp>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>

namespace pn = peerproto::node;

namespace {

int serve(pn::node_config cfg) {
  boost::asio::io_context ioc(1);
  pn::server srv(ioc, std::move(cfg));
  srv.start();
  // Tests and scripts read this line to learn the port when --port 0 was given.
  std::cout << "peerproto-node listening on " << srv.config().bind << ":" << srv.port() << std::endl;
  boost::asio::signal_set signals(ioc, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) srv.shutdown();
  });
  ioc.run();
  return 0;
}

int keygen(const std::string& file, const std::string& entity_id) {
  const auto id = peerproto::generate_key_file(file, entity_id);
  std::cout << "wrote " << file << " (mode 0600)\n"
            << "entity_id   " << id.entity_id << "\n"
            << "public_key  " << peerproto::hex_encode(id.key.public_key_bytes()) << "\n"
            << "fingerprint " << peerproto::fingerprint(id.key.public_key_bytes()) << "\n"
            << "peers line  " << id.entity_id << " " << peerproto::hex_encode(id.key.public_key_bytes()) << "\n";
  return 0;
}

struct send_options {
  std::string key_file = "node.key", to, type = "ping", payload = "{}";
  bool sessionless = false, v10 = false;
  std::size_t chunk_size = 0, repeat = 1;
};

int send(const send_options& o) {
  auto peer = peerproto::parse_peer_url(o.to);
  if (!peer) throw peerproto::config_error("--to: " + peer.error().message);
  if (peer->tls) throw peerproto::config_error("send speaks plain HTTP and WebSocket; for https:// and wss:// use `ctl send` on a running node");
  auto value = peerproto::jcs::parse_strict(o.payload);
  if (!value || !value->is_object()) throw peerproto::config_error("--payload must be a JSON object");
  peerproto::engine_options opt;
  if (o.v10) {
    opt.versions = {"1.0"};
    opt.suites = {};
  }
  pn::client c(peerproto::load_key_file(o.key_file), opt);
  const auto check = [](const auto& r) {
    if (!r) throw std::runtime_error(std::string(peerproto::wire_name(r.code())) + ": " + r.error().message);
  };
  auto peer_id = c.learn_identity(*peer);
  check(peer_id);
  // A handshake comes first either way: it binds our key on the peer, which sessionless messages
  // need (ID-8).
  auto s = c.handshake(*peer, *peer_id);
  check(s);
  std::optional<peerproto::uuid> session;
  if (!o.sessionless || o.chunk_size) {
    session = *s;
    std::cerr << "session " << peerproto::format_uuid(*s) << " with " << *peer_id << "\n";
  }
  for (std::size_t i = 0; i < o.repeat; ++i) {
    if (o.chunk_size) {
      auto r = c.send_chunked(*peer, *session, o.type, value->as_object(), o.chunk_size);
      check(r);
      std::cout << r->reply.msg_type << " " << boost::json::serialize(r->payload) << "\n";
      continue;
    }
    auto r = session ? c.send(*peer, *session, o.type, value->as_object())
                     : c.send_sessionless(*peer, *peer_id, o.type, value->as_object());
    check(r);
    for (const auto& a : *r) std::cout << a.reply.msg_type << " " << boost::json::serialize(a.payload) << "\n";
  }
  return 0;
}

}  // namespace

static_assert(!peerproto::crypto::unsafe_fuzzing_crypto, "the fuzzing-mode crypto stand-ins are not secure; build without PEERPROTO_FUZZING_UNSAFE_CRYPTO");

int main(int argc, char** argv) {
  CLI::App app{"peerproto-node: the reference node of the peerproto protocol (docs/SPEC.md)"};
  app.require_subcommand(1);

  pn::node_config cfg;
  auto* srv = app.add_subcommand("serve", "run the node (HTTP/1.1 and WebSocket at /ws)");
  srv->set_config("--config", "", "read these options from a TOML or INI file (keys as the long option names)");
  srv->add_option("--key", cfg.key_file, "identity key file (mode 0600)")->capture_default_str();
  srv->add_option("--trust", cfg.trust, "trust policy: pinned, tofu or open")->capture_default_str()
      ->check(CLI::IsMember({"pinned", "tofu", "open"}));
  srv->add_option("--peers", cfg.peers_file, "peers file: one 'entity_id public_key_hex' per line");
  srv->add_option("--bind", cfg.bind, "address to listen on")->capture_default_str();
  srv->add_option("--port", cfg.port, "port to listen on (0: any free port)")->capture_default_str();
  srv->add_option("--tls-cert", cfg.tls_cert, "PEM certificate chain: with --tls-key, the node speaks only TLS (https://, wss://)");
  srv->add_option("--tls-key", cfg.tls_key, "PEM private key of --tls-cert");
  srv->add_option("--tls-ca-file", cfg.outbound.tls_ca_file, "PEM CA certificates for https:// and wss:// peers (default: the system's)");
  srv->add_option("--state-dir", cfg.state_dir, "directory of the SQLite state and the audit log")->capture_default_str();
  srv->add_option("--audit-log", cfg.audit_log, "audit log file (JSON lines); default <state-dir>/audit.jsonl");
  srv->add_option("--control-socket", cfg.control_socket, "the Unix socket of `ctl` (mode 0600); default <state-dir>/control.sock");
  srv->add_option("--audit-max-bytes", cfg.audit_max_bytes, "the audit log rotates at this size")->capture_default_str()->check(CLI::Range(std::size_t{4096}, std::size_t{1} << 40));
  srv->add_option("--audit-files", cfg.audit_files, "rotated audit files kept beside the current one")->capture_default_str()->check(CLI::Range(std::size_t{1}, std::size_t{1000}));
  srv->add_flag("--require-encryption", cfg.require_encryption, "accept only encrypted (1.1) sessions");
  srv->add_option("--rate-multiplier", cfg.rate_multiplier, "multiply every rate-limit bucket (load tests)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  srv->add_option("--max-task-queue", cfg.max_task_queue, "queued tasks before task_delegate is RATE_LIMITED")->capture_default_str();
  srv->add_option("--max-inbox", cfg.max_inbox, "unacknowledged inbox messages before deliveries are RATE_LIMITED")
      ->capture_default_str()->check(CLI::PositiveNumber);
  srv->add_option("--max-outbox", cfg.outbound.max_outbox, "messages waiting in the outbox before ctl send is refused")
      ->capture_default_str()->check(CLI::PositiveNumber);
  srv->add_option("--max-header-bytes", cfg.max_header_bytes, "HTTP header limit (431 beyond)")->capture_default_str();
  srv->add_option("--max-body-bytes", cfg.max_body_bytes, "envelope limit for HTTP bodies and WebSocket messages")->capture_default_str();
  srv->add_option("--max-connections", cfg.max_connections, "open connections in total")->capture_default_str();
  srv->add_option("--max-connections-per-address", cfg.max_connections_per_address, "open connections per remote address")->capture_default_str();
  srv->add_option("--ws-max-in-flight", cfg.ws_max_in_flight, "WebSocket requests in flight per connection")->capture_default_str();
  const auto seconds = [](CLI::App* a, const char* name, std::chrono::seconds& v, const char* help) {
    a->add_option_function<long>(name, [&v](long s) { v = std::chrono::seconds(s); }, help)
        ->default_str(std::to_string(v.count()))->check(CLI::PositiveNumber);
  };
  seconds(srv, "--read-timeout", cfg.read_timeout, "seconds a client has to send a whole request");
  seconds(srv, "--idle-timeout", cfg.idle_timeout, "seconds an idle connection is kept open");
  seconds(srv, "--drain-timeout", cfg.drain_timeout, "seconds SIGTERM waits for in-flight work");
  seconds(srv, "--linger-timeout", cfg.linger_timeout, "seconds a refused client's remaining input is read and discarded before closing");
  seconds(srv, "--outbox-expiry", cfg.outbound.default_expiry, "seconds an outbox message is retried unless ctl send says otherwise");
  seconds(srv, "--outbound-timeout", cfg.outbound.timeout, "seconds one outbound request waits for its answer");
  seconds(srv, "--outbound-idle-close", cfg.outbound.idle_close, "seconds an unused outbound session stays open");
  const auto millis = [](CLI::App* a, const char* name, std::chrono::milliseconds& v, const char* help) {
    a->add_option_function<long>(name, [&v](long s) { v = std::chrono::milliseconds(s); }, help)
        ->default_str(std::to_string(v.count()))->check(CLI::PositiveNumber);
  };
  millis(srv, "--outbound-retry-initial-ms", cfg.outbound.retry_initial, "first outbound back-off; it doubles per failure");
  millis(srv, "--outbound-retry-max-ms", cfg.outbound.retry_max, "longest outbound back-off");
  std::vector<std::string> limit_args;
  srv->add_option("--limit", limit_args,
                  "NAME=VALUE: set a limit of docs/SPEC.md §18 by its name and unit (as GET /capabilities lists them), "
                  "e.g. --limit session_idle_ttl_ms=3000; repeatable");

  std::string keygen_file = "node.key", keygen_id;
  auto* kg = app.add_subcommand("keygen", "create an identity key file (mode 0600; never overwrites)");
  kg->add_option("--out", keygen_file, "key file to create")->capture_default_str();
  kg->add_option("--entity-id", keygen_id, "this node's entity id (1-128 of A-Z a-z 0-9 . _ : @ -)")->required();

  send_options so;
  auto* snd = app.add_subcommand("send", "handshake with a node and send it a message; prints the replies");
  snd->add_option("--key", so.key_file, "identity key file")->capture_default_str();
  snd->add_option("--to", so.to, "the node: http://HOST:PORT or ws://HOST:PORT/ws")->required();
  snd->add_option("--type", so.type, "message type")->capture_default_str();
  snd->add_option("--payload", so.payload, "payload, a JSON object")->capture_default_str();
  snd->add_option("--chunk-size", so.chunk_size, "send the payload in chunks of this many bytes");
  snd->add_option("--repeat", so.repeat, "send the message this many times")->capture_default_str();
  snd->add_flag("--sessionless", so.sessionless, "send signed outside a session (after a handshake binds the key)");
  snd->add_flag("--v10", so.v10, "offer only protocol 1.0 (signed plaintext sessions)");

  std::function<int()> ctl_run;
  pn::add_ctl_command(app, ctl_run);

  CLI11_PARSE(app, argc, argv);
  try {
    if (ctl_run) return ctl_run();
    if (srv->parsed()) {
      for (const auto& a : limit_args) pn::set_limit(cfg, a);
      return serve(std::move(cfg));
    }
    if (kg->parsed()) return keygen(keygen_file, keygen_id);
    return send(so);
  } catch (const std::exception& e) {
    std::cerr << "peerproto-node: " << e.what() << "\n";
    return 2;
  }
}
