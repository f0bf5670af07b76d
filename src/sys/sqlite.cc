#include "sys/sqlite.h"

#include <sqlite3.h>

#include <cctype>
#include <chrono>

namespace halo {

namespace {

constexpr int kBusyTimeoutMs = 5000;

// BUSY/LOCKED after the busy timeout means another process held the lock too long: the caller
// may retry. Everything else is an environment fault (disk, corruption) or a bug in our SQL.
Status sqliteStatus(int rc, const std::string& message) {
  const int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    return unavailable(message);
  }
  return internalError(message);
}

bool isBlank(std::string_view s) {
  for (char c : s) {
    if (!std::isspace(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

}  // namespace

// Statement

void Statement::Finalizer::operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }

Statement::Statement(sqlite3* db, sqlite3_stmt* stmt, std::string context)
    : db_(db), stmt_(stmt), context_(std::move(context)) {}

void Statement::noteBind(int rc, int index) {
  if (rc != SQLITE_OK && bind_status_.ok()) {
    bind_status_ = internalError(context_ + ": bind parameter " + std::to_string(index) + ": " +
                                 sqlite3_errstr(rc));
  }
}

Statement& Statement::bindInt(int index, int64_t value) {
  noteBind(sqlite3_bind_int64(stmt_.get(), index, value), index);
  return *this;
}

Statement& Statement::bindText(int index, std::string_view value) {
  noteBind(sqlite3_bind_text(stmt_.get(), index, value.data(), static_cast<int>(value.size()),
                             SQLITE_TRANSIENT),
           index);
  return *this;
}

Statement& Statement::bindBlob(int index, std::string_view value) {
  noteBind(sqlite3_bind_blob(stmt_.get(), index, value.data(), static_cast<int>(value.size()),
                             SQLITE_TRANSIENT),
           index);
  return *this;
}

Statement& Statement::bindNull(int index) {
  noteBind(sqlite3_bind_null(stmt_.get(), index), index);
  return *this;
}

Statement& Statement::bindTime(int index, SystemTime t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch());
  return bindInt(index, us.count());
}

Result<bool> Statement::step() {
  if (!bind_status_.ok()) {
    return bind_status_;
  }
  const int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  return sqliteStatus(rc, context_ + ": " + sqlite3_errmsg(db_));
}

Status Statement::run() {
  while (true) {
    HALO_ASSIGN_OR_RETURN(bool row, step());
    if (!row) {
      return okStatus();
    }
  }
}

void Statement::reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
  bind_status_ = okStatus();
}

int64_t Statement::columnInt(int col) const { return sqlite3_column_int64(stmt_.get(), col); }

std::string Statement::columnText(int col) const {
  const unsigned char* text = sqlite3_column_text(stmt_.get(), col);
  if (text == nullptr) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col)));
}

std::string Statement::columnBlob(int col) const {
  const void* blob = sqlite3_column_blob(stmt_.get(), col);
  if (blob == nullptr) {
    return {};
  }
  return std::string(static_cast<const char*>(blob),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col)));
}

bool Statement::columnIsNull(int col) const {
  return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL;
}

SystemTime Statement::columnTime(int col) const {
  return SystemTime(std::chrono::microseconds(columnInt(col)));
}

// Database

// close_v2 tolerates statements still alive: they are finalized when they go.
void Database::Closer::operator()(sqlite3* db) const { sqlite3_close_v2(db); }

Result<Database> Database::open(const std::string& path) {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  Database db(raw, path);  // owns the handle even when open failed
  if (rc != SQLITE_OK) {
    return db.error(rc, "open");
  }
  sqlite3_extended_result_codes(raw, 1);
  // The busy timeout goes first: switching to WAL takes a lock another opener may hold.
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  // A filesystem without WAL support keeps the rollback journal, which is also safe between
  // processes (only slower), so the pragma's answer is not checked.
  HALO_RETURN_IF_ERROR(db.exec("PRAGMA journal_mode=WAL"));
  HALO_RETURN_IF_ERROR(db.exec("PRAGMA foreign_keys=ON"));
  return db;
}

Status Database::error(int rc, std::string_view what) const {
  const char* msg = db_ ? sqlite3_errmsg(db_.get()) : sqlite3_errstr(rc);
  return sqliteStatus(rc, "sqlite " + path_ + ": " + std::string(what) + ": " + msg);
}

Status Database::exec(const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) {
    return okStatus();
  }
  std::string message = "sqlite " + path_ + ": " + sql + ": " + (err ? err : sqlite3_errstr(rc));
  sqlite3_free(err);
  return sqliteStatus(rc, message);
}

Result<Statement> Database::prepare(std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  const int rc =
      sqlite3_prepare_v2(db_.get(), sql.data(), static_cast<int>(sql.size()), &raw, &tail);
  Statement stmt(db_.get(), raw, path_ + ": " + std::string(sql));
  if (rc != SQLITE_OK) {
    return sqliteStatus(
        rc, "sqlite " + path_ + ": prepare " + std::string(sql) + ": " + sqlite3_errmsg(db_.get()));
  }
  if (raw == nullptr || !isBlank(std::string_view(tail, sql.data() + sql.size() - tail))) {
    return internalError("sqlite " + path_ +
                         ": prepare expects exactly one statement: " + std::string(sql));
  }
  return stmt;
}

Status Database::transaction(const std::function<Status()>& body) {
  HALO_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
  Status s = body();
  if (s.ok()) {
    s = exec("COMMIT");
  }
  if (!s.ok()) {
    // The rollback's own failure is secondary: the body's error is what the caller must see.
    (void)exec("ROLLBACK");
  }
  return s;
}

Status Database::ensureSchema(int version, const std::string& create_sql) {
  return transaction([&]() -> Status {
    HALO_ASSIGN_OR_RETURN(Statement q, prepare("PRAGMA user_version"));
    HALO_ASSIGN_OR_RETURN(bool row, q.step());
    const int64_t current = row ? q.columnInt(0) : 0;
    if (current > version) {
      return failedPrecondition("sqlite " + path_ + ": schema version " + std::to_string(current) +
                                " is newer than this Halo supports (" + std::to_string(version) +
                                ")");
    }
    HALO_RETURN_IF_ERROR(exec(create_sql));
    if (current == version) {
      return okStatus();
    }
    return exec("PRAGMA user_version=" + std::to_string(version));
  });
}

int64_t Database::lastInsertRowId() const { return sqlite3_last_insert_rowid(db_.get()); }

int Database::changes() const { return sqlite3_changes(db_.get()); }

}  // namespace halo
