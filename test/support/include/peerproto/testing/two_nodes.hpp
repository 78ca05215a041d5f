// Two engines, alice (client) and bob (server), with demo handlers and deterministic randomness,
// for engine tests, properties and the stateful fuzz targets.
#pragma once

#include <peerproto/engine.hpp>

#include <peerproto/testing/deterministic_random.hpp>

namespace peerproto::testing {

inline registry demo_handlers() {
  registry r;
  r.add("ping", [](const handler_request& req) -> result<handler_reply> {
    return handler_reply{"pong", {{"echo", req.payload}}};
  });
  r.add("heartbeat", [](const handler_request&) -> result<handler_reply> {
    return handler_reply{"ack", {{"status", "delivered"}}};
  });
  r.add("task_delegate", [](const handler_request& req) -> result<handler_reply> {
    if (!req.payload.contains("task")) return failure{errc::invalid_format, "task_delegate needs a task"};
    return handler_reply{"task_accepted", {{"task_id", "00000000-0000-4000-8000-000000000000"}, {"size", jcs::canonicalize(req.payload).size()}}};
  });
  return r;
}

struct pair_of_nodes {
  crypto::ed25519_keypair alice_key{crypto::ed25519_keypair(draw<32>(counter_random(1)))};
  crypto::ed25519_keypair bob_key{crypto::ed25519_keypair(draw<32>(counter_random(2)))};
  trust_store alice_trust{trust_policy::tofu};
  trust_store bob_trust{trust_policy::tofu};
  registry handlers = demo_handlers();
  engine alice;
  engine bob;
  sys_milliseconds now{std::chrono::milliseconds(1'767'225'600'000)};  // 2026-01-01

  static engine_options options(const char* self) {
    engine_options o;
    o.self_id = self;
    return o;
  }
  using options_pair = std::pair<engine_options, engine_options>;
  static options_pair default_options() { return {options("alice"), options("bob")}; }

  explicit pair_of_nodes(engine_options alice_opt = options("alice"), engine_options bob_opt = options("bob"))
      : alice(alice_opt, alice_key, alice_trust, handlers, counter_random(11)),
        bob(bob_opt, bob_key, bob_trust, handlers, counter_random(12)) {}
  explicit pair_of_nodes(options_pair o) : pair_of_nodes(std::move(o.first), std::move(o.second)) {}

  // Runs the three messages and the responder's first session message; returns the session id.
  // `responder` is bob, or an engine that stands in for him (a restarted one).
  std::optional<uuid> handshake() { return handshake(bob); }
  std::optional<uuid> handshake(engine& responder) {
    const auto m1 = alice.begin_handshake("bob", now);
    const auto m2 = responder.handle(m1, "127.0.0.1:1", now);
    if (m2.error) return std::nullopt;
    const auto m3 = alice.finish_handshake(m2.reply, now);
    if (!m3) return std::nullopt;
    const auto m4 = responder.handle(*m3, "127.0.0.1:1", now);
    if (m4.error) return std::nullopt;
    const auto proven = alice.accept_reply(m4.reply, now);
    if (!proven || proven->size() != 1) return std::nullopt;
    return (*proven)[0].reply.session_id;
  }
};

}  // namespace peerproto::testing
