#pragma once
// Records built from a file's attributes (shared by the interception, the reintegration and the
// description of moved-in files).

#include <sys/stat.h>

#include <string>

#include "rfs/op.h"

namespace halo::rfs {

// SetAttr of the access and modification times `st` holds: the peer's copy gets them, not the
// ones of its own clock when it applied the change.
inline Op timesOf(const std::string& path, const struct stat& st) {
  Op op;
  op.type = OpType::SetAttr;
  op.path = path;
  op.flags = kSetAtime | kSetMtime;
  op.atime_sec = st.st_atim.tv_sec;
  op.atime_nsec = st.st_atim.tv_nsec;
  op.mtime_sec = st.st_mtim.tv_sec;
  op.mtime_nsec = st.st_mtim.tv_nsec;
  return op;
}

}  // namespace halo::rfs
