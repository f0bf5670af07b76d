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
