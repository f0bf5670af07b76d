#pragma once
// The mirror heartbeat message (DESIGN 5.1, 5.4): what one node tells its peer every pulse.
// This is the plaintext; heartbeat_crypto.h seals it. Layout: docs/heartbeat-protocol.md.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "core/module_state.h"
#include "core/resource_state.h"

namespace halo::proto {

struct HeartbeatResource {
  std::string name;  // the sender's local name; the receiver shows it as remote.<name>
  ResourceState state = ResourceState::Unknown;
  bool operator==(const HeartbeatResource&) const = default;
};

struct Heartbeat {
  uint16_t module_id = 0;
  std::string module_name;  // 1..32 bytes
  std::string node_name;    // 1..64 bytes: the sender
  uint64_t boot_id = 0;     // random per process start; scopes the sequence
  uint64_t sequence = 0;    // strictly increasing per boot id
  core::MainState main_state = core::MainState::Stop;
  core::Readiness readiness = core::Readiness::NotReady;
  uint64_t role_epoch = 0;
  uint64_t generation = 0;  // current data generation (DESIGN 5.4)
  uint64_t parent_generation = 0;
  bool uptodate = false;
  bool clean_stop = false;
  bool resync_interrupted = false;
  bool failover_on = false;
  bool alone = false;         // the generation was started without the peer (DESIGN 5.4)
  bool last_primary = false;  // the sender was primary when it last ran (defaultprim lastprim)
  bool handover = false;      // the sender released the primary role to its peer (swap)
  uint8_t replication_status = 0;            // owned by the replication layer; carried verbatim
  std::vector<HeartbeatResource> resources;  // at most 256, and the whole must fit 1343 bytes
  bool operator==(const Heartbeat&) const = default;
};

// Fails with InvalidArgument when a field exceeds its bound or the encoding would not fit
// kMaxPlaintextSize, so an oversized message is refused where it is built, not dropped on the wire.
Result<std::vector<uint8_t>> encodeHeartbeat(const Heartbeat& hb);
// Untrusted input: never reads out of bounds; malformed input is an InvalidArgument naming a field.
Result<Heartbeat> decodeHeartbeat(std::span<const uint8_t> bytes);

}  // namespace halo::proto
