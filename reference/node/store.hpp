// The node's durable state in SQLite (WAL): pinned peers and their addresses, ready sessions,
// accepted nonces, the task queue, the inbox of delivered messages and the outbox of messages to
// send. Everything one request changes is written in one transaction before the node sends
// its reply, so a node killed at any moment never answers for state it has lost (RPL-6, SES-13,
// MSG-6).
#pragma once

#include <peerproto/chunking.hpp>
#include <peerproto/crypto.hpp>
#include <peerproto/delivery.hpp>
#include <peerproto/key_rotation.hpp>
#include <peerproto/replay_cache.hpp>
#include <peerproto/session.hpp>
#include <peerproto/trust.hpp>

#include <boost/json.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <filesystem>
#include <iterator>
#include <memory>
#include <unordered_map>
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

/// A queued task (task_delegate, MSG-6).
struct task_record {
  std::string task_id;
  std::string sender_id;
  std::string task;         ///< the task object as JSON text
  std::string received_at;  ///< RFC 3339
  std::string claim;        ///< the claim token while an application holds the task, else empty
};

/// A message delivered to this node for its application (`ctl inbox`).
struct inbox_entry {
  std::int64_t seq = 0;     ///< increasing in delivery order, never reused
  std::string sender_id;
  std::string msg_type;
  std::string payload;      ///< JSON text
  std::string session_id;   ///< empty for a sessionless message
  std::string nonce;        ///< the envelope's nonce (hex)
  std::string received_at;  ///< RFC 3339
  std::string trace_id;     ///< the W3C trace id of the request that delivered it
};

/// A message handed to the node for a peer (`ctl send`), and how far its delivery got: what the
/// delivery machine keeps (delivery.hpp), and what the node keeps beside it.
struct outbox_entry : delivery_record {
  using state = delivery_status;
  std::int64_t id = 0;      ///< increasing in the order messages were handed over
  std::string to;           ///< the peer's URL
  std::string msg_type;
  std::string payload;      ///< JSON text (kept while queued; listings leave it out)
  sys_milliseconds created{};
  std::string trace;        ///< the request id that links it to logs and audit records
  std::uint64_t payload_bytes = 0;  ///< size of `payload` (kept when a listing leaves the payload out)
};
std::string_view to_string(outbox_entry::state s);

/// How much the outbox may hold waiting (queued): messages, and bytes of their payloads.
struct outbox_bounds {
  std::size_t messages = 10'000;
  std::uint64_t bytes = 1ull << 30;
};

/// A pinned peer and where it can be reached.
struct peer_record {
  std::string entity_id;
  crypto::public_key key{};
  std::string url;          ///< empty when unknown
  bool configured = false;  ///< pinned by the operator (ctl peers pin), not learned by a handshake
};

/// What a peer's key rotation changed: its binding (none once revoked) and its rotation record,
/// which outlives an unpin so that no older statement applies again and a revocation holds.
struct peer_rotation {
  std::string entity_id;
  std::optional<crypto::public_key> key;
  rotation_record rotation;
};

/// What one engine call changed and must be durable before its reply is sent, with what the
/// node's handlers and outbound client add to the same transaction.
struct state_changes {
  std::vector<replay_entry> nonces;               ///< accepted (sender, nonce) pairs
  std::vector<session_snapshot> sessions;         ///< ready sessions to write
  std::vector<uuid> gone;                         ///< sessions no longer ready: removed
  std::vector<std::pair<std::string, crypto::public_key>> peers;  ///< new or replaced pins
  std::vector<peer_rotation> rotations;           ///< bindings moved or revoked by a peer (KR-5)
  std::vector<task_record> tasks;                 ///< accepted task_delegate (MSG-6)
  std::vector<inbox_entry> inbox;                 ///< delivered messages for the application
  std::vector<outbox_entry> outbox;               ///< outbox rows to update (by id)
  std::vector<completed_transfer> completed;      ///< transfers completed (CHK-4, CHK-17)
  bool empty() const {
    return nonces.empty() && sessions.empty() && gone.empty() && peers.empty() && rotations.empty() && tasks.empty() && inbox.empty() &&
           outbox.empty() && completed.empty();
  }
  /// Moves everything of `from` to the end of this, leaving `from` empty.
  void append(state_changes& from) {
    const auto take = [](auto& to, auto& more) {
      to.insert(to.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
      more.clear();
    };
    take(nonces, from.nonces);
    take(sessions, from.sessions);
    take(gone, from.gone);
    take(peers, from.peers);
    take(rotations, from.rotations);
    take(tasks, from.tasks);
    take(inbox, from.inbox);
    take(outbox, from.outbox);
    take(completed, from.completed);
  }
};

class store {
 public:
  /// Opens or creates the database `file` (mode 0600) and its schema. Session keys are stored
  /// wrapped (AES-256-GCM) under a key derived from the node's identity key (from its signature
  /// of a fixed label: Ed25519 signatures are deterministic, and a key in a token can make one
  /// too), so a copy of the database alone does not give them away; keys stored in the clear by an
  /// earlier version are wrapped when the database is opened. Throws store_error.
  store(const std::filesystem::path& file, const crypto::ed25519_keypair& identity);
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  /// Writes `c` in one transaction. Throws store_error; then nothing of `c` is written.
  void apply(const state_changes& c);

  /// Removes accepted nonces that expired before `now`.
  /// Deletes up to `limit` expired nonces and moves the floor; returns how many it deleted.
  std::size_t purge_nonces(sys_milliseconds now, std::size_t limit = SIZE_MAX);
  sys_milliseconds nonces_forgotten_through();  ///< the floor (RPL-5)

  std::vector<replay_entry> nonces(sys_milliseconds now);  ///< the live ones
  std::vector<session_snapshot> sessions();
  std::vector<completed_transfer> completed_transfers(sys_milliseconds now);  ///< the ones still remembered

  std::size_t task_count() const noexcept { return task_rows_; }  ///< queued and claimed
  std::vector<task_record> tasks();
  std::optional<task_record> task(const std::string& task_id);  ///< queued or claimed
  /// Claims the oldest task that is queued or whose claim expired before `now`, until
  /// `now + lease`; nullopt when there is none.
  std::optional<task_record> claim_task(sys_milliseconds now, std::chrono::milliseconds lease);
  /// In one transaction, removes the task claimed with `claim` and adds `result` (its
  /// task_result) to the outbox. Returns the outbox id; 0 when the outbox is full (`max`); nullopt when no such claim holds (it ran out and another claimer took the task,
  /// or the task was settled already). Nothing changes unless an id is returned.
  std::optional<std::int64_t> finish_task(const std::string& task_id, const std::string& claim, sys_milliseconds now,
                                          const outbox_entry& result, const outbox_bounds& max);

  std::size_t inbox_count() const noexcept { return inbox_rows_; }  ///< delivered and not acknowledged
  /// Up to `limit` unacknowledged entries after `after`, in delivery order.
  std::vector<inbox_entry> inbox(std::int64_t after, std::size_t limit);
  /// Acknowledges every entry up to `through`; returns how many there were.
  std::size_t ack_inbox(std::int64_t through);

  /// Adds a message to the outbox and returns its id; 0, writing nothing, when it would hold more
  /// than `max` messages or `max_bytes` bytes of payload waiting.
  std::int64_t add_outbox(const outbox_entry& e, const outbox_bounds& max);
  std::size_t outbox_waiting();  ///< queued
  std::optional<outbox_entry> outbox_get(std::int64_t id);
  /// The queued entries, in id order (ids and peers only: payloads are read when sent).
  std::vector<std::pair<std::int64_t, std::string>> outbox_queued();
  /// The latest `limit` entries, newest first.
  std::vector<outbox_entry> outbox_recent(std::size_t limit);
  /// Forgets settled entries older than `before`.
  void purge_outbox(sys_milliseconds before);

  std::vector<peer_record> peer_records();
  /// What peers' key rotations left, by entity id (KR-5).
  std::vector<std::pair<std::string, rotation_record>> peer_rotations();
  /// Pins `p` as configured by the operator (replacing an earlier pin of the id), and lifts a
  /// revocation of it (KR-7).
  void pin_peer(const peer_record& p);
  bool unpin_peer(const std::string& entity_id);
  /// Records where a pinned peer was reached (for task results and `ctl send --to ENTITY`).
  void remember_url(const std::string& entity_id, const std::string& url);
  /// Where the node of `entity_id` was pinned or last reached; empty when unknown.
  std::string url_of(const std::string& entity_id);

  /// This node's own rotation statements, counter 1 first (KR-10).
  std::vector<key_rotation> own_chain();
  /// KR-9: in one transaction, records `statement` (the next of own_chain()) and wraps every
  /// stored session key again under a key derived from `next`, which the store then uses.
  void rotate_identity(const key_rotation& statement, const crypto::ed25519_keypair& next);

 private:
  void exec(const char* sql);
  std::size_t count(const char* sql);
  std::int64_t insert_outbox(const outbox_entry& e);
  bool outbox_has_room(const outbox_entry& e, const outbox_bounds& max);
  template <class F>
  auto transaction(F&& f);
  // Prepared statements are kept, one per SQL text, and reset when a use ends: SQLite parses each
  // statement once per process, not on every call. A text already in use is prepared anew.
  struct statement_slot {
    sqlite3_stmt* stmt = nullptr;
    bool busy = false;
  };
  struct release {
    statement_slot* slot = nullptr;  ///< null: a statement of its own, finalized
    void operator()(sqlite3_stmt* s) const noexcept;
  };
  using statement = std::unique_ptr<sqlite3_stmt, release>;
  statement prepare(const std::string& sql);
  void wrap_clear_keys();
  bytes wrap(const uuid& session, char direction, const crypto::secret<32>& key) const;
  crypto::secret<32> unwrap(const uuid& session, char direction, sqlite3_stmt* s, int column) const;
  sqlite3* db_ = nullptr;
  // The rows of the inbox and the task queue, kept with the data (counted once at open, changed
  // after each transaction that changes them commits): every delivered message checks its bound,
  // and counting the table each time made delivery cost grow with the backlog.
  std::size_t inbox_rows_ = 0, task_rows_ = 0;
  std::unordered_map<std::string, statement_slot> statements_;
  crypto::secret<32> wrap_key_;  ///< HKDF of the identity key (session keys at rest)
};

}  // namespace peerproto::node
