// peerproto-node: the reference node. `serve` runs it, `keygen` makes an identity, `ctl` talks to
// a running node (its outbox, inbox, tasks, peers and sessions), `send` talks to a node directly
// (handshake, then one message or a chunked payload) and prints the replies.
#include "ctl.hpp"
#include "passphrase.hpp"
#include "node/client.hpp"
#include "node/limits.hpp"
#include "node/pkcs11.hpp"
#include "node/server.hpp"

#include <peerproto/fault.hpp>
#include <peerproto/key_derivation.hpp>

#include <boost/asio/signal_set.hpp>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <algorithm>
#include <iostream>
#include <thread>

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

struct keygen_options {
  std::string file = "node.key", entity_id, pkcs11;
  bool encrypt = false, mnemonic = false, from_mnemonic = false;
  pn::secret_input passphrase, phrase, phrase_passphrase;
};

void print_identity(const std::string& file, const peerproto::identity& id, bool encrypted) {
  std::cout << "wrote " << file << " (mode 0600" << (encrypted ? ", encrypted: scrypt and AES-256-GCM" : "") << ")\n"
            << "entity_id   " << id.entity_id << "\n"
            << "public_key  " << peerproto::hex_encode(id.key.public_key_bytes()) << "\n"
            << "fingerprint " << peerproto::fingerprint(id.key.public_key_bytes()) << "\n"
            << "peers line  " << id.entity_id << " " << peerproto::hex_encode(id.key.public_key_bytes()) << "\n";
}

// ID-11: the identity of a recovery phrase: its BIP39 seed, then SLIP-0010 on the identity path.
peerproto::crypto::ed25519_keypair key_from_phrase(const std::string& phrase, const std::string& passphrase) {
  if (!std::all_of(passphrase.begin(), passphrase.end(), [](char c) { return c >= 0x20 && c < 0x7f; }))
    throw peerproto::config_error("the phrase's passphrase must be printable ASCII (SPEC ID-11)");
  const auto seed = peerproto::bip39::seed_from_mnemonic(phrase, passphrase);
  auto node = peerproto::slip10::derive_ed25519(seed.view(), peerproto::identity_path);
  if (!node) throw peerproto::config_error(node.error().message);
  return peerproto::crypto::ed25519_keypair(node->key.view());
}

int keygen(const keygen_options& o) {
  if (!peerproto::is_entity_id(o.entity_id))
    throw peerproto::config_error("'" + o.entity_id + "' is not an entity id (1-128 characters of A-Z a-z 0-9 . _ : @ -)");
  if (!o.pkcs11.empty()) {
    if (o.encrypt || o.mnemonic || o.from_mnemonic) throw peerproto::config_error("--pkcs11 makes the key in the token; --encrypt and the phrase options do not apply");
    const peerproto::identity id{o.entity_id, pn::pkcs11::generate_key(pn::pkcs11::parse_uri(o.pkcs11))};
    std::cout << "generated in the token (the private key never leaves it)\n"
              << "entity_id   " << id.entity_id << "\n"
              << "public_key  " << peerproto::hex_encode(id.key.public_key_bytes()) << "\n"
              << "fingerprint " << peerproto::fingerprint(id.key.public_key_bytes()) << "\n"
              << "serve with  peerproto-node serve --key '" << o.pkcs11 << "' --entity-id " << id.entity_id << "\n";
    return 0;
  }
  if (std::filesystem::exists(o.file)) throw peerproto::config_error(o.file + " exists; a key file is never overwritten");
  if (!o.encrypt && pn::given(o.passphrase)) throw peerproto::config_error("--passphrase-file and --passphrase-env go with --encrypt");
  std::optional<std::string> passphrase;
  if (o.encrypt)
    passphrase = pn::read_secret(o.passphrase, "passphrase for " + o.file, "--passphrase-file or --passphrase-env", true);
  std::string phrase;
  if (o.mnemonic) {
    std::array<std::uint8_t, 32> entropy{};
    peerproto::crypto::random_bytes(entropy);
    phrase = peerproto::bip39::mnemonic_from_entropy(entropy);
    peerproto::crypto::wipe(entropy);
  } else if (o.from_mnemonic) {
    phrase = pn::read_secret(o.phrase, "recovery phrase", "--phrase-file or --phrase-env");
    auto entropy = peerproto::bip39::entropy_from_mnemonic(phrase);
    if (!entropy) throw peerproto::config_error("the recovery phrase: " + entropy.error().message);
    // ID-11 derives from the words joined by single spaces, however they were typed.
    peerproto::crypto::wipe(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(phrase.data()), phrase.size()));
    phrase = peerproto::bip39::mnemonic_from_entropy(*entropy);
    peerproto::crypto::wipe(*entropy);
  }
  std::optional<peerproto::identity> id;
  if (o.mnemonic || o.from_mnemonic) {
    auto phrase_passphrase = pn::given(o.phrase_passphrase) ? pn::read_secret(o.phrase_passphrase, "", "") : std::string();
    id.emplace(peerproto::identity{o.entity_id, key_from_phrase(phrase, phrase_passphrase)});
    peerproto::crypto::wipe(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(phrase_passphrase.data()), phrase_passphrase.size()));
    peerproto::write_key_file(o.file, *id, passphrase);
  } else {
    id.emplace(peerproto::generate_key_file(o.file, o.entity_id, passphrase));
  }
  print_identity(o.file, *id, o.encrypt);
  if (o.mnemonic)
    std::cout << "\nrecovery phrase (write it down now; it is not stored and is shown only this once):\n  " << phrase
              << "\nrestore with: peerproto-node keygen --from-mnemonic --entity-id " << o.entity_id << "\n";
  peerproto::crypto::wipe(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(phrase.data()), phrase.size()));
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
#ifdef PEERPROTO_FAULT_INJECTION
  // The test node: the one fault it runs with (include/peerproto/fault.hpp), set before any thread.
  if (const char* f = std::getenv("PEERPROTO_FAULT"); f && *f && !peerproto::fault::enable(f)) {
    std::cerr << "peerproto-node: PEERPROTO_FAULT=" << f << " is no fault of include/peerproto/fault.hpp\n";
    return 2;
  }
#endif
  CLI::App app{"peerproto-node: the reference node of the peerproto protocol (docs/SPEC.md)"};
  app.require_subcommand(1);

  pn::node_config cfg;
  auto* srv = app.add_subcommand("serve", "run the node (HTTP/1.1 and WebSocket at /ws)");
  srv->set_config("--config", "", "read these options from a TOML or INI file (keys as the long option names)");
  srv->add_option("--key", cfg.key_file, "identity key file (mode 0600), or a key in a PKCS#11 token: "
                                         "pkcs11:token=T;object=LABEL?module-path=M&pin-source=file:P (RFC 7512)")->capture_default_str();
  srv->add_option("--entity-id", cfg.entity_id, "this node's entity id, with a pkcs11: --key");
  pn::secret_input serve_passphrase;
  pn::add_secret_options(srv, serve_passphrase, "passphrase", "the passphrase of an encrypted --key (default: asked on the terminal)");
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
  srv->add_option("--max-outbox", cfg.outbound.max_outbox.messages, "messages waiting in the outbox before ctl send is refused")
      ->capture_default_str()->check(CLI::PositiveNumber);
  srv->add_option("--max-outbox-bytes", cfg.outbound.max_outbox.bytes, "payload bytes waiting in the outbox before ctl send is refused")
      ->capture_default_str()->check(CLI::PositiveNumber);
  srv->add_option("--max-send-bytes", cfg.outbound.max_send_bytes,
                  "the largest payload ctl send takes; one too large for one envelope of its peer goes in chunks (SPEC §12)")
      ->capture_default_str()->check(CLI::Range(std::size_t{1}, peerproto::limits::max_transfer_bytes));
  srv->add_option("--max-header-bytes", cfg.max_header_bytes, "HTTP header limit (431 beyond)")->capture_default_str();
  srv->add_option("--max-body-bytes", cfg.max_body_bytes, "envelope limit for HTTP bodies and WebSocket messages")->capture_default_str();
  srv->add_option("--max-connections", cfg.max_connections, "open connections in total")->capture_default_str();
  srv->add_option("--max-connections-per-address", cfg.max_connections_per_address, "open connections per remote address")->capture_default_str();
  srv->add_option("--ws-max-in-flight", cfg.ws_max_in_flight, "WebSocket requests in flight per connection")->capture_default_str();
  cfg.threads = std::clamp(std::thread::hardware_concurrency(), 1u, 64u);
  srv->add_option("--threads", cfg.threads,
                  "threads in all: one runs the engine, its store and timers; the others run connections (HTTP, WebSocket, TLS) "
                  "and check signatures; 1 runs everything on one thread; default: the number of cores")
      ->capture_default_str()->check(CLI::Range(1u, 64u));
  const auto seconds = [](CLI::App* a, const char* name, std::chrono::seconds& v, const char* help) {
    a->add_option_function<long>(name, [&v](long s) { v = std::chrono::seconds(s); }, help)
        ->default_str(std::to_string(v.count()))->check(CLI::PositiveNumber);
  };
  seconds(srv, "--read-timeout", cfg.read_timeout, "seconds a client has to send a whole request");
  seconds(srv, "--idle-timeout", cfg.idle_timeout, "seconds an idle connection is kept open");
  seconds(srv, "--drain-timeout", cfg.drain_timeout, "seconds SIGTERM waits for in-flight work");
  seconds(srv, "--linger-timeout", cfg.linger_timeout, "seconds a refused client's remaining input is read and discarded before closing");
  seconds(srv, "--outbox-expiry", cfg.outbound.default_expiry, "seconds an outbox message is retried unless ctl send says otherwise");
  srv->add_option("--outbound-max-in-flight", cfg.outbound.max_in_flight,
                  "messages under way at once per WebSocket peer, at most (fewer when the peer advertises less: SPEC SND-6); "
                  "over HTTP, one")
      ->capture_default_str()->check(CLI::Range(std::size_t{1}, std::size_t{4096}));
  seconds(srv, "--outbound-timeout", cfg.outbound.timeout, "seconds one outbound request waits for its answer");
  seconds(srv, "--outbound-idle-close", cfg.outbound.idle_close, "seconds an unused outbound session stays open");
  const auto millis = [](CLI::App* a, const char* name, std::chrono::milliseconds& v, const char* help) {
    a->add_option_function<long>(name, [&v](long s) { v = std::chrono::milliseconds(s); }, help)
        ->default_str(std::to_string(v.count()))->check(CLI::PositiveNumber);
  };
  millis(srv, "--outbound-retry-initial-ms", cfg.outbound.delivery.retry_initial, "first outbound back-off; it doubles per failure");
  millis(srv, "--outbound-retry-max-ms", cfg.outbound.delivery.retry_max, "longest outbound back-off");
  std::vector<std::string> limit_args;
  srv->add_option("--limit", limit_args,
                  "NAME=VALUE: set a limit of docs/SPEC.md §18 by its name and unit (as GET /capabilities lists them), "
                  "e.g. --limit session_idle_ttl_ms=3000; repeatable");

  keygen_options ko;
  auto* kg = app.add_subcommand("keygen", "create an identity key file (mode 0600; never overwrites)");
  kg->add_option("--out", ko.file, "key file to create")->capture_default_str();
  kg->add_option("--entity-id", ko.entity_id, "this node's entity id (1-128 of A-Z a-z 0-9 . _ : @ -)")->required();
  kg->add_flag("--encrypt", ko.encrypt, "encrypt the key file under a passphrase (scrypt, AES-256-GCM; SPEC ID-12)");
  pn::add_secret_options(kg, ko.passphrase, "passphrase", "the passphrase of --encrypt (default: asked twice on the terminal)");
  auto* mn = kg->add_flag("--mnemonic", ko.mnemonic, "derive the key from a new 24-word recovery phrase (BIP39, SLIP-0010; SPEC ID-11), printed once");
  auto* fm = kg->add_flag("--from-mnemonic", ko.from_mnemonic, "restore the key of a recovery phrase (asked on the terminal, or --phrase-file/--phrase-env)");
  mn->excludes(fm);
  kg->add_option("--pkcs11", ko.pkcs11, "generate the key in a PKCS#11 token instead of a file: an RFC 7512 URI "
                                        "pkcs11:token=T;object=LABEL?module-path=M&pin-source=file:P");
  pn::add_secret_options(kg, ko.phrase, "phrase", "the recovery phrase of --from-mnemonic");
  pn::add_secret_options(kg, ko.phrase_passphrase, "phrase-passphrase", "the optional passphrase of the recovery phrase (BIP39's, printable ASCII)");

  pn::secret_input old_passphrase, new_passphrase;
  std::string key_file = "node.key";
  bool decrypt = false;
  auto* key_cmd = app.add_subcommand("key", "manage a key file");
  key_cmd->require_subcommand(1);
  auto* change = key_cmd->add_subcommand("change-passphrase", "encrypt a key file under a new passphrase (or, with --decrypt, remove it)");
  change->add_option("--key", key_file, "the key file")->capture_default_str();
  pn::add_secret_options(change, old_passphrase, "passphrase", "its current passphrase, when it is encrypted");
  pn::add_secret_options(change, new_passphrase, "new-passphrase", "the new passphrase (default: asked twice on the terminal)");
  change->add_flag("--decrypt", decrypt, "write the key unencrypted");

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
      cfg.key_passphrase = [&serve_passphrase, file = cfg.key_file.string()] {
        return pn::read_secret(serve_passphrase, "passphrase for " + file, "--passphrase-file or --passphrase-env");
      };
      return serve(std::move(cfg));
    }
    if (kg->parsed()) return keygen(ko);
    if (change->parsed()) {
      if (decrypt && pn::given(new_passphrase)) throw peerproto::config_error("--decrypt takes no new passphrase");
      const auto id = peerproto::change_key_passphrase(
          key_file, [&] { return pn::read_secret(old_passphrase, "current passphrase for " + key_file, "--passphrase-file or --passphrase-env"); },
          decrypt ? std::nullopt
                  : std::optional(pn::read_secret(new_passphrase, "new passphrase for " + key_file, "--new-passphrase-file or --new-passphrase-env", true)));
      std::cout << "rewrote " << key_file << (decrypt ? " unencrypted" : " under the new passphrase") << " (" << id.entity_id << ", fingerprint "
                << peerproto::fingerprint(id.key.public_key_bytes()) << ")\n";
      return 0;
    }
    return send(so);
  } catch (const std::exception& e) {
    std::cerr << "peerproto-node: " << e.what() << "\n";
    return 2;
  }
}
