#include "control.hpp"

#include "pkcs11.hpp"
#include "server.hpp"
#include "trace.hpp"
#include "unix_path.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <spdlog/spdlog.h>

#include <array>
#include <csignal>
#include <cstring>

#include <sys/stat.h>
#include <unistd.h>

namespace peerproto::node {
namespace asio = boost::asio;
namespace json = boost::json;
using local = asio::local::stream_protocol;
using std::chrono::seconds;

namespace {
constexpr auto use = asio::as_tuple(asio::use_awaitable);

/// A request that cannot be carried out: answered with {error} and nothing changes.
struct bad_request : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const json::value* member(const json::object& o, const char* name) { return o.if_contains(name); }

std::string string_arg(const json::object& o, const char* name) {
  const auto* v = member(o, name);
  if (!v || !v->is_string()) throw bad_request(std::string(name) + " must be a string");
  return std::string(v->get_string());
}

std::int64_t int_arg(const json::object& o, const char* name, std::int64_t fallback, std::int64_t lo, std::int64_t hi) {
  const auto* v = member(o, name);
  if (!v) return fallback;
  if (!v->is_int64() || v->get_int64() < lo || v->get_int64() > hi)
    throw bad_request(std::string(name) + " must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
  return v->get_int64();
}

const json::object& object_arg(const json::object& o, const char* name) {
  const auto* v = member(o, name);
  if (!v || !v->is_object()) throw bad_request(std::string(name) + " must be a JSON object");
  return v->get_object();
}

json::object to_json(const outbox_entry& e) {
  json::object o{{"id", e.id},
                 {"to", e.to},
                 {"type", e.msg_type},
                 {"state", to_string(e.status)},
                 {"attempts", e.attempts},
                 {"created", format_timestamp({e.created, 3})},
                 {"trace_id", e.trace}};
  if (!e.result.empty()) {
    auto r = jcs::parse_strict(e.result);
    o["result"] = r ? *r : json::value(e.result);
  }
  o["payload_bytes"] = e.payload_bytes;
  if (e.transfer_id)  // a chunked transfer: how far it got
    o["transfer"] = json::object{{"transfer_id", format_uuid(*e.transfer_id)},
                                 {"chunks_acknowledged", e.chunks_acked},
                                 {"chunks", e.chunk_total},
                                 {"rounds", e.rounds}};
  return o;
}

json::object to_json(const inbox_entry& m) {
  // A delivered payload may be a reassembled transfer, larger than one envelope (CHK-9).
  auto payload = jcs::parse_strict(m.payload, {.max_bytes = limits::max_transfer_bytes});
  return {{"seq", m.seq},
          {"sender_id", m.sender_id},
          {"type", m.msg_type},
          {"payload", payload ? *payload : json::value(m.payload)},
          {"session_id", m.session_id.empty() ? json::value(nullptr) : json::value(m.session_id)},
          {"nonce", m.nonce},
          {"received_at", m.received_at},
          {"trace_id", m.trace_id}};
}
}  // namespace

control::control(server& srv, control_parts parts, std::filesystem::path socket_path)
    : srv_(srv), node_(parts), path_(std::move(socket_path)), acceptor_(parts.ioc) {}

control::~control() = default;

void control::start() {
  const unix_path address(path_);  // any length: a long path is named through its folder
  if (std::filesystem::exists(path_)) {
    // A socket someone still answers on belongs to a running node; one nobody answers is stale.
    local::socket probe(node_.ioc);
    boost::system::error_code ec;
    probe.connect(address.endpoint(), ec);
    if (!ec) throw config_error("another node is running with the state directory " + path_.parent_path().string());
    std::filesystem::remove(path_);
  }
  acceptor_.open();
  acceptor_.bind(address.endpoint());
  ::chmod(path_.c_str(), 0600);
  acceptor_.listen();
  asio::co_spawn(node_.ioc, accept(), asio::detached);
}

void control::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  for (auto* s : open_) s->close(ec);
  inbox_changed_.notify();
  std::filesystem::remove(path_, ec);
}

void control::inbox_changed() { inbox_changed_.notify(); }

asio::awaitable<void> control::accept() {
  for (;;) {
    auto [ec, s] = co_await acceptor_.async_accept(use);
    if (ec) co_return;  // closed at shutdown
    asio::co_spawn(node_.ioc, serve(std::move(s)), asio::detached);
  }
}

// One JSON request per line, one JSON answer per line, until the client closes.
asio::awaitable<void> control::serve(socket s) {
  open_.insert(&s);
  std::string buffer;
  // A line holds at most the largest payload `send` takes, and the request around it.
  const std::size_t max_line = std::max(srv_.config().max_body_bytes, node_.out.options().max_send_bytes) + 65536;
  auto parse = node_.protocol.json;
  parse.max_bytes = max_line;
  for (;;) {
    const auto [ec, n] = co_await asio::async_read_until(s, asio::dynamic_buffer(buffer, max_line), '\n', use);
    if (ec == asio::error::not_found) {
      // Longer than any request can be: the rest of the line is read and dropped, then refused,
      // and the connection goes on with the next line.
      buffer.clear();
      std::array<char, 65536> drop;
      std::size_t got = 0;
      const char* newline = nullptr;
      boost::system::error_code rec;
      while (!rec && !newline) {
        std::tie(rec, got) = co_await s.async_read_some(asio::buffer(drop), use);
        newline = static_cast<const char*>(std::memchr(drop.data(), '\n', rec ? 0 : got));
      }
      if (rec) break;
      buffer.assign(newline + 1, static_cast<std::size_t>(drop.data() + got - (newline + 1)));
      const std::string out = jcs::canonicalize(json::object{
          {"error", "the request line exceeds " + std::to_string(max_line) + " bytes (the payload limit is --max-send-bytes)"}}) + "\n";
      const auto [wec, wn] = co_await asio::async_write(s, asio::buffer(out), use);
      if (wec) break;
      continue;
    }
    if (ec) break;  // closed
    const std::string line = buffer.substr(0, n - 1);
    buffer.erase(0, n);
    json::object answer;
    try {
      const auto req = jcs::parse_strict(line, parse);
      if (!req || !req->is_object()) throw bad_request("a request is one JSON object per line");
      answer = co_await handle(req->get_object());
    } catch (const bad_request& e) {
      answer = {{"error", e.what()}};
    } catch (const store_error& e) {
      node_.log.error("control: {}", e.what());
      answer = {{"error", std::string("the node could not use its state: ") + e.what()}};
    } catch (const std::exception& e) {  // anything else: answered, so the connection stays accounted for
      answer = {{"error", std::string("the request could not be carried out: ") + e.what()}};
    }
    const std::string out = jcs::canonicalize(answer) + "\n";
    const auto [wec, wn] = co_await asio::async_write(s, asio::buffer(out), use);
    if (wec) break;
  }
  open_.erase(&s);
}

asio::awaitable<json::object> control::handle(const json::object& req) {
  const std::string op = string_arg(req, "op");
  auto& st = node_.state;
  if (op == "send") co_return co_await send(req);
  if (op == "inbox") co_return co_await inbox(req);
  if (op == "key_rotate" || op == "key_revoke") co_return co_await rotate(req, op == "key_rotate");
  if (op == "outbox") {
    json::array list;
    for (const auto& e : st.outbox_recent(static_cast<std::size_t>(int_arg(req, "limit", 100, 1, 10000)))) list.push_back(to_json(e));
    co_return json::object{{"messages", std::move(list)}};
  }
  if (op == "outbox_cancel") {
    const auto id = int_arg(req, "id", 0, 1, INT64_MAX);
    if (!node_.out.cancel(id)) throw bad_request("outbox #" + std::to_string(id) + " is not queued (see ctl outbox)");
    co_return json::object{{"id", id}, {"cancelled", true}};
  }
  if (op == "inbox_ack") co_return json::object{{"acknowledged", st.ack_inbox(int_arg(req, "through", 0, 0, INT64_MAX))}};
  if (op == "task_claim") {
    const auto t = st.claim_task(system_now(), seconds(int_arg(req, "lease_s", 300, 1, 86400)));
    if (!t) co_return json::object{{"task", nullptr}};
    auto task = jcs::parse_strict(t->task, {.max_bytes = limits::max_transfer_bytes});  // a task may come in chunks
    co_return json::object{{"task", json::object{{"task_id", t->task_id}, {"sender_id", t->sender_id},
                                                  {"task", task ? *task : json::value(t->task)},
                                                  {"received_at", t->received_at}, {"claim", t->claim}}}};
  }
  if (op == "task_complete") co_return settle_task(req, true);
  if (op == "task_fail") co_return settle_task(req, false);
  if (op == "peers") {
    std::map<std::string, peer_record> stored;
    for (auto& p : st.peer_records()) stored.emplace(p.entity_id, std::move(p));
    std::map<std::string, rotation_record> rotated;
    for (auto& [id, r] : st.peer_rotations()) rotated.emplace(id, r);
    const auto counter = [&](const std::string& id) { return rotated.contains(id) ? rotated[id].counter : 0; };
    json::array list;
    for (const auto& [id, key] : node_.trust.keys()) {
      const auto it = stored.find(id);
      list.push_back(json::object{{"entity_id", id},
                                  {"public_key", hex_encode(key)},
                                  {"fingerprint", fingerprint(key)},
                                  {"url", it == stored.end() ? "" : it->second.url},
                                  {"source", it == stored.end() ? "peers file" : it->second.configured ? "ctl" : "handshake"},
                                  {"rotation", counter(id)}});
    }
    for (const auto& [id, r] : rotated)  // KR-7: revoked entities are listed too
      if (r.revoked) list.push_back(json::object{{"entity_id", id}, {"public_key", nullptr}, {"revoked", true}, {"rotation", r.counter}});
    co_return json::object{{"peers", std::move(list)}};
  }
  if (op == "pin") {
    peer_record p;
    p.entity_id = string_arg(req, "entity_id");
    const auto key = hex_decode_fixed<32>(string_arg(req, "public_key"));
    if (!is_entity_id(p.entity_id)) throw bad_request("entity_id is not an entity id");
    if (!key) throw bad_request("public_key must be 64 hex characters");
    p.key = *key;
    if (member(req, "url")) {
      const auto url = parse_peer_url(string_arg(req, "url"));
      if (!url) throw bad_request("url: " + url.error().message);
      p.url = canonical_url(*url);
    }
    st.pin_peer(p);
    node_.trust.pin_by_operator(p.entity_id, p.key);
    co_return json::object{{"pinned", p.entity_id}, {"fingerprint", fingerprint(p.key)}, {"url", p.url}};
  }
  if (op == "unpin") {
    const auto id = string_arg(req, "entity_id");
    const bool stored = st.unpin_peer(id);
    const bool bound = node_.trust.unpin(id);
    co_return json::object{{"unpinned", stored || bound}};
  }
  if (op == "sessions") {
    json::array list;
    for (const auto& [id, s] : node_.sessions.sessions())
      list.push_back(json::object{{"session_id", format_uuid(id)},
                                  {"peer_id", s.peer_id()},
                                  {"role", s.role() == session_role::initiator ? "initiator" : "responder"},
                                  {"state", to_string(s.state())},
                                  {"version", s.version()},
                                  {"sent", s.sent()},
                                  {"last_activity", format_timestamp({s.last_activity(), 3})}});
    co_return json::object{{"sessions", std::move(list)}};
  }
  throw bad_request("unknown op '" + op + "'");
}

asio::awaitable<json::object> control::send(const json::object& req) {
  std::string to = string_arg(req, "to");
  if (to.find("://") == std::string::npos) {
    // An entity id: the address it was pinned or last reached at.
    const std::string url = node_.state.url_of(to);
    if (url.empty()) throw bad_request("no address is known for '" + to + "': give a URL, or pin it with ctl peers pin ... --url URL");
    to = url;
  } else {
    const auto url = parse_peer_url(to);
    if (!url) throw bad_request("to: " + url.error().message);
    to = canonical_url(*url);
  }
  const std::string type = string_arg(req, "type");
  if (!is_msg_type(type) || is_core_type(type) || is_reply_type(type))
    throw bad_request("type must be a request type of SPEC §15 or a plugin's, not '" + type + "'");
  const auto& payload = object_arg(req, "payload");
  const auto expires = seconds(int_arg(req, "expires_in_s", node_.out.options().default_expiry.count(), 1, 30 * 86400));
  const auto id = enqueue(to, type, payload, expires);
  const auto wait = int_arg(req, "wait_s", 0, 0, 86400);
  if (wait == 0) co_return json::object{{"id", id}, {"state", "queued"}};
  const auto e = co_await node_.out.settled(id, std::chrono::steady_clock::now() + seconds(wait));
  co_return e ? to_json(*e) : json::object{{"id", id}, {"state", "unknown"}};
}

// KR-10: records this node's next rotation statement, announces the chain to every peer with a
// known address (in a session, by the outbound client, still under the current key), waits up to
// wait_s for each to settle, then signs with the new key (or, after a revocation, stops). An
// announcement still queued then goes out under the new key, which a peer that did not follow
// refuses: its operator can check GET /key-rotation and pin the new key.
asio::awaitable<json::object> control::rotate(const json::object& req, bool to_new_key) {
  std::unique_ptr<identity> next;
  if (to_new_key) {
    node_config c;
    c.key_file = string_arg(req, "key");
    if (pkcs11::is_uri(c.key_file.string())) c.entity_id = srv_.self().entity_id;
    if (member(req, "passphrase")) c.key_passphrase = [p = string_arg(req, "passphrase")] { return p; };
    try {
      next = std::make_unique<identity>(load_identity(c));
    } catch (const config_error& e) {
      throw bad_request(std::string("the new key: ") + e.what());
    }
  }
  const auto wait = seconds(int_arg(req, "wait_s", 30, 0, 3600));
  std::set<std::string> urls;
  for (const auto& p : node_.state.peer_records())
    if (!p.url.empty()) urls.insert(p.url);
  key_rotation r;
  try {
    r = srv_.record_rotation(next.get());
  } catch (const config_error& e) {
    throw bad_request(e.what());
  }
  const auto& chain = srv_.own_chain();
  const auto most = static_cast<std::ptrdiff_t>(node_.protocol.max_rotation_chain);
  const auto from = static_cast<std::ptrdiff_t>(chain.size()) > most ? chain.end() - most : chain.begin();
  const json::object payload{{"chain", to_json(std::vector<key_rotation>(from, chain.end()))}};
  std::vector<std::pair<std::string, std::int64_t>> queued;
  for (const auto& url : urls) queued.emplace_back(url, enqueue(url, std::string(msg::key_rotation), payload, node_.out.options().default_expiry));
  const auto deadline = std::chrono::steady_clock::now() + wait;
  json::array announced;
  for (const auto& [url, id] : queued) {
    const auto e = co_await node_.out.settled(id, deadline);
    announced.push_back(json::object{{"to", url}, {"id", id}, {"state", e ? to_string(e->status) : "unknown"}});
  }
  json::object out{{"counter", r.counter}, {"statement", to_json(r)}, {"announced", std::move(announced)}};
  if (next) {
    out["fingerprint"] = fingerprint(next->key.public_key_bytes());
    srv_.adopt_identity(std::move(next));
  } else {
    // KR-9: with its key revoked the node has nothing left to sign with, so it stops, the way
    // SIGTERM stops it (the serve command's signal handler drains and ends the run).
    node_.log.warn("identity key revoked (rotation {}): stopping", r.counter);
    ::kill(::getpid(), SIGTERM);
  }
  co_return out;
}

std::int64_t control::enqueue(const std::string& to, const std::string& type, const json::object& payload, seconds expires_in) {
  outbox_entry e;
  e.to = to;
  e.msg_type = type;
  e.payload = jcs::canonicalize(payload);
  // One too large for one envelope of its peer goes as a chunked transfer (outbound.hpp).
  const auto& opt = node_.out.options();
  if (e.payload.size() > opt.max_send_bytes)
    throw bad_request("the payload is " + std::to_string(e.payload.size()) + " bytes; the node sends at most " +
                      std::to_string(opt.max_send_bytes) + " (--max-send-bytes)");
  e.created = system_now();
  e.expires = e.created + expires_in;
  e.trace = new_trace_id();
  const auto id = node_.state.add_outbox(e, opt.max_outbox);
  if (id == 0)
    throw bad_request("the outbox is full (" + std::to_string(opt.max_outbox.messages) + " messages or " +
                      std::to_string(opt.max_outbox.bytes) + " payload bytes waiting; --max-outbox, --max-outbox-bytes)");
  node_.log.info("outbox #{} to {}: {} queued, trace {}", id, to, type, e.trace);
  node_.out.queued(id, to);
  return id;
}

asio::awaitable<json::object> control::inbox(const json::object& req) {
  const auto after = int_arg(req, "after", 0, 0, INT64_MAX);
  const auto limit = static_cast<std::size_t>(int_arg(req, "limit", 100, 1, 10000));
  const auto deadline = std::chrono::steady_clock::now() + seconds(int_arg(req, "wait_s", 0, 0, 3600));
  for (;;) {
    auto messages = node_.state.inbox(after, limit);
    if (!messages.empty() || std::chrono::steady_clock::now() >= deadline || node_.draining) {
      json::array list;
      for (const auto& m : messages) list.push_back(to_json(m));
      co_return json::object{{"messages", std::move(list)}};
    }
    co_await inbox_changed_.wait_until(node_.ioc, deadline);
  }
}

// MSG-9: the task's result goes to the peer that delegated it, as task_result.
json::object control::settle_task(const json::object& req, bool completed) {
  const auto task_id = string_arg(req, "task_id");
  const auto claim = string_arg(req, "claim");
  json::object payload{{"task_id", task_id}, {"status", completed ? "completed" : "failed"}};
  if (completed) {
    payload["result"] = object_arg(req, "result");
  } else {
    auto error = string_arg(req, "error");
    if (error.size() > limits::max_error_message_chars) throw bad_request("error is longer than 512 characters");
    payload["error"] = std::move(error);
  }
  auto& st = node_.state;
  const auto task = st.task(task_id);
  if (!task) throw bad_request("no task " + task_id + " is queued");
  const std::string& sender = task->sender_id;
  const std::string url = st.url_of(sender);
  if (url.empty())
    throw bad_request("no address is known for the delegating peer '" + sender + "': pin it with ctl peers pin ... --url URL");
  outbox_entry e;
  e.to = url;
  e.msg_type = "task_result";
  e.payload = jcs::canonicalize(payload);
  e.created = system_now();
  e.expires = e.created + node_.out.options().default_expiry;
  e.trace = new_trace_id();
  const auto id = st.finish_task(task_id, claim, e.created, e, node_.out.options().max_outbox);
  if (!id) throw bad_request("the claim on task " + task_id + " does not hold (its lease ran out, or it was settled)");
  if (*id == 0) throw bad_request("the outbox is full; the task stays claimed until its lease runs out");
  node_.log.info("task {} {}: task_result queued as outbox #{} to {}", task_id, completed ? "completed" : "failed", *id, url);
  node_.out.queued(*id, url);
  return {{"task_id", task_id}, {"outbox_id", *id}};
}

}  // namespace peerproto::node
