#include "store.hpp"

#include <peerproto/encoding.hpp>
#include <peerproto/fault.hpp>

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

namespace peerproto::node {
namespace {

std::int64_t ms(sys_milliseconds t) { return t.time_since_epoch().count(); }
sys_milliseconds from_ms(std::int64_t v) { return sys_milliseconds(std::chrono::milliseconds(v)); }

std::string column_text(sqlite3_stmt* s, int i) {
  const auto* p = sqlite3_column_text(s, i);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(s, i))) : std::string();
}

template <std::size_t N>
std::array<std::uint8_t, N> column_fixed(sqlite3_stmt* s, int i) {
  std::array<std::uint8_t, N> out{};
  if (sqlite3_column_bytes(s, i) != static_cast<int>(N)) throw store_error("stored value has the wrong size");
  std::copy_n(static_cast<const std::uint8_t*>(sqlite3_column_blob(s, i)), N, out.begin());
  return out;
}

// A session key straight from SQLite's buffer into a wiped secret, without an unwiped copy.
// A stored session key: nonce (12) ‖ AES-256-GCM ciphertext (32) ‖ tag (16).
constexpr std::size_t wrapped_key_size = 12 + 32 + 16;

store_error error(sqlite3* db) { return store_error(std::string("state database: ") + sqlite3_errmsg(db)); }

task_record task_at(sqlite3_stmt* s) {
  return {column_text(s, 0), column_text(s, 1), column_text(s, 2), column_text(s, 3), column_text(s, 4)};
}

void bind_blob(sqlite3_stmt* s, int i, const std::uint8_t* p, std::size_t n) {
  sqlite3_bind_blob(s, i, p, static_cast<int>(n), SQLITE_TRANSIENT);
}
void bind_text(sqlite3_stmt* s, int i, std::string_view v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}

constexpr const char* schema = R"sql(
CREATE TABLE IF NOT EXISTS peers(
  entity_id TEXT PRIMARY KEY, public_key BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nonces(
  sender TEXT NOT NULL, nonce BLOB NOT NULL, expiry_ms INTEGER NOT NULL, PRIMARY KEY(sender, nonce));
CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces(expiry_ms);
CREATE TABLE IF NOT EXISTS sessions(
  id BLOB PRIMARY KEY, role INTEGER NOT NULL, peer_id TEXT NOT NULL, peer_key BLOB NOT NULL,
  version TEXT NOT NULL, send_key BLOB NOT NULL, receive_key BLOB NOT NULL,
  next_send INTEGER NOT NULL, next_expected INTEGER NOT NULL,
  ready_at_ms INTEGER NOT NULL, last_activity_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tasks(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT UNIQUE NOT NULL, sender_id TEXT NOT NULL,
  task TEXT NOT NULL, received_at TEXT NOT NULL);
)sql";

// Version 2 adds task claims, peer addresses, the inbox and the outbox. A database of version 1
// (the schema above alone) is upgraded in place.
constexpr const char* schema_v2 = R"sql(
ALTER TABLE tasks ADD COLUMN claim TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN claimed_until_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE peers ADD COLUMN url TEXT NOT NULL DEFAULT '';
ALTER TABLE peers ADD COLUMN configured INTEGER NOT NULL DEFAULT 0;
CREATE TABLE inbox(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, sender_id TEXT NOT NULL, msg_type TEXT NOT NULL,
  payload TEXT NOT NULL, session_id TEXT NOT NULL, nonce TEXT NOT NULL, received_at TEXT NOT NULL,
  trace_id TEXT NOT NULL DEFAULT '');
CREATE TABLE outbox(
  id INTEGER PRIMARY KEY AUTOINCREMENT, peer TEXT NOT NULL, msg_type TEXT NOT NULL, payload TEXT NOT NULL,
  created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, state INTEGER NOT NULL,
  session BLOB, sealed TEXT NOT NULL DEFAULT '', written INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0, result TEXT NOT NULL DEFAULT '', trace TEXT NOT NULL DEFAULT '');
CREATE INDEX outbox_state ON outbox(state, id);
PRAGMA user_version = 2;
)sql";

// Version 3 adds what peers' key rotations left (kept apart from the binding, which an operator
// may remove), and this node's own rotation statements.
constexpr const char* schema_v3 = R"sql(
CREATE TABLE peer_rotations(
  entity_id TEXT PRIMARY KEY, counter INTEGER NOT NULL, previous_key BLOB, previous_until_ms INTEGER NOT NULL,
  revoked INTEGER NOT NULL);
CREATE TABLE own_rotations(counter INTEGER PRIMARY KEY, statement TEXT NOT NULL);
PRAGMA user_version = 3;
)sql";

// Version 4 adds how far the nonce table has been purged (RPL-5), so that a clock set back across
// a restart does not make a purged nonce acceptable again.
constexpr const char* schema_v4 = R"sql(
CREATE TABLE nonce_floor(id INTEGER PRIMARY KEY CHECK(id = 0), forgotten_through_ms INTEGER NOT NULL);
INSERT INTO nonce_floor VALUES(0, 0);
PRAGMA user_version = 4;
)sql";

// Version 5 adds chunked sending: the transfer an outbox entry goes as and how far it got, and the
// payload's size (the outbox is bounded in bytes as well as messages). Payloads move to a table
// of their own, so that the updates of every transmission do not rewrite a payload of up to
// 64 MiB with the row (SQLite writes a whole row again); a settled message's payload is deleted.
constexpr const char* schema_v5 = R"sql(
CREATE TABLE outbox_payloads(id INTEGER PRIMARY KEY, payload TEXT NOT NULL);
INSERT INTO outbox_payloads SELECT id, payload FROM outbox WHERE state = 0;
ALTER TABLE outbox ADD COLUMN payload_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE outbox SET payload_bytes = length(CAST(payload AS BLOB)), payload = '';
ALTER TABLE outbox ADD COLUMN transfer_id BLOB;
ALTER TABLE outbox ADD COLUMN chunk_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN chunk_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN chunks_acked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN rounds INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 5;
)sql";

// Version 6 adds what the delivery machine (delivery.hpp) keeps of an outbox entry beyond version
// 5: the time before which it is not sent again (a back-off or a peer's retry_after, SND-2), so
// that a restart does not send it earlier; whether its sealed bytes were refused with
// RATE_LIMITED (RL-7); when they were sealed, and whether a chunk of its transfer may have
// completed it and until when chunks may still be sent (CHK-16). And the transfers this node
// completed as a receiver, remembered across a restart (CHK-17).
constexpr const char* schema_v6 = R"sql(
CREATE TABLE completed_transfers(
  sender TEXT NOT NULL, transfer_id BLOB NOT NULL, until_ms INTEGER NOT NULL, PRIMARY KEY(sender, transfer_id));
ALTER TABLE outbox ADD COLUMN not_before_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN rate_limited INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN sealed_at_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN maybe_completed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN resend_until_ms INTEGER NOT NULL DEFAULT 0;
PRAGMA user_version = 6;
)sql";

// The key that wraps session keys at rest: HKDF of the identity key's signature of a fixed label
// (Ed25519 signatures are deterministic, and a key in a token can make one too).
crypto::secret<32> wrap_key_of(const crypto::ed25519_keypair& identity) {
  static constexpr std::string_view label = "peerproto-node session key wrap";
  auto ikm = identity.sign(as_bytes(label));
  crypto::secret<32> key;
  const bool failed = crypto::hkdf_sha256(ikm, {}, as_bytes(label), key.span()).operator bool();
  crypto::wipe(ikm);
  if (failed) throw store_error("cannot derive the key wrap");
  return key;
}

constexpr std::string_view outbox_states[] = {"queued", "delivered", "failed", "expired", "unconfirmed"};

}  // namespace

store::store(const std::filesystem::path& file, const crypto::ed25519_keypair& identity) : wrap_key_(wrap_key_of(identity)) {
  // Sessions hold keys: the file is created readable by the owner only, before SQLite opens it.
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw store_error("cannot open state database " + file.string());
  ::close(fd);
  // One connection, used by the node's one thread: no mutex around each call.
  if (sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw store_error("cannot open state database " + file.string() + ": " + why);
  }
  sqlite3_busy_timeout(db_, 5000);
  try {
    // WAL with synchronous=NORMAL: a committed transaction survives the process being killed; only
    // a power loss can lose the last transactions (SQLite's documented trade-off).
    // The node is the database's only user while it runs: it takes the lock once, not around every
    // transaction (no file lock calls per request), and a second node on the same state directory
    // fails at start instead of sharing it.
    exec("PRAGMA locking_mode=EXCLUSIVE");
    if (sqlite3_exec(db_, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr) == SQLITE_BUSY)
      throw store_error("the state database " + file.string() + " is in use by another process (another node on this state directory?)");
    exec("PRAGMA synchronous=NORMAL");
    exec("BEGIN IMMEDIATE");
    try {
      exec(schema);
      statement v(prepare("PRAGMA user_version"));
      const int version = sqlite3_step(v.get()) == SQLITE_ROW ? sqlite3_column_int(v.get(), 0) : 0;
      v.reset();
      if (version < 2) exec(schema_v2);
      if (version < 3) exec(schema_v3);
      if (version < 4) exec(schema_v4);
      if (version < 5) exec(schema_v5);
      if (version < 6) exec(schema_v6);
      wrap_clear_keys();
      exec("COMMIT");
      inbox_rows_ = count("SELECT COUNT(*) FROM inbox");
      task_rows_ = count("SELECT COUNT(*) FROM tasks");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  } catch (...) {
    // The destructor does not run for a constructor that throws.
    for (auto& [sql, slot] : statements_) sqlite3_finalize(slot.stmt);
    statements_.clear();
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

std::string_view to_string(outbox_entry::state s) { return outbox_states[static_cast<int>(s)]; }

store::~store() {
  for (auto& [sql, slot] : statements_) sqlite3_finalize(slot.stmt);
  sqlite3_close(db_);
}

void store::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err ? err : "unknown error";
    sqlite3_free(err);
    throw store_error("state database: " + why);
  }
}

// Runs `f` in one immediate transaction: committed when it returns a value that is not empty or
// zero, rolled back otherwise or when it throws.
template <class F>
auto store::transaction(F&& f) {
  exec("BEGIN IMMEDIATE");
  try {
    auto out = f();
    exec(out ? "COMMIT" : "ROLLBACK");
    return out;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void store::release::operator()(sqlite3_stmt* s) const noexcept {
  if (!slot) {
    sqlite3_finalize(s);
    return;
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  slot->busy = false;
}

store::statement store::prepare(const std::string& sql) {
  auto& slot = statements_[sql];
  const bool shared = !slot.busy;
  sqlite3_stmt* s = shared ? slot.stmt : nullptr;
  if (!s) {
    if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &s, nullptr) != SQLITE_OK) {
      if (!slot.stmt) statements_.erase(sql);
      throw error(db_);
    }
    if (shared) slot.stmt = s;
  }
  if (!shared) return statement(s, release{});
  slot.busy = true;
  return statement(s, release{&slot});
}

void store::apply(const state_changes& c) {
  if (c.empty()) return;
  if (PEERPROTO_FAULT(store_write_fails) && !c.nonces.empty())  // a full disk, for the tests of ERR-7
    throw store_error("state database: database or disk is full (injected)");
  exec("BEGIN IMMEDIATE");
  try {
    const auto step = [&](sqlite3_stmt* s) {
      if (sqlite3_step(s) != SQLITE_DONE) throw error(db_);
      sqlite3_reset(s);
      sqlite3_clear_bindings(s);
    };
    if (!c.nonces.empty()) {
      statement s(prepare("INSERT OR REPLACE INTO nonces(sender, nonce, expiry_ms) VALUES(?,?,?)"));
      for (const auto& n : c.nonces) {
        bind_text(s.get(), 1, n.sender);
        bind_blob(s.get(), 2, n.nonce.data(), n.nonce.size());
        sqlite3_bind_int64(s.get(), 3, ms(n.expiry));
        step(s.get());
      }
    }
    if (!c.completed.empty()) {
      statement s(prepare("INSERT OR REPLACE INTO completed_transfers(sender, transfer_id, until_ms) VALUES(?,?,?)"));
      for (const auto& t : c.completed) {
        bind_text(s.get(), 1, t.sender);
        bind_blob(s.get(), 2, t.transfer_id.bytes.data(), t.transfer_id.bytes.size());
        sqlite3_bind_int64(s.get(), 3, ms(t.until));
        step(s.get());
      }
      statement purge(prepare("DELETE FROM completed_transfers WHERE until_ms <= ?"));  // bounded by what is remembered
      sqlite3_bind_int64(purge.get(), 1, ms(system_now()));
      step(purge.get());
    }
    if (!c.sessions.empty()) {
      statement s(prepare("INSERT OR REPLACE INTO sessions VALUES(?,?,?,?,?,?,?,?,?,?,?)"));
      for (const auto& x : c.sessions) {
        bind_blob(s.get(), 1, x.id.bytes.data(), x.id.bytes.size());
        sqlite3_bind_int(s.get(), 2, x.role == session_role::initiator ? 0 : 1);
        bind_text(s.get(), 3, x.peer_id);
        bind_blob(s.get(), 4, x.peer_key.data(), x.peer_key.size());
        bind_text(s.get(), 5, x.version);
        const auto send = wrap(x.id, 's', x.send_key), receive = wrap(x.id, 'r', x.receive_key);
        bind_blob(s.get(), 6, send.data(), send.size());
        bind_blob(s.get(), 7, receive.data(), receive.size());
        sqlite3_bind_int64(s.get(), 8, static_cast<std::int64_t>(x.next_send));
        sqlite3_bind_int64(s.get(), 9, static_cast<std::int64_t>(x.next_expected));
        sqlite3_bind_int64(s.get(), 10, ms(x.ready_at));
        sqlite3_bind_int64(s.get(), 11, ms(x.last_activity));
        step(s.get());
      }
    }
    if (!c.gone.empty()) {
      statement s(prepare("DELETE FROM sessions WHERE id = ?"));
      for (const auto& id : c.gone) {
        bind_blob(s.get(), 1, id.bytes.data(), id.bytes.size());
        step(s.get());
      }
    }
    if (!c.peers.empty()) {
      statement s(prepare("INSERT INTO peers(entity_id, public_key) VALUES(?,?) "
                          "ON CONFLICT(entity_id) DO UPDATE SET public_key = excluded.public_key"));
      for (const auto& [id, key] : c.peers) {
        bind_text(s.get(), 1, id);
        bind_blob(s.get(), 2, key.data(), key.size());
        step(s.get());
      }
    }
    if (!c.rotations.empty()) {
      statement s(prepare("INSERT OR REPLACE INTO peer_rotations VALUES(?,?,?,?,?)"));
      statement bind(prepare("INSERT INTO peers(entity_id, public_key) VALUES(?,?) "
                             "ON CONFLICT(entity_id) DO UPDATE SET public_key = excluded.public_key"));
      for (const auto& r : c.rotations) {
        bind_text(s.get(), 1, r.entity_id);
        sqlite3_bind_int64(s.get(), 2, static_cast<std::int64_t>(r.rotation.counter));
        if (r.rotation.previous) bind_blob(s.get(), 3, r.rotation.previous->data(), r.rotation.previous->size());
        sqlite3_bind_int64(s.get(), 4, ms(r.rotation.previous_until));
        sqlite3_bind_int(s.get(), 5, r.rotation.revoked ? 1 : 0);
        step(s.get());
        if (!r.key) continue;
        bind_text(bind.get(), 1, r.entity_id);
        bind_blob(bind.get(), 2, r.key->data(), r.key->size());
        step(bind.get());
      }
    }
    if (!c.tasks.empty()) {
      statement s(prepare("INSERT INTO tasks(task_id, sender_id, task, received_at) VALUES(?,?,?,?)"));
      for (const auto& t : c.tasks) {
        bind_text(s.get(), 1, t.task_id);
        bind_text(s.get(), 2, t.sender_id);
        bind_text(s.get(), 3, t.task);
        bind_text(s.get(), 4, t.received_at);
        step(s.get());
      }
    }
    if (!c.inbox.empty()) {
      statement s(prepare("INSERT INTO inbox(sender_id, msg_type, payload, session_id, nonce, received_at, trace_id) VALUES(?,?,?,?,?,?,?)"));
      for (const auto& m : c.inbox) {
        bind_text(s.get(), 1, m.sender_id);
        bind_text(s.get(), 2, m.msg_type);
        bind_text(s.get(), 3, m.payload);
        bind_text(s.get(), 4, m.session_id);
        bind_text(s.get(), 5, m.nonce);
        bind_text(s.get(), 6, m.received_at);
        bind_text(s.get(), 7, m.trace_id);
        step(s.get());
      }
    }
    if (!c.outbox.empty()) {
      statement s(prepare("UPDATE outbox SET state = ?, session = ?, sealed = ?, written = ?, attempts = ?, result = ?, "
                          "transfer_id = ?, chunk_size = ?, chunk_total = ?, chunks_acked = ?, rounds = ?, not_before_ms = ?, rate_limited = ?, sealed_at_ms = ?, maybe_completed = ?, resend_until_ms = ? WHERE id = ?"));
      for (const auto& e : c.outbox) {
        sqlite3_bind_int(s.get(), 1, static_cast<int>(e.status));
        if (e.session) bind_blob(s.get(), 2, e.session->bytes.data(), e.session->bytes.size());
        bind_text(s.get(), 3, e.sealed);
        sqlite3_bind_int(s.get(), 4, e.written ? 1 : 0);
        sqlite3_bind_int64(s.get(), 5, e.attempts);
        bind_text(s.get(), 6, e.result);
        if (e.transfer_id) bind_blob(s.get(), 7, e.transfer_id->bytes.data(), e.transfer_id->bytes.size());
        sqlite3_bind_int64(s.get(), 8, e.chunk_size);
        sqlite3_bind_int64(s.get(), 9, e.chunk_total);
        sqlite3_bind_int64(s.get(), 10, e.chunks_acked);
        sqlite3_bind_int64(s.get(), 11, e.rounds);
        sqlite3_bind_int64(s.get(), 12, ms(e.not_before));
        sqlite3_bind_int(s.get(), 13, e.rate_limited ? 1 : 0);
        sqlite3_bind_int64(s.get(), 14, ms(e.sealed_at));
        sqlite3_bind_int(s.get(), 15, e.maybe_completed ? 1 : 0);
        sqlite3_bind_int64(s.get(), 16, ms(e.resend_until));
        sqlite3_bind_int64(s.get(), 17, e.id);
        step(s.get());
        if (e.status != outbox_entry::state::queued) {
          statement d(prepare("DELETE FROM outbox_payloads WHERE id = ?"));
          sqlite3_bind_int64(d.get(), 1, e.id);
          step(d.get());
        }
      }
    }
    exec("COMMIT");
    inbox_rows_ += c.inbox.size();  // each insert added a row, or the transaction failed
    task_rows_ += c.tasks.size();
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

// RPL-5: the floor moves with the purge, in one transaction, and never back. The floor may pass
// rows not yet deleted (a batch stops at `limit`): they are only kept longer than needed.
std::size_t store::purge_nonces(sys_milliseconds now, std::size_t limit) {
  std::size_t deleted = 0;
  transaction([&] {
    statement s(prepare("DELETE FROM nonces WHERE rowid IN (SELECT rowid FROM nonces WHERE expiry_ms <= ? LIMIT ?)"));
    sqlite3_bind_int64(s.get(), 1, ms(now));
    sqlite3_bind_int64(s.get(), 2, static_cast<std::int64_t>(std::min<std::size_t>(limit, INT64_MAX)));
    if (sqlite3_step(s.get()) != SQLITE_DONE) throw error(db_);
    deleted = static_cast<std::size_t>(sqlite3_changes(db_));
    statement f(prepare("UPDATE nonce_floor SET forgotten_through_ms = max(forgotten_through_ms, ?)"));
    sqlite3_bind_int64(f.get(), 1, ms(now));
    if (sqlite3_step(f.get()) != SQLITE_DONE) throw error(db_);
    return true;
  });
  return deleted;
}

sys_milliseconds store::nonces_forgotten_through() {
  statement s(prepare("SELECT forgotten_through_ms FROM nonce_floor"));
  if (sqlite3_step(s.get()) != SQLITE_ROW) throw error(db_);
  return from_ms(sqlite3_column_int64(s.get(), 0));
}

std::vector<replay_entry> store::nonces(sys_milliseconds now) {
  std::vector<replay_entry> out;
  statement s(prepare("SELECT sender, nonce, expiry_ms FROM nonces WHERE expiry_ms > ? ORDER BY expiry_ms"));
  sqlite3_bind_int64(s.get(), 1, ms(now));
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back({column_text(s.get(), 0), column_fixed<16>(s.get(), 1), from_ms(sqlite3_column_int64(s.get(), 2))});
  return out;
}

std::vector<completed_transfer> store::completed_transfers(sys_milliseconds now) {
  std::vector<completed_transfer> out;
  statement s(prepare("SELECT sender, transfer_id, until_ms FROM completed_transfers WHERE until_ms > ? ORDER BY until_ms"));
  sqlite3_bind_int64(s.get(), 1, ms(now));
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back({column_text(s.get(), 0), uuid{column_fixed<16>(s.get(), 1)}, from_ms(sqlite3_column_int64(s.get(), 2))});
  return out;
}

// Session keys stored in the clear (by a version before keys were wrapped) are wrapped now.
void store::wrap_clear_keys() {
  std::vector<std::pair<uuid, std::array<crypto::secret<32>, 2>>> clear;
  {
    statement s(prepare("SELECT id, send_key, receive_key FROM sessions WHERE length(send_key) = 32 OR length(receive_key) = 32"));
    while (sqlite3_step(s.get()) == SQLITE_ROW) {
      const uuid id{column_fixed<16>(s.get(), 0)};
      clear.push_back({id, {unwrap(id, 's', s.get(), 1), unwrap(id, 'r', s.get(), 2)}});
    }
  }
  statement u(prepare("UPDATE sessions SET send_key = ?, receive_key = ? WHERE id = ?"));
  for (const auto& [id, keys] : clear) {
    const auto send = wrap(id, 's', keys[0]), receive = wrap(id, 'r', keys[1]);
    bind_blob(u.get(), 1, send.data(), send.size());
    bind_blob(u.get(), 2, receive.data(), receive.size());
    bind_blob(u.get(), 3, id.bytes.data(), id.bytes.size());
    if (sqlite3_step(u.get()) != SQLITE_DONE) throw error(db_);
    sqlite3_reset(u.get());
  }
}

// The associated data binds a wrapped key to its session and direction, so keys cannot be moved
// between rows unnoticed.
bytes store::wrap(const uuid& session, char direction, const crypto::secret<32>& key) const {
  std::array<std::uint8_t, 12> nonce{};
  crypto::random_bytes(nonce);
  bytes ad(session.bytes.begin(), session.bytes.end());
  ad.push_back(static_cast<std::uint8_t>(direction));
  bytes out(nonce.begin(), nonce.end());
  const auto sealed = crypto::aes_gcm_seal(wrap_key_.view(), nonce, ad, key.view());
  out.insert(out.end(), sealed.begin(), sealed.end());
  return out;
}

crypto::secret<32> store::unwrap(const uuid& session, char direction, sqlite3_stmt* s, int column) const {
  const auto* blob = static_cast<const std::uint8_t*>(sqlite3_column_blob(s, column));
  const auto size = static_cast<std::size_t>(sqlite3_column_bytes(s, column));
  crypto::secret<32> key;
  if (size == 32) {  // written before keys were wrapped: read as it is, wrapped when next stored
    std::copy_n(blob, 32, key.data());
    return key;
  }
  if (size != wrapped_key_size) throw store_error("state database: a stored session key has the wrong size");
  bytes ad(session.bytes.begin(), session.bytes.end());
  ad.push_back(static_cast<std::uint8_t>(direction));
  auto opened = crypto::aes_gcm_open(wrap_key_.view(), byte_view(blob, 12), ad, byte_view(blob + 12, size - 12));
  if (!opened || opened->size() != 32)
    throw store_error("state database: a session key does not open with this node's identity key (a database of another key?)");
  std::copy_n(opened->begin(), 32, key.data());
  crypto::wipe(*opened);
  return key;
}

std::vector<session_snapshot> store::sessions() {
  std::vector<session_snapshot> out;
  statement s(prepare("SELECT * FROM sessions"));
  while (sqlite3_step(s.get()) == SQLITE_ROW) {
    session_snapshot x;
    x.id = uuid{column_fixed<16>(s.get(), 0)};
    x.role = sqlite3_column_int(s.get(), 1) == 0 ? session_role::initiator : session_role::responder;
    x.peer_id = column_text(s.get(), 2);
    x.peer_key = column_fixed<32>(s.get(), 3);
    x.version = column_text(s.get(), 4);
    x.send_key = unwrap(x.id, 's', s.get(), 5);
    x.receive_key = unwrap(x.id, 'r', s.get(), 6);
    x.next_send = static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 7));
    x.next_expected = static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 8));
    x.ready_at = from_ms(sqlite3_column_int64(s.get(), 9));
    x.last_activity = from_ms(sqlite3_column_int64(s.get(), 10));
    out.push_back(std::move(x));
  }
  return out;
}

std::vector<task_record> store::tasks() {
  std::vector<task_record> out;
  statement s(prepare("SELECT task_id, sender_id, task, received_at, claim FROM tasks ORDER BY seq"));
  while (sqlite3_step(s.get()) == SQLITE_ROW) out.push_back(task_at(s.get()));
  return out;
}

std::optional<task_record> store::task(const std::string& task_id) {
  statement s(prepare("SELECT task_id, sender_id, task, received_at, claim FROM tasks WHERE task_id = ?"));
  bind_text(s.get(), 1, task_id);
  if (sqlite3_step(s.get()) != SQLITE_ROW) return std::nullopt;
  return task_at(s.get());
}

std::optional<task_record> store::claim_task(sys_milliseconds now, std::chrono::milliseconds lease) {
  statement s(prepare("UPDATE tasks SET claim = ?, claimed_until_ms = ? WHERE seq = "
                      "(SELECT seq FROM tasks WHERE claim = '' OR claimed_until_ms <= ? ORDER BY seq LIMIT 1) "
                      "RETURNING task_id, sender_id, task, received_at, claim"));
  bind_text(s.get(), 1, hex_encode(crypto::random_array<16>()));
  sqlite3_bind_int64(s.get(), 2, ms(now + lease));
  sqlite3_bind_int64(s.get(), 3, ms(now));
  std::optional<task_record> out;
  if (const int rc = sqlite3_step(s.get()); rc == SQLITE_ROW) out = task_at(s.get());
  else if (rc != SQLITE_DONE) throw error(db_);
  if (out && sqlite3_step(s.get()) != SQLITE_DONE) throw error(db_);
  return out;
}

std::optional<std::int64_t> store::finish_task(const std::string& task_id, const std::string& claim, sys_milliseconds now,
                                               const outbox_entry& result, const outbox_bounds& max) {
  const auto id = transaction([&]() -> std::optional<std::int64_t> {
    if (!outbox_has_room(result, max)) return 0;
    statement s(prepare("DELETE FROM tasks WHERE task_id = ? AND claim = ? AND claim <> '' AND claimed_until_ms > ?"));
    bind_text(s.get(), 1, task_id);
    bind_text(s.get(), 2, claim);
    sqlite3_bind_int64(s.get(), 3, ms(now));
    if (sqlite3_step(s.get()) != SQLITE_DONE) throw error(db_);
    if (sqlite3_changes(db_) != 1) return std::nullopt;
    return insert_outbox(result);
  });
  if (id && *id != 0) --task_rows_;  // the task's row went with the committed transaction
  return id;
}

std::size_t store::count(const char* sql) {
  statement s(prepare(sql));
  if (sqlite3_step(s.get()) != SQLITE_ROW) throw error(db_);
  return static_cast<std::size_t>(sqlite3_column_int64(s.get(), 0));
}

std::vector<inbox_entry> store::inbox(std::int64_t after, std::size_t limit) {
  std::vector<inbox_entry> out;
  statement s(prepare("SELECT seq, sender_id, msg_type, payload, session_id, nonce, received_at, trace_id FROM inbox "
                      "WHERE seq > ? ORDER BY seq LIMIT ?"));
  sqlite3_bind_int64(s.get(), 1, after);
  sqlite3_bind_int64(s.get(), 2, static_cast<std::int64_t>(limit));
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back({sqlite3_column_int64(s.get(), 0), column_text(s.get(), 1), column_text(s.get(), 2), column_text(s.get(), 3),
                   column_text(s.get(), 4), column_text(s.get(), 5), column_text(s.get(), 6), column_text(s.get(), 7)});
  return out;
}

std::size_t store::ack_inbox(std::int64_t through) {
  statement s(prepare("DELETE FROM inbox WHERE seq <= ?"));
  sqlite3_bind_int64(s.get(), 1, through);
  if (sqlite3_step(s.get()) != SQLITE_DONE) throw error(db_);
  const auto removed = static_cast<std::size_t>(sqlite3_changes(db_));
  inbox_rows_ -= removed;
  return removed;
}

std::int64_t store::add_outbox(const outbox_entry& e, const outbox_bounds& max) {
  return transaction([&]() -> std::int64_t { return outbox_has_room(e, max) ? insert_outbox(e) : 0; });
}

bool store::outbox_has_room(const outbox_entry& e, const outbox_bounds& max) {
  statement s(prepare("SELECT COUNT(*), COALESCE(SUM(payload_bytes), 0) FROM outbox WHERE state = 0"));
  if (sqlite3_step(s.get()) != SQLITE_ROW) throw error(db_);
  const auto messages = static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 0));
  const auto bytes = static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 1));
  return messages < max.messages && bytes + e.payload.size() <= max.bytes;
}

std::int64_t store::insert_outbox(const outbox_entry& e) {
  statement s(prepare("INSERT INTO outbox(peer, msg_type, payload, created_ms, expires_ms, state, trace, payload_bytes) "
                      "VALUES(?,?,'',?,?,?,?,?)"));
  bind_text(s.get(), 1, e.to);
  bind_text(s.get(), 2, e.msg_type);
  sqlite3_bind_int64(s.get(), 3, ms(e.created));
  sqlite3_bind_int64(s.get(), 4, ms(e.expires));
  sqlite3_bind_int(s.get(), 5, static_cast<int>(outbox_entry::state::queued));
  bind_text(s.get(), 6, e.trace);
  sqlite3_bind_int64(s.get(), 7, static_cast<std::int64_t>(e.payload.size()));
  if (sqlite3_step(s.get()) != SQLITE_DONE) throw error(db_);
  const auto id = sqlite3_last_insert_rowid(db_);
  statement p(prepare("INSERT INTO outbox_payloads(id, payload) VALUES(?,?)"));
  sqlite3_bind_int64(p.get(), 1, id);
  bind_text(p.get(), 2, e.payload);
  if (sqlite3_step(p.get()) != SQLITE_DONE) throw error(db_);
  return id;
}

std::size_t store::outbox_waiting() { return count("SELECT COUNT(*) FROM outbox WHERE state = 0"); }

namespace {
// The columns outbox_at reads. Listings leave the payload (it may be 64 MiB) and the sealed bytes
// out; outbox_get reads them.
std::string outbox_select(bool whole) {
  return std::string("SELECT id, peer, msg_type, ") +
         (whole ? "COALESCE((SELECT payload FROM outbox_payloads p WHERE p.id = outbox.id), '')" : "''") +
         ", created_ms, expires_ms, state, session, " + (whole ? "sealed" : "''") +
         ", written, attempts, result, trace, payload_bytes, transfer_id, chunk_size, chunk_total, chunks_acked, rounds, not_before_ms, rate_limited, sealed_at_ms, maybe_completed, resend_until_ms FROM outbox ";
}

outbox_entry outbox_at(sqlite3_stmt* s) {
  outbox_entry e;
  e.id = sqlite3_column_int64(s, 0);
  e.to = column_text(s, 1);
  e.msg_type = column_text(s, 2);
  e.payload = column_text(s, 3);
  e.created = from_ms(sqlite3_column_int64(s, 4));
  e.expires = from_ms(sqlite3_column_int64(s, 5));
  e.status = static_cast<outbox_entry::state>(std::clamp(sqlite3_column_int(s, 6), 0, 4));
  if (sqlite3_column_type(s, 7) != SQLITE_NULL) e.session = uuid{column_fixed<16>(s, 7)};
  e.sealed = column_text(s, 8);
  e.written = sqlite3_column_int(s, 9) != 0;
  e.attempts = static_cast<std::uint32_t>(sqlite3_column_int64(s, 10));
  e.result = column_text(s, 11);
  e.trace = column_text(s, 12);
  e.payload_bytes = static_cast<std::uint64_t>(sqlite3_column_int64(s, 13));
  if (sqlite3_column_type(s, 14) != SQLITE_NULL) e.transfer_id = uuid{column_fixed<16>(s, 14)};
  e.chunk_size = static_cast<std::uint32_t>(sqlite3_column_int64(s, 15));
  e.chunk_total = static_cast<std::uint32_t>(sqlite3_column_int64(s, 16));
  e.chunks_acked = static_cast<std::uint32_t>(sqlite3_column_int64(s, 17));
  e.rounds = static_cast<std::uint32_t>(sqlite3_column_int64(s, 18));
  e.not_before = from_ms(sqlite3_column_int64(s, 19));
  e.rate_limited = sqlite3_column_int(s, 20) != 0;
  e.sealed_at = from_ms(sqlite3_column_int64(s, 21));
  e.maybe_completed = sqlite3_column_int(s, 22) != 0;
  e.resend_until = from_ms(sqlite3_column_int64(s, 23));
  return e;
}
}  // namespace

std::optional<outbox_entry> store::outbox_get(std::int64_t id) {
  statement s(prepare(outbox_select(true) + "WHERE id = ?"));
  sqlite3_bind_int64(s.get(), 1, id);
  if (sqlite3_step(s.get()) != SQLITE_ROW) return std::nullopt;
  return outbox_at(s.get());
}

std::vector<std::pair<std::int64_t, std::string>> store::outbox_queued() {
  std::vector<std::pair<std::int64_t, std::string>> out;
  statement s(prepare("SELECT id, peer FROM outbox WHERE state = 0 ORDER BY id"));
  while (sqlite3_step(s.get()) == SQLITE_ROW) out.emplace_back(sqlite3_column_int64(s.get(), 0), column_text(s.get(), 1));
  return out;
}

std::vector<outbox_entry> store::outbox_recent(std::size_t limit) {
  std::vector<outbox_entry> out;
  statement s(prepare(outbox_select(false) + "ORDER BY id DESC LIMIT ?"));
  sqlite3_bind_int64(s.get(), 1, static_cast<std::int64_t>(limit));
  while (sqlite3_step(s.get()) == SQLITE_ROW) out.push_back(outbox_at(s.get()));
  return out;
}

void store::purge_outbox(sys_milliseconds before) {
  // Settled entries have no payload left (deleted when they settled).
  statement s(prepare("DELETE FROM outbox WHERE state <> 0 AND created_ms < ?"));
  sqlite3_bind_int64(s.get(), 1, ms(before));
  if (sqlite3_step(s.get()) != SQLITE_DONE) throw error(db_);
}

std::vector<peer_record> store::peer_records() {
  std::vector<peer_record> out;
  statement s(prepare("SELECT entity_id, public_key, url, configured FROM peers ORDER BY entity_id"));
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back({column_text(s.get(), 0), column_fixed<32>(s.get(), 1), column_text(s.get(), 2), sqlite3_column_int(s.get(), 3) != 0});
  return out;
}

std::vector<std::pair<std::string, rotation_record>> store::peer_rotations() {
  std::vector<std::pair<std::string, rotation_record>> out;
  statement s(prepare("SELECT entity_id, counter, previous_key, previous_until_ms, revoked FROM peer_rotations ORDER BY entity_id"));
  while (sqlite3_step(s.get()) == SQLITE_ROW) {
    rotation_record r;
    r.counter = static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 1));
    if (sqlite3_column_bytes(s.get(), 2) == 32) r.previous = column_fixed<32>(s.get(), 2);
    r.previous_until = from_ms(sqlite3_column_int64(s.get(), 3));
    r.revoked = sqlite3_column_int(s.get(), 4) != 0;
    out.emplace_back(column_text(s.get(), 0), r);
  }
  return out;
}

void store::pin_peer(const peer_record& p) {
  transaction([&] {
    statement s(prepare("INSERT OR REPLACE INTO peers(entity_id, public_key, url, configured) VALUES(?,?,?,1)"));
    bind_text(s.get(), 1, p.entity_id);
    bind_blob(s.get(), 2, p.key.data(), p.key.size());
    bind_text(s.get(), 3, p.url);
    if (sqlite3_step(s.get()) != SQLITE_DONE) throw error(db_);
    // The rotation counter stays (no older statement may apply again); a revocation is lifted.
    statement r(prepare("UPDATE peer_rotations SET revoked = 0, previous_key = NULL WHERE entity_id = ?"));
    bind_text(r.get(), 1, p.entity_id);
    if (sqlite3_step(r.get()) != SQLITE_DONE) throw error(db_);
    return true;
  });
}

bool store::unpin_peer(const std::string& entity_id) {
  statement s(prepare("DELETE FROM peers WHERE entity_id = ?"));
  bind_text(s.get(), 1, entity_id);
  if (sqlite3_step(s.get()) != SQLITE_DONE) throw error(db_);
  return sqlite3_changes(db_) > 0;
}

void store::remember_url(const std::string& entity_id, const std::string& url) {
  statement s(prepare("UPDATE peers SET url = ? WHERE entity_id = ?"));
  bind_text(s.get(), 1, url);
  bind_text(s.get(), 2, entity_id);
  if (sqlite3_step(s.get()) != SQLITE_DONE) throw error(db_);
}

std::string store::url_of(const std::string& entity_id) {
  statement s(prepare("SELECT url FROM peers WHERE entity_id = ?"));
  bind_text(s.get(), 1, entity_id);
  return sqlite3_step(s.get()) == SQLITE_ROW ? column_text(s.get(), 0) : std::string();
}

std::vector<key_rotation> store::own_chain() {
  std::vector<key_rotation> out;
  statement s(prepare("SELECT statement FROM own_rotations ORDER BY counter"));
  while (sqlite3_step(s.get()) == SQLITE_ROW) {
    auto v = jcs::parse_strict(column_text(s.get(), 0));
    auto r = v ? key_rotation_from_json(*v) : result<key_rotation>(failure{errc::invalid_format, "not JSON"});
    if (!r) throw store_error("state database: a stored rotation statement is damaged: " + r.error().message);
    out.push_back(std::move(*r));
  }
  return out;
}

void store::rotate_identity(const key_rotation& rotation, const crypto::ed25519_keypair& next) {
  auto next_wrap = wrap_key_of(next);
  const auto all = sessions();
  auto previous_wrap = std::exchange(wrap_key_, std::move(next_wrap));
  try {
    transaction([&] {
      statement ins(prepare("INSERT INTO own_rotations(counter, statement) VALUES(?,?)"));
      sqlite3_bind_int64(ins.get(), 1, static_cast<std::int64_t>(rotation.counter));
      bind_text(ins.get(), 2, jcs::canonicalize(to_json(rotation)));
      if (sqlite3_step(ins.get()) != SQLITE_DONE) throw error(db_);
      statement u(prepare("UPDATE sessions SET send_key = ?, receive_key = ? WHERE id = ?"));
      for (const auto& x : all) {
        const auto send = wrap(x.id, 's', x.send_key), receive = wrap(x.id, 'r', x.receive_key);
        bind_blob(u.get(), 1, send.data(), send.size());
        bind_blob(u.get(), 2, receive.data(), receive.size());
        bind_blob(u.get(), 3, x.id.bytes.data(), x.id.bytes.size());
        if (sqlite3_step(u.get()) != SQLITE_DONE) throw error(db_);
        sqlite3_reset(u.get());
      }
      return true;
    });
  } catch (...) {
    wrap_key_ = std::move(previous_wrap);
    throw;
  }
}

}  // namespace peerproto::node
