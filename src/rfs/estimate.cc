// rfsdiff (service.h): what a reintegration would copy if the secondary joined now.

#include <fcntl.h>
#include <sys/stat.h>

#include "rfs/service.h"
#include "rfs/tree_diff.h"

namespace halo::rfs {

namespace {

struct Tally {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// Every regular file at or below `rel` (a metadata walk, no content read).
void tallyTree(int root_fd, const std::string& rel, const PathFilter& filter, Tally* t) {
  struct stat st {};
  if (::fstatat(root_fd, rel.empty() ? "." : rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return;
  }
  if (S_ISREG(st.st_mode)) {
    t->files += 1;
    t->bytes += static_cast<uint64_t>(st.st_size);
    return;
  }
  if (!S_ISDIR(st.st_mode)) {
    return;
  }
  WalkOptions o;
  o.block_digests = false;
  if (filter) {
    // The walk names paths relative to `rel`; the filter knows them relative to the root.
    o.include = [filter, rel](std::string_view p, bool dir) {
      return filter(rel.empty() ? std::string(p) : rel + "/" + std::string(p), dir);
    };
  }
  auto walk =
      walkTree("/proc/self/fd/" + std::to_string(root_fd) + (rel.empty() ? "" : "/" + rel), o);
  if (!walk.ok()) {
    return;
  }
  for (const auto& e : walk->manifest.entries) {
    if (S_ISREG(e.type_and_mode)) {
      t->files += 1;
      t->bytes += e.size;
    }
  }
}

}  // namespace

nlohmann::json PrimaryService::estimate() const {
  const ChangeLog changes = hub_->changes();
  const uint64_t base = hub_->base();
  nlohmann::json j = {{"base", base}};
  Tally t;
  const std::vector<int> roots = rootFds();
  if (base == 0 || !changes.complete()) {
    j["mode"] = "full";
    j["why"] = base == 0 ? "this node holds no sync point with a secondary yet"
                         : "its change log is incomplete (a crash without activity log, a hard "
                           "link made, or too many changes)";
    for (size_t i = 0; i < roots.size(); ++i) {
      tallyTree(roots[i], "", options_.dirs[i].replicated, &t);
    }
  } else {
    j["mode"] = "changes";
    t.bytes = changes.dirtyBytes();
    uint64_t dirs = 0;
    for (const auto& [root, r] : changes.roots()) {
      if (root >= roots.size()) {
        continue;
      }
      for (const auto& [path, pc] : r.paths) {
        t.files += pc.ranges.empty() ? 0 : 1;
      }
      for (const auto* entire : {&r.fresh, &r.uncertain}) {
        for (const auto& p : *entire) {
          tallyTree(roots[root], p, options_.dirs[root].replicated, &t);
        }
      }
      dirs += r.dirs.size();
    }
    j["directories"] = dirs;
    j["paths"] = changes.paths();
  }
  j["files"] = t.files;
  j["bytes"] = t.bytes;
  // The last reintegration's rate, when it moved enough to say something.
  std::lock_guard<std::mutex> lock(mutex_);
  j["rate_bytes_s"] = last_progress_.bytes_done >= (64u << 20) ? last_progress_.rate : 0.0;
  return j;
}

}  // namespace halo::rfs
