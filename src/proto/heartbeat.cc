#include "proto/heartbeat.h"

#include <string_view>

#include "proto/heartbeat_format.h"

namespace halo::proto {
namespace {

constexpr uint8_t kMaxMainState = static_cast<uint8_t>(core::MainState::Up);
constexpr uint8_t kMaxReadiness = static_cast<uint8_t>(core::Readiness::Ready);
constexpr uint8_t kMaxResourceState = static_cast<uint8_t>(ResourceState::Unknown);

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) {
    for (int i = 0; i < 2; ++i) {
      out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
  }
  void str(const std::string& s) {
    u8(static_cast<uint8_t>(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
  }
  std::vector<uint8_t>& bytes() { return out_; }

 private:
  std::vector<uint8_t> out_;
};

// Every read checks the remaining length first; a short read records which field was cut.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}
  bool u8(uint8_t& v) {
    if (in_.size() - pos_ < 1) {
      return false;
    }
    v = in_[pos_++];
    return true;
  }
  bool u16(uint16_t& v) {
    if (in_.size() - pos_ < 2) {
      return false;
    }
    v = static_cast<uint16_t>(in_[pos_] | (in_[pos_ + 1] << 8));
    pos_ += 2;
    return true;
  }
  bool u64(uint64_t& v) {
    if (in_.size() - pos_ < 8) {
      return false;
    }
    v = 0;
    for (int i = 7; i >= 0; --i) {
      v = (v << 8) | in_[pos_ + i];
    }
    pos_ += 8;
    return true;
  }
  bool bytes(size_t n, std::string& s) {
    if (in_.size() - pos_ < n) {
      return false;
    }
    s.assign(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return true;
  }
  size_t remaining() const { return in_.size() - pos_; }

 private:
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

Status malformed(std::string_view field, std::string_view why) {
  return invalidArgument("heartbeat field '" + std::string(field) + "': " + std::string(why));
}

// Names end up in logs and resource names: control bytes there would forge log lines.
Status checkName(std::string_view field, const std::string& s, size_t max) {
  if (s.empty()) {
    return malformed(field, "empty");
  }
  if (s.size() > max) {
    return malformed(field,
                     "length " + std::to_string(s.size()) + " exceeds " + std::to_string(max));
  }
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return malformed(field, "contains a control character");
    }
  }
  return okStatus();
}

Status readName(Reader& r, std::string_view field, size_t max, std::string& out) {
  uint8_t len = 0;
  if (!r.u8(len)) {
    return malformed(field, "truncated before its length");
  }
  if (len > max) {
    return malformed(field, "length " + std::to_string(len) + " exceeds " + std::to_string(max));
  }
  if (!r.bytes(len, out)) {
    return malformed(field, "truncated: length " + std::to_string(len) + " but " +
                                std::to_string(r.remaining()) + " bytes left");
  }
  return checkName(field, out, max);
}

}  // namespace

Result<std::vector<uint8_t>> encodeHeartbeat(const Heartbeat& hb) {
  HALO_RETURN_IF_ERROR(checkName("module_name", hb.module_name, kMaxModuleNameSize));
  HALO_RETURN_IF_ERROR(checkName("node_name", hb.node_name, kMaxNodeNameSize));
  if (hb.resources.size() > kMaxResources) {
    return malformed("resources", std::to_string(hb.resources.size()) + " entries exceed " +
                                      std::to_string(kMaxResources));
  }
  for (const HeartbeatResource& res : hb.resources) {
    HALO_RETURN_IF_ERROR(checkName("resource name", res.name, kMaxResourceNameSize));
  }
  Writer w;
  w.u8(kMessageVersion);
  uint8_t flags = 0;
  flags |= hb.uptodate ? kMsgFlagUptodate : 0;
  flags |= hb.clean_stop ? kMsgFlagCleanStop : 0;
  flags |= hb.resync_interrupted ? kMsgFlagResyncInterrupted : 0;
  flags |= hb.failover_on ? kMsgFlagFailoverOn : 0;
  flags |= hb.alone ? kMsgFlagAlone : 0;
  flags |= hb.last_primary ? kMsgFlagLastPrimary : 0;
  flags |= hb.handover ? kMsgFlagHandover : 0;
  w.u8(flags);
  w.u16(hb.module_id);
  w.u64(hb.boot_id);
  w.u64(hb.sequence);
  w.u64(hb.role_epoch);
  w.u64(hb.generation);
  w.u64(hb.parent_generation);
  w.u8(static_cast<uint8_t>(hb.main_state));
  w.u8(static_cast<uint8_t>(hb.readiness));
  w.u8(hb.replication_status);
  w.str(hb.module_name);
  w.str(hb.node_name);
  w.u16(static_cast<uint16_t>(hb.resources.size()));
  for (const HeartbeatResource& res : hb.resources) {
    w.str(res.name);
    w.u8(static_cast<uint8_t>(res.state));
  }
  if (w.bytes().size() > kMaxPlaintextSize) {
    return malformed("resources", "message is " + std::to_string(w.bytes().size()) +
                                      " bytes, limit " + std::to_string(kMaxPlaintextSize) +
                                      " (one UDP packet of " + std::to_string(kMaxPacketSize) +
                                      "): shorten resource names or send fewer resources");
  }
  return std::move(w.bytes());
}

Result<Heartbeat> decodeHeartbeat(std::span<const uint8_t> bytes) {
  if (bytes.size() > kMaxPlaintextSize) {
    return malformed("message", "size " + std::to_string(bytes.size()) + " exceeds " +
                                    std::to_string(kMaxPlaintextSize));
  }
  if (bytes.size() < kMessageFixedSize) {
    return malformed("message", "truncated: " + std::to_string(bytes.size()) +
                                    " bytes, fixed part is " + std::to_string(kMessageFixedSize));
  }
  Reader r(bytes);
  Heartbeat hb;
  uint8_t version = 0;
  uint8_t flags = 0;
  uint8_t main = 0;
  uint8_t ready = 0;
  // The fixed part's length was checked above, so these reads cannot fail.
  r.u8(version);
  r.u8(flags);
  r.u16(hb.module_id);
  r.u64(hb.boot_id);
  r.u64(hb.sequence);
  r.u64(hb.role_epoch);
  r.u64(hb.generation);
  r.u64(hb.parent_generation);
  r.u8(main);
  r.u8(ready);
  r.u8(hb.replication_status);
  if (version < kMessageVersion) {
    return malformed("version", "0 is not a valid message version");
  }
  // A version-1 message must be exact; a newer one may carry flags and trailing fields we skip.
  const bool strict = version == kMessageVersion;
  if (strict && (flags & ~kKnownMsgFlags) != 0) {
    return malformed("flags", "reserved bits set in a version 1 message");
  }
  hb.uptodate = (flags & kMsgFlagUptodate) != 0;
  hb.clean_stop = (flags & kMsgFlagCleanStop) != 0;
  hb.resync_interrupted = (flags & kMsgFlagResyncInterrupted) != 0;
  hb.failover_on = (flags & kMsgFlagFailoverOn) != 0;
  hb.alone = (flags & kMsgFlagAlone) != 0;
  hb.last_primary = (flags & kMsgFlagLastPrimary) != 0;
  hb.handover = (flags & kMsgFlagHandover) != 0;
  if (main > kMaxMainState) {
    return malformed("main_state", "value " + std::to_string(main) + " out of range");
  }
  if (ready > kMaxReadiness) {
    return malformed("readiness", "value " + std::to_string(ready) + " out of range");
  }
  hb.main_state = static_cast<core::MainState>(main);
  hb.readiness = static_cast<core::Readiness>(ready);
  HALO_RETURN_IF_ERROR(readName(r, "module_name", kMaxModuleNameSize, hb.module_name));
  HALO_RETURN_IF_ERROR(readName(r, "node_name", kMaxNodeNameSize, hb.node_name));
  uint16_t count = 0;
  if (!r.u16(count)) {
    return malformed("resource_count", "truncated");
  }
  if (count > kMaxResources) {
    return malformed("resource_count",
                     std::to_string(count) + " exceeds " + std::to_string(kMaxResources));
  }
  hb.resources.reserve(count);
  for (uint16_t i = 0; i < count; ++i) {
    HeartbeatResource res;
    const std::string field = "resources[" + std::to_string(i) + "].name";
    HALO_RETURN_IF_ERROR(readName(r, field, kMaxResourceNameSize, res.name));
    uint8_t state = 0;
    if (!r.u8(state)) {
      return malformed("resources[" + std::to_string(i) + "].state", "truncated");
    }
    if (state > kMaxResourceState) {
      return malformed("resources[" + std::to_string(i) + "].state",
                       "value " + std::to_string(state) + " out of range");
    }
    res.state = static_cast<ResourceState>(state);
    hb.resources.push_back(std::move(res));
  }
  if (strict && r.remaining() != 0) {
    return malformed("message",
                     std::to_string(r.remaining()) + " trailing bytes after a version 1 message");
  }
  return hb;
}

}  // namespace halo::proto
