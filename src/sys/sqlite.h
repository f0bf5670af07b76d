#pragma once
// Database and Statement: a small RAII layer over SQLite for the node and module stores.
//
// Every database is opened in WAL mode with a 5 s busy timeout so that several processes (the
// daemon, module runtimes, the CLI) can write the same file at once; multi-statement updates go
// through transaction(), which uses BEGIN IMMEDIATE so a writer never has to upgrade a read lock
// (an upgrade fails with SQLITE_BUSY without waiting).
//
// Thread-safety: a Database and its Statements belong to one thread at a time. Never carry an
// open Database across fork(): open it again in the child.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "base/time_source.h"

struct sqlite3;
struct sqlite3_stmt;

namespace halo {

class Database;

// A prepared statement. Bind indexes start at 1 and column indexes at 0, as in SQLite. Bind
// errors are kept and returned by the next step(), so call sites can bind in a row.
// A Statement must not outlive the Database that prepared it.
class Statement {
 public:
  Statement(Statement&&) noexcept = default;
  Statement& operator=(Statement&&) noexcept = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() = default;

  Statement& bindInt(int index, int64_t value);
  Statement& bindText(int index, std::string_view value);
  Statement& bindBlob(int index, std::string_view value);
  Statement& bindNull(int index);
  // Times are stored as microseconds since the Unix epoch (INTEGER).
  Statement& bindTime(int index, SystemTime t);

  // true: a row is available through the column getters; false: the statement is done.
  Result<bool> step();
  // Steps until done, for statements that return no rows (INSERT, UPDATE, DELETE).
  Status run();
  // Makes the statement ready to run again and clears its bindings.
  void reset();

  int64_t columnInt(int col) const;
  std::string columnText(int col) const;  // "" for NULL
  std::string columnBlob(int col) const;  // "" for NULL
  bool columnIsNull(int col) const;
  SystemTime columnTime(int col) const;

 private:
  friend class Database;
  struct Finalizer {
    void operator()(sqlite3_stmt* s) const;
  };
  Statement(sqlite3* db, sqlite3_stmt* stmt, std::string context);
  void noteBind(int rc, int index);

  sqlite3* db_ = nullptr;
  std::unique_ptr<sqlite3_stmt, Finalizer> stmt_;
  std::string context_;  // "<db path>: <sql>", for error messages
  Status bind_status_;
};

class Database {
 public:
  // Opens (creating if needed) the database file. The parent directory must exist.
  static Result<Database> open(const std::string& path);

  Database(Database&&) noexcept = default;
  Database& operator=(Database&&) noexcept = default;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database() = default;

  // Runs one or more statements that return no rows of interest.
  Status exec(const std::string& sql);
  // Prepares exactly one statement.
  Result<Statement> prepare(std::string_view sql);
  // Runs body inside BEGIN IMMEDIATE ... COMMIT, rolling back when body fails. Not reentrant.
  Status transaction(const std::function<Status()>& body);
  // Creates the schema in one transaction: runs create_sql, which must be idempotent (CREATE ...
  // IF NOT EXISTS), and raises user_version to version. It runs even when user_version is
  // already version, so that several stores can share one file, each creating its own tables.
  // A database from a newer Halo (user_version > version) is refused rather than misread.
  Status ensureSchema(int version, const std::string& create_sql);

  int64_t lastInsertRowId() const;
  // Rows changed by the last INSERT, UPDATE or DELETE.
  int changes() const;
  const std::string& path() const { return path_; }

 private:
  struct Closer {
    void operator()(sqlite3* db) const;
  };
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  Status error(int rc, std::string_view what) const;

  std::unique_ptr<sqlite3, Closer> db_;
  std::string path_;
};

}  // namespace halo
