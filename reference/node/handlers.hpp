// The reference node's built-in message types (SPEC §15), registered through the registry like
// any plugin: ping, heartbeat, status_report, wake_up, capability_query, task_delegate,
// task_result and discovery. session_close is a core type, handled by the engine. What reaches the
// application (tasks, and the other types' payloads in the inbox) is added to `pending`, which the
// node writes in the same transaction as the session's sequence numbers, before the reply: a
// message is in the inbox exactly once, whatever restarts and retransmissions happen.
#pragma once

#include "store.hpp"

#include <peerproto/engine.hpp>
#include <peerproto/registry.hpp>
#include <peerproto/trust.hpp>

namespace peerproto::node {

/// What the handlers need from the node. `engine_opt`, `limits` and `trust` must outlive the registry.
struct handler_context {
  const engine_options& engine_opt;
  const boost::json::object& limits;  ///< advertised_limits() of the node's settings
  const trust_store& trust;
  store& state;
  state_changes& pending;          ///< written with the engine's changes, before the reply
  std::size_t max_task_queue;      ///< MSG-6
  std::size_t max_inbox;           ///< unacknowledged inbox messages before RATE_LIMITED
};

/// Registers the built-in handlers into `r`.
void register_builtin_handlers(registry& r, const handler_context& ctx);

/// MSG-7: the capability_response payload (without in_reply_to), also served at /capabilities.
boost::json::object capabilities(const engine_options& opt, const registry& r, const boost::json::object& limits);

}  // namespace peerproto::node
