#pragma once
// ChangeLog: what differs between this node's replicated directories and the state both nodes
// shared at their last sync point (DESIGN 6.3), so that a returning secondary gets only that
// (fast reintegration) instead of a comparison of every file.
//
// The primary feeds it every operation while no session is synced, and the operations a lost
// session had not acknowledged. It is a description of state, not a list of operations: the
// reintegration makes each recorded path match the primary's ("ensure" records), so it does not
// matter which of the last operations before a link loss the secondary had applied.
//
// Per replicated directory (root):
//   paths  - existing objects changed in place: data as 4 KiB-aligned byte ranges (sparse: a
//            mostly clean file costs a few entries), ranges that may differ (what a crash
//            left: compared, then only the differing blocks copied) and/or metadata (mode,
//            owner, times, xattrs, size);
//   dirs   - directories whose entries changed (created, removed, renamed in or out);
//   fresh  - objects created or moved in: described entirely (a file sent whole, a directory
//            walked whole), whatever is recorded below them is redundant;
//   uncertain - objects that may differ in any way (what a crash left, activity_log.h):
//            described entirely too, their content compared rather than sent whole.
// A rename drops what is recorded under its source and target and makes the target fresh (the
// peer holds that object under the old name). A hard link made while tracking cannot be
// described this way: the log is then incomplete and the next reintegration is full.
//
// Thread-safety: none; the hub calls it under its lock.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "rfs/op.h"

namespace halo::rfs {

class ChangeLog {
 public:
  static constexpr uint64_t kBlock = 4096;
  // The end of "everything from here on" ranges (compared ranges are clipped to the file's size).
  static constexpr uint64_t kEnd = uint64_t{1} << 62;
  // Past this many recorded paths, a full reintegration is the better plan.
  static constexpr size_t kMaxPaths = 1000000;

  struct PathChange {
    std::map<uint64_t, uint64_t> ranges;  // start -> end, kBlock-aligned, disjoint, not adjacent
    std::map<uint64_t, uint64_t> check;   // the same, to compare before copying
    bool meta = false;
    bool operator==(const PathChange&) const = default;
  };
  struct RootChanges {
    std::map<std::string, PathChange> paths;
    std::set<std::string> dirs;
    std::set<std::string> fresh;
    std::set<std::string> uncertain;
    bool operator==(const RootChanges&) const = default;
  };
  // One recorded path as stored (journal rows, wire): kind flags and its ranges.
  static constexpr int kDir = 1;
  static constexpr int kFresh = 2;
  static constexpr int kMeta = 4;
  static constexpr int kData = 8;
  static constexpr int kUncertain = 16;
  static constexpr int kCheck = 32;

  void record(const Op& op);
  // A zone whose writes may not have reached the peer (activity log): its bytes count as dirty.
  void addRange(uint16_t root, const std::string& path, uint64_t offset, uint64_t length);
  // Bytes that may differ from the peer (activity log zones): compared, not sent blindly.
  void addCheck(uint16_t root, const std::string& path, uint64_t offset, uint64_t length);
  // Every byte from `offset` on (a check range to kEnd).
  void addTail(uint16_t root, const std::string& path, uint64_t offset);
  void addDir(uint16_t root, const std::string& path);
  void addFresh(uint16_t root, const std::string& path);
  void addUncertain(uint16_t root, const std::string& path);
  void addMeta(uint16_t root, const std::string& path);
  // Everything `other` records, added to this (the union of two nodes' changes).
  void merge(const ChangeLog& other);
  void clear();
  // Only a full reintegration can bring the peer up to date (a hard link was made, the log
  // outgrew kMaxPaths, or what it held was lost).
  void markIncomplete() { complete_ = false; }
  bool complete() const { return complete_; }
  bool empty() const { return roots_.empty(); }
  const std::map<uint16_t, RootChanges>& roots() const { return roots_; }
  // Bytes the recorded ranges cover (fresh objects not counted: their size is on disk).
  uint64_t dirtyBytes() const;
  // Bytes the check ranges cover (compared; copied only where they differ).
  uint64_t checkBytes() const;
  size_t paths() const { return count_; }

  // A log that never reaches a journal (the hub's not-yet-durable operations) does not keep
  // which keys changed.
  void trackTouched(bool on) {
    track_touched_ = on;
    touched_.clear();
  }
  // Every recorded (root, path), in order.
  std::vector<std::pair<uint16_t, std::string>> keys() const;
  // Which (root, path) keys changed since the last takeTouched(): the journal writes only those.
  std::set<std::pair<uint16_t, std::string>> takeTouched();
  // The stored form of one key: flags (kDir | kFresh | kMeta | kData | kUncertain | kCheck) and
  // encoded ranges (with kCheck: the data ranges length-prefixed, then the check ranges); flags
  // 0 when nothing is recorded for it any more (the journal deletes its row).
  std::pair<int, std::string> row(uint16_t root, const std::string& path) const;
  // Restores one stored row (validated: untrusted when it comes from the peer).
  Status addRow(uint16_t root, const std::string& path, int flags, std::string_view ranges);

  // The whole log as bytes (the secondary sends its own with its hello) and back; decode
  // treats the bytes as untrusted.
  std::string encode() const;
  static Result<ChangeLog> decode(std::string_view bytes);

  bool operator==(const ChangeLog& o) const {
    return roots_ == o.roots_ && complete_ == o.complete_;
  }

 private:
  // Whether `path` or one of its ancestors is fresh or uncertain (then nothing below needs
  // recording: it is described entirely).
  bool underFresh(uint16_t root, const std::string& path) const;
  // The entry of `path` about to record a change (counted against kMaxPaths if new, touched),
  // or nullptr below a fresh object (described entirely anyway).
  PathChange* changeOf(uint16_t root, const std::string& path);
  void touchParent(uint16_t root, const std::string& path);
  // Records `path` to be described entirely (fresh or uncertain), forgetting what was below.
  void addEntire(uint16_t root, const std::string& path, std::set<std::string> RootChanges::*kind);
  void removeAt(uint16_t root, const std::string& path);  // path and everything below it
  void touch(uint16_t root, const std::string& path);
  void recount();

  std::map<uint16_t, RootChanges> roots_;
  std::set<std::pair<uint16_t, std::string>> touched_;
  size_t count_ = 0;
  bool complete_ = true;
  bool track_touched_ = true;
};

// The 4 KiB-aligned ranges, encoded (varint start, length pairs) and decoded.
std::string encodeRanges(const std::map<uint64_t, uint64_t>& ranges);
Result<std::map<uint64_t, uint64_t>> decodeRanges(std::string_view bytes);

}  // namespace halo::rfs
