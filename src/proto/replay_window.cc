#include "proto/replay_window.h"

#include <algorithm>
#include <string>

namespace halo::proto {

Status ReplayWindow::admit(uint64_t boot_id, uint64_t sequence) {
  if (boot_id_ == boot_id) {
    if (sequence <= last_sequence_) {
      ++replayed_;
      return failedPrecondition("heartbeat replayed: sequence " + std::to_string(sequence) +
                                " not above " + std::to_string(last_sequence_));
    }
    last_sequence_ = sequence;
    ++accepted_;
    return okStatus();
  }
  if (std::find(retired_.begin(), retired_.end(), boot_id) != retired_.end()) {
    ++replayed_;
    return failedPrecondition("heartbeat replayed: boot id " + std::to_string(boot_id) +
                              " belongs to an earlier start of the peer");
  }
  if (boot_id_.has_value()) {
    ++boot_changes_;
    retired_.push_back(*boot_id_);
    if (retired_.size() > kMaxRetiredBootIds) {
      retired_.pop_front();
    }
  }
  boot_id_ = boot_id;
  last_sequence_ = sequence;
  ++accepted_;
  return okStatus();
}

}  // namespace halo::proto
