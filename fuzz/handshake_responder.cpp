// The responder's handshake and sessions, driven statefully. The harness plays a genuine
// initiator (alice) with deterministic randomness, so it can produce correctly signed and sealed
// messages; the input chooses what reaches the responder (bob): genuine messages, mutated ones,
// replays, raw bytes, and clock steps. Oracles: bob never answers with a 5xx status; each reply
// is an envelope signed by bob or sealed in a session; a session becomes ready only after a
// genuine confirmation. Replay mode reports how many sessions reached `ready`.
#include <peerproto/engine.hpp>

#include <peerproto/testing/input_stream.hpp>
#include <peerproto/testing/two_nodes.hpp>

#include <cstdio>
#include <cstdlib>

namespace {
std::size_t ready_reached = 0;

void check_reply(const peerproto::outcome& o, const peerproto::testing::pair_of_nodes& n) {
  if (o.error == peerproto::errc::internal_error) std::abort();  // no 5xx for any input
  if (!o.sends_envelope(true)) return;
  const auto e = peerproto::parse_envelope(o.reply);
  if (!e || e->sender_id != "bob") std::abort();
  if (!e->is_sealed_session_message() && !peerproto::verify_signature(*e, n.bob_key.public_key_bytes())) std::abort();
}

std::string mutate(std::string text, peerproto::testing::input_stream& in) {
  if (text.empty()) return text;
  const auto pos = in.u16() % text.size();
  text[pos] = static_cast<char>(text[pos] ^ (1 | in.byte()));
  return text;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace std::chrono_literals;
  peerproto::testing::input_stream in(data, size);
  peerproto::testing::pair_of_nodes n;
  std::string last_to_bob, last_from_bob;
  std::vector<peerproto::uuid> sessions;
  while (!in.empty()) {
    std::string msg;
    switch (in.byte() % 8) {
      case 0: msg = n.alice.begin_handshake("bob", n.now); break;
      case 1:  // alice answers bob's last handshake_ack
        if (auto m3 = n.alice.finish_handshake(last_from_bob, n.now)) msg = *m3;
        break;
      case 2:  // alice accepts bob's last reply, proving a session
        if (auto r = n.alice.accept_reply(last_from_bob, n.now); r && !r->empty() && r->front().reply.session_id)
          sessions.push_back(*r->front().reply.session_id);
        continue;
      case 3:
        if (!sessions.empty()) {
          const auto& id = sessions[in.byte() % sessions.size()];
          const auto* type = in.byte() & 1 ? "ping" : "session_close";
          if (auto m = n.alice.send(id, type, {{"i", in.byte()}}, n.now)) msg = *m;
        }
        break;
      case 4: msg = mutate(last_to_bob, in); break;
      case 5: msg = last_to_bob; break;  // replay
      case 6: msg = in.bytes(2048); break;
      default:
        n.now += std::chrono::milliseconds(in.u16() * 10);
        for (const auto& o : n.bob.poll(n.now)) check_reply(o, n);
        continue;
    }
    if (msg.empty()) continue;
    const auto o = n.bob.handle(msg, "127.0.0.1:9", n.now);
    check_reply(o, n);
    for (const auto& r : o.released) check_reply(r, n);
    last_to_bob = msg;
    if (o.sends_envelope(true)) last_from_bob = o.reply;
    if (!o.error && msg.find("handshake_confirm") != std::string::npos) ++ready_reached;
  }
  return 0;
}

extern "C" void peerproto_fuzz_summary() { std::printf("reached ready: %zu\n", ready_reached); }
