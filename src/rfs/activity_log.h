#pragma once
// ActivityLog: what makes the lazily written change log crash-safe (DESIGN 6.3), as DRBD's
// activity log does for its bitmap. Before the primary applies an operation, the places it
// touches must be persisted here unless they already are ("active"):
//
//   Zone  (path, zone)   a zone (<rfs ruzone_blocksize>, 4 MiB by default) of an existing file
//                        that is written, fallocated;
//   Meta  (path)         an existing object whose metadata (mode, owner, times, size, xattrs)
//                        changes;
//   Dir   (path)         a directory whose entries change; it also covers every object created
//                        in it (and below such objects) while it is active: they are "born" and
//                        need nothing more (creates, untar, new files written whole);
//   Moved (path)         a name that an existing object replaced (rename over a target);
//   Linked (path)        a hard link was made: after a crash only a full reintegration
//                        restores the links.
//
// Entries are grouped in epochs. An epoch takes entries until it holds `capacity` or is
// `epoch_age` old, then a new one starts (when the one before is gone): so "born" means born
// in the last minutes, and a crash costs whole copies of those objects at most. An epoch goes away
// once every operation it admitted is safe: acknowledged by a synced secondary, or recorded in a
// journal write (the hub's safeSeq()). So after a crash of this node, the live epochs' entries name
// every place where its data may differ from what the peer has or what the journal says: recover()
// turns them into change log entries (born objects are found by their birth time against the oldest
// live epoch's start, with a grace; a clock that went back makes every entry of an active directory
// count).
//
// Several threads that need entries at once share one commit (group commit, one SQLite
// transaction with a synchronous WAL: $VAR/modules/AM/rfs-al.db).
//
// Thread-safety: all methods may be called from any thread.

#include <compare>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/time_source.h"
#include "rfs/change_log.h"
#include "rfs/path_filter.h"
#include "sys/sqlite.h"

namespace halo::rfs {

class ActivityLog {
 public:
  // Tail: every byte from zone `zone` on may change (a truncate, a range collapsed or inserted).
  enum class Kind : uint8_t { Zone = 1, Meta = 2, Dir = 3, Moved = 4, Linked = 5, Tail = 6 };
  struct Key {
    Kind kind = Kind::Zone;
    uint16_t root = 0;
    std::string path;
    uint64_t zone = 0;  // Zone and Tail only
    auto operator<=>(const Key&) const = default;
  };
  // What one operation needs before it is applied: `born` (an epoch) when the object it changes
  // was born in that epoch (nothing else needed while it is the current one), else `keys`.
  struct Need {
    uint64_t born = 0;
    std::vector<Key> keys;
  };
  struct Options {
    uint64_t zone_size = 4u << 20;
    size_t capacity = 4096;  // entries per epoch
    Millis epoch_age{60000};
    // Birth times this much before an epoch's start count as after it: the kernel stamps
    // inodes from a coarse clock that lags the one read for the start.
    Millis grace{1000};
    // Created (and synced) before anything goes on untracked once the log cannot be written:
    // whatever happens next, the next start knows the change log is incomplete.
    std::string broken_marker;
  };

  // Pins an epoch while the operation it admitted is applied and submitted; released on
  // destruction with the operation's sequence number (0: nothing was submitted).
  class Ticket {
   public:
    Ticket() = default;
    Ticket(ActivityLog* log, uint64_t epoch) : log_(log), epoch_(epoch) {}
    Ticket(Ticket&& o) noexcept { *this = std::move(o); }
    Ticket& operator=(Ticket&& o) noexcept;
    ~Ticket() { release(); }
    uint64_t epoch() const { return epoch_; }
    void setSeq(uint64_t seq) { seq_ = std::max(seq_, seq); }
    void release();

   private:
    ActivityLog* log_ = nullptr;
    uint64_t epoch_ = 0;
    uint64_t seq_ = 0;
  };

  // What a crashed process left: the entries of its live epochs.
  struct Recovered {
    std::vector<Key> keys;
    int64_t oldest_start_us = 0;  // start of the oldest live epoch (wall clock)
    int64_t last_commit_us = 0;   // the last commit's wall clock time
    uint64_t zone_size = 0;
    bool empty() const { return keys.empty(); }
  };

  // Opens (creating) the log at `path`; what it holds is returned by recovered() until reset().
  static Result<std::unique_ptr<ActivityLog>> open(const std::string& path, Options options,
                                                   TimeSource& time);
  const Recovered& recovered() const { return recovered_; }
  // Forgets what a previous process left (once it is in the journal) and starts epoch 1.
  Status reset();

  // Under the caller's own lock, without blocking: a ticket if `need` is covered now.
  std::optional<Ticket> admit(const Need& need);
  // Without the caller's lock: persists what `need` lacks (one commit shared with other
  // threads); on return, admit() succeeds unless an epoch began meanwhile (then again).
  Status activate(const Need& need);
  // Epochs whose operations are all at or below `seq` (safe) go away.
  void safeUpTo(uint64_t seq);
  // Call often (every second): a wall clock that stepped back since the last call moves the
  // live epochs' starts back as much, so that what is born after the step still counts; an
  // epoch older than epoch_age gives way to a new one.
  void noteClock();

  uint64_t currentEpoch() const;
  uint64_t zoneSize() const { return options_.zone_size; }
  // The log could not be written: nothing is tracked any more (the change log must be marked
  // incomplete by the owner).
  bool broken() const;
  size_t activeEntries() const;

 private:
  struct Epoch {
    uint64_t id = 0;
    int64_t start_us = 0;
    uint64_t inflight = 0;
    uint64_t max_seq = 0;
    std::set<Key> keys;
  };
  ActivityLog(Database db, Options options, TimeSource& time)
      : db_(std::move(db)), options_(options), time_(time) {}
  Status load();
  // Under mutex_ (held by `lock`, not busy_): takes busy_, runs `body` on the database with
  // the lock released, then gives busy_ back; a failure breaks the log for good.
  Status writeExclusive(std::unique_lock<std::mutex>& lock, const std::function<Status()>& body);
  void released(uint64_t epoch, uint64_t seq);
  Epoch* epochLocked(uint64_t id);
  int64_t nowUs() const;
  int64_t last_wall_us_ = 0;   // noteClock's caller thread only
  MonotonicTime last_mono_{};  // noteClock's caller thread only

  Database db_;  // used by whoever holds `busy_`
  const Options options_;
  TimeSource& time_;
  Recovered recovered_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Epoch> epochs_;         // live, oldest first; the last is the current one; mutex_
  std::set<Key> queued_;             // waiting for the next commit; mutex_
  uint64_t next_batch_ = 1;          // the batch queued_ will be; mutex_
  uint64_t done_batch_ = 0;          // the last batch written (or failed); mutex_
  bool busy_ = false;                // a thread is writing the database; mutex_
  bool broken_ = false;              // mutex_
  void markBroken(const Status& s);  // under mutex_
  Status error_;                     // mutex_
};

// Turns what a crashed process left into change log entries, looking at this node's tree
// (`roots`: descriptors of the replicated directories) for the objects born in its active
// directories (birth time, or status change time where the file system keeps no birth time, at
// or after the oldest live epoch's start less `grace`). `filters` says what is replicated, per
// root (null: everything).
void recoverActivity(const ActivityLog::Recovered& recovered, const std::vector<int>& roots,
                     const std::vector<PathFilter>& filters, int64_t now_us, Millis grace,
                     ChangeLog* log);

}  // namespace halo::rfs
