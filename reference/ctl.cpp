// `peerproto-node ctl`: the application's side of the control socket (node/control.hpp). Each
// command sends one request line to <state-dir>/control.sock and prints the answer as JSON lines.
#include "ctl.hpp"

#include "passphrase.hpp"
#include "node/unix_path.hpp"

#include <peerproto/jcs.hpp>
#include <peerproto/key_file.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>

#include <fstream>
#include <iostream>

namespace peerproto::node {
namespace json = boost::json;
namespace asio = boost::asio;

namespace {

struct ctl_options {
  std::filesystem::path state_dir = "peerproto-state", socket;
  std::string to, type = "ping", payload = "{}", payload_file, task_id, claim, result = "{}", error, entity_id, public_key, url;
  long expires_in = 0, wait = 0, lease = 300, limit = 100;
  std::int64_t after = 0, through = 0, id = 0;
  bool follow = false;
  std::string new_key;
  secret_input passphrase;
};

/// The connection to the node's control socket.
class control_client {
 public:
  explicit control_client(const ctl_options& o) : socket_(ioc_) {
    const auto path = o.socket.empty() ? o.state_dir / "control.sock" : o.socket;
    boost::system::error_code ec;
    socket_.connect(unix_path(path).endpoint(), ec);
    if (ec) throw config_error("cannot reach the node at " + path.string() + " (" + ec.message() + "): is it running with this --state-dir?");
  }
  json::object call(const json::object& request) {
    asio::write(socket_, asio::buffer(jcs::canonicalize(request) + "\n"));
    const auto n = asio::read_until(socket_, asio::dynamic_buffer(buffer_), '\n');
    auto v = jcs::parse_strict(std::string_view(buffer_).substr(0, n - 1));
    buffer_.erase(0, n);
    if (!v || !v->is_object()) throw std::runtime_error("the node's answer is not a JSON object");
    if (const auto* e = v->as_object().if_contains("error"); e && e->is_string()) throw std::runtime_error(std::string(e->get_string()));
    return std::move(v->as_object());
  }

 private:
  asio::io_context ioc_;
  asio::local::stream_protocol::socket socket_;
  std::string buffer_;
};

json::object json_object_arg(const std::string& text, const char* name) {
  auto v = jcs::parse_strict(text, {.max_bytes = limits::max_transfer_bytes});
  if (!v) throw config_error(std::string(name) + " must be a JSON object: " + v.error().message);
  if (!v->is_object()) throw config_error(std::string(name) + " must be a JSON object");
  return std::move(v->as_object());
}

// --payload-file: a file's text, or standard input for "-" (up to the largest payload a node sends).
std::string read_payload_file(const std::string& file) {
  std::ifstream in;
  if (file != "-") {
    in.open(file, std::ios::binary);
    if (!in) throw config_error("--payload-file: cannot read " + file);
  }
  std::istream& from = file == "-" ? std::cin : in;
  std::string text;
  char buf[1 << 16];
  while (from.read(buf, sizeof buf) || from.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(from.gcount()));
    if (text.size() > limits::max_transfer_bytes)
      throw config_error("--payload-file: more than " + std::to_string(limits::max_transfer_bytes) + " bytes (SPEC CHK-9)");
  }
  return text;
}

// One JSON line, in the canonical form (numbers as ECMAScript writes them: 0.3, not 3E-1).
void print(const json::value& v) { std::cout << jcs::canonicalize(v) << std::endl; }

int print_list(const json::object& answer, const char* name) {
  for (const auto& e : answer.at(name).as_array()) print(e);
  return 0;
}

// Prints the inbox; with --follow, keeps printing what arrives (long polls of 30 s).
int inbox(const ctl_options& o) {
  control_client c(o);
  std::int64_t after = o.after;
  do {
    const auto answer = c.call({{"op", "inbox"}, {"after", after}, {"limit", o.limit}, {"wait_s", o.follow ? 30 : 0}});
    for (const auto& m : answer.at("messages").as_array()) {
      print(m);
      after = m.at("seq").as_int64();
    }
  } while (o.follow);
  return 0;
}

}  // namespace

CLI::App* add_ctl_command(CLI::App& app, std::function<int()>& run) {
  auto o = std::make_shared<ctl_options>();
  auto* ctl = app.add_subcommand("ctl", "talk to a running node through its control socket (<state-dir>/control.sock)");
  ctl->add_option("--state-dir", o->state_dir, "the node's state directory")->capture_default_str();
  ctl->require_subcommand(1);
  ctl->add_option("--socket", o->socket, "the node's control socket, when serve was given --control-socket");
  const auto call = [o](json::object request) { return control_client(*o).call(request); };

  auto* send = ctl->add_subcommand("send", "queue a message for a peer (committed before this returns); prints {id, state}");
  send->add_option("--to", o->to, "the peer: http://HOST:PORT, ws://HOST:PORT/ws, or an entity id pinned with a URL")->required();
  send->add_option("--type", o->type, "message type")->capture_default_str();
  auto* payload = send->add_option("--payload", o->payload, "payload, a JSON object")->capture_default_str();
  send->add_option("--payload-file", o->payload_file,
                   "the payload from a file (- for standard input), a JSON object; one too large for one envelope of the "
                   "peer is sent as a chunked transfer")
      ->excludes(payload);
  send->add_option("--expires-in", o->expires_in, "seconds to keep trying (default: the node's --outbox-expiry)")->check(CLI::PositiveNumber);
  send->add_option("--wait", o->wait,
                   "wait up to this many seconds for the outcome and print it; exit 0 delivered, 1 refused by the peer "
                   "(failed), 3 not delivered (expired, unconfirmed, or still queued at the end of the wait)")
      ->check(CLI::PositiveNumber);
  send->callback([o, call, &run] {
    run = [o, call] {
      json::object r{{"op", "send"}, {"to", o->to}, {"type", o->type},
                     {"payload", o->payload_file.empty() ? json_object_arg(o->payload, "--payload")
                                                         : json_object_arg(read_payload_file(o->payload_file), "--payload-file")}};
      if (o->expires_in) r["expires_in_s"] = o->expires_in;
      if (o->wait) r["wait_s"] = o->wait;
      const auto answer = call(r);
      print(answer);
      const auto& state = answer.at("state").as_string();
      if (state == "delivered" || (state == "queued" && !o->wait)) return 0;
      return state == "failed" ? 1 : 3;
    };
  });

  auto* outbox = ctl->add_subcommand("outbox", "list the latest outbox messages and their state, newest first");
  outbox->add_option("--limit", o->limit, "how many")->capture_default_str();
  auto* cancel = outbox->add_subcommand("cancel", "give up a queued message or transfer (it ends failed, \"cancelled by the operator\")");
  cancel->add_option("id", o->id, "the message's outbox id")->required()->check(CLI::PositiveNumber);
  cancel->callback([o, call, &run] {
    run = [o, call] {
      print(call({{"op", "outbox_cancel"}, {"id", o->id}}));
      return 0;
    };
  });
  outbox->callback([o, call, cancel, &run] {
    if (cancel->parsed()) return;
    run = [o, call] { return print_list(call({{"op", "outbox"}, {"limit", o->limit}}), "messages"); };
  });

  auto* in = ctl->add_subcommand("inbox", "print delivered messages not yet acknowledged, one JSON line each, in delivery order");
  in->add_option("--after", o->after, "only messages with a larger seq");
  in->add_option("--limit", o->limit, "at most this many per request")->capture_default_str();
  in->add_flag("--follow", o->follow, "keep printing messages as they arrive");
  auto* ack = in->add_subcommand("ack", "acknowledge every message up to SEQ: they are not printed again");
  ack->add_option("seq", o->through, "the seq of the last message handled")->required();
  in->callback([o, call, ack, &run] {
    if (ack->parsed())
      run = [o, call] { return print(call({{"op", "inbox_ack"}, {"through", o->through}})), 0; };
    else
      run = [o] { return inbox(*o); };
  });

  auto* tasks = ctl->add_subcommand("tasks", "take delegated tasks off the queue and report their results");
  tasks->require_subcommand(1);
  auto* claim = tasks->add_subcommand("claim", "claim the oldest waiting task; prints it (exit 3 when none waits)");
  claim->add_option("--lease", o->lease, "seconds before an unfinished claim returns the task to the queue")->capture_default_str()
      ->check(CLI::Range(1, 86400));
  claim->callback([o, call, &run] {
    run = [o, call] {
      const auto answer = call({{"op", "task_claim"}, {"lease_s", o->lease}});
      if (answer.at("task").is_null()) return std::cerr << "no task is waiting\n", 3;
      return print(answer.at("task")), 0;
    };
  });
  for (const bool completed : {true, false}) {
    auto* s = tasks->add_subcommand(completed ? "complete" : "fail",
                                    completed ? "report a claimed task's result to the peer that delegated it (task_result)"
                                              : "report that a claimed task failed to the peer that delegated it (task_result)");
    s->add_option("task_id", o->task_id, "the task")->required();
    s->add_option("--claim", o->claim, "the claim token that `tasks claim` printed")->required();
    if (completed) s->add_option("--result", o->result, "the result, a JSON object")->capture_default_str();
    else s->add_option("--error", o->error, "what went wrong (at most 512 characters)")->required();
    s->callback([o, call, completed, &run] {
      run = [o, call, completed] {
        json::object r{{"op", completed ? "task_complete" : "task_fail"}, {"task_id", o->task_id}, {"claim", o->claim}};
        if (completed) r["result"] = json_object_arg(o->result, "--result");
        else r["error"] = o->error;
        return print(call(r)), 0;
      };
    });
  }

  auto* peers = ctl->add_subcommand("peers", "the keys this node trusts and where their nodes are");
  peers->require_subcommand(1);
  peers->add_subcommand("list", "one JSON line per trusted key")->callback([call, &run] {
    run = [call] { return print_list(call({{"op", "peers"}}), "peers"); };
  });
  auto* pin = peers->add_subcommand("pin", "trust ENTITY_ID with PUBLIC_KEY (under every trust policy), optionally at URL");
  pin->add_option("entity_id", o->entity_id, "the peer's entity id")->required();
  pin->add_option("public_key", o->public_key, "its Ed25519 public key, 64 hex characters")->required();
  pin->add_option("--url", o->url, "where its node listens (for task results and ctl send --to ENTITY_ID)");
  pin->callback([o, call, &run] {
    run = [o, call] {
      json::object r{{"op", "pin"}, {"entity_id", o->entity_id}, {"public_key", o->public_key}};
      if (!o->url.empty()) r["url"] = o->url;
      return print(call(r)), 0;
    };
  });
  auto* unpin = peers->add_subcommand("unpin", "stop trusting ENTITY_ID (a key from --peers comes back at the next start)");
  unpin->add_option("entity_id", o->entity_id, "the peer's entity id")->required();
  unpin->callback([o, call, &run] { run = [o, call] { return print(call({{"op", "unpin"}, {"entity_id", o->entity_id}})), 0; }; });

  auto* key = ctl->add_subcommand("key", "rotate or revoke this node's identity key (SPEC §2.2)");
  key->require_subcommand(1);
  auto* rotate = key->add_subcommand(
      "rotate", "move this node's entity id to the key in FILE (or a pkcs11: URI): the statement is recorded, announced to every "
                "peer with a known address, and the node then signs with the new key; restart it with the new --key. Prints the "
                "statement and where it was announced");
  rotate->add_option("key", o->new_key, "the new key file (keygen --out FILE, for this entity id) or pkcs11: URI")->required();
  add_secret_options(rotate, o->passphrase, "passphrase", "the passphrase of an encrypted new key file (default: asked on the terminal)");
  auto* revoke = key->add_subcommand(
      "revoke", "revoke this node's identity key with no successor: peers that receive the statement refuse this entity id from "
                "then on, and this node cannot start with the key again");
  for (auto* c : {rotate, revoke})
    c->add_option("--wait", o->wait, "seconds to wait for the announcements before switching (default 30)")->check(CLI::NonNegativeNumber);
  rotate->callback([o, call, &run] {
    run = [o, call] {
      json::object r{{"op", "key_rotate"}, {"key", o->new_key}};
      if (key_file_encrypted(o->new_key))
        r["passphrase"] = read_secret(o->passphrase, "passphrase for " + o->new_key, "--passphrase-file or --passphrase-env");
      if (o->wait) r["wait_s"] = o->wait;
      return print(call(r)), 0;
    };
  });
  revoke->callback([o, call, &run] {
    run = [o, call] {
      json::object r{{"op", "key_revoke"}};
      if (o->wait) r["wait_s"] = o->wait;
      return print(call(r)), 0;
    };
  });

  ctl->add_subcommand("sessions", "one JSON line per session the node has, both roles")->callback([call, &run] {
    run = [call] { return print_list(call({{"op", "sessions"}}), "sessions"); };
  });
  return ctl;
}

}  // namespace peerproto::node
