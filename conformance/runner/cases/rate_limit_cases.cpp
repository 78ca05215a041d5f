// §13 rate limiting and back-off.
#include "common.hpp"

#include <thread>

namespace peerproto::conformance {
using namespace cases;

namespace {
bool is_rate_limited(const reply& r) { return r.body.find("\"RATE_LIMITED\"") != std::string::npos; }
// Tokens a bucket of `per_minute` has regained since `start` (a slow run earns more).
std::int64_t refilled(std::int64_t per_minute, std::chrono::steady_clock::time_point start) {
  const auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<std::int64_t>(elapsed * static_cast<double>(per_minute) / 60.0) + 1;
}

// A ping from `who` whose payload changed after signing: INVALID_SIGNATURE, one back-off failure.
std::string badly_signed_ping(context& c, const identity& who, std::int64_t i) {
  auto o = c.header(who, "ping", {{"i", i}});
  c.sign(o, who);
  o["payload"] = json::object{{"i", -1}};
  return canonical(o);
}

int retry_after_of(const reply& r) { return static_cast<int>(json::parse(r.body).at("payload").at("retry_after").as_int64()); }
}  // namespace

void add_rate_limit_cases(std::vector<test_case>& out) {
  const auto first_case = out.size();
  const std::string g = "rate-limit";
  out.push_back({"RL-2/heartbeat-burst", {"RL-2", "RL-7", "ORD-7"}, g,
                 "heartbeats beyond the class burst are RATE_LIMITED with retry_after; after that wait the message passes",
                 [](context& c) {
                   c.require_type("heartbeat");
                   const auto burst = c.node.limit("heartbeat_burst");
                   const auto rate = c.node.limit("heartbeat_rate_per_minute");
                   auto s = c.handshake(c.fresh());
                   const auto start = std::chrono::steady_clock::now();
                   for (std::int64_t sent = 0;; ++sent) {
                     const auto text = c.session_message(s, "heartbeat", {{"i", sent}});
                     const auto r = c.exchange(text);
                     if (!is_rate_limited(r)) {
                       c.expect_reply(r, text, "ack", "RL-2", &s);
                       const auto allowed = burst + refilled(rate, start) + 2;
                       c.check(sent < allowed, "RL-2", "RATE_LIMITED after at most " + std::to_string(allowed) + " heartbeats",
                               std::to_string(sent + 1) + " accepted");
                       continue;
                     }
                     c.expect_error(r, text, errc::rate_limited, "RL-2");
                     c.check(sent + 2 >= burst, "RL-2", "at least the burst (" + std::to_string(burst) + ") accepted first",
                             std::to_string(sent) + " accepted");
                     const auto wait = retry_after_of(r);
                     c.note("waiting retry_after = " + std::to_string(wait) + " s");
                     std::this_thread::sleep_for(std::chrono::seconds(wait));
                     // ORD-7: the refused message was not delivered, so its sequence number is free.
                     --s.next_out;
                     const auto again = c.session_message(s, "heartbeat", {{"i", sent}});
                     c.expect_reply(c.exchange(again), again, "ack", "RL-7", &s);
                     return;
                   }
                 },
                 std::chrono::seconds(40)});
  out.push_back({"RL-4/backoff", {"RL-4", "RL-5", "RL-7"}, g,
                 "after the back-off threshold of signature failures, even a valid message is RATE_LIMITED until the block ends",
                 [](context& c) {
                   const auto threshold = c.node.limit("backoff_threshold");
                   if (threshold > 50) c.skip("the node's back-off threshold is above 50");
                   const auto& who = c.bound();
                   for (std::int64_t i = 0; i < threshold; ++i)
                     expect_refusal(c, badly_signed_ping(c, who, i), errc::invalid_signature, "RL-4");
                   auto o = c.header(who, "ping");
                   const auto valid = c.sign(o, who);
                   const auto r = c.exchange(valid);
                   c.expect_error(r, valid, errc::rate_limited, "RL-5");
                   std::this_thread::sleep_for(std::chrono::seconds(retry_after_of(r)));
                   auto n = c.header(who, "ping");
                   const auto later = c.sign(n, who);
                   c.expect_reply(c.exchange(later), later, "pong", "RL-7");
                 }});
  out.push_back({"RL-4/per-address", {"RL-4", "RL-5"}, g,
                 "authentication failures from one address, each claiming another sender, block that address for every sender",
                 [](context& c) {
                   const auto threshold = c.node.limit("backoff_threshold");
                   if (threshold > 50) c.skip("the node's back-off threshold is above 50");
                   std::vector<const identity*> senders;  // bound first: a blocked address cannot handshake
                   for (std::int64_t i = 0; i <= threshold; ++i) senders.push_back(&c.bound());
                   for (std::int64_t i = 0; i < threshold; ++i)
                     expect_refusal(c, badly_signed_ping(c, *senders[static_cast<std::size_t>(i)], i), errc::invalid_signature, "RL-4");
                   const auto& clean = *senders.back();  // no failure of its own
                   auto o = c.header(clean, "ping");
                   const auto valid = c.sign(o, clean);
                   c.expect_error(c.exchange(valid), valid, errc::rate_limited, "RL-4");
                 }});
  out.push_back({"RL-4/per-sender", {"RL-4", "RL-5"}, g,
                 "authentication failures claiming one sender from many addresses block that sender everywhere", [](context& c) {
                   const auto threshold = c.node.limit("backoff_threshold");
                   if (threshold > 50) c.skip("the node's back-off threshold is above 50");
                   if (c.cfg.source_addresses.size() < static_cast<std::size_t>(threshold) + 2)
                     c.skip("needs backoff_threshold + 2 local source addresses (--source-addresses), one failure each");
                   const auto& who = c.bound();
                   // One failure per address, so that no address reaches the threshold by itself.
                   const auto source = [&](std::int64_t i) {
                     const auto& all = c.cfg.source_addresses;
                     return all[(c.source_index() + 1 + static_cast<std::size_t>(i)) % all.size()];
                   };
                   for (std::int64_t i = 0; i < threshold; ++i) {
                     const auto text = badly_signed_ping(c, who, i);
                     c.expect_error(c.exchange_from(source(i), text), text, errc::invalid_signature, "RL-4");
                   }
                   auto o = c.header(who, "ping");
                   const auto valid = c.sign(o, who);
                   c.expect_error(c.exchange_from(source(threshold), valid), valid, errc::rate_limited, "RL-4");
                 }});
  out.push_back({"RL-1/pre-auth-bucket", {"RL-1", "PROC-2"}, g,
                 "messages from one address beyond the pre-authentication burst are RATE_LIMITED before any other check",
                 [](context& c) {
                   const auto burst = c.node.limit("pre_auth_burst");
                   if (burst > 5000) c.skip("the node's pre-authentication burst is above 5000");
                   // Stale timestamps fail at PROC-3, after the bucket, without counting as
                   // authentication failures: every message takes a token and nothing else.
                   const auto rate = c.node.limit("pre_auth_rate_per_minute");
                   const auto& who = c.me();
                   const auto start = std::chrono::steady_clock::now();
                   for (std::int64_t sent = 0; sent < burst + refilled(rate, start) + 2; ++sent) {
                     auto o = c.header(who, "ping");
                     o["timestamp"] = timestamp_at(-std::chrono::hours(1));
                     const auto text = c.sign(o, who);
                     const auto r = c.exchange(text);
                     if (is_rate_limited(r)) {
                       c.expect_error(r, text, errc::rate_limited, "RL-1");
                       // Earlier traffic from this address (another case, an earlier run) may have
                       // spent tokens: then the bucket was not full and the burst cannot be seen.
                       if (sent + 2 < burst)
                         c.skip("bucket not full: RATE_LIMITED after " + std::to_string(sent) + " messages, fewer than the burst (" +
                                std::to_string(burst) + "), so earlier traffic from this address had spent tokens; it refills in " +
                                std::to_string(60 * burst / std::max<std::int64_t>(rate, 1)) + " s");
                       return;
                     }
                     c.expect_error(r, text, errc::replay_detected, "RPL-1");
                   }
                   c.fail("RL-1", "RATE_LIMITED after the burst and what the bucket refilled meanwhile", "none");
                 },
                 std::chrono::seconds(90), true});
  declare_needs(out, first_case, need::handshake,
                {{"RL-2/heartbeat-burst", need::session},
                 {"RL-1/pre-auth-bucket", {}}});
}

}  // namespace peerproto::conformance
