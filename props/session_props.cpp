#include <peerproto/session.hpp>

#include <peerproto/testing/two_nodes.hpp>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <map>
#include <set>

// A state-machine model of the handshake and sessions between an initiator (alice) and a
// responder (bob): random command sequences start handshakes, deliver, drop, duplicate, reorder
// and tamper with messages in flight, advance time and send session traffic. After each command:
// - nothing answers with a 5xx status;
// - a tampered message is rejected and changes no session state on the receiving side;
// - a genuine message is never rejected as an authentication failure, in either direction, so
//   both sides derived the same keys;
// - bob's sessions reach `ready` only through a genuine handshake_confirm;
// - a session idle for the idle TTL is no longer ready once the clock has been polled.

namespace pp = peerproto;
using namespace std::chrono_literals;

namespace {

struct message {
  std::string text;
  bool genuine;
};

struct world {
  pp::testing::pair_of_nodes n;
  std::vector<message> to_bob, to_alice;
  std::set<pp::uuid> known, confirmed_genuinely;
  std::map<pp::uuid, pp::sys_milliseconds> last_activity;
  std::set<std::string> forged_acks;  ///< in_reply_to of acks altered on the way (HS-28: the first ack decides)

  // The in_reply_to of a handshake_ack's text, read leniently (an altered text may still have one).
  static std::string in_reply_to(const std::string& text) {
    boost::system::error_code ec;
    const auto v = boost::json::parse(text, ec);
    const auto* p = !ec && v.is_object() ? v.as_object().if_contains("payload") : nullptr;
    const auto* r = p && p->is_object() ? p->as_object().if_contains("in_reply_to") : nullptr;
    return r && r->is_string() ? std::string(r->as_string()) : std::string();
  }

  std::map<pp::uuid, pp::session_state> bob_states() const {
    std::map<pp::uuid, pp::session_state> out;
    for (const auto& id : known)
      if (const auto* s = n.bob.find_session(id)) out[id] = s->state();
    return out;
  }
  void learn(const std::string& reply_text) {
    const auto e = pp::parse_envelope(reply_text);
    if (!e) return;
    if (e->session_id) known.insert(*e->session_id);
    if (e->msg_type == "handshake_ack")
      if (auto a = pp::parse_hello_ack(*e->payload)) known.insert(a->session_id);
  }
};

struct model {};  // the checks are invariants of the system, so the model carries no state
using command = rc::state::Command<model, world>;

bool authentication_failure(pp::errc c) {
  return c == pp::errc::invalid_signature || c == pp::errc::decryption_failed || c == pp::errc::challenge_invalid ||
         c == pp::errc::unknown_sender;
}

// A delivery: which queued message, and whether (and where) it is tampered with in flight.
struct delivery {
  std::size_t index = *rc::gen::arbitrary<std::size_t>();
  bool tamper = *rc::gen::weightedOneOf<bool>({{4, rc::gen::just(false)}, {1, rc::gen::just(true)}});
  std::size_t pos = *rc::gen::arbitrary<std::size_t>();
  std::uint8_t bits = *rc::gen::arbitrary<std::uint8_t>();

  // Removes the chosen message from `q` and returns it as it arrives; nothing if `q` is empty.
  std::optional<message> take(std::vector<message>& q) const {
    if (q.empty()) return std::nullopt;
    const auto i = index % q.size();
    message m = q[i];
    q.erase(q.begin() + static_cast<std::ptrdiff_t>(i));
    if (tamper && !m.text.empty()) {
      m.text[pos % m.text.size()] = static_cast<char>(m.text[pos % m.text.size()] ^ (bits | 1));
      m.genuine = false;
    }
    return m;
  }
};

struct start : command {
  void run(const model&, world& w) const override { w.to_bob.push_back({w.n.alice.begin_handshake("bob", w.n.now), true}); }
  void show(std::ostream& os) const override { os << "start"; }
};

struct deliver_to_bob : command {
  delivery d;

  void run(const model&, world& w) const override {
    const auto taken = d.take(w.to_bob);
    if (!taken) return;
    const message& m = *taken;
    const auto before = w.bob_states();
    const auto o = w.n.bob.handle(m.text, "127.0.0.1:1", w.n.now);
    RC_ASSERT(o.error != pp::errc::internal_error);
    if (!m.genuine) {
      RC_ASSERT(o.error.has_value());
      RC_ASSERT(w.bob_states() == before);
      return;
    }
    if (o.error) RC_ASSERT(!authentication_failure(*o.error));
    const auto e = pp::parse_envelope(m.text);
    if (!o.error && e->msg_type == "handshake_confirm")
      w.confirmed_genuinely.insert(*pp::parse_uuid_v4(e->payload->at("session_id").as_string()));
    if (!o.error && e->session_id) w.last_activity[*e->session_id] = w.n.now;
    for (const auto* r : {&o}) {
      if (r->sends_envelope(true)) {
        w.learn(r->reply);
        w.to_alice.push_back({r->reply, true});
      }
    }
    for (const auto& r : o.released) w.to_alice.push_back({r.reply, true});
    for (const auto& [id, state] : w.bob_states())
      if (state == pp::session_state::ready) RC_ASSERT(w.confirmed_genuinely.contains(id));
  }
  void show(std::ostream& os) const override { os << "deliver_to_bob " << d.index << (d.tamper ? " tampered" : ""); }
};

struct deliver_to_alice : command {
  delivery d;

  void run(const model&, world& w) const override {
    const auto taken = d.take(w.to_alice);
    if (!taken) return;
    const message& m = *taken;
    const bool is_ack = m.text.find("\"msg_type\":\"handshake_ack\"") != std::string::npos;
    if (is_ack) {
      const auto sessions_before = w.n.alice.session_count();
      const auto m3 = w.n.alice.finish_handshake(m.text, w.n.now);
      if (!m.genuine) {
        RC_ASSERT(!m3.ok());
        RC_ASSERT(w.n.alice.session_count() == sessions_before);
        w.forged_acks.insert(world::in_reply_to(m.text));
        return;
      }
      if (m3) w.to_bob.push_back({*m3, true});
      // A forged ack that reached its handshake first failed it (HS-28); otherwise a genuine ack
      // never fails authentication.
      else if (!w.forged_acks.contains(world::in_reply_to(m.text))) RC_ASSERT(!authentication_failure(m3.code()));
      return;
    }
    const auto r = w.n.alice.accept_reply(m.text, w.n.now);
    if (!m.genuine) {
      RC_ASSERT(!r.ok());
      return;
    }
    // A genuine reply is never an authentication failure, except that an error sent before any
    // handshake completed cannot be verified yet: alice does not know bob's key.
    if (!r && !(r.code() == pp::errc::unknown_sender && !w.n.alice_trust.key_for("bob")))
      RC_ASSERT(!authentication_failure(r.code()));
  }
  void show(std::ostream& os) const override { os << "deliver_to_alice " << d.index << (d.tamper ? " tampered" : ""); }
};

struct drop : command {
  std::size_t index = *rc::gen::arbitrary<std::size_t>();
  bool towards_bob = *rc::gen::arbitrary<bool>();
  void run(const model&, world& w) const override {
    auto& q = towards_bob ? w.to_bob : w.to_alice;
    if (!q.empty()) q.erase(q.begin() + static_cast<std::ptrdiff_t>(index % q.size()));
  }
  void show(std::ostream& os) const override { os << "drop"; }
};

struct duplicate : command {
  std::size_t index = *rc::gen::arbitrary<std::size_t>();
  bool towards_bob = *rc::gen::arbitrary<bool>();
  void run(const model&, world& w) const override {
    auto& q = towards_bob ? w.to_bob : w.to_alice;
    if (!q.empty()) q.push_back(q[index % q.size()]);  // also a reordering: the copy goes last
  }
  void show(std::ostream& os) const override { os << "duplicate"; }
};

struct send_ping : command {
  std::size_t index = *rc::gen::arbitrary<std::size_t>();
  void run(const model&, world& w) const override {
    std::vector<pp::uuid> ready;
    for (const auto& id : w.known)
      if (const auto* s = w.n.alice.find_session(id); s && s->state() == pp::session_state::ready) ready.push_back(id);
    if (ready.empty()) return;
    if (auto m = w.n.alice.send(ready[index % ready.size()], "ping", {{"n", static_cast<std::uint64_t>(index % 1000)}}, w.n.now))
      w.to_bob.push_back({*m, true});
  }
  void show(std::ostream& os) const override { os << "send_ping"; }
};

struct advance : command {
  std::chrono::milliseconds step{*rc::gen::weightedOneOf<std::int64_t>(
      {{6, rc::gen::inRange<std::int64_t>(0, 10'000)}, {1, rc::gen::inRange<std::int64_t>(0, 2'000'000)}})};
  void run(const model&, world& w) const override {
    w.n.now += step;
    for (const auto& o : w.n.bob.poll(w.n.now)) RC_ASSERT(o.error != pp::errc::internal_error);
    (void)w.n.alice.poll(w.n.now);
    for (const auto& [id, state] : w.bob_states()) {
      if (state != pp::session_state::ready) continue;
      const auto it = w.last_activity.find(id);
      if (it != w.last_activity.end()) RC_ASSERT(w.n.now - it->second < pp::limits::session_idle_ttl);  // SES-4
    }
  }
  void show(std::ostream& os) const override { os << "advance " << step.count() << "ms"; }
};

}  // namespace

RC_GTEST_PROP(SessionModel, RandomExchangesKeepTheInvariants, ()) {
  world w;
  rc::state::check(model{}, w,
                   rc::state::gen::execOneOfWithArgs<start, deliver_to_bob, deliver_to_bob, deliver_to_alice,
                                                     deliver_to_alice, drop, duplicate, send_ping, advance>());
}
