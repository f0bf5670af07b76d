#include "sys/sqlite.h"

#include <gtest/gtest.h>

#include "sys/test_temp_dir.h"

namespace halo {
namespace {

using testutil::TempDir;

class SqliteTest : public ::testing::Test {
 protected:
  Database openDb() {
    Result<Database> db = Database::open(dir_.file("t.db"));
    EXPECT_TRUE(db.ok()) << db.status().toString();
    return std::move(db).value();
  }
  static std::string queryText(Database& db, const std::string& sql) {
    Result<Statement> s = db.prepare(sql);
    EXPECT_TRUE(s.ok()) << s.status().toString();
    Result<bool> row = s->step();
    EXPECT_TRUE(row.ok() && *row) << sql;
    return s->columnText(0);
  }

  TempDir dir_;
};

TEST_F(SqliteTest, OpenSetsPragmas) {
  Database db = openDb();
  EXPECT_EQ(queryText(db, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(queryText(db, "PRAGMA foreign_keys"), "1");
  EXPECT_EQ(queryText(db, "PRAGMA busy_timeout"), "5000");
  EXPECT_EQ(db.path(), dir_.file("t.db"));
}

TEST_F(SqliteTest, OpenFailsWithoutParentDirectory) {
  Result<Database> db = Database::open(dir_.file("missing/t.db"));
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("missing/t.db"), std::string::npos);
}

TEST_F(SqliteTest, BindStepColumnsReset) {
  Database db = openDb();
  ASSERT_TRUE(db.exec("CREATE TABLE t(a INTEGER, b TEXT)").ok());
  Result<Statement> ins = db.prepare("INSERT INTO t(a, b) VALUES (?, ?)");
  ASSERT_TRUE(ins.ok()) << ins.status().toString();
  ASSERT_TRUE(ins->bindInt(1, int64_t{1} << 40).bindText(2, std::string("x\0y", 3)).run().ok());
  EXPECT_EQ(db.lastInsertRowId(), 1);
  EXPECT_EQ(db.changes(), 1);
  ins->reset();
  ASSERT_TRUE(ins->bindInt(1, -5).bindNull(2).run().ok());

  Result<Statement> sel = db.prepare("SELECT a, b FROM t ORDER BY rowid");
  ASSERT_TRUE(sel.ok());
  ASSERT_TRUE(*sel->step());
  EXPECT_EQ(sel->columnInt(0), int64_t{1} << 40);
  EXPECT_EQ(sel->columnText(1), std::string("x\0y", 3));
  EXPECT_FALSE(sel->columnIsNull(1));
  ASSERT_TRUE(*sel->step());
  EXPECT_EQ(sel->columnInt(0), -5);
  EXPECT_TRUE(sel->columnIsNull(1));
  EXPECT_EQ(sel->columnText(1), "");
  Result<bool> done = sel->step();
  ASSERT_TRUE(done.ok());
  EXPECT_FALSE(*done);
  sel->reset();
  EXPECT_TRUE(*sel->step());
}

TEST_F(SqliteTest, TimeRoundTripsInMicroseconds) {
  Database db = openDb();
  const SystemTime t = SystemTime(std::chrono::microseconds(1795000000123456));
  Result<Statement> s = db.prepare("SELECT ?");
  ASSERT_TRUE(s.ok());
  s->bindTime(1, t);
  ASSERT_TRUE(*s->step());
  EXPECT_EQ(s->columnInt(0), 1795000000123456);
  EXPECT_EQ(s->columnTime(0), t);
}

TEST_F(SqliteTest, ErrorsNameTheStatement) {
  Database db = openDb();
  Result<Statement> bad = db.prepare("SELEKT 1");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("SELEKT 1"), std::string::npos);
  EXPECT_FALSE(db.prepare("SELECT 1; SELECT 2").ok());
  EXPECT_FALSE(db.exec("INSERT INTO nowhere VALUES (1)").ok());

  Result<Statement> s = db.prepare("SELECT ?");
  ASSERT_TRUE(s.ok());
  s->bindInt(7, 1);  // no such parameter: reported by step()
  Result<bool> r = s->step();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bind parameter 7"), std::string::npos);
}

TEST_F(SqliteTest, TransactionCommitsOrRollsBack) {
  Database db = openDb();
  ASSERT_TRUE(db.exec("CREATE TABLE t(a INTEGER)").ok());
  EXPECT_TRUE(db.transaction([&] { return db.exec("INSERT INTO t VALUES (1)"); }).ok());
  Status s = db.transaction([&]() -> Status {
    HALO_RETURN_IF_ERROR(db.exec("INSERT INTO t VALUES (2)"));
    return invalidArgument("no");
  });
  EXPECT_EQ(s.message(), "no");
  EXPECT_EQ(queryText(db, "SELECT group_concat(a) FROM t"), "1");
}

TEST_F(SqliteTest, EnsureSchemaIsIdempotentAndRefusesNewer) {
  Database db = openDb();
  const std::string schema = "CREATE TABLE IF NOT EXISTS t(a INTEGER);";
  ASSERT_TRUE(db.ensureSchema(1, schema).ok());
  ASSERT_TRUE(db.ensureSchema(1, schema).ok());
  EXPECT_EQ(queryText(db, "PRAGMA user_version"), "1");
  Status s = db.ensureSchema(0, schema);
  EXPECT_EQ(s.code(), StatusCode::FailedPrecondition);
}

TEST_F(SqliteTest, MovedDatabaseAndStatementsStayUsable) {
  Database a = openDb();
  ASSERT_TRUE(a.exec("CREATE TABLE t(a INTEGER)").ok());
  Result<Statement> s = a.prepare("INSERT INTO t VALUES (3)");
  ASSERT_TRUE(s.ok());
  Database b = std::move(a);
  Statement moved = std::move(s).value();
  EXPECT_TRUE(moved.run().ok());
  EXPECT_EQ(queryText(b, "SELECT a FROM t"), "3");
}

}  // namespace
}  // namespace halo
