// Coroutines of one io_context thread wait on a wakeup until notify() or their time limit: an
// asynchronous condition variable. A notify() with no one waiting is not remembered, so a waiter
// checks its condition before it waits, with no suspension in between.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <set>

namespace peerproto::node {

class wakeup {
 public:
  /// True when woken by notify(), false when `deadline` passed.
  boost::asio::awaitable<bool> wait_until(boost::asio::io_context& ioc, std::chrono::steady_clock::time_point deadline) {
    boost::asio::steady_timer t(ioc, deadline);
    waiting_.insert(&t);
    const auto [ec] = co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    waiting_.erase(&t);
    co_return ec == boost::asio::error::operation_aborted;
  }
  boost::asio::awaitable<bool> wait(boost::asio::io_context& ioc, std::chrono::milliseconds limit = std::chrono::hours(24)) {
    return wait_until(ioc, std::chrono::steady_clock::now() + limit);
  }
  void notify() {
    for (auto* t : waiting_) t->cancel();
  }

 private:
  std::set<boost::asio::steady_timer*> waiting_;
};

}  // namespace peerproto::node
