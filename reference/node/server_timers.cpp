// The server's timers: the engine's next deadline (its outcomes go the request path, on_poll in
// server_requests.cpp) and the periodic maintenance (expired nonces and settled outbox rows
// deleted in bounded batches).
#include "server.hpp"

#include <spdlog/spdlog.h>

#include <boost/beast/core/error.hpp>

#include <algorithm>

namespace peerproto::node {
namespace beast = boost::beast;

void server::rearm() {
  const auto d = engine_->next_deadline();
  if (!d || drained_) {  // once drained, no timer keeps the node running
    poll_timer_.cancel();
    return;
  }
  const auto wait = std::max(std::chrono::milliseconds(0), *d - system_now());
  poll_timer_.expires_after(wait);
  poll_timer_.async_wait([this](beast::error_code ec) {
    if (!ec) on_poll();
  });
}

// Expired nonces are deleted a bounded batch at a time, every second, and again at once while
// batches come back full: one large delete would stall every request behind it (at 5,000 signed
// messages per second, a minute's worth took about a second). Old outbox rows go once a minute.
void server::maintenance() {
  if (draining_) return;  // a completion queued before shutdown() cancelled the timer
  constexpr std::size_t nonce_batch = 250;
  bool more = false;
  try {
    more = store_->purge_nonces(system_now(), nonce_batch) == nonce_batch;
    if (const auto now = std::chrono::steady_clock::now(); now >= next_outbox_purge_) {
      store_->purge_outbox(system_now() - cfg_.outbound.retention);
      next_outbox_purge_ = now + std::chrono::minutes(1);
    }
  } catch (const store_error& e) {
    log_->error("{}", e.what());
  }
  maintenance_timer_.expires_after(more ? std::chrono::seconds(0) : std::chrono::seconds(1));
  maintenance_timer_.async_wait([this](beast::error_code ec) {
    if (!ec) maintenance();
  });
}

}  // namespace peerproto::node
