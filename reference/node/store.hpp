// The node's durable state in SQLite (WAL): pinned peers, ready sessions, accepted nonces and the
// task queue. Everything one request changes is written in one transaction before the node sends
// its reply, so a node killed at any moment never answers for state it has lost (RPL-6, SES-13,
// MSG-6).
#pragma once

#include <peerproto/crypto.hpp>
#include <peerproto/replay_cache.hpp>
#include <peerproto/session.hpp>

#include <boost/json.hpp>

#include <cstddef>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace peerproto::node {

/// A storage failure: the node reports INTERNAL_ERROR for the request (ERR-7) and keeps running.
struct store_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// What one engine call changed and must be durable before its reply is sent.
struct state_changes {
  std::vector<replay_entry> nonces;               ///< accepted (sender, nonce) pairs
  std::vector<session_snapshot> sessions;         ///< ready sessions to write
  std::vector<uuid> gone;                         ///< sessions no longer ready: removed
  std::vector<std::pair<std::string, crypto::public_key>> peers;  ///< new or replaced pins
  bool empty() const { return nonces.empty() && sessions.empty() && gone.empty() && peers.empty(); }
};

/// A queued task (task_delegate, MSG-6).
struct task_record {
  std::string task_id;
  std::string sender_id;
  std::string task;         ///< the task object as JSON text
  std::string received_at;  ///< RFC 3339
};

class store {
 public:
  /// Opens or creates the database `file` (mode 0600) and its schema. Throws store_error.
  explicit store(const std::filesystem::path& file);
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  /// Writes `c` in one transaction. Throws store_error; then nothing of `c` is written.
  void apply(const state_changes& c);

  /// Removes accepted nonces that expired before `now`.
  void purge_nonces(sys_milliseconds now);

  std::vector<std::pair<std::string, crypto::public_key>> peers();
  std::vector<replay_entry> nonces(sys_milliseconds now);  ///< the live ones
  std::vector<session_snapshot> sessions();

  /// Queues a task durably. False, writing nothing, when `max_tasks` are already queued.
  bool enqueue_task(const task_record& t, std::size_t max_tasks);
  std::size_t task_count();
  std::vector<task_record> tasks();

 private:
  void exec(const char* sql);
  sqlite3_stmt* prepare(const char* sql);
  sqlite3* db_ = nullptr;
};

}  // namespace peerproto::node
