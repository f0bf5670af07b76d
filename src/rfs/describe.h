#pragma once
// Describes an object of the real tree to the peer as the operations that create it: for a file
// moved or linked into the replicated part from a part that is not replicated (<notreplicated>),
// whose source the peer never had. Used by the interception under its ordering lock.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "rfs/op.h"
#include "rfs/path_filter.h"

namespace halo::rfs {

// Submits Mkdir/Create/Symlink/Mknod for `rel` (beneath `root_fd`), the content of a regular
// file (holes skipped), its extended attributes and times, and for a directory all of this for
// every replicated entry below it. Returns the last sequence number submitted (0: none).
uint64_t describeForPeer(int root_fd, const std::string& rel,
                         const std::function<uint64_t(Op)>& submit, const PathFilter& replicated);

}  // namespace halo::rfs
