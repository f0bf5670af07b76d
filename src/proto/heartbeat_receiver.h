#pragma once
// The two ends of one heartbeat stream: the sender numbers and seals, the receiver opens, decodes
// and checks freshness, counting every refusal by class so operators can tell a wrong key from a
// foreign module or an attack.

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/status.h"
#include "proto/heartbeat.h"
#include "proto/heartbeat_crypto.h"
#include "proto/replay_window.h"

namespace halo::proto {

struct HeartbeatStats {
  uint64_t accepted = 0;
  uint64_t truncated = 0;
  uint64_t bad_magic = 0;  // bad magic, unknown packet version or header flags
  uint64_t foreign_module = 0;
  uint64_t key_mismatch = 0;  // one node has modulekey.dat and the other not
  uint64_t forged = 0;        // MAC or checksum mismatch
  uint64_t replayed = 0;      // duplicate, older sequence or earlier boot id
  uint64_t malformed = 0;     // authentic but undecodable (bad padding, bad fields)
  uint64_t boot_changes = 0;  // peer restarts seen (accepted packets)
  uint64_t wrong_node = 0;    // authentic, but from another node than the expected sender
};

class HeartbeatSender {
 public:
  // boot_id: random per process start (draw it with osRandomBytes).
  HeartbeatSender(uint16_t module_id, std::optional<ModuleKey> key, uint64_t boot_id,
                  RandomBytes random);
  // Stamps module id, boot id and the next sequence number on hb, then encodes and seals it.
  Result<std::vector<uint8_t>> next(Heartbeat hb);

 private:
  uint16_t module_id_;
  std::optional<ModuleKey> key_;
  uint64_t boot_id_;
  uint64_t next_sequence_ = 1;
  RandomBytes random_;
};

// One per peer and heartbeat network: packets of one stream arrive in order on one network, but
// not across networks. Never throws; every refusal is an InvalidArgument or FailedPrecondition.
class HeartbeatReceiver {
 public:
  // `expected_sender` (when not empty): the peer's node name; an authentic packet from another
  // node is refused (wrong_node) before it can move the replay window.
  HeartbeatReceiver(uint16_t module_id, std::optional<ModuleKey> key,
                    std::string expected_sender = "");
  Result<Heartbeat> receive(std::span<const uint8_t> packet);
  const HeartbeatStats& stats() const { return stats_; }

 private:
  uint16_t module_id_;
  std::optional<ModuleKey> key_;
  std::string expected_sender_;
  ReplayWindow window_;
  HeartbeatStats stats_;
};

}  // namespace halo::proto
