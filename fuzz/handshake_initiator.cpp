// The initiator's side, driven statefully: the harness plays a genuine responder (bob), and the
// input chooses what the initiator (alice) receives: genuine handshake_acks and session replies,
// mutated ones, stale ones, raw bytes, and clock steps. Oracles: alice's session becomes ready
// only from a genuine handshake_ack; a rejected reply leaves the session usable. Replay mode
// reports how many sessions reached `ready`.
#include <peerproto/engine.hpp>

#include <peerproto/testing/input_stream.hpp>
#include <peerproto/testing/two_nodes.hpp>

#include <cstdio>
#include <cstdlib>

namespace {
std::size_t ready_reached = 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  peerproto::testing::input_stream in(data, size);
  peerproto::testing::pair_of_nodes n;
  std::string from_bob, genuine_from_bob;
  std::vector<peerproto::uuid> ready;
  while (!in.empty()) {
    switch (in.byte() % 7) {
      case 0: {  // a full genuine first half: alice's hello reaches bob
        const auto o = n.bob.handle(n.alice.begin_handshake("bob", n.now), "a", n.now);
        from_bob = genuine_from_bob = o.reply;
        break;
      }
      case 1: {  // alice receives what bob sent last (maybe mutated), and bob gets the confirm
        if (auto m3 = n.alice.finish_handshake(from_bob, n.now)) {
          const auto o = n.bob.handle(*m3, "a", n.now);
          from_bob = genuine_from_bob = o.reply;
        }
        break;
      }
      case 2: {
        if (auto r = n.alice.accept_reply(from_bob, n.now); r && !r->empty() && r->front().reply.session_id) {
          const auto sid = *r->front().reply.session_id;
          const auto* s = n.alice.find_session(sid);
          if (!s || s->state() != peerproto::session_state::ready) std::abort();
          ready.push_back(sid);
          ++ready_reached;
        }
        break;
      }
      case 3:
        if (!from_bob.empty()) {
          const auto pos = in.u16() % from_bob.size();
          from_bob[pos] = static_cast<char>(from_bob[pos] ^ (1 | in.byte()));
        }
        break;
      case 4:
        if (!ready.empty()) {
          const auto& id = ready[in.byte() % ready.size()];
          if (auto m = n.alice.send(id, "ping", {{"i", in.byte()}}, n.now)) {
            const auto o = n.bob.handle(*m, "a", n.now);
            from_bob = genuine_from_bob = o.reply;
          }
        }
        break;
      case 5: from_bob = in.bytes(2048); break;
      default: n.now += std::chrono::milliseconds(in.u16() * 10); n.alice.poll(n.now); break;
    }
  }
  return 0;
}

extern "C" void peerproto_fuzz_summary() { std::printf("reached ready: %zu\n", ready_reached); }
