#include "outbound.hpp"

#include "trace.hpp"

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

#include <charconv>
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
  bool answered() const { return status >= 0; }
  static exchange_result unanswered(std::string why, bool may_have_arrived = false) {
    exchange_result r;
    r.status = -1;
    r.problem = std::move(why);
    r.written = may_have_arrived;
    return r;
  }
};

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
  link(outbound& out, peer_url url, std::string to)
      : out_(out), url_(std::move(url)), to_(std::move(to)), wake_(out.ioc_), pause_(out.ioc_) {}

  void push(std::int64_t id) {
    queue_.push_back(id);
    wake_.cancel();
  }
  void stop() {
    stopping_ = true;
    wake_.cancel();
    pause_.cancel();
  }
  /// A message was cancelled: a back-off ends now, so that it is given up without waiting.
  void interrupt() { pause_.cancel(); }

  asio::awaitable<void> run() {
    auto self = shared_from_this();
    while (!stopping_) {
      while (!queue_.empty() && !stopping_) {
        std::string problem;
        try {
          co_await deliver(queue_.front());
        } catch (const std::exception& e) {  // the store failed: the entry stays queued
          problem = e.what();
        }
        if (!problem.empty()) {
          out_.ctx_.log->error("outbound to {}: {}", to_, problem);
          co_await pause(store_backoff());
        } else if (!stopping_) {
          queue_.pop_front();
        }
      }
      if (stopping_) break;
      // Idle: a WebSocket is closed now (an idle one reads nothing, so it could not answer the
      // peer's close), the session stays for the next message unless unused for idle_close.
      co_await close_websocket();
      if (!queue_.empty() || stopping_) continue;  // queued while the WebSocket was closing
      wake_.expires_after(session_ ? milliseconds(out_.opt_.idle_close) : milliseconds(std::chrono::hours(24)));
      const auto [ec] = co_await wake_.async_wait(use);
      if (!ec && queue_.empty()) co_await close_session(session_, "idle");
    }
    co_await close_session(session_, "shutting down");
    co_await close_websocket();
    http_.reset();
    out_.link_stopped();
  }

 private:
  // Runs the delivery machine over one outbox entry until it is settled or the node stops: the
  // machine decides, this function seals, stores and transmits.
  asio::awaitable<void> deliver(std::int64_t id) {
    auto found = out_.ctx_.state.outbox_get(id);
    if (!found || found->status != outbox_entry::state::queued) co_return;
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
        settle(e);  // first: closing the session is a courtesy that must not delay the outcome
        co_await apply_session(step);
        co_return;
      }
      co_await apply_session(step);
      // What the machine changed, and the engine with it (sealed bytes and the session's sequence
      // numbers, a reply accepted), is stored before anything else is sent.
      if (!commit(e)) {
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
    if (!peer_id_) {
      if (auto problem = co_await learn_identity()) co_return d.not_sealed(*problem, std::nullopt, system_now());
      co_await learn_limits();
    }
    if (!session_ || !usable(*session_)) {
      session_.reset();
      if (auto failed = co_await handshake(e.trace)) co_return d.not_sealed(failed->first, failed->second, system_now());
    }
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
    auto r = co_await exchange(e.sealed, e.trace);
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
    auto got = out_.ctx_.protocol.accept_reply(r.body, system_now());
    if (!got) {
      a.what = delivery_answer::kind::refused;
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
    if (!e.transfer_id) {
      const auto size = chunk_size_for(peer_limits_.max_envelope, peer_limits_.chunks.max_chunk_data);
      auto planned = plan_transfer(e.payload, e.msg_type, size, make_uuid_v4(crypto::random_array<16>()), peer_limits_.chunks);
      if (!planned) return failure{planned.code(), "too large for the peer's advertised limits: " + planned.error().message};
      d.start_transfer(planned->transfer_id, static_cast<std::uint32_t>(planned->chunk_size), planned->total);
      plan_ = {e.id, std::move(*planned)};
    }
    if (!plan_ || plan_->first != e.id || plan_->second.transfer_id != *e.transfer_id) {  // after a restart
      auto planned = plan_transfer(e.payload, e.msg_type, e.chunk_size, *e.transfer_id);
      if (!planned || planned->total != e.chunk_total) return failure{errc::invalid_state, "the stored transfer does not match its payload"};
      plan_ = {e.id, std::move(*planned)};
    }
    return to_json(plan_->second.piece(e.payload, *d.chunk_index()));
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
    auto v = jcs::parse_strict(r.body);
    const auto* o = v && v->is_object() ? &v->as_object() : nullptr;
    const auto* id = o ? detail::string_member(*o, "entity_id") : nullptr;
    const auto* key = o ? detail::string_member(*o, "public_key") : nullptr;
    const auto bytes = key ? hex_decode_fixed<32>(*key) : std::nullopt;
    if (r.status != 200 || !id || !is_entity_id(*id) || !bytes) co_return "GET /public-key did not answer {entity_id, public_key}";
    const auto bound = out_.ctx_.trust.accept_handshake_key(*id, *bytes, system_now());
    if (!bound) co_return std::string(wire_name(bound.code())) + ": " + bound.error().message;
    state_changes c;
    if (*bound != trust_store::binding::known) c.peers.emplace_back(*id, *bytes);
    if (!out_.commit(std::move(c))) co_return "the node could not store the peer's key";
    peer_id_ = std::string(*id);
    out_.ctx_.state.remember_url(*peer_id_, to_);
    co_return std::nullopt;
  }

  // A new session (SPEC §8 as initiator): nothing when it is ready; otherwise why not, and the
  // peer's retry_after when it refused with RATE_LIMITED (SND-2).
  using handshake_failure = std::pair<std::string, std::optional<std::chrono::seconds>>;
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
    auto ready = eng.accept_reply(m4.body, system_now());
    out_.commit({});
    if (!ready && PEERPROTO_FAULT(initiator_skips_session_ready))
      if (const auto id = session_id_of(*m3)) {
        session_ = *id;
        co_return std::nullopt;
      }
    if (!ready || ready->size() != 1 || ready->front().reply.msg_type != msg::ack || !ready->front().reply.session_id)
      co_return handshake_failure{"handshake: the peer did not confirm the session" + (ready ? std::string() : ": " + ready.error().message), std::nullopt};
    session_ = *ready->front().reply.session_id;
    out_.ctx_.log->info("outbound: session {} with {} at {}", format_uuid(*session_), *peer_id_, to_);
    co_return std::nullopt;
  }

  // SES-8: session_close, best effort; the session is closed on our side when it is sealed.
  asio::awaitable<void> close_session(std::optional<uuid> id, const char* why) {
    if (!id) co_return;
    if (session_ == id) session_.reset();
    if (!usable(*id)) co_return;
    auto m = out_.ctx_.protocol.send(*id, msg::session_close, {{"reason", why}}, system_now());
    out_.commit({});
    const std::string no_trace;
    if (m) co_await exchange(*m, no_trace);
  }

  // The time the messages this node creates carry (a fault-injection node may date them wrong).
  static sys_milliseconds stamp() { return system_now() - (PEERPROTO_FAULT(initiator_stale_timestamp) ? std::chrono::minutes(2) : std::chrono::minutes(0)); }

  bool usable(const uuid& id) const {
    const session* s = out_.ctx_.protocol.find_session(id);
    return s && s->state() == session_state::ready;
  }

  // ------------------------------------------------------------ transport
  // One HTTP connection or one WebSocket per link, plain or TLS (https://, wss://). The stream
  // types differ, so each operation is a template dispatched on the variant. Coroutine
  // parameters are taken by value: the frame owns them (no references to temporaries).

  using plain = beast::tcp_stream;
  using secure = beast::ssl_stream<beast::tcp_stream>;

  asio::awaitable<void> close_websocket() {
    if (!ws_) co_return;
    co_await std::visit([this](auto& ws) { return ws_close(ws); }, *ws_);
    ws_.reset();
  }

  asio::awaitable<exchange_result> exchange(std::string envelope, std::string trace) {
    if (!url_.websocket) co_return co_await http_exchange(http::verb::post, "/message", envelope, trace);
    exchange_result r;
    if (!ws_) {
      if (url_.tls) ws_.emplace(std::in_place_type<websocket::stream<secure>>, out_.ioc_, *out_.tls_);
      else ws_.emplace(std::in_place_type<websocket::stream<plain>>, out_.ioc_);
      auto problem = co_await std::visit([this](auto& ws) { return ws_open(ws); }, *ws_);
      if (problem) {
        ws_.reset();
        co_return exchange_result::unanswered(*problem);
      }
    }
    r.written = true;
    const auto ec = co_await std::visit([&](auto& ws) { return ws_round(ws, envelope); }, *ws_);
    if (ec) co_return transport_failure("WebSocket exchange", ec);
    r.body = beast::buffers_to_string(ws_buffer_.data());
    if (const auto e = parse_envelope(r.body); e && e->msg_type == msg::error && e->payload)
      if (const auto* ra = e->payload->if_contains("retry_after"); ra && ra->is_int64() && ra->get_int64() > 0)
        r.retry_after = std::chrono::seconds(ra->get_int64());
    co_return r;
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
      co_return transport_failure("HTTP exchange", ec);
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

  template <class WS>
  asio::awaitable<std::optional<std::string>> ws_open(WS& ws) {
    if (auto problem = co_await open(ws.next_layer())) co_return problem;
    const std::string host = url_.host + ":" + url_.port, path = url_.path.empty() ? "/ws" : url_.path;
    const auto [ec] = co_await ws.async_handshake(host, path, use);
    if (ec) co_return "WebSocket handshake with " + to_ + " failed: " + ec.message();
    ws.read_message_max(out_.ctx_.protocol.options().json.max_bytes);
    co_return std::nullopt;
  }

  template <class WS>
  asio::awaitable<beast::error_code> ws_round(WS& ws, const std::string& envelope) {
    beast::get_lowest_layer(ws).expires_after(out_.opt_.timeout);
    ws.text(true);
    const auto [wec, wn] = co_await ws.async_write(asio::buffer(envelope), use);
    if (wec) co_return wec;
    ws_buffer_.clear();
    const auto [rec, rn] = co_await ws.async_read(ws_buffer_, use);
    co_return rec;
  }

  template <class WS>
  asio::awaitable<void> ws_close(WS& ws) {
    beast::get_lowest_layer(ws).expires_after(std::chrono::seconds(2));
    co_await ws.async_close(websocket::close_code::normal, use);
  }

  // The request was written (it may have arrived); the connection is dropped.
  exchange_result transport_failure(const char* what, beast::error_code ec) {
    http_.reset();
    ws_.reset();
    return exchange_result::unanswered(std::string(what) + " with " + to_ + " failed: " + ec.message(), true);
  }

  // ------------------------------------------------------------ waiting and settling

  // After a failure of the node's own store.
  milliseconds store_backoff() { return backoff_delay(store_failures_++, out_.opt_.delivery, out_.rng_); }

  asio::awaitable<void> pause(milliseconds d) {
    pause_.expires_after(d);
    co_await pause_.async_wait(use);  // cut short by stop() only: new messages do not end a back-off
  }

  bool commit(const outbox_entry& e) {
    state_changes c;
    c.outbox.push_back(e);
    return out_.commit(std::move(c));
  }

  // The machine settled the entry: stored, and anyone waiting for it told.
  void settle(outbox_entry& e) {
    out_.cancelled_.erase(e.id);
    if (e.status != outbox_entry::state::delivered && e.status != outbox_entry::state::failed)
      out_.ctx_.log->warn("outbound #{} to {}: {}: {} (trace {})", e.id, to_, to_string(e.status), e.result, e.trace);
    if (commit(e)) out_.settle(e);
  }

  outbound& out_;
  peer_url url_;
  std::string to_;
  std::deque<std::int64_t> queue_;
  asio::steady_timer wake_;   ///< idle: a new message or stop() ends the wait
  asio::steady_timer pause_;  ///< back-off: stop() ends the wait
  std::optional<std::string> peer_id_;
  struct {
    std::size_t max_envelope = limits::max_envelope_bytes;
    reassembly_options chunks;
  } peer_limits_;  ///< what the peer advertises (learn_limits)
  std::optional<std::pair<std::int64_t, transfer_plan>> plan_;  ///< the transfer of the entry being sent
  std::optional<uuid> session_;
  std::optional<std::variant<plain, secure>> http_;
  beast::flat_buffer http_buffer_;
  std::optional<std::variant<websocket::stream<plain>, websocket::stream<secure>>> ws_;
  beast::flat_buffer ws_buffer_;
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
