#include "outbound.hpp"

#include "trace.hpp"
#include "wakeup.hpp"

#include <peerproto/chunking.hpp>
#include <peerproto/delivery.hpp>
#include <peerproto/fault.hpp>
#include <peerproto/key_file.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <set>
#include <variant>

namespace peerproto::node {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;

namespace {
constexpr auto use = asio::as_tuple(asio::use_awaitable);

/// One request's answer: the peer's status and body, or why there is none.
struct exchange_result {
  int status = 0;  ///< HTTP status; 0 for a WebSocket message, -1 when nothing came back
  std::string body;
  std::optional<std::chrono::seconds> retry_after;
  bool written = false;  ///< the request may have reached the peer
  std::string problem;   ///< when nothing came back
  /// A reply in a session, already accepted by the engine (the WebSocket reader opens a sealed
  /// reply to learn which request it answers); otherwise the body is still to be accepted.
  std::optional<std::vector<accepted_reply>> accepted;
  bool answered() const { return status >= 0; }
  static exchange_result unanswered(std::string why, bool may_have_arrived = false) {
    exchange_result r;
    r.status = -1;
    r.problem = std::move(why);
    r.written = may_have_arrived;
    return r;
  }
};

/// Runs `f` when the scope ends, however it ends.
template <class F>
struct on_exit {
  F f;
  ~on_exit() { f(); }
};
template <class F>
on_exit(F) -> on_exit<F>;

std::optional<std::chrono::seconds> parse_retry_after(std::string_view v) {
  unsigned s = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
  if (ec != std::errc() || end != v.data() + v.size()) return std::nullopt;
  return std::chrono::seconds(s);
}

// The session a handshake_confirm names (for a fault that uses it unproven).
std::optional<uuid> session_id_of(std::string_view msg3) {
  const auto e = parse_envelope(msg3);
  const auto* id = e && e->payload ? e->payload->if_contains("session_id") : nullptr;
  return id && id->is_string() ? parse_uuid_v4(id->get_string()) : std::nullopt;
}

}  // namespace

// ---------------------------------------------------------------- one peer

class outbound::link : public std::enable_shared_from_this<link> {
 public:
  link(outbound& out, peer_url url, std::string to) : out_(out), url_(std::move(url)), to_(std::move(to)) {}

  void push(std::int64_t id) {
    queue_.push_back(id);
    changed_.notify();
  }
  void stop() {
    stopping_ = true;
    for (auto* w : {&changed_, &pauses_, &setup_done_, &transfer_done_, &session_quiet_, &ws_opened_}) w->notify();
  }
  /// A message was cancelled: a back-off ends now, so that it is given up without waiting.
  void interrupt() { pauses_.notify(); }

  // Starts a delivery for each queued message while fewer than window() are under way.
  asio::awaitable<void> run() {
    auto self = shared_from_this();
    while (!stopping_) {
      while (!queue_.empty() && active_ < window()) {
        ++active_;
        asio::co_spawn(out_.ioc_, deliver_until_settled(queue_.front()), asio::detached);
        queue_.pop_front();
      }
      if (active_ > 0 || !queue_.empty()) {  // until a delivery ends or a message is queued
        co_await changed_.wait(out_.ioc_);
        continue;
      }
      // Idle: the WebSocket is closed now, the session stays for the next message unless unused
      // for idle_close.
      co_await close_websocket();
      if (!queue_.empty() || stopping_) continue;  // queued while the WebSocket was closing
      const bool woken = co_await changed_.wait(out_.ioc_, session_ ? milliseconds(out_.opt_.idle_close) : milliseconds(std::chrono::hours(24)));
      if (!woken && queue_.empty()) co_await close_session(session_, "idle");
    }
    while (active_ > 0) co_await changed_.wait(out_.ioc_);
    co_await close_session(session_, "shutting down");
    co_await close_websocket();
    http_.reset();
    out_.link_stopped();
  }

 private:
  // How many messages may be under way at once (SPEC SND-6): over WebSocket, as many as the peer
  // takes in flight on one connection (WS-2) and holds in one session's window (ORD-3, ORD-5),
  // within this node's own bound; over HTTP's one connection, one. One, too, until a session is
  // ready: the first delivery learns the peer and runs the handshake.
  std::size_t window() const {
    if (!url_.websocket || !session_ || !usable(*session_)) return 1;
    return std::max<std::size_t>(1, std::min({out_.opt_.max_in_flight, peer_limits_.ws_max_in_flight, peer_limits_.reorder_window}));
  }

  asio::awaitable<void> deliver_until_settled(std::int64_t id) {
    auto self = shared_from_this();
    while (!stopping_) {
      std::string problem;
      try {
        co_await deliver(id);
      } catch (const std::exception& e) {  // the store failed: the entry stays queued
        problem = e.what();
      }
      if (problem.empty()) break;
      out_.ctx_.log->error("outbound to {}: {}", to_, problem);
      co_await pause(store_backoff());
    }
    --active_;
    changed_.notify();
  }

  // Runs the delivery machine over one outbox entry until it is settled or the node stops: the
  // machine decides, this function seals, stores and transmits.
  asio::awaitable<void> deliver(std::int64_t id) {
    auto found = out_.ctx_.state.outbox_get(id);
    if (!found || found->status != outbox_entry::state::queued) co_return;
    // One transfer at a time per link: each holds its whole payload in memory.
    const bool transfer = found->transfer_id || needs_chunks(found->payload.size(), peer_limits_.max_envelope);
    if (transfer && transfer_busy_) {
      found.reset();
      while (transfer_busy_ && !stopping_) co_await transfer_done_.wait(out_.ioc_);
      if (stopping_) co_return;
      found = out_.ctx_.state.outbox_get(id);
      if (!found || found->status != outbox_entry::state::queued) co_return;
    }
    if (transfer) transfer_busy_ = true;
    const on_exit release{[this, id, transfer] {
      if (!transfer) return;
      plans_.erase(id);
      transfer_busy_ = false;
      transfer_done_.notify();
    }};
    outbox_entry& e = *found;
    delivery d(e, out_.opt_.delivery, out_.rng_);
    const auto resume = [&] { return d.next(system_now(), e.session && usable(*e.session)); };
    auto step = resume();
    while (!stopping_) {
      if (out_.cancelled_.contains(e.id) && step.what != delivery_step::kind::done) step = d.cancel();
      if (!step.problem.empty() && step.problem != last_problem_)
        out_.ctx_.log->warn("outbound #{} to {}: {} (trace {})", e.id, to_, step.problem, e.trace);
      if (!step.problem.empty()) last_problem_ = step.problem;
      if (step.what == delivery_step::kind::done) {
        co_await settle(e);  // first: closing the session is a courtesy that must not delay the outcome
        co_await apply_session(step);
        co_return;
      }
      co_await apply_session(step);
      // What the machine changed, and the engine with it (sealed bytes and the session's sequence
      // numbers, a reply accepted), is stored before anything else is sent.
      const bool stored = co_await commit(e);
      if (!stored) {
        co_await pause(store_backoff());
        step = resume();
        continue;
      }
      store_failures_ = 0;
      switch (step.what) {
        case delivery_step::kind::wait:
          if (!out_.cancelled_.contains(e.id)) co_await pause(std::chrono::ceil<milliseconds>(step.not_before - system_now()));
          step = resume();
          break;
        case delivery_step::kind::seal:
          step = co_await seal(d, e);
          break;
        case delivery_step::kind::send:
          if (!session_) session_ = e.session;  // sealed before a restart: its session goes on
          step = d.answered(co_await transmit(e), system_now());
          break;
        case delivery_step::kind::done:
          break;
      }
    }
  }

  // A ready session (a handshake first when there is none), then the payload or the current chunk
  // sealed in it.
  asio::awaitable<delivery_step> seal(delivery& d, outbox_entry& e) {
    if (auto failed = co_await ready_session(e.trace)) co_return d.not_sealed(failed->first, failed->second, system_now());
    auto payload = next_payload(d, e);
    if (!payload) co_return d.seal_refused(payload.code(), payload.error().message, system_now());
    auto sealed = out_.ctx_.protocol.send(*session_, e.transfer_id ? msg::chunk : std::string_view(e.msg_type), *payload, stamp());
    if (!sealed) {
      session_.reset();
      co_return d.seal_refused(sealed.code(), sealed.error().message, system_now());
    }
    co_return d.sealed(std::move(*sealed), *session_, system_now());
  }

  // Sends the stored bytes and says what came back, for the machine.
  asio::awaitable<delivery_answer> transmit(outbox_entry& e) {
    delivery_answer a;
    const uuid session = *e.session;
    ++in_session_[session];
    auto r = co_await exchange(e.sealed, e.trace);
    if (--in_session_[session] == 0) {
      in_session_.erase(session);
      session_quiet_.notify();
    }
    if (!r.answered()) {
      a.may_have_arrived = r.written;
      a.detail = r.problem;
      co_return a;
    }
    a.status = r.status;
    a.retry_after = r.retry_after;
    if (r.body.empty()) {  // not an authenticated answer (SND-1)
      a.what = delivery_answer::kind::unauthenticated;
      a.detail = "HTTP " + std::to_string(r.status) + " without an envelope";
      co_return a;
    }
    auto got = accept(r);
    if (!got) {
      a.what = signed_by_peer(r.body) ? delivery_answer::kind::refused : delivery_answer::kind::unauthenticated;
      a.code = got.code();
      a.detail = got.error().message;
      co_return a;
    }
    if (got->empty()) {  // held behind a gap in the peer's replies (ORD-3): not an answer yet
      a.what = delivery_answer::kind::unauthenticated;
      a.detail = "the reply is held behind a gap in the session's replies";
      co_return a;
    }
    last_problem_.clear();
    a.what = got->size() == 1 && chunk_received(got->front()) ? delivery_answer::kind::chunk_received : delivery_answer::kind::reply;
    a.reply = {{"reply_type", got->front().reply.msg_type}, {"reply", got->front().payload}};
    co_return a;
  }

  // Whether an answer the engine did not accept is an error to this node that its sender signed
  // with the key this node trusts for it: a refusal (SND-3). Anything else that does not
  // authenticate (an error under another key, a reply that does not open) is no answer at all,
  // whatever code it names (SND-1).
  bool signed_by_peer(std::string_view body) const {
    const auto e = parse_envelope(body);
    if (!e || e->msg_type != msg::error || e->session_id || e->recipient_id != out_.ctx_.protocol.options().self_id) return false;
    const auto key = out_.ctx_.trust.key_for(e->sender_id);
    return key && verify_signature(*e, *key);
  }

  result<std::vector<accepted_reply>> accept(exchange_result& r) {
    if (r.accepted) return std::move(*r.accepted);
    return out_.ctx_.protocol.accept_reply(r.body, system_now());
  }

  // A session the machine is done with: the peer no longer has it (ended here, nothing sent), or
  // it must carry nothing more (closed with session_close).
  asio::awaitable<void> apply_session(const delivery_step& s) {
    if (s.session == delivery_step::session_action::keep || !s.session_id) co_return;
    if (s.session == delivery_step::session_action::close) co_return co_await close_session(s.session_id, "a message of this session was refused or its answer lost");
    out_.ctx_.protocol.end_session(*s.session_id, system_now());
    out_.commit({});
    if (session_ == s.session_id) session_.reset();
  }

  // The payload to seal next: the message's own, or the next chunk of its transfer. A payload too
  // large for one envelope of the peer becomes a transfer here, when it is first sealed; the plan
  // is stored with the first chunk's sealed bytes, so a restart resumes the same transfer.
  result<boost::json::object> next_payload(delivery& d, outbox_entry& e) {
    if (!e.transfer_id && !needs_chunks(e.payload.size(), peer_limits_.max_envelope)) {
      auto payload = jcs::parse_strict(e.payload);
      if (!payload || !payload->is_object()) return failure{errc::invalid_format, "the stored payload is not a JSON object"};
      return std::move(payload->as_object());
    }
    auto plan = plans_.find(e.id);
    if (!e.transfer_id) {
      const auto size = chunk_size_for(peer_limits_.max_envelope, peer_limits_.chunks.max_chunk_data);
      auto planned = plan_transfer(e.payload, e.msg_type, size, make_uuid_v4(crypto::random_array<16>()), peer_limits_.chunks);
      if (!planned) return failure{planned.code(), "too large for the peer's advertised limits: " + planned.error().message};
      d.start_transfer(planned->transfer_id, static_cast<std::uint32_t>(planned->chunk_size), planned->total);
      plan = plans_.insert_or_assign(e.id, std::move(*planned)).first;
    }
    if (plan == plans_.end() || plan->second.transfer_id != *e.transfer_id) {  // after a restart
      auto planned = plan_transfer(e.payload, e.msg_type, e.chunk_size, *e.transfer_id);
      if (!planned || planned->total != e.chunk_total) return failure{errc::invalid_state, "the stored transfer does not match its payload"};
      plan = plans_.insert_or_assign(e.id, std::move(*planned)).first;
    }
    return to_json(plan->second.piece(e.payload, *d.chunk_index()));
  }

  // CHK-7: every chunk but the one that completes the transfer is answered ack "chunk_received".
  static bool chunk_received(const accepted_reply& r) {
    const auto* status = r.reply.msg_type == msg::ack ? r.payload.if_contains("status") : nullptr;
    return status && status->is_string() && status->get_string() == "chunk_received";
  }

  // GET /capabilities: the limits the peer advertises that bound what is sent to it (SPEC §18),
  // the defaults for those it does not list or when it does not answer.
  asio::awaitable<void> learn_limits() {
    peer_limits_ = {};
    const std::string none;
    const auto r = co_await http_exchange(http::verb::get, "/capabilities", none, none);
    const auto v = jcs::parse_strict(r.answered() && r.status == 200 ? r.body : std::string());
    const auto* o = v && v->is_object() ? v->as_object().if_contains("limits") : nullptr;
    if (!o || !o->is_object() || PEERPROTO_FAULT(initiator_ignores_peer_limits)) {
      out_.ctx_.log->info("outbound to {}: no limits at GET /capabilities; assuming SPEC §18's defaults", to_);
      co_return;
    }
    const auto read = [&](const char* name, std::size_t& into) {
      if (const auto* x = o->as_object().if_contains(name); x && x->is_int64() && x->get_int64() > 0)
        into = static_cast<std::size_t>(x->get_int64());
    };
    read("max_envelope_bytes", peer_limits_.max_envelope);
    read("max_chunk_data_bytes", peer_limits_.chunks.max_chunk_data);
    read("max_chunks_per_transfer", peer_limits_.chunks.max_chunks);
    read("max_transfer_bytes", peer_limits_.chunks.max_transfer_bytes);
    read("ws_max_in_flight", peer_limits_.ws_max_in_flight);
    read("reorder_window", peer_limits_.reorder_window);
    // A peer may allow less than the chunk payload's bounds (CHK-2, CHK-9), never more.
    const reassembly_options most;
    peer_limits_.chunks.max_chunk_data = std::min(peer_limits_.chunks.max_chunk_data, most.max_chunk_data);
    peer_limits_.chunks.max_chunks = std::min(peer_limits_.chunks.max_chunks, most.max_chunks);
    peer_limits_.chunks.max_transfer_bytes = std::min(peer_limits_.chunks.max_transfer_bytes, most.max_transfer_bytes);
  }

  // GET /public-key: the peer's entity id and key, accepted under the node's trust policy.
  asio::awaitable<std::optional<std::string>> learn_identity() {
    const std::string none;
    auto r = co_await http_exchange(http::verb::get, "/public-key", none, none);
    if (!r.answered()) co_return r.problem;
    const auto peer_identity = read_published_identity(r.status, r.body);
    if (!peer_identity) co_return peer_identity.error().message;
    const auto& [id, key] = *peer_identity;
    const auto bound = out_.ctx_.trust.accept_handshake_key(id, key, system_now());
    if (!bound) co_return std::string(wire_name(bound.code())) + ": " + bound.error().message;
    state_changes c;
    if (*bound != trust_store::binding::known) c.peers.emplace_back(id, key);
    if (!out_.commit(std::move(c))) co_return "the node could not store the peer's key";
    peer_id_ = id;
    out_.ctx_.state.remember_url(*peer_id_, to_);
    co_return std::nullopt;
  }

  // Why no session could be had, and the peer's retry_after when it refused with RATE_LIMITED (SND-2).
  using handshake_failure = std::pair<std::string, std::optional<std::chrono::seconds>>;

  // A ready session to seal in. One delivery at a time learns the peer and runs the handshake;
  // the others wait for its outcome and share it.
  asio::awaitable<std::optional<handshake_failure>> ready_session(std::string trace) {
    if (session_ && usable(*session_)) co_return std::nullopt;
    if (setting_up_) {
      while (setting_up_ && !stopping_) co_await setup_done_.wait(out_.ioc_);
      if (session_ && usable(*session_)) co_return std::nullopt;
      co_return setup_failure_.value_or(handshake_failure{"no session with the peer", std::nullopt});
    }
    setting_up_ = true;
    const on_exit done{[this] {
      setting_up_ = false;
      setup_done_.notify();
    }};
    session_.reset();
    setup_failure_.reset();
    if (!peer_id_) {
      if (auto problem = co_await learn_identity()) setup_failure_ = handshake_failure{*problem, std::nullopt};
      else co_await learn_limits();
    }
    if (!setup_failure_) setup_failure_ = co_await handshake(trace);
    co_return setup_failure_;
  }

  // A new session (SPEC §8 as initiator): nothing when it is ready; otherwise why not.
  asio::awaitable<std::optional<handshake_failure>> handshake(std::string trace) {
    auto& eng = out_.ctx_.protocol;
    const std::string m1 = eng.begin_handshake(*peer_id_, stamp());
    auto m2 = co_await exchange(m1, trace);
    out_.commit({});
    if (!m2.answered()) co_return handshake_failure{m2.problem, std::nullopt};
    if (m2.retry_after) co_return handshake_failure{"handshake: RATE_LIMITED", m2.retry_after};
    auto m3 = eng.finish_handshake(m2.body, system_now());
    out_.commit({});
    if (!m3) co_return handshake_failure{"handshake: " + std::string(wire_name(m3.code())) + ": " + m3.error().message, std::nullopt};
    auto m4 = co_await exchange(*m3, trace);
    if (!m4.answered()) co_return handshake_failure{m4.problem, std::nullopt};
    auto ready = engine::session_ready(accept(m4));
    out_.commit({});
    if (!ready && PEERPROTO_FAULT(initiator_skips_session_ready))
      if (const auto id = session_id_of(*m3)) {
        session_ = *id;
        co_return std::nullopt;
      }
    if (!ready) co_return handshake_failure{"handshake: the peer did not confirm the session: " + ready.error().message, std::nullopt};
    session_ = *ready;
    out_.ctx_.log->info("outbound: session {} with {} at {}; up to {} messages under way", format_uuid(*session_), *peer_id_, to_, window());
    co_return std::nullopt;
  }

  // SES-8: session_close, best effort, once the session's messages in flight have their answers;
  // the session is closed on our side when it is sealed.
  asio::awaitable<void> close_session(std::optional<uuid> id, const char* why) {
    if (!id) co_return;
    if (session_ == id) session_.reset();
    while (in_session_.contains(*id)) co_await session_quiet_.wait(out_.ioc_);
    if (!usable(*id)) co_return;
    auto m = out_.ctx_.protocol.send(*id, msg::session_close, {{"reason", why}}, system_now());
    out_.commit({});
    // Its answer (ack "closed", sealed in a session now closed here) cannot be opened, so over
    // WebSocket it is not waited for.
    const std::string no_trace;
    if (m) co_await exchange(*m, no_trace, false);
  }

  // The time the messages this node creates carry (a fault-injection node may date them wrong).
  static sys_milliseconds stamp() { return system_now() - (PEERPROTO_FAULT(initiator_stale_timestamp) ? std::chrono::minutes(2) : std::chrono::minutes(0)); }

  bool usable(const uuid& id) const {
    const session* s = out_.ctx_.protocol.find_session(id);
    return s && s->state() == session_state::ready;
  }

  // ------------------------------------------------------------ transport
  // One HTTP connection (one request at a time) or one WebSocket (many in flight, WS-2) per link,
  // plain or TLS (https://, wss://). The stream types differ, so each operation is dispatched on
  // the variant. Coroutine parameters are taken by value: the frame owns them (no references to
  // temporaries).

  using plain = beast::tcp_stream;
  using secure = beast::ssl_stream<beast::tcp_stream>;

  /// A request on a WebSocket waiting for its answer.
  struct pending {
    asio::steady_timer timer;  ///< the answer's deadline; cancelled when it comes or the connection fails
    std::optional<exchange_result> answer;
  };

  /// One WebSocket: requests are written one at a time; one reader takes every answer and hands it
  /// to the request it names (MSG-2).
  struct ws_connection {
    std::optional<std::variant<websocket::stream<plain>, websocket::stream<secure>>> ws;
    std::map<std::string, pending*> waiting;  ///< by the request's nonce, in hex
    bool writing = false;
    wakeup written;
    std::optional<std::string> failed;  ///< why the connection can no longer be used
  };

  asio::awaitable<exchange_result> exchange(std::string envelope, std::string trace, bool await_answer = true) {
    if (!url_.websocket) co_return co_await http_exchange(http::verb::post, "/message", envelope, trace);
    auto [c, problem] = co_await websocket();
    if (!c) co_return exchange_result::unanswered(problem);
    const auto sent = parse_envelope(envelope);
    const std::string key = sent ? hex_encode(sent->nonce) : std::string();
    pending p{asio::steady_timer(out_.ioc_, out_.opt_.timeout), std::nullopt};
    c->waiting[key] = &p;
    while (c->writing && !c->failed) co_await c->written.wait(out_.ioc_);
    if (!c->failed) {
      c->writing = true;
      const auto [ec, n] = co_await std::visit([&](auto& ws) { return ws.async_write(asio::buffer(envelope), use); }, *c->ws);
      c->writing = false;
      c->written.notify();
      if (ec) fail(*c, "WebSocket exchange with " + to_ + " failed: " + ec.message());
    }
    if (!p.answer && !c->failed && await_answer) co_await p.timer.async_wait(use);
    c->waiting.erase(key);
    if (!await_answer) co_return exchange_result::unanswered("not waited for", true);
    if (p.answer) co_return std::move(*p.answer);
    // No answer in time: the connection is given up, and with it every request in flight on it.
    if (!c->failed) fail(*c, "no answer from " + to_ + " within " + std::to_string(out_.opt_.timeout.count()) + " s");
    co_return exchange_result::unanswered(*c->failed, true);
  }

  // The link's WebSocket, opened (once, whoever asks first) when there is none.
  asio::awaitable<std::pair<std::shared_ptr<ws_connection>, std::string>> websocket() {
    while (ws_opening_ && !stopping_) co_await ws_opened_.wait(out_.ioc_);
    if (ws_ && !ws_->failed) co_return std::pair{ws_, std::string()};
    ws_opening_ = true;
    const on_exit opened{[this] {
      ws_opening_ = false;
      ws_opened_.notify();
    }};
    auto c = std::make_shared<ws_connection>();
    if (url_.tls) c->ws.emplace(std::in_place_type<websocket::stream<secure>>, out_.ioc_, *out_.tls_);
    else c->ws.emplace(std::in_place_type<websocket::stream<plain>>, out_.ioc_);
    if (auto problem = co_await std::visit([this](auto& ws) { return ws_open(ws); }, *c->ws)) co_return std::pair{nullptr, *problem};
    ws_ = c;
    asio::co_spawn(out_.ioc_, read_answers(c), asio::detached);
    co_return std::pair{c, std::string()};
  }

  // The reader of one WebSocket, until it fails or is closed.
  asio::awaitable<void> read_answers(std::shared_ptr<ws_connection> c) {
    auto self = shared_from_this();
    beast::flat_buffer buffer;
    while (!c->failed) {
      buffer.clear();
      const auto [ec, n] = co_await std::visit([&](auto& ws) { return ws.async_read(buffer, use); }, *c->ws);
      if (ec) {
        fail(*c, "WebSocket exchange with " + to_ + " failed: " + ec.message());
        break;
      }
      route(*c, beast::buffers_to_string(buffer.data()));
    }
  }

  // Hands an answer to the request it names (MSG-2): `error` by original_nonce, `ack` by
  // acked_nonce, any other reply by in_reply_to. A sealed reply is opened first, in order
  // (ORD-3): one that arrives ahead of a gap is handed over when the gap is filled.
  void route(ws_connection& c, std::string text) {
    const auto e = parse_envelope(text);
    if (!e) return out_.ctx_.log->warn("outbound to {}: an answer that is not an envelope: {}", to_, e.error().message);
    exchange_result r;
    r.body = std::move(text);
    if (!e->session_id) {
      if (!e->payload) return;
      if (const auto* ra = e->payload->if_contains("retry_after"); e->msg_type == msg::error && ra && ra->is_int64() && ra->get_int64() > 0)
        r.retry_after = std::chrono::seconds(ra->get_int64());
      return hand_over(c, answered_request(*e->payload), std::move(r));
    }
    auto got = out_.ctx_.protocol.accept_reply(r.body, system_now());
    if (!got && !usable(*e->session_id)) return;  // such as the answer to our session_close
    // A reply that does not open names no request. With one request waiting it can only be that
    // one's answer, which its delivery then judges (SND-1: as lost); with more, it is dropped and
    // the request it answered times out, which is judged the same way.
    if (!got && c.waiting.size() == 1) return hand_over(c, c.waiting.begin()->first, std::move(r));
    if (!got) return out_.ctx_.log->warn("outbound to {}: a reply in a session that was not accepted: {}", to_, got.error().message);
    for (auto& a : *got) {
      exchange_result one = r;
      const auto key = answered_request(a.payload);
      one.accepted = std::vector<accepted_reply>{std::move(a)};
      hand_over(c, key, std::move(one));
    }
  }

  static std::string answered_request(const boost::json::object& payload) {
    for (const char* name : {"original_nonce", "acked_nonce", "in_reply_to"})
      if (const auto* s = detail::string_member(payload, name)) return std::string(*s);
    return {};
  }

  void hand_over(ws_connection& c, const std::string& request, exchange_result r) {
    const auto it = c.waiting.find(request);
    if (it == c.waiting.end() || it->second->answer) {
      out_.ctx_.log->warn("outbound to {}: an answer that names no request in flight ({}): ignored (MSG-2)", to_, request.empty() ? "none" : request);
      return;
    }
    it->second->answer = std::move(r);
    it->second->timer.cancel();
  }

  // The connection can no longer be used: every request waiting on it is told, and the socket is
  // closed (which ends the reader and a write that cannot finish).
  void fail(ws_connection& c, std::string why) {
    if (c.failed) return;
    c.failed = std::move(why);
    for (auto& [nonce, p] : c.waiting) p->timer.cancel();
    c.written.notify();
    std::visit([](auto& ws) { beast::get_lowest_layer(ws).close(); }, *c.ws);
    if (ws_.get() == &c) ws_.reset();
  }

  asio::awaitable<void> close_websocket() {
    if (!ws_) co_return;
    const auto c = ws_;
    ws_.reset();
    co_await std::visit([](auto& ws) { return ws.async_close(websocket::close_code::normal, use); }, *c->ws);
    fail(*c, "closed");
  }

  asio::awaitable<exchange_result> http_exchange(http::verb verb, const char* target, std::string body, std::string trace) {
    exchange_result r;
    const bool reused = http_.has_value();
    if (!http_) {
      if (url_.tls) http_.emplace(std::in_place_type<secure>, out_.ioc_, *out_.tls_);
      else http_.emplace(std::in_place_type<plain>, out_.ioc_);
      http_buffer_.clear();
      auto problem = co_await std::visit([this](auto& s) { return open(s); }, *http_);
      if (problem) {
        http_.reset();
        co_return exchange_result::unanswered(*problem);
      }
    }
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, url_.host + ":" + url_.port);
    req.set(http::field::user_agent, "peerproto-node");
    if (!trace.empty()) req.set("traceparent", traceparent(trace));
    req.keep_alive(true);
    if (verb == http::verb::post) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.prepare_payload();
    http::response_parser<http::string_body> parser;
    parser.body_limit(out_.ctx_.protocol.options().json.max_bytes);
    r.written = true;
    const auto ec = co_await std::visit([&](auto& s) { return http_round(s, req, parser); }, *http_);
    if (ec) {
      // Most likely a pooled connection the peer had closed while idle: send again at once on a
      // new one. The request may still have arrived (the peer may have died after reading it).
      if (reused && !PEERPROTO_FAULT(initiator_reseals_retransmission) && (ec == http::error::end_of_stream || ec == asio::error::connection_reset || ec == asio::error::eof)) {
        http_.reset();
        auto again = co_await http_exchange(verb, target, body, trace);
        again.written = true;
        co_return again;
      }
      http_.reset();
      co_return exchange_result::unanswered("HTTP exchange with " + to_ + " failed: " + ec.message(), true);
    }
    auto res = parser.release();
    r.status = static_cast<int>(res.result_int());
    r.body = std::move(res.body());
    if (const auto it = res.find(http::field::retry_after); it != res.end()) r.retry_after = parse_retry_after(it->value());
    if (!res.keep_alive()) http_.reset();
    co_return r;
  }

  // Connects, and for TLS verifies the peer's certificate for the URL's host name (SNI sent).
  template <class Stream>
  asio::awaitable<std::optional<std::string>> open(Stream& stream) {
    auto& tcp_stream = beast::get_lowest_layer(stream);
    tcp::resolver resolver(out_.ioc_);
    const auto [rec, endpoints] = co_await resolver.async_resolve(url_.host, url_.port, use);
    if (rec) co_return "cannot resolve " + url_.host + ": " + rec.message();
    tcp_stream.expires_after(out_.opt_.timeout);
    const auto [ec, ep] = co_await tcp_stream.async_connect(endpoints, use);
    if (ec) co_return "cannot connect to " + to_ + ": " + ec.message();
    if constexpr (std::is_same_v<Stream, secure>) {
      if (!SSL_set_tlsext_host_name(stream.native_handle(), url_.host.c_str())) co_return "cannot set the TLS server name";
      stream.set_verify_mode(asio::ssl::verify_peer);
      stream.set_verify_callback(asio::ssl::host_name_verification(url_.host));
      const auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, use);
      if (hec) co_return "TLS handshake with " + to_ + " failed: " + hec.message();
    }
    co_return std::nullopt;
  }

  template <class Stream>
  asio::awaitable<beast::error_code> http_round(Stream& stream, http::request<http::string_body>& req,
                                                http::response_parser<http::string_body>& parser) {
    beast::get_lowest_layer(stream).expires_after(out_.opt_.timeout);
    const auto [wec, wn] = co_await http::async_write(stream, req, use);
    if (wec) co_return wec;
    const auto [rec, rn] = co_await http::async_read(stream, http_buffer_, parser, use);
    co_return rec;
  }

  // Connects and upgrades. From then on the WebSocket's own timeouts apply (the stream's are
  // off): a silent peer is pinged, and one that stays silent for the exchange timeout is gone.
  template <class WS>
  asio::awaitable<std::optional<std::string>> ws_open(WS& ws) {
    if (auto problem = co_await open(ws.next_layer())) co_return problem;
    const std::string host = url_.host + ":" + url_.port, path = url_.path.empty() ? "/ws" : url_.path;
    const auto [ec] = co_await ws.async_handshake(host, path, use);
    if (ec) co_return "WebSocket handshake with " + to_ + " failed: " + ec.message();
    beast::get_lowest_layer(ws).expires_never();
    websocket::stream_base::timeout t;
    t.handshake_timeout = std::chrono::seconds(2);  // the closing handshake
    t.idle_timeout = out_.opt_.timeout;
    t.keep_alive_pings = true;
    ws.set_option(t);
    ws.read_message_max(out_.ctx_.protocol.options().json.max_bytes);
    ws.text(true);
    co_return std::nullopt;
  }

  // ------------------------------------------------------------ waiting and settling

  // After a failure of the node's own store.
  milliseconds store_backoff() { return backoff_delay(store_failures_++, out_.opt_.delivery, out_.rng_); }

  // A back-off: ended early by stop() and interrupt() only, not by new messages.
  asio::awaitable<void> pause(milliseconds d) { co_await pauses_.wait(out_.ioc_, d); }

  // Stores the entry with the engine's changes. The deliveries under way store their steps
  // together: each waits for one transaction that holds the steps of every delivery that asked
  // before it ran (a group commit), so W messages under way do not cost W transactions a step.
  // A delivery alone on its link has no one to wait for: it stores at once.
  struct commit_batch {
    state_changes changes;
    bool done = false, ok = false;
    wakeup finished;
  };
  asio::awaitable<bool> commit(const outbox_entry& e) {
    if (active_ <= 1 && !batch_) {
      state_changes c;
      c.outbox.push_back(e);
      co_return out_.commit(std::move(c));
    }
    if (!batch_) {
      batch_ = std::make_shared<commit_batch>();
      asio::post(out_.ioc_, [this, self = shared_from_this(), b = batch_] {
        batch_.reset();
        b->ok = out_.commit(std::move(b->changes));
        b->done = true;
        b->finished.notify();
      });
    }
    const auto b = batch_;
    b->changes.outbox.push_back(e);
    while (!b->done) co_await b->finished.wait(out_.ioc_);
    co_return b->ok;
  }

  // The machine settled the entry: stored, and anyone waiting for it told.
  asio::awaitable<void> settle(outbox_entry& e) {
    out_.cancelled_.erase(e.id);
    if (e.status != outbox_entry::state::delivered && e.status != outbox_entry::state::failed)
      out_.ctx_.log->warn("outbound #{} to {}: {}: {} (trace {})", e.id, to_, to_string(e.status), e.result, e.trace);
    const bool stored = co_await commit(e);
    if (stored) out_.settle(e);
  }

  outbound& out_;
  peer_url url_;
  std::string to_;
  std::deque<std::int64_t> queue_;  ///< queued, no delivery started
  std::size_t active_ = 0;          ///< deliveries under way
  wakeup changed_;                  ///< a message queued, a delivery ended, stop()
  wakeup pauses_;                   ///< back-offs: stop() and interrupt() end them
  std::optional<std::string> peer_id_;
  struct {
    std::size_t max_envelope = limits::max_envelope_bytes;
    reassembly_options chunks;
    std::size_t ws_max_in_flight = limits::ws_max_in_flight;
    std::size_t reorder_window = limits::reorder_window;
  } peer_limits_;  ///< what the peer advertises (learn_limits)
  std::map<std::int64_t, transfer_plan> plans_;  ///< of the transfer under way, by outbox id
  bool transfer_busy_ = false;
  wakeup transfer_done_;
  std::optional<uuid> session_;  ///< the session new messages are sealed in
  bool setting_up_ = false;      ///< a delivery is learning the peer or running a handshake
  std::optional<handshake_failure> setup_failure_;
  wakeup setup_done_;
  std::map<uuid, std::size_t> in_session_;  ///< messages awaiting their answers, per session
  wakeup session_quiet_;
  std::optional<std::variant<plain, secure>> http_;
  beast::flat_buffer http_buffer_;
  std::shared_ptr<commit_batch> batch_;  ///< the group commit that has not run yet
  std::shared_ptr<ws_connection> ws_;
  bool ws_opening_ = false;
  wakeup ws_opened_;
  unsigned store_failures_ = 0;
  std::string last_problem_;  ///< logged once per streak of the same problem
  bool stopping_ = false;
};

// ---------------------------------------------------------------- the links

outbound::outbound(asio::io_context& ioc, outbound_context ctx, outbound_options opt)
    : ioc_(ioc), ctx_(std::move(ctx)), opt_(std::move(opt)), tls_(std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client)) {
  opt_.delivery.faults = {.ignores_retry_after = PEERPROTO_FAULT(initiator_ignores_retry_after),
                          .keeps_expired_session = PEERPROTO_FAULT(initiator_keeps_expired_session),
                          .trusts_forged_errors = PEERPROTO_FAULT(initiator_trusts_forged_errors),
                          .retries_refusals = PEERPROTO_FAULT(initiator_retries_refusals),
                          .reseals_retransmission = PEERPROTO_FAULT(initiator_reseals_retransmission),
                          .gives_up_lost_transfer = PEERPROTO_FAULT(initiator_gives_up_lost_transfer)};
  tls_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                    asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  if (opt_.tls_ca_file.empty()) tls_->set_default_verify_paths(ec);
  else tls_->load_verify_file(opt_.tls_ca_file.string(), ec);
  if (ec) throw config_error("--tls-ca-file " + opt_.tls_ca_file.string() + ": " + ec.message());
}

outbound::~outbound() = default;

void outbound::start() {
  for (const auto& [id, to] : ctx_.state.outbox_queued()) queued(id, to);
}

void outbound::queued(std::int64_t id, const std::string& to) {
  if (stopping_) return;  // stays queued for the next run
  auto url = parse_peer_url(to);
  if (!url) return;  // checked when it was queued
  auto& l = links_[to];
  if (!l) {
    l = std::make_shared<link>(*this, *url, to);
    asio::co_spawn(ioc_, l->run(), asio::detached);
  }
  l->push(id);
}

bool outbound::commit(state_changes c) {
  try {
    ctx_.commit(std::move(c));
    return true;
  } catch (const store_error& e) {
    ctx_.log->error("outbound: {}", e.what());
    return false;
  }
}

void outbound::settle(const outbox_entry& e) {
  const auto [first, last] = waiters_.equal_range(e.id);
  for (auto it = first; it != last; ++it) it->second->cancel();
}

asio::awaitable<std::optional<outbox_entry>> outbound::settled(std::int64_t id, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto e = ctx_.state.outbox_get(id);
    if (!e || e->status != outbox_entry::state::queued || std::chrono::steady_clock::now() >= deadline || stopping_) co_return e;
    asio::steady_timer t(ioc_, deadline);
    const auto it = waiters_.emplace(id, &t);
    co_await t.async_wait(use);
    waiters_.erase(it);
  }
}

void outbound::shutdown(std::function<void()> done) {
  stopping_ = true;
  on_stopped_ = std::move(done);
  for (auto& [id, timer] : waiters_) timer->cancel();  // a `ctl send --wait` answers with the state so far
  if (links_.empty()) return on_stopped_();
  for (auto& [to, l] : links_) l->stop();
}

bool outbound::cancel(std::int64_t id) {
  const auto e = ctx_.state.outbox_get(id);
  if (!e || e->status != outbox_entry::state::queued) return false;
  cancelled_.insert(id);
  if (const auto it = links_.find(e->to); it != links_.end()) it->second->interrupt();
  return true;
}

void outbound::link_stopped() {
  if (++stopped_ == links_.size() && on_stopped_) on_stopped_();
}

}  // namespace peerproto::node
