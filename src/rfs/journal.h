#pragma once
// Journal: what a node's replication process keeps across its restarts (DESIGN 6.3, 6.4), in
// SQLite ($VAR/modules/AM/rfs.db):
//
//   base   the id of the sync point this node's data derives from: drawn by the primary at the
//          end of each reintegration (the ResyncDone record carries it) and kept by both nodes.
//          0: none (never synchronised, or a full reintegration was interrupted);
//   log    the changes made since then that the peer may lack (change_log.h), written lazily:
//          only the rows that changed since the last write;
//   clean  whether the previous process stopped cleanly. A process that crashed flushed its log
//          last at some earlier point: without an activity log, that log is not trusted.
//
// Two nodes whose bases are equal hold the same data but for what their logs record, so a
// reintegration can copy only that; otherwise every file is compared.
//
// Thread-safety: all methods may be called from any thread (one mutex).

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "rfs/change_log.h"
#include "sys/sqlite.h"

namespace halo::rfs {

struct JournalRow {
  uint16_t root = 0;
  std::string path;
  int flags = 0;  // ChangeLog::kDir | kFresh | kMeta | kData; 0: the row is deleted
  std::string ranges;
};

// What changed in the journal since it was last written (the hub produces it under its lock).
struct JournalDelta {
  uint64_t base = 0;
  bool complete = true;
  bool rewrite = false;  // every row is replaced by `rows`
  std::vector<JournalRow> rows;
  // Once written, every operation up to this sequence number is safe (in the journal or on the
  // secondary's disk): Hub::journalWritten.
  uint64_t upto = 0;
  bool empty() const { return !rewrite && rows.empty(); }
};
// The delta that replaces the journal's rows by all of `log`'s.
JournalDelta rewriteOf(const ChangeLog& log, uint64_t base);

class Journal {
 public:
  struct Loaded {
    uint64_t base = 0;
    bool clean = true;         // the previous process stopped cleanly (or there was none)
    ChangeLog log;             // marked incomplete when its rows could not be read back
    bool quarantined = false;  // the log's objects were copied aside (quarantine.h)
    uint64_t pair = 0;         // which two nodes the sync point is between (0: unknown)
  };
  static Result<std::unique_ptr<Journal>> open(const std::string& path);

  // What the previous process left. Marks this process running: clean turns true again only
  // through markClean().
  Result<Loaded> load();
  // Applies `delta` (the base, completeness and changed rows) in one transaction.
  Status write(const JournalDelta& delta);
  // A new sync point: this node holds exactly the data of sync point `base`; no change since.
  Status resetTo(uint64_t base);
  Status markClean();
  // The log's objects are copied aside: not again until the next sync point (resetTo).
  Status markQuarantined();
  Status setPair(uint64_t pair);
  // A fault point for crash tests: called inside every write's transaction, before its commit
  // (it may kill the process there).
  void setBeforeCommit(std::function<void()> hook) { before_commit_ = std::move(hook); }
  const std::string& path() const { return path_; }

 private:
  Journal(Database db, std::string path) : db_(std::move(db)), path_(std::move(path)) {}
  Status setValue(const std::string& key, int64_t value);

  std::mutex mutex_;
  Database db_;  // guarded by mutex_
  std::function<void()> before_commit_;
  const std::string path_;
};

}  // namespace halo::rfs
