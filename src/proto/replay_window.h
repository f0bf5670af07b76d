#pragma once
// Replay protection for one peer's heartbeats on one heartbeat network: a (boot id, sequence) is
// fresh when its boot id is new (the peer restarted) or its sequence is above the last accepted
// one for that boot id. Only authenticated packets may reach it: the window trusts its input.

#include <cstdint>
#include <deque>
#include <optional>

#include "base/status.h"

namespace halo::proto {

class ReplayWindow {
 public:
  // Boot ids seen before the current one are remembered (bounded) and refused, so a captured
  // packet from an earlier boot cannot be replayed as a "restart".
  static constexpr size_t kMaxRetiredBootIds = 64;

  // Ok and recorded when fresh; FailedPrecondition (nothing recorded) for a duplicate, an older
  // sequence or a retired boot id.
  Status admit(uint64_t boot_id, uint64_t sequence);

  uint64_t accepted() const { return accepted_; }
  uint64_t replayed() const { return replayed_; }
  uint64_t bootChanges() const { return boot_changes_; }
  std::optional<uint64_t> currentBootId() const { return boot_id_; }

 private:
  std::optional<uint64_t> boot_id_;
  uint64_t last_sequence_ = 0;
  std::deque<uint64_t> retired_;
  uint64_t accepted_ = 0;
  uint64_t replayed_ = 0;
  uint64_t boot_changes_ = 0;
};

}  // namespace halo::proto
