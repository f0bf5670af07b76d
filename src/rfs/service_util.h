#pragma once
// Pieces the two replication services share (service.h).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "rfs/channel.h"
#include "rfs/service.h"

namespace halo::rfs {

// Answers a manifest session on `channel`: one Manifest frame per directory (verify.cc).
void serveManifests(std::unique_ptr<Channel> channel, const std::vector<int>& roots,
                    const std::vector<ReplicatedDir>& dirs, const LinkOptions& link);

// What a replication process starts from, in either role: its journal and, when the previous
// process did not stop cleanly, what its activity log adds to the change log (written to the
// journal before the activity log starts afresh). Without a journal (options.journal empty)
// nothing is kept: every reintegration is full.
struct StartState {
  std::unique_ptr<Journal> journal;
  std::unique_ptr<ActivityLog> activity;
  uint64_t base = 0;
  ChangeLog log;
  bool quarantined = false;
  std::string note;  // for the operator (a crash was recovered from), "" when nothing happened
};
Result<StartState> openStartState(const ServiceOptions& options, TimeSource& time);

// The <tocheck> guard: every listed path must exist below the directory, or replication must
// not start (an empty mount point would be replicated as an empty tree).
inline Status checkTocheck(int root_fd, const ReplicatedDir& d) {
  for (const auto& p : d.tocheck) {
    struct stat st {};
    if (::fstatat(root_fd, p.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return failedPrecondition(d.dir + "/" + p +
                                " (<tocheck>) does not exist: is the file system holding " + d.dir +
                                " mounted? Replication does not start without it");
    }
  }
  return okStatus();
}

}  // namespace halo::rfs
