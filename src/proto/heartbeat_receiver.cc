#include "proto/heartbeat_receiver.h"

#include <string>
#include <utility>

namespace halo::proto {
namespace {

void count(HeartbeatStats& stats, PacketError e) {
  switch (e) {
    case PacketError::None:
      break;
    case PacketError::Truncated:
      ++stats.truncated;
      break;
    case PacketError::BadMagic:
    case PacketError::BadVersion:
      ++stats.bad_magic;
      break;
    case PacketError::ForeignModule:
      ++stats.foreign_module;
      break;
    case PacketError::KeyMismatch:
      ++stats.key_mismatch;
      break;
    case PacketError::Forged:
      ++stats.forged;
      break;
    case PacketError::BadPadding:
      ++stats.malformed;
      break;
  }
}

}  // namespace

HeartbeatSender::HeartbeatSender(uint16_t module_id, std::optional<ModuleKey> key, uint64_t boot_id,
                                 RandomBytes random)
    : module_id_(module_id), key_(std::move(key)), boot_id_(boot_id), random_(std::move(random)) {}

Result<std::vector<uint8_t>> HeartbeatSender::next(Heartbeat hb) {
  hb.module_id = module_id_;
  hb.boot_id = boot_id_;
  hb.sequence = next_sequence_;
  HALO_ASSIGN_OR_RETURN(std::vector<uint8_t> plain, encodeHeartbeat(hb));
  HALO_ASSIGN_OR_RETURN(std::vector<uint8_t> packet,
                        seal(key_ ? &*key_ : nullptr, module_id_, plain, random_));
  // Only a packet that was built consumes a number, so sequences have no gaps from our errors.
  ++next_sequence_;
  return packet;
}

HeartbeatReceiver::HeartbeatReceiver(uint16_t module_id, std::optional<ModuleKey> key,
                                     std::string expected_sender)
    : module_id_(module_id), key_(std::move(key)), expected_sender_(std::move(expected_sender)) {}

Result<Heartbeat> HeartbeatReceiver::receive(std::span<const uint8_t> packet) {
  PacketError error = PacketError::None;
  auto plain = open(key_ ? &*key_ : nullptr, module_id_, packet, &error);
  if (!plain.ok()) {
    if (error == PacketError::None) {
      ++stats_.malformed;  // an OpenSSL failure: no class, but never silently uncounted
    }
    count(stats_, error);
    return plain.status();
  }
  auto hb = decodeHeartbeat(*plain);
  if (!hb.ok()) {
    ++stats_.malformed;
    return hb.status();
  }
  if (hb->module_id != module_id_) {
    ++stats_.malformed;
    return invalidArgument("heartbeat field 'module_id': " + std::to_string(hb->module_id) +
                           " differs from the packet header's " + std::to_string(module_id_));
  }
  if (!expected_sender_.empty() && hb->node_name != expected_sender_) {
    ++stats_.wrong_node;
    return failedPrecondition("heartbeat from node '" + hb->node_name + "', expected '" +
                              expected_sender_ + "'");
  }
  // Only after authentication and decoding: a bad packet must not move the window.
  const uint64_t changes_before = window_.bootChanges();
  Status fresh = window_.admit(hb->boot_id, hb->sequence);
  if (!fresh.ok()) {
    ++stats_.replayed;
    return fresh;
  }
  stats_.boot_changes += window_.bootChanges() - changes_before;
  ++stats_.accepted;
  return hb;
}

}  // namespace halo::proto
