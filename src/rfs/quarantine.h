#pragma once
// Split-brain recovery that loses nothing (DESIGN 5.6): before the sacrificed node is
// resynchronised from the survivor, the objects it changed while the two were isolated (its own
// change log) are copied, content, mode, owner and times, to
// $VAR/modules/AM/splitbrain/<date>/<replicated dir>/<path>, with CHANGES.txt listing them. The
// operator reviews and merges them; Halo never reads them again.
//
// Thread-safety: a free function; the caller owns the descriptors.

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/time_source.h"
#include "rfs/change_log.h"

namespace halo::rfs {

struct QuarantineReport {
  std::string dir;                  // the <date> folder
  std::vector<std::string> copied;  // "/var/lib/pgsql/base/1/1259", what was copied
  std::vector<std::string> gone;    // directories whose entries changed (removals included)
  uint64_t bytes = 0;               // of the copied files
  std::vector<std::string> errors;  // objects that could not be copied (and why)
};

// `dirs[i]` is the absolute path of root i, `roots[i]` a descriptor of it (O_PATH is enough).
Result<QuarantineReport> quarantineChanges(const ChangeLog& changes,
                                           const std::vector<std::string>& dirs,
                                           const std::vector<int>& roots,
                                           const std::string& splitbrain_dir, SystemTime now);

}  // namespace halo::rfs
