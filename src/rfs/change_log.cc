#include "rfs/change_log.h"

#include <linux/falloc.h>
#include <stdio.h>  // RENAME_EXCHANGE

#include "rfs/varint.h"

namespace halo::rfs {

namespace {

std::string parentOf(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

// Whether `path` is `dir` or below it ("" is the root: everything is below it).
bool atOrBelow(const std::string& path, const std::string& dir) {
  if (dir.empty()) {
    return true;
  }
  return path.size() >= dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         (path.size() == dir.size() || path[dir.size()] == '/');
}

const std::string& keyOf(const std::string& k) { return k; }
template <typename V>
const std::string& keyOf(const std::pair<const std::string, V>& kv) {
  return kv.first;
}

// Erases the keys of `m` at or below `dir`, telling `erased` each one.
template <typename Container, typename Fn>
void eraseAtOrBelow(Container* m, const std::string& dir, Fn erased) {
  // They sort from `dir` on, with siblings that merely share the prefix ("dir-x") among them:
  // each is checked until the prefix no longer matches.
  for (auto it = m->lower_bound(dir); it != m->end();) {
    const std::string& key = keyOf(*it);
    if (key.compare(0, dir.size(), dir) != 0) {
      break;
    }
    if (atOrBelow(key, dir)) {
      erased(key);
      it = m->erase(it);
    } else {
      ++it;
    }
  }
}

void addAligned(std::map<uint64_t, uint64_t>* ranges, uint64_t offset, uint64_t length) {
  if (length == 0) {
    return;
  }
  uint64_t start = offset / ChangeLog::kBlock * ChangeLog::kBlock;
  uint64_t end = offset + length < offset ? UINT64_MAX : offset + length;
  if (end % ChangeLog::kBlock != 0) {
    end = end > UINT64_MAX - ChangeLog::kBlock ? UINT64_MAX
                                               : (end / ChangeLog::kBlock + 1) * ChangeLog::kBlock;
  }
  // Merge with every range that overlaps or touches [start, end).
  auto it = ranges->upper_bound(start);
  if (it != ranges->begin()) {
    auto prev = std::prev(it);
    if (prev->second >= start) {
      start = prev->first;
      end = std::max(end, prev->second);
      it = ranges->erase(prev);
    }
  }
  while (it != ranges->end() && it->first <= end) {
    end = std::max(end, it->second);
    it = ranges->erase(it);
  }
  (*ranges)[start] = end;
}

}  // namespace

std::string encodeRanges(const std::map<uint64_t, uint64_t>& ranges) {
  std::string out;
  uint64_t last = 0;
  for (const auto& [start, end] : ranges) {
    codec::putVarint((start - last) / ChangeLog::kBlock, &out);
    codec::putVarint((end - start) / ChangeLog::kBlock, &out);
    last = end;
  }
  return out;
}

Result<std::map<uint64_t, uint64_t>> decodeRanges(std::string_view bytes) {
  std::map<uint64_t, uint64_t> out;
  codec::Reader r(bytes);
  uint64_t last = 0;
  constexpr uint64_t kMaxBlocks = UINT64_MAX / ChangeLog::kBlock;
  while (!r.done()) {
    uint64_t gap = 0;
    uint64_t blocks = 0;
    if (!r.varint(&gap) || !r.varint(&blocks)) {
      return invalidArgument("change log: truncated range");
    }
    const uint64_t first = last / ChangeLog::kBlock;
    if (blocks == 0 || (!out.empty() && gap == 0) || gap > kMaxBlocks - first ||
        blocks > kMaxBlocks - first - gap) {
      return invalidArgument("change log: ranges out of order or out of bounds");
    }
    const uint64_t start = (first + gap) * ChangeLog::kBlock;
    const uint64_t end = start + blocks * ChangeLog::kBlock;
    out[start] = end;
    last = end;
  }
  return out;
}

void ChangeLog::touch(uint16_t root, const std::string& path) {
  if (track_touched_) {
    touched_.insert({root, path});
  }
}

bool ChangeLog::underFresh(uint16_t root, const std::string& path) const {
  auto r = roots_.find(root);
  if (r == roots_.end() || (r->second.fresh.empty() && r->second.uncertain.empty())) {
    return false;
  }
  for (std::string p = path;; p = parentOf(p)) {
    if (r->second.fresh.count(p) != 0 || r->second.uncertain.count(p) != 0) {
      return true;
    }
    if (p.empty()) {
      return false;
    }
  }
}

void ChangeLog::touchParent(uint16_t root, const std::string& path) {
  if (path.empty()) {
    return;
  }
  addDir(root, parentOf(path));
}

void ChangeLog::removeAt(uint16_t root, const std::string& path) {
  auto r = roots_.find(root);
  if (r == roots_.end()) {
    return;
  }
  // What goes is touched so that the journal deletes its rows too.
  auto gone = [&](const std::string& key) { touch(root, key); };
  eraseAtOrBelow(&r->second.paths, path, gone);
  eraseAtOrBelow(&r->second.dirs, path, gone);
  eraseAtOrBelow(&r->second.fresh, path, gone);
  eraseAtOrBelow(&r->second.uncertain, path, gone);
  recount();
}

void ChangeLog::recount() {
  count_ = 0;
  for (auto it = roots_.begin(); it != roots_.end();) {
    const RootChanges& r = it->second;
    if (r.paths.empty() && r.dirs.empty() && r.fresh.empty() && r.uncertain.empty()) {
      it = roots_.erase(it);
      continue;
    }
    count_ += r.paths.size() + r.dirs.size() + r.fresh.size() + r.uncertain.size();
    ++it;
  }
  if (count_ > kMaxPaths) {
    complete_ = false;
  }
}

ChangeLog::PathChange* ChangeLog::changeOf(uint16_t root, const std::string& path) {
  if (underFresh(root, path)) {
    return nullptr;  // described entirely anyway
  }
  auto& pc = roots_[root].paths[path];
  if (pc.ranges.empty() && pc.check.empty() && !pc.meta && ++count_ > kMaxPaths) {
    complete_ = false;
  }
  touch(root, path);
  return &pc;
}

void ChangeLog::addRange(uint16_t root, const std::string& path, uint64_t offset, uint64_t length) {
  if (PathChange* pc = length == 0 ? nullptr : changeOf(root, path)) {
    addAligned(&pc->ranges, offset, length);
  }
}

void ChangeLog::addCheck(uint16_t root, const std::string& path, uint64_t offset, uint64_t length) {
  if (PathChange* pc = length == 0 ? nullptr : changeOf(root, path)) {
    addAligned(&pc->check, offset, length);
  }
}

void ChangeLog::addTail(uint16_t root, const std::string& path, uint64_t offset) {
  addCheck(root, path, offset, kEnd - std::min(kEnd, offset));
}

void ChangeLog::addMeta(uint16_t root, const std::string& path) {
  if (PathChange* pc = changeOf(root, path)) {
    pc->meta = true;
  }
}

void ChangeLog::addDir(uint16_t root, const std::string& path) {
  if (underFresh(root, path)) {
    return;
  }
  if (roots_[root].dirs.insert(path).second) {
    touch(root, path);
    if (++count_ > kMaxPaths) {
      complete_ = false;
    }
  }
}

void ChangeLog::addEntire(uint16_t root, const std::string& path,
                          std::set<std::string> RootChanges::*kind) {
  if (underFresh(root, path)) {
    return;
  }
  removeAt(root, path);
  (roots_[root].*kind).insert(path);
  touch(root, path);
  recount();
}

void ChangeLog::addFresh(uint16_t root, const std::string& path) {
  addEntire(root, path, &RootChanges::fresh);
}

void ChangeLog::addUncertain(uint16_t root, const std::string& path) {
  addEntire(root, path, &RootChanges::uncertain);
}

void ChangeLog::record(const Op& op) {
  const uint16_t root = op.root;
  switch (op.type) {
    case OpType::Write:
      // A Write kept without its data (the hub's unacknowledged records) has its size in length.
      addRange(root, op.path, op.offset, op.data.empty() ? op.length : op.data.size());
      break;
    case OpType::Fallocate:
      addRange(root, op.path, op.offset, op.length);
      if ((op.flags & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE)) != 0) {
        addTail(root, op.path, op.offset);  // what follows moved
      }
      if ((op.flags & FALLOC_FL_KEEP_SIZE) == 0) {
        addMeta(root, op.path);  // it may have grown the file
      }
      break;
    case OpType::Create:
    case OpType::Mknod:
    case OpType::Mkdir:
    case OpType::Symlink:
      touchParent(root, op.path);
      addFresh(root, op.path);
      break;
    case OpType::Unlink:
    case OpType::Rmdir:
      touchParent(root, op.path);
      removeAt(root, op.path);
      break;
    case OpType::Rename:
      touchParent(root, op.path);
      touchParent(root, op.path2);
      if (op.flags & RENAME_EXCHANGE) {
        // Each now holds what the other held: both are described entirely.
        addFresh(root, op.path);
      } else {
        removeAt(root, op.path);
      }
      addFresh(root, op.path2);
      break;
    case OpType::Link:
      // Another name of an inode: its content and the names' sharing cannot be described by
      // paths; a full reintegration recreates the links.
      touchParent(root, op.path2);
      complete_ = false;
      break;
    case OpType::SetAttr:
      if ((op.flags & kSetSize) != 0) {
        // What a shrink cut reads as zeros if the file grows again, on the primary only; the
        // sizes alone cannot tell (truncate to 0, then back to the old size).
        addTail(root, op.path, op.length);
      }
      addMeta(root, op.path);
      break;
    case OpType::SetXattr:
    case OpType::RemoveXattr:
      addMeta(root, op.path);
      break;
    default:
      break;  // Fsync changes nothing; reintegration records are not the application's
  }
}

void ChangeLog::merge(const ChangeLog& other) {
  if (!other.complete_) {
    complete_ = false;
  }
  for (const auto& [root, r] : other.roots_) {
    for (const auto& f : r.fresh) {
      addFresh(root, f);
    }
    for (const auto& u : r.uncertain) {
      addUncertain(root, u);
    }
    for (const auto& d : r.dirs) {
      addDir(root, d);
    }
    for (const auto& [path, pc] : r.paths) {
      for (const auto& [start, end] : pc.ranges) {
        addRange(root, path, start, end - start);
      }
      for (const auto& [start, end] : pc.check) {
        addCheck(root, path, start, end - start);
      }
      if (pc.meta) {
        addMeta(root, path);
      }
    }
  }
}

void ChangeLog::clear() {
  for (const auto& [root, r] : roots_) {
    for (const auto& [path, pc] : r.paths) {
      touch(root, path);
    }
    for (const auto& d : r.dirs) {
      touch(root, d);
    }
    for (const auto& f : r.fresh) {
      touch(root, f);
    }
    for (const auto& u : r.uncertain) {
      touch(root, u);
    }
  }
  roots_.clear();
  count_ = 0;
  complete_ = true;
}

uint64_t ChangeLog::checkBytes() const {
  uint64_t total = 0;
  for (const auto& [root, r] : roots_) {
    for (const auto& [path, pc] : r.paths) {
      for (const auto& [start, end] : pc.check) {
        total += end - start;
      }
    }
  }
  return total;
}

uint64_t ChangeLog::dirtyBytes() const {
  uint64_t total = 0;
  for (const auto& [root, r] : roots_) {
    for (const auto& [path, pc] : r.paths) {
      for (const auto& [start, end] : pc.ranges) {
        total += end - start;
      }
    }
  }
  return total;
}

std::vector<std::pair<uint16_t, std::string>> ChangeLog::keys() const {
  std::vector<std::pair<uint16_t, std::string>> out;
  for (const auto& [root, r] : roots_) {
    std::set<std::string> paths(r.dirs.begin(), r.dirs.end());
    paths.insert(r.fresh.begin(), r.fresh.end());
    paths.insert(r.uncertain.begin(), r.uncertain.end());
    for (const auto& [path, pc] : r.paths) {
      paths.insert(path);
    }
    for (auto& p : paths) {
      out.emplace_back(root, p);
    }
  }
  return out;
}

std::set<std::pair<uint16_t, std::string>> ChangeLog::takeTouched() {
  std::set<std::pair<uint16_t, std::string>> out;
  out.swap(touched_);
  return out;
}

std::pair<int, std::string> ChangeLog::row(uint16_t root, const std::string& path) const {
  auto r = roots_.find(root);
  if (r == roots_.end()) {
    return {0, ""};
  }
  int flags = 0;
  std::string ranges;
  if (r->second.dirs.count(path) != 0) {
    flags |= kDir;
  }
  if (r->second.fresh.count(path) != 0) {
    flags |= kFresh;
  }
  if (r->second.uncertain.count(path) != 0) {
    flags |= kUncertain;
  }
  auto p = r->second.paths.find(path);
  if (p != r->second.paths.end()) {
    if (p->second.meta) {
      flags |= kMeta;
    }
    if (!p->second.ranges.empty()) {
      flags |= kData;
      ranges = encodeRanges(p->second.ranges);
    }
    if (!p->second.check.empty()) {
      flags |= kCheck;
      std::string both;
      if (flags & kData) {
        codec::putBytes(ranges, &both);
      }
      ranges = both + encodeRanges(p->second.check);
    }
  }
  return {flags, ranges};
}

Status ChangeLog::addRow(uint16_t root, const std::string& path, int flags,
                         std::string_view ranges) {
  if (!validRelativePath(path, true)) {
    return invalidArgument("change log: invalid path \"" + path + "\"");
  }
  if (flags <= 0 || flags > (kDir | kFresh | kMeta | kData | kUncertain | kCheck)) {
    return invalidArgument("change log: invalid flags for \"" + path + "\"");
  }
  if (flags & kFresh) {
    addFresh(root, path);
  }
  if (flags & kUncertain) {
    addUncertain(root, path);
  }
  if (flags & kDir) {
    addDir(root, path);
  }
  if (flags & kMeta) {
    addMeta(root, path);
  }
  std::string_view data = ranges;
  std::string_view check;
  if (flags & kCheck) {
    codec::Reader r(ranges);
    if ((flags & kData) && !r.lengthPrefixed(&data)) {
      return invalidArgument("change log: truncated ranges for \"" + path + "\"");
    }
    if (!(flags & kData)) {
      data = {};
    }
    check = ranges.substr(r.pos());
  }
  if (flags & kData) {
    HALO_ASSIGN_OR_RETURN(auto decoded, decodeRanges(data));
    for (const auto& [start, end] : decoded) {
      addRange(root, path, start, end - start);
    }
  } else if (!data.empty()) {
    return invalidArgument("change log: ranges without the data flag for \"" + path + "\"");
  }
  if (flags & kCheck) {
    HALO_ASSIGN_OR_RETURN(auto decoded, decodeRanges(check));
    for (const auto& [start, end] : decoded) {
      addCheck(root, path, start, end - start);
    }
  }
  return okStatus();
}

// "HRCL", version, complete, then per row: varint root, path, varint flags, ranges.
namespace {
constexpr char kLogMagic[4] = {'H', 'R', 'C', 'L'};
constexpr uint8_t kLogVersion = 1;
}  // namespace

std::string ChangeLog::encode() const {
  std::string out(kLogMagic, sizeof kLogMagic);
  out.push_back(static_cast<char>(kLogVersion));
  out.push_back(complete_ ? 1 : 0);
  for (const auto& [root, path] : keys()) {
    auto [flags, ranges] = row(root, path);
    codec::putVarint(root, &out);
    codec::putBytes(path, &out);
    codec::putVarint(static_cast<uint64_t>(flags), &out);
    codec::putBytes(ranges, &out);
  }
  return out;
}

Result<ChangeLog> ChangeLog::decode(std::string_view bytes) {
  if (bytes.size() < 6 || bytes.compare(0, 4, std::string_view(kLogMagic, 4)) != 0) {
    return invalidArgument("change log: bad magic");
  }
  if (static_cast<uint8_t>(bytes[4]) != kLogVersion) {
    return invalidArgument("change log: unknown version " +
                           std::to_string(static_cast<uint8_t>(bytes[4])));
  }
  ChangeLog log;
  if (bytes[5] == 0) {
    log.complete_ = false;
  } else if (bytes[5] != 1) {
    return invalidArgument("change log: bad completeness flag");
  }
  codec::Reader r(bytes.substr(6));
  while (!r.done()) {
    uint64_t root = 0;
    uint64_t flags = 0;
    std::string_view path;
    std::string_view ranges;
    if (!r.varint(&root) || root > UINT16_MAX || !r.lengthPrefixed(&path) || !r.varint(&flags) ||
        flags > 0xff || !r.lengthPrefixed(&ranges)) {
      return invalidArgument("change log: truncated or malformed row at byte " +
                             std::to_string(6 + r.pos()));
    }
    HALO_RETURN_IF_ERROR(log.addRow(static_cast<uint16_t>(root), std::string(path),
                                    static_cast<int>(flags), ranges));
    if (log.count_ > kMaxPaths) {
      log.complete_ = false;
      break;
    }
  }
  log.touched_.clear();
  return log;
}

}  // namespace halo::rfs
