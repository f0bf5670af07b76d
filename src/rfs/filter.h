#pragma once
// Which paths of a replicated directory are replicated (reference 3.2.7, <notreplicated>): a
// `path` excludes that file or directory and everything below it; a `regexpath` (POSIX ERE on the
// relative path, case-sensitive) excludes every path it matches, and what is below a matching
// directory. A path is replicated when neither it nor any of its ancestors is excluded: a
// directory the peer does not have cannot hold replicated files.
//
// Thread-safety: const methods may be called from any thread (FUSE workers).

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "config/mirror_config.h"

namespace halo::rfs {

class ReplicationFilter {
 public:
  // Compiles the rules of one <replicated> directory. Errors name the configuration line and
  // the expression ("line 12: regexpath '(': ..."). "!regex" (replicate only what matches) is
  // refused until the interception layer knows file types: a directory that does not match must
  // still exist on the peer for the matching files below it.
  static Result<std::unique_ptr<ReplicationFilter>> create(const config::ReplicatedConfig& dir);
  ~ReplicationFilter();

  bool replicated(std::string_view rel_path) const;
  bool excludesNothing() const { return paths_.empty() && regexes_.empty(); }

 private:
  struct Regex;
  ReplicationFilter() = default;
  bool excludedItself(std::string_view rel_path) const;

  std::vector<std::string> paths_;
  std::vector<std::unique_ptr<Regex>> regexes_;
};

}  // namespace halo::rfs
