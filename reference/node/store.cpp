#include "store.hpp"

#include <peerproto/encoding.hpp>

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>

namespace peerproto::node {
namespace {

struct finalize {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using statement = std::unique_ptr<sqlite3_stmt, finalize>;

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
std::span<const std::uint8_t, 32> column_key(sqlite3_stmt* s, int i) {
  if (sqlite3_column_bytes(s, i) != 32) throw store_error("stored key has the wrong size");
  return std::span<const std::uint8_t, 32>(static_cast<const std::uint8_t*>(sqlite3_column_blob(s, i)), 32);
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

}  // namespace

store::store(const std::filesystem::path& file) {
  // Sessions hold keys: the file is created readable by the owner only, before SQLite opens it.
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw store_error("cannot open state database " + file.string());
  ::close(fd);
  if (sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw store_error("cannot open state database " + file.string() + ": " + why);
  }
  sqlite3_busy_timeout(db_, 5000);
  // WAL with synchronous=NORMAL: a committed transaction survives the process being killed; only
  // a power loss can lose the last transactions (SQLite's documented trade-off).
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=NORMAL");
  exec(schema);
}

store::~store() { sqlite3_close(db_); }

void store::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err ? err : "unknown error";
    sqlite3_free(err);
    throw store_error("state database: " + why);
  }
}

sqlite3_stmt* store::prepare(const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK)
    throw store_error(std::string("state database: ") + sqlite3_errmsg(db_));
  return s;
}

void store::apply(const state_changes& c) {
  if (c.empty()) return;
  exec("BEGIN IMMEDIATE");
  try {
    const auto step = [&](sqlite3_stmt* s) {
      if (sqlite3_step(s) != SQLITE_DONE) throw store_error(std::string("state database: ") + sqlite3_errmsg(db_));
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
    if (!c.sessions.empty()) {
      statement s(prepare("INSERT OR REPLACE INTO sessions VALUES(?,?,?,?,?,?,?,?,?,?,?)"));
      for (const auto& x : c.sessions) {
        bind_blob(s.get(), 1, x.id.bytes.data(), x.id.bytes.size());
        sqlite3_bind_int(s.get(), 2, x.role == session_role::initiator ? 0 : 1);
        bind_text(s.get(), 3, x.peer_id);
        bind_blob(s.get(), 4, x.peer_key.data(), x.peer_key.size());
        bind_text(s.get(), 5, x.version);
        bind_blob(s.get(), 6, x.send_key.data(), x.send_key.size());
        bind_blob(s.get(), 7, x.receive_key.data(), x.receive_key.size());
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
      statement s(prepare("INSERT OR REPLACE INTO peers(entity_id, public_key) VALUES(?,?)"));
      for (const auto& [id, key] : c.peers) {
        bind_text(s.get(), 1, id);
        bind_blob(s.get(), 2, key.data(), key.size());
        step(s.get());
      }
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void store::purge_nonces(sys_milliseconds now) {
  statement s(prepare("DELETE FROM nonces WHERE expiry_ms <= ?"));
  sqlite3_bind_int64(s.get(), 1, ms(now));
  if (sqlite3_step(s.get()) != SQLITE_DONE) throw store_error(std::string("state database: ") + sqlite3_errmsg(db_));
}

std::vector<std::pair<std::string, crypto::public_key>> store::peers() {
  std::vector<std::pair<std::string, crypto::public_key>> out;
  statement s(prepare("SELECT entity_id, public_key FROM peers ORDER BY entity_id"));
  while (sqlite3_step(s.get()) == SQLITE_ROW) out.emplace_back(column_text(s.get(), 0), column_fixed<32>(s.get(), 1));
  return out;
}

std::vector<replay_entry> store::nonces(sys_milliseconds now) {
  std::vector<replay_entry> out;
  statement s(prepare("SELECT sender, nonce, expiry_ms FROM nonces WHERE expiry_ms > ? ORDER BY expiry_ms"));
  sqlite3_bind_int64(s.get(), 1, ms(now));
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back({column_text(s.get(), 0), column_fixed<16>(s.get(), 1), from_ms(sqlite3_column_int64(s.get(), 2))});
  return out;
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
    x.send_key = crypto::secret<32>(column_key(s.get(), 5));
    x.receive_key = crypto::secret<32>(column_key(s.get(), 6));
    x.next_send = static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 7));
    x.next_expected = static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 8));
    x.ready_at = from_ms(sqlite3_column_int64(s.get(), 9));
    x.last_activity = from_ms(sqlite3_column_int64(s.get(), 10));
    out.push_back(std::move(x));
  }
  return out;
}

bool store::enqueue_task(const task_record& t, std::size_t max_tasks) {
  exec("BEGIN IMMEDIATE");
  try {
    if (task_count() >= max_tasks) {
      exec("ROLLBACK");
      return false;
    }
    statement s(prepare("INSERT INTO tasks(task_id, sender_id, task, received_at) VALUES(?,?,?,?)"));
    bind_text(s.get(), 1, t.task_id);
    bind_text(s.get(), 2, t.sender_id);
    bind_text(s.get(), 3, t.task);
    bind_text(s.get(), 4, t.received_at);
    if (sqlite3_step(s.get()) != SQLITE_DONE) throw store_error(std::string("state database: ") + sqlite3_errmsg(db_));
    exec("COMMIT");
    return true;
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::size_t store::task_count() {
  statement s(prepare("SELECT COUNT(*) FROM tasks"));
  if (sqlite3_step(s.get()) != SQLITE_ROW) throw store_error(std::string("state database: ") + sqlite3_errmsg(db_));
  return static_cast<std::size_t>(sqlite3_column_int64(s.get(), 0));
}

std::vector<task_record> store::tasks() {
  std::vector<task_record> out;
  statement s(prepare("SELECT task_id, sender_id, task, received_at FROM tasks ORDER BY seq"));
  while (sqlite3_step(s.get()) == SQLITE_ROW)
    out.push_back({column_text(s.get(), 0), column_text(s.get(), 1), column_text(s.get(), 2), column_text(s.get(), 3)});
  return out;
}

}  // namespace peerproto::node
