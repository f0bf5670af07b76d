#pragma once
// OpSink: where the primary's interception layer (fuse_fs.h) hands each modifying operation, in
// the order it was applied locally. The replication process implements it (transport to the
// peer, dirty tracking while the peer is away); tests implement it by recording.

#include <cstdint>

#include "rfs/op.h"

namespace halo::rfs {

class OpSink {
 public:
  virtual ~OpSink() = default;
  // Called while the file system holds its ordering lock, right after the local operation
  // succeeded: queues the operation and returns its sequence number. Must not block for long
  // (no network round trip here).
  virtual uint64_t submit(Op op) = 0;
  // submit() for an operation whose acknowledgement is waited for right after (`wait` Now:
  // namespace operations, O_SYNC writes, a write-back before a close) or at the next fsync or
  // close (Later): the sink may ask the peer for it along with the record (op.h, AckWait).
  virtual uint64_t submitAwaited(Op op, AckWait /*wait*/) { return submit(std::move(op)); }
  // Called without the lock: returns once every operation up to `seq` is applied by the peer
  // (namespace operations, fsync, flush of a written file, O_SYNC writes), or at once when the
  // module runs alone (the sink then records what the peer lacks). Never fails the application's
  // operation: a replication failure is the replication process's business (DESIGN 6.2).
  virtual void waitAcked(uint64_t seq) = 0;
  // Called under the ordering lock: an operation the change log cannot describe by paths was
  // applied (a name of a file with other names removed: its changes may be logged under that
  // name only), so the next reintegration must compare every file.
  virtual void changesUntrackable() = 0;
};

}  // namespace halo::rfs
