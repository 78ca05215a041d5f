// §11 ordering within a session direction.
#include "common.hpp"

#include <thread>

namespace peerproto::conformance {
using namespace cases;

namespace {
// Over HTTP a held request occupies its connection; give the node a moment to read it before
// the next request goes out on another connection.
void let_arrive() { std::this_thread::sleep_for(std::chrono::milliseconds(500)); }

std::string at_sequence(context& c, session_state& s, std::uint64_t seq, const json::object& payload = {}) {
  auto m = c.session_header(s, "ping");
  --s.next_out;
  m["sequence_num"] = seq;
  return c.seal(s, m, payload);
}
}  // namespace

void add_ordering_cases(std::vector<test_case>& out) {
  const auto first_case = out.size();
  const std::string g = "ordering";
  out.push_back({"ORD-3/reorder", {"ORD-3", "ORD-2", "ORD-8"}, g,
                 "message 2 before message 1: 2 is held, then both are delivered in order (replies in delivery order)", [](context& c) {
                   auto s = c.handshake(c.fresh());
                   const auto t1 = at_sequence(c, s, 1, {{"n", 1}});
                   const auto t2 = at_sequence(c, s, 2, {{"n", 2}});
                   c.send(t2);
                   let_arrive();
                   const auto r1 = c.exchange(t1);
                   const auto r2 = c.receive();
                   c.expect_reply(r1, t1, "pong", "ORD-2", &s);
                   c.expect_reply(r2, t2, "pong", "ORD-3", &s);
                 }});
  out.push_back({"ORD-4/delivered-duplicate", {"ORD-4"}, g, "a new message with an already delivered sequence number is REPLAY_DETECTED",
                 [](context& c) {
                   auto s = c.handshake(c.fresh());
                   const auto t1 = at_sequence(c, s, 1, {{"n", 1}});
                   c.expect_reply(c.exchange(t1), t1, "pong", "ORD-1", &s);
                   expect_refusal(c, at_sequence(c, s, 1, {{"n", 1}}), errc::replay_detected, "ORD-4");
                 }});
  out.push_back({"ORD-4/held-duplicate", {"ORD-4", "ORD-3"}, g, "a second message with a held sequence number is REPLAY_DETECTED",
                 [](context& c) {
                   auto s = c.handshake(c.fresh());
                   const auto t3 = at_sequence(c, s, 3, {{"n", 3}});
                   c.send(t3);
                   let_arrive();
                   expect_refusal(c, at_sequence(c, s, 3, {{"n", 3}}), errc::replay_detected, "ORD-4");
                   const auto t1 = at_sequence(c, s, 1, {{"n", 1}});
                   const auto t2 = at_sequence(c, s, 2, {{"n", 2}});
                   c.expect_reply(c.exchange(t1), t1, "pong", "ORD-2", &s);
                   c.expect_reply(c.exchange(t2), t2, "pong", "ORD-2", &s);
                   c.expect_reply(c.receive(), t3, "pong", "ORD-3", &s);
                 }});
  out.push_back({"ORD-6/gap-timer-start", {"ORD-6", "ORD-7", "ORD-8"}, g,
                 "the gap timer runs from the earliest held message: a later held one does not restart it; then both numbers are free",
                 [](context& c) {
                   const auto gap = std::chrono::milliseconds(c.node.limit("gap_timeout_ms"));
                   require_time_for(c, "gap_timeout_ms", gap * 2);
                   auto s = c.handshake(c.fresh());
                   const auto t2 = at_sequence(c, s, 2, {{"n", 2}});
                   const auto t3 = at_sequence(c, s, 3, {{"n", 3}});
                   const auto start = std::chrono::steady_clock::now();
                   c.send(t2);
                   std::this_thread::sleep_for(gap / 2);
                   c.send(t3);
                   auto first = c.receive();
                   const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
                   auto second = c.receive();
                   // Over WebSocket the two answers may come in either order (WS-2, MSG-2).
                   const std::string nonce2(parse_object(t2).at("nonce").as_string());
                   if (first.body.find(nonce2) == std::string::npos) std::swap(first, second);
                   c.expect_error(first, t2, errc::sequence_error, "ORD-6");
                   c.expect_error(second, t3, errc::sequence_error, "ORD-6");
                   // G from the first held message, not from the second (that would be 1.5 G).
                   c.check(took < gap + gap / 4, "ORD-6", "SEQUENCE_ERROR about gap_timeout_ms (" + std::to_string(gap.count()) +
                           " ms) after the first held message", std::to_string(took.count()) + " ms");
                   // ORD-7: failed, not delivered: 1, 2 and 3 are all accepted now.
                   const auto t1 = at_sequence(c, s, 1, {{"n", 1}});
                   c.expect_reply(c.exchange(t1), t1, "pong", "ORD-7", &s);
                   c.expect_reply(c.exchange(t2), t2, "pong", "ORD-7", &s);
                   c.expect_reply(c.exchange(t3), t3, "pong", "ORD-7", &s);
                 },
                 std::chrono::seconds(40)});
  out.push_back({"ORD-5/beyond-window", {"ORD-5"}, g, "sequence number next + W is SEQUENCE_ERROR", [](context& c) {
                   const auto window = static_cast<std::uint64_t>(c.node.limit("reorder_window"));
                   auto s = c.handshake(c.fresh());
                   expect_refusal(c, at_sequence(c, s, 1 + window), errc::sequence_error, "ORD-5");
                 }});
  out.push_back({"ORD-5/last-in-window", {"ORD-5", "ORD-3", "ORD-9"}, g, "sequence number next + W - 1 is held, next + W is refused",
                 [](context& c) {
                   const auto window = static_cast<std::uint64_t>(c.node.limit("reorder_window"));
                   const auto gap = std::chrono::milliseconds(c.node.limit("gap_timeout_ms"));
                   require_time_for(c, "gap_timeout_ms", gap * 2);
                   auto s = c.handshake(c.fresh());
                   const auto last = at_sequence(c, s, window, {{"n", {}}});
                   const auto sent = std::chrono::steady_clock::now();
                   c.send(last);
                   let_arrive();
                   expect_refusal(c, at_sequence(c, s, window + 1), errc::sequence_error, "ORD-5");
                   c.note("the message at next + W - 1 is held; it fails after the gap timeout");
                   const auto answer = c.receive();
                   const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - sent);
                   c.expect_error(answer, last, errc::sequence_error, "ORD-6");
                   // Refused at once, it was taken as outside the window: a node that applies a
                   // smaller window than it advertises (or W - 1) answers like this.
                   c.check(took >= gap - gap / 4, "ORD-5", "next + W - 1 held until the gap timeout (" + std::to_string(gap.count()) + " ms)",
                           "its SEQUENCE_ERROR after " + std::to_string(took.count()) + " ms");
                 },
                 std::chrono::seconds(30)});
  out.push_back({"ORD-6/gap-timeout", {"ORD-6", "ORD-7", "ORD-8"}, g,
                 "a held message fails with SEQUENCE_ERROR after the gap timeout; then its retransmission is accepted", [](context& c) {
                   auto s = c.handshake(c.fresh());
                   const auto t2 = at_sequence(c, s, 2, {{"n", 2}});
                   c.send(t2);
                   c.expect_error(c.receive(), t2, errc::sequence_error, "ORD-6");
                   const auto t1 = at_sequence(c, s, 1, {{"n", 1}});
                   c.expect_reply(c.exchange(t1), t1, "pong", "ORD-6", &s);
                   c.expect_reply(c.exchange(t2), t2, "pong", "ORD-7", &s);  // the same bytes again (ENC-4)
                 },
                 std::chrono::seconds(30)});
  declare_needs(out, first_case, need::session);
}

}  // namespace peerproto::conformance
