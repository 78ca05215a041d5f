// The server's request path on the core thread: a request from a connection through the engine,
// its changes committed (with a group commit for held and batched requests), its reply routed
// back to the connection's executor, and the test-only faults that act on input and output.
#include "server.hpp"

#include <spdlog/spdlog.h>

#include "trace.hpp"

#include <peerproto/fault.hpp>

#include <boost/asio/post.hpp>

#include <cstdlib>
#include <iterator>

namespace peerproto::node {
namespace asio = boost::asio;

server::reply_fn server::back_to(const asio::any_io_executor& ex, reply_fn done) const {
  if (!transport_) return done;
  return [ex, done = std::move(done)](const outcome& o) { asio::post(ex, [done, o] { done(o); }); };
}

// Test-only faults (fault.hpp) that act on the engine's input or output rather than inside it.
namespace {
void input_faults(std::string_view text) {
  if (PEERPROTO_FAULT(exit_on_chunk))  // a node that dies mid-run
    if (const auto e = parse_envelope(text); e && e->msg_type == msg::chunk) std::_Exit(70);
}
void output_faults(outcome& o) {
  if (PEERPROTO_FAULT(unsigned_errors) && o.error && !o.reply.empty())
    if (auto e = parse_envelope(o.reply); e && e->signature) {
      (*e->signature)[0] ^= 1;
      o.reply = serialize(*e);
    }
  for (auto& r : o.released) output_faults(r);
}
// A node that dies after it stored a delivery and before its reply leaves, every 50th time.
void after_commit_faults(const outcome& o) {
  static int delivered = 0;
  if (PEERPROTO_FAULT(exit_before_reply) && o.what == outcome::kind::answer && !o.error && ++delivered % 50 == 0) std::_Exit(71);
}
}  // namespace

void server::submit(const asio::any_io_executor& ex, std::string text, std::string remote, reply_fn done, std::string trace_id) {
  // A half-built node: it parses envelopes but has no handshake yet (the runner's needs, suite.hpp).
  if (PEERPROTO_FAULT(refuses_handshakes))
    if (const auto e = parse_envelope(text); e && e->msg_type == msg::handshake)
      return refuse(ex, {errc::unsupported_message_type, "no handshake yet"}, std::move(text), std::move(remote), std::move(done));
  const auto started = std::chrono::steady_clock::now();
  std::optional<signature_check> checked;
  if (transport_) checked = precheck(text);  // on this transport thread, not the core's
  on_core([this, text = std::move(text), remote = std::move(remote), done = back_to(ex, std::move(done)),
           trace_id = std::move(trace_id), checked, started]() mutable {
    handle(text, remote, std::move(done), std::move(trace_id), checked, started);
  });
}

void server::handle(const std::string& text, const std::string& remote, reply_fn done, std::string trace_id,
                    const std::optional<signature_check>& checked, std::chrono::steady_clock::time_point started) {
  input_faults(text);
  outcome o = engine_->handle(text, remote, system_now(), checked);
  output_faults(o);
  if (trace_id.empty()) trace_id = new_trace_id();
  for (auto& a : o.audit) a.trace_id = trace_id;
  for (auto& m : pending_.inbox)
    if (m.trace_id.empty()) m.trace_id = trace_id;
  note_trust_changes(o);
  // A held request waits from now: a timer may release it before the flush (ORD-6).
  if (o.what == outcome::kind::held) {
    metrics_.held();
    waiting_[o.request_nonce] = {std::move(done), started};
  }
  // Every request the event loop has ready now is handled before the commit, which it then shares.
  if (batch_.empty()) asio::post(ioc_, [this] { flush(); });
  batch_.push_back({std::move(o), text, remote, std::move(done), started});
}

void server::flush() {
  auto batch = std::exchange(batch_, {});
  bool failed = std::exchange(batch_lost_, false);
  try {
    commit({});
  } catch (const store_error& e) {
    log_->error("{}", e.what());
    failed = true;
  }
  for (auto& h : batch) {
    if (failed) {
      if (h.o.what == outcome::kind::held)  // unless a timer has answered it already
        if (const auto w = waiting_.find(h.o.request_nonce); w != waiting_.end()) {
          h.done = std::move(w->second.done);
          waiting_.erase(w);
        }
      unstored(h.o, h.text, h.remote);
    }
    after_commit_faults(h.o);
    record(h.o, h.started);
    if (h.done && h.o.what != outcome::kind::held) h.done(h.o);
    for (const auto& r : h.o.released) route(r);
  }
  refresh_keys();
  rearm();
}

// ERR-7: nothing is acknowledged that is not stored. The outcome answers INTERNAL_ERROR instead,
// to the same request, and so do the held requests it released.
void server::unstored(outcome& o, std::string_view text, const std::string& remote) {
  if (o.what == outcome::kind::silent) return;
  auto released = std::move(o.released);
  const auto request = o.request_nonce;
  o = engine_->refuse({errc::internal_error, "the node could not store its state"}, text, remote, system_now());
  o.request_nonce = request;
  for (auto& r : released) {
    unstored(r, "", "");
    o.released.push_back(std::move(r));
  }
}

void server::refuse(const asio::any_io_executor& ex, failure f, std::string text, std::string remote, reply_fn done,
                    std::optional<std::chrono::seconds> retry_after) {
  on_core([this, f = std::move(f), text = std::move(text), remote = std::move(remote), done = back_to(ex, std::move(done)),
           retry_after] {
    auto o = engine_->refuse(f, text, remote, system_now(), retry_after);
    output_faults(o);
    record(o, std::chrono::steady_clock::now());
    done(o);
  });
}

void server::note_trust_changes(const outcome& o) {
  for (const auto& a : o.audit) {
    if (a.event == audit_event::key_pinned && a.sender_id)
      if (const auto key = trust_.key_for(*a.sender_id)) pending_.peers.emplace_back(*a.sender_id, *key);
    if ((a.event == audit_event::key_rotated || a.event == audit_event::key_revoked) && a.sender_id)
      if (const auto* r = trust_.rotation_of(*a.sender_id))  // KR-5: durable before the ack leaves
        pending_.rotations.push_back({*a.sender_id, trust_.key_for(*a.sender_id), *r});
  }
  for (const auto& r : o.released) note_trust_changes(r);
}

// Everything the engine changed is written before any reply leaves (RPL-6, SES-13). If the write
// fails, the reply becomes INTERNAL_ERROR (ERR-7): nothing is acknowledged that is not stored.
void server::persist(outcome& o) {
  note_trust_changes(o);
  try {
    commit({});
  } catch (const store_error& e) {
    log_->error("{}", e.what());
    unstored(o, "", "");
  }
}

// Every commit takes everything pending (the handlers' additions too), so that no transaction
// holds part of a request's changes: its nonce or sequence number without its delivery.
void server::commit(state_changes c) {
  c.append(pending_);
  auto j = engine_->replay().take_journal();
  c.nonces.insert(c.nonces.end(), j.begin(), j.end());
  auto done = engine_->reassembly().take_completed();
  c.completed.insert(c.completed.end(), std::make_move_iterator(done.begin()), std::make_move_iterator(done.end()));
  for (const auto& id : engine_->take_changed_sessions()) {
    const auto* s = engine_->find_session(id);
    if (auto snap = s ? s->snapshot() : std::nullopt) c.sessions.push_back(std::move(*snap));
    else c.gone.push_back(id);
  }
  const bool inbox = !c.inbox.empty();
  try {
    store_->apply(c);
  } catch (const store_error&) {
    // The open batch's nonces and sessions were in this transaction: its replies must not claim them.
    if (!batch_.empty()) batch_lost_ = true;
    throw;
  }
  if (inbox) control_->inbox_changed();
  rearm();
}

void server::record(const outcome& o, std::chrono::steady_clock::time_point started) {
  const auto took = std::chrono::steady_clock::now() - started;
  if (o.what != outcome::kind::held) metrics_.request(o.msg_type, o.error, took);
  if (o.error == errc::rate_limited) metrics_.rate_limited();
  for (const auto& a : o.audit) {
    if (a.event == audit_event::handshake_succeeded) metrics_.handshake(true);
    if (a.event == audit_event::handshake_failed) metrics_.handshake(false);
    audit_->info(boost::json::serialize(to_json(a)));
  }
  for (const auto& r : o.released) record(r, started);
}

void server::route(const outcome& o) {
  const auto it = waiting_.find(o.request_nonce);
  if (it == waiting_.end()) return;
  auto w = std::move(it->second);
  waiting_.erase(it);
  w.done(o);
}

// The outcomes of the engine's timers (gap timeouts, expiries) take the path of a request's.
void server::on_poll() {
  const auto started = std::chrono::steady_clock::now();
  auto outs = engine_->poll(system_now());
  for (auto& o : outs) {
    output_faults(o);
    persist(o);
    record(o, started);
    route(o);
  }
  rearm();
  finish_if_drained();
}

}  // namespace peerproto::node
