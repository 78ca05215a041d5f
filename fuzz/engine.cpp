// The composing core, driven through everything that follows a handshake. The harness plays the
// initiator (alice) and, in fuzzing mode (crypto.hpp), signs and seals every message it makes, so
// the input reaches what random bytes cannot: ordering, dispatch, reassembly, session close and
// the timers of the responder (bob). The input is a program of operations: open a session; send
// a session or sessionless message (type and payload from the input); seal a raw plaintext, not
// necessarily JSON, under a chosen sequence number; split a payload into chunks and alter some;
// deliver any in-flight message (reordering), deliver a copy of an old one, drop or corrupt one;
// step the clock, to the node's next deadline or by any amount; refuse a request at the
// transport; restart the node from the sessions it stored. Its first byte picks the configuration: the default limits or small ones that the
// input can reach (a short window and gap timer, few messages per session, small transfers),
// sealed 1.1 sessions or signed 1.0 ones, and whether the node requires encryption.
//
// Oracles: no INTERNAL_ERROR; every reply is an envelope from bob; every session message reaches
// a handler at most once and in increasing sequence order (ORD-1, ORD-2), across restarts too;
// sessions stay within their limit. Replay mode prints what the inputs reached, and ctest requires every count above
// zero from the committed seeds.
#include <peerproto/engine.hpp>

#include <peerproto/testing/input_stream.hpp>
#include <peerproto/testing/two_nodes.hpp>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>

namespace {
using namespace peerproto;
using namespace std::chrono_literals;

struct counts {
  std::size_t delivered = 0, transfers = 0, closed = 0, expired = 0, gap_timeouts = 0, replies = 0, restarts = 0;
} reached;

constexpr std::array<std::string_view, 8> types{"ping", "heartbeat", "task_delegate", "session_close",
                                                "no_such_type", "pong", "chunk", "error"};

// The first byte: bit 0 small limits, bit 1 a 1.0-only initiator (signed sessions), bit 2 a
// responder that requires encryption.
testing::pair_of_nodes::options_pair limits_for(std::uint8_t profile) {
  auto o = testing::pair_of_nodes::default_options();
  if (profile & 2) {
    o.first.versions = {std::string(version_1_0)};
    o.first.suites.clear();
  }
  o.second.require_encryption = (profile & 4) != 0;
  if (profile & 1) {
    auto& bob = o.second;
    bob.session.max_messages = 12;
    bob.session.idle_ttl = 20s;
    bob.session.lifetime = 60s;
    bob.session.ordering = {4, 2s};
    bob.chunks.max_chunks = 8;
    bob.chunks.max_transfer_bytes = 4096;
    bob.chunks.max_total_bytes = 8192;
    bob.chunks.max_transfers_per_peer = 2;
    bob.chunks.idle_timeout = 5s;
    bob.terminal_retention = 10s;
    bob.handshake_timeout = 3s;
  }
  return o;
}

boost::json::object payload_from(testing::input_stream& in) {
  const auto text = in.bytes(256);
  if (text.empty()) return {};
  if (auto v = jcs::parse_strict(text); v && v->is_object()) return std::move(v->get_object());
  return {{"task", hex_encode(as_bytes(text))}};
}

class harness {
 public:
  explicit harness(std::uint8_t profile) : n_(limits_for(profile)) {
    // Every handler reports what reaches it, so the exactly-once and order oracles see each call.
    for (const auto& type : n_.handlers.types()) {
      handler inner = *n_.handlers.find(type);
      (void)n_.handlers.remove(type);
      (void)n_.handlers.add(type, [this, inner](const handler_request& r) {
        observe(r);
        return inner(r);
      });
    }
  }

  void run(testing::input_stream& in) {
    open_session();
    while (!in.empty()) step(in);
  }

 private:
  void step(testing::input_stream& in) {
    switch (in.byte() % 15) {
      case 0: open_session(); break;
      case 1:
        if (const auto s = pick(in)) {
          const auto type = types[in.byte() % types.size()];
          if (auto m = n_.alice.send(*s, type, payload_from(in), n_.now)) in_flight_.push_back(*m);
        }
        break;
      case 2: seal_raw(in); break;
      case 3: send_chunked(in); break;
      case 4:
        if (!in_flight_.empty()) deliver(take(in_flight_, in.byte()));
        break;
      case 5:
        while (!in_flight_.empty()) deliver(take(in_flight_, 0));
        break;
      case 6:
        if (!old_.empty()) deliver(old_[in.byte() % old_.size()]);  // a replay
        break;
      case 7:
        if (!in_flight_.empty()) (void)take(in_flight_, in.byte());  // a loss
        break;
      case 8: {
        constexpr std::array<std::chrono::milliseconds, 4> scale{1ms, 100ms, 1s, 60s};
        const auto count = in.byte();
        tick(count * scale[in.byte() % scale.size()]);
        break;
      }
      case 9: {
        const auto type = types[in.byte() % types.size()];
        deliver(n_.alice.send_sessionless("bob", type, payload_from(in), n_.now));
        break;
      }
      case 10: deliver(in.bytes(1024)); break;
      case 11:
        if (const auto when = bob_->next_deadline()) tick(std::max(std::chrono::milliseconds(0), *when - n_.now));
        break;
      case 12: {  // a request the transport refused (ERR-3, ERR-4): the reply names what it can read
        const auto o = bob_->refuse({errc::payload_too_large, "too large"}, in_flight_.empty() ? "" : in_flight_.front(),
                                     "127.0.0.1:9", n_.now);
        if (o.error != errc::payload_too_large) std::abort();
        check(o);
        break;
      }
      case 13: restart(); break;
      default:
        if (!in_flight_.empty()) {
          auto m = take(in_flight_, in.byte());
          if (!m.empty()) {
            const auto at = in.u16() % m.size();
            m[at] = static_cast<char>(m[at] ^ (1 | in.byte()));
          }
          deliver(m);
        }
        break;
    }
  }

  void open_session() {
    if (sessions_.size() < 4)
      if (const auto id = n_.handshake(*bob_)) sessions_.push_back(*id);
    persist();
  }

  // What a node stores after each step (SES-13): the ready sessions, by snapshot.
  void persist() {
    for (const auto& id : bob_->take_changed_sessions()) {
      const session* s = bob_->find_session(id);
      if (auto snap = s ? s->snapshot() : std::nullopt) stored_[id] = *snap;
      else stored_.erase(id);
    }
  }

  // The node restarts from what it stored: held messages are lost (their senders retransmit), and
  // nothing delivered before is delivered again (the oracle in observe() spans restarts).
  void restart() {
    persist();
    bob_ = make_bob(++reached.restarts);
    for (const auto& [id, snap] : stored_)
      if (!bob_->restore_session(snap)) std::abort();
  }

  std::unique_ptr<engine> make_bob(std::size_t generation) {
    return std::make_unique<engine>(n_.bob.options(), n_.bob_key, n_.bob_trust, n_.handlers,
                                    testing::counter_random(100 + generation));
  }

  std::optional<uuid> pick(testing::input_stream& in) {
    if (sessions_.empty()) return std::nullopt;
    return sessions_[in.byte() % sessions_.size()];
  }

  static std::string take(std::vector<std::string>& v, std::size_t i) {
    i %= v.size();
    std::string m = std::move(v[i]);
    v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
    return m;
  }

  // A plaintext of the input's choosing, sealed with alice's sending key under a sequence number
  // near the next one (or anywhere), so bob's opening, ENC-6 and ordering see it authenticated.
  void seal_raw(testing::input_stream& in) {
    const auto id = pick(in);
    const session* s = id ? n_.alice.find_session(*id) : nullptr;
    const auto snap = s ? s->snapshot() : std::nullopt;
    if (!snap) return;
    auto e = make_header(snap->version, types[in.byte() % types.size()], "alice", "bob", n_.now, rng_);
    e.session_id = snap->id;
    const auto offset = in.byte();
    e.sequence_num = offset == 255 ? in.u16() : snap->next_send + offset % 3;
    const auto plaintext = in.bytes(512);
    if (snap->version == version_1_1) {
      if (!seal_text(e, snap->send_key.view(), plaintext)) in_flight_.push_back(serialize(e));
    } else if (auto v = jcs::parse_strict(plaintext); v && v->is_object()) {  // 1.0: a signed payload
      e.payload = std::move(v->get_object());
      sign(e, n_.alice_key);
      in_flight_.push_back(serialize(e));
    }
  }

  // A payload split by alice, in a session or sessionless; the input may alter one chunk.
  void send_chunked(testing::input_stream& in) {
    const auto id = in.byte() % 4 == 0 ? std::nullopt : pick(in);
    const std::string_view type = types[in.byte() % 3];
    const std::size_t size = in.u16() % 1500;
    boost::json::object payload{{"task", std::string(size, 'x')}};
    auto chunks = n_.alice.chunk_payloads(type, payload, 16 + size / (1 + in.byte() % 8));  // 1 to 9 chunks
    if (!chunks) return;
    const auto altered = in.byte();
    for (std::size_t i = 0; i < chunks->size(); ++i) {
      auto& c = (*chunks)[i];
      if (i == altered % chunks->size()) {
        switch (altered / 32) {
          case 0: continue;  // left out
          case 1: c["index"] = in.u16(); break;
          case 2: c["total"] = in.byte(); break;
          case 3: c["data"] = hex_encode(as_bytes(in.bytes(64))); break;
          case 4: c["original_msg_type"] = types[in.byte() % types.size()]; break;
          default: break;
        }
      }
      if (id) {
        if (auto m = n_.alice.send(*id, "chunk", c, n_.now)) in_flight_.push_back(*m);
      } else {
        in_flight_.push_back(n_.alice.send_sessionless("bob", "chunk", c, n_.now));
      }
    }
  }

  void tick(std::chrono::milliseconds d) {
    n_.now += d;
    for (const auto& o : bob_->poll(n_.now)) {
      if (o.error == errc::sequence_error) ++reached.gap_timeouts;  // ORD-6
      check(o);
    }
    persist();
    (void)n_.alice.poll(n_.now);
  }

  void deliver(const std::string& msg) {
    if (msg.empty()) return;
    const auto o = bob_->handle(msg, "127.0.0.1:9", n_.now);
    check(o);
    for (const auto& r : o.released) check(r);
    persist();
    if (old_.size() < 32) old_.push_back(msg);
    else old_[msg.size() % old_.size()] = msg;
    if (bob_->session_count() > bob_->options().max_sessions_total) std::abort();
  }

  // Checks one of bob's outcomes and hands its reply to alice, as the transport would.
  void check(const outcome& o) {
    if (o.error == errc::internal_error) std::abort();  // no 5xx for any input
    for (const auto& a : o.audit) {
      if (a.event == audit_event::session_closed) ++reached.closed;
      if (a.event == audit_event::session_expired) ++reached.expired;
    }
    if (!o.sends_envelope(true)) return;
    const auto e = parse_envelope(o.reply);
    if (!e || e->sender_id != "bob" || e->recipient_id.empty()) std::abort();
    if (auto r = n_.alice.accept_reply(o.reply, n_.now)) reached.replies += r->size();
  }

  // ORD-1, ORD-2 and exactly-once: per session, sequence numbers reach handlers strictly rising.
  void observe(const handler_request& r) {
    ++reached.delivered;
    if (r.request.msg_type == "chunk") ++reached.transfers;
    if (!r.request.session_id) return;
    auto& last = last_delivered_[*r.request.session_id];
    if (*r.request.sequence_num <= last) std::abort();
    last = *r.request.sequence_num;
  }

  testing::pair_of_nodes n_;  // alice, keys, trust stores and handlers; bob below replaces n_.bob
  std::unique_ptr<engine> bob_ = make_bob(0);
  std::map<uuid, session_snapshot> stored_;
  random_source rng_ = testing::counter_random(99);
  std::vector<uuid> sessions_;
  std::vector<std::string> in_flight_;  // alice → bob, not yet delivered
  std::vector<std::string> old_;        // delivered, for replays
  std::map<uuid, std::uint64_t> last_delivered_;
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  testing::input_stream in(data, size);
  harness h(in.byte());
  h.run(in);
  return 0;
}

extern "C" void peerproto_fuzz_summary() {
  std::printf("delivered: %zu, transfers completed: %zu, sessions closed: %zu, sessions expired: %zu, "
              "gaps timed out: %zu, replies accepted: %zu, restarts: %zu\n",
              reached.delivered, reached.transfers, reached.closed, reached.expired, reached.gap_timeouts,
              reached.replies, reached.restarts);
}
