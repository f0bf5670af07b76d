#pragma once
// Which paths of a replicated directory are replicated (reference 3.2.7, <notreplicated>): a
// `path` excludes that file or directory and everything below it; a `regexpath` (POSIX ERE on the
// relative path, case-sensitive) excludes every path it matches, and what is below a matching
// directory. A path is replicated when neither it nor any of its ancestors is excluded: a
// directory the peer does not have cannot hold replicated files. A `regexpath` starting with
// '!' replicates only the files (of any type but directory) that match one such expression:
// directories stay replicated, empty or not, so that the matching files have somewhere to be.
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
  // the expression ("line 12: regexpath '(': ...").
  static Result<std::unique_ptr<ReplicationFilter>> create(const config::ReplicatedConfig& dir);
  ~ReplicationFilter();

  bool replicated(std::string_view rel_path, bool is_dir) const;
  bool excludesNothing() const { return paths_.empty() && regexes_.empty() && only_.empty(); }

 private:
  struct Regex;
  ReplicationFilter() = default;
  bool excludedItself(std::string_view rel_path) const;

  std::vector<std::string> paths_;
  std::vector<std::unique_ptr<Regex>> regexes_;
  std::vector<std::unique_ptr<Regex>> only_;  // the '!' ones: replicate only matching files
};

}  // namespace halo::rfs
