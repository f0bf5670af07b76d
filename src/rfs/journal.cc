#include "rfs/journal.h"

namespace halo::rfs {

namespace {

constexpr int kSchemaVersion = 1;
constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS rfs_state(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS rfs_changes(root INTEGER NOT NULL, path TEXT NOT NULL,"
    " flags INTEGER NOT NULL, ranges BLOB NOT NULL, PRIMARY KEY(root, path));";

}  // namespace

JournalDelta rewriteOf(const ChangeLog& log, uint64_t base) {
  JournalDelta d;
  d.base = base;
  d.complete = log.complete();
  d.rewrite = true;
  for (const auto& [root, path] : log.keys()) {
    auto [flags, ranges] = log.row(root, path);
    d.rows.push_back({root, path, flags, std::move(ranges)});
  }
  return d;
}

Result<std::unique_ptr<Journal>> Journal::open(const std::string& path) {
  HALO_ASSIGN_OR_RETURN(Database db, Database::open(path));
  HALO_RETURN_IF_ERROR(db.ensureSchema(kSchemaVersion, kSchema));
  return std::unique_ptr<Journal>(new Journal(std::move(db), path));
}

Status Journal::setValue(const std::string& key, int64_t value) {
  HALO_ASSIGN_OR_RETURN(Statement st,
                        db_.prepare("INSERT INTO rfs_state(key, value) VALUES(?, ?) "
                                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
  return st.bindText(1, key).bindInt(2, value).run();
}

Result<Journal::Loaded> Journal::load() {
  std::lock_guard<std::mutex> lock(mutex_);
  Loaded out;
  bool complete = true;
  {
    HALO_ASSIGN_OR_RETURN(Statement st, db_.prepare("SELECT key, value FROM rfs_state"));
    while (true) {
      HALO_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) {
        break;
      }
      const std::string key = st.columnText(0);
      const int64_t value = st.columnInt(1);
      if (key == "base") {
        out.base = static_cast<uint64_t>(value);
      } else if (key == "clean") {
        out.clean = value != 0;
      } else if (key == "complete") {
        complete = value != 0;
      } else if (key == "quarantined") {
        out.quarantined = value != 0;
      } else if (key == "pair") {
        out.pair = static_cast<uint64_t>(value);
      }
    }
  }
  {
    HALO_ASSIGN_OR_RETURN(Statement st,
                          db_.prepare("SELECT root, path, flags, ranges FROM rfs_changes"));
    while (true) {
      HALO_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) {
        break;
      }
      const int64_t root = st.columnInt(0);
      Status s = root < 0 || root > UINT16_MAX
                     ? invalidArgument("bad root")
                     : out.log.addRow(static_cast<uint16_t>(root), st.columnText(1),
                                      static_cast<int>(st.columnInt(2)), st.columnBlob(3));
      if (!s.ok()) {
        complete = false;  // a damaged row: only a full reintegration is safe
      }
    }
  }
  if (!complete) {
    out.log.markIncomplete();
  }
  (void)out.log.takeTouched();
  HALO_RETURN_IF_ERROR(setValue("clean", 0));
  return out;
}

Status Journal::write(const JournalDelta& delta) {
  std::lock_guard<std::mutex> lock(mutex_);
  return db_.transaction([&]() -> Status {
    HALO_RETURN_IF_ERROR(setValue("base", static_cast<int64_t>(delta.base)));
    HALO_RETURN_IF_ERROR(setValue("complete", delta.complete ? 1 : 0));
    if (delta.rewrite) {
      HALO_RETURN_IF_ERROR(db_.exec("DELETE FROM rfs_changes"));
    }
    HALO_ASSIGN_OR_RETURN(Statement put,
                          db_.prepare("INSERT INTO rfs_changes(root, path, flags, ranges) "
                                      "VALUES(?, ?, ?, ?) ON CONFLICT(root, path) DO UPDATE SET "
                                      "flags = excluded.flags, ranges = excluded.ranges"));
    HALO_ASSIGN_OR_RETURN(Statement del,
                          db_.prepare("DELETE FROM rfs_changes WHERE root = ? AND path = ?"));
    for (const auto& r : delta.rows) {
      if (r.flags == 0) {
        if (!delta.rewrite) {
          HALO_RETURN_IF_ERROR(del.bindInt(1, r.root).bindText(2, r.path).run());
          del.reset();
        }
        continue;
      }
      HALO_RETURN_IF_ERROR(put.bindInt(1, r.root)
                               .bindText(2, r.path)
                               .bindInt(3, r.flags)
                               .bindBlob(4, r.ranges)
                               .run());
      put.reset();
    }
    if (before_commit_) {
      before_commit_();
    }
    return okStatus();
  });
}

Status Journal::resetTo(uint64_t base) {
  JournalDelta d;
  d.base = base;
  d.rewrite = true;
  HALO_RETURN_IF_ERROR(write(d));
  std::lock_guard<std::mutex> lock(mutex_);
  return setValue("quarantined", 0);
}

Status Journal::setPair(uint64_t pair) {
  std::lock_guard<std::mutex> lock(mutex_);
  return setValue("pair", static_cast<int64_t>(pair));
}

Status Journal::markQuarantined() {
  std::lock_guard<std::mutex> lock(mutex_);
  return setValue("quarantined", 1);
}

Status Journal::markClean() {
  std::lock_guard<std::mutex> lock(mutex_);
  return setValue("clean", 1);
}

}  // namespace halo::rfs
