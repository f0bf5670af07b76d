// Hello (24 bytes): "HRFS", u8 version, u8 kind, u16 module id, u64 session, u8 index, u8 count,
// u16 flags, 4 bytes zero. Answer: "HRFS", u8 version, u8 accepted, u16 module id, u64 first
// sequence, u32 text length, text. All integers little-endian.

#include "rfs/wire.h"

#include <cstring>

#include "rfs/applier.h"
#include "rfs/op.h"

namespace halo::rfs {

namespace {

template <typename T>
void put(std::string* out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) {
    out->push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
  }
}

template <typename T>
T get(const char* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  }
  return static_cast<T>(v);
}

// A bounds-checked reader of one payload.
class Cursor {
 public:
  explicit Cursor(std::string_view in) : in_(in) {}
  template <typename T>
  bool read(T* v) {
    if (in_.size() - pos_ < sizeof(T)) {
      return false;
    }
    *v = get<T>(in_.data() + pos_);
    pos_ += sizeof(T);
    return true;
  }
  bool readBytes(size_t n, std::string* out) {
    if (in_.size() - pos_ < n) {
      return false;
    }
    out->assign(in_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == in_.size(); }
  std::string_view rest() const { return in_.substr(pos_); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

Status checkMagic(std::string_view b) {
  if (std::memcmp(b.data(), kLinkMagic, 4) != 0) {
    return invalidArgument("not a Halo replication peer (bad magic)");
  }
  if (static_cast<uint8_t>(b[4]) != kLinkVersion) {
    return invalidArgument("replication protocol version " +
                           std::to_string(static_cast<uint8_t>(b[4])) + ", this node speaks " +
                           std::to_string(kLinkVersion) + ": install the same Halo on both nodes");
  }
  return okStatus();
}

}  // namespace

std::string encodeHello(const Hello& h) {
  std::string s(kLinkMagic, 4);
  put<uint8_t>(&s, kLinkVersion);
  put<uint8_t>(&s, static_cast<uint8_t>(h.kind));
  put<uint16_t>(&s, h.module_id);
  put<uint64_t>(&s, h.session);
  put<uint8_t>(&s, h.index);
  put<uint8_t>(&s, h.count);
  put<uint16_t>(&s, h.flags);
  put<uint32_t>(&s, 0);
  return s;
}

Result<Hello> decodeHello(std::string_view b) {
  if (b.size() != kHelloSize) {
    return invalidArgument("hello: " + std::to_string(b.size()) + " bytes");
  }
  HALO_RETURN_IF_ERROR(checkMagic(b));
  Hello h;
  const auto kind = static_cast<uint8_t>(b[5]);
  if (kind != static_cast<uint8_t>(SessionKind::Replicate) &&
      kind != static_cast<uint8_t>(SessionKind::Manifest)) {
    return invalidArgument("hello: unknown session kind " + std::to_string(kind));
  }
  h.kind = static_cast<SessionKind>(kind);
  h.module_id = get<uint16_t>(b.data() + 6);
  h.session = get<uint64_t>(b.data() + 8);
  h.index = static_cast<uint8_t>(b[16]);
  h.count = static_cast<uint8_t>(b[17]);
  h.flags = get<uint16_t>(b.data() + 18);
  if (h.count == 0 || h.index >= h.count) {
    return invalidArgument("hello: connection " + std::to_string(h.index) + " of " +
                           std::to_string(h.count));
  }
  return h;
}

std::string encodeAnswer(const Answer& a) {
  std::string s(kLinkMagic, 4);
  put<uint8_t>(&s, kLinkVersion);
  put<uint8_t>(&s, a.accepted ? 1 : 0);
  put<uint16_t>(&s, a.module_id);
  put<uint64_t>(&s, a.first_seq);
  const std::string text = a.refusal.substr(0, kMaxAnswerText);
  put<uint32_t>(&s, static_cast<uint32_t>(text.size()));
  return s + text;
}

Result<Answer> decodeAnswerHeader(std::string_view b, uint32_t* text_size) {
  if (b.size() != kAnswerHeaderSize) {
    return invalidArgument("answer: " + std::to_string(b.size()) + " bytes");
  }
  HALO_RETURN_IF_ERROR(checkMagic(b));
  Answer a;
  if (static_cast<uint8_t>(b[5]) > 1) {
    return invalidArgument("answer: bad status byte");
  }
  a.accepted = b[5] == 1;
  a.module_id = get<uint16_t>(b.data() + 6);
  a.first_seq = get<uint64_t>(b.data() + 8);
  *text_size = get<uint32_t>(b.data() + 16);
  if (*text_size > kMaxAnswerText) {
    return invalidArgument("answer: refusal text of " + std::to_string(*text_size) + " bytes");
  }
  return a;
}

void appendFrame(FrameType type, std::string_view payload, std::string* out) {
  put<uint8_t>(out, static_cast<uint8_t>(type));
  put<uint32_t>(out, static_cast<uint32_t>(payload.size()));
  out->append(payload);
}

Result<std::pair<Frame, size_t>> decodeFrame(std::string_view in) {
  if (in.size() < kFrameHeaderSize) {
    return unavailable("frame: incomplete header");
  }
  const auto type = static_cast<uint8_t>(in[0]);
  if (type < static_cast<uint8_t>(FrameType::Ack) ||
      type > static_cast<uint8_t>(FrameType::Since)) {
    return invalidArgument("frame: unknown type " + std::to_string(type));
  }
  const auto size = get<uint32_t>(in.data() + 1);
  if (size > kMaxFramePayload) {
    return invalidArgument("frame: payload of " + std::to_string(size) + " bytes");
  }
  if (in.size() - kFrameHeaderSize < size) {
    return unavailable("frame: incomplete payload");
  }
  Frame f;
  f.type = static_cast<FrameType>(type);
  f.payload.assign(in.substr(kFrameHeaderSize, size));
  return std::make_pair(std::move(f), kFrameHeaderSize + size);
}

std::string encodeAck(uint64_t applied, uint64_t durable) {
  std::string s;
  put<uint64_t>(&s, applied);
  put<uint64_t>(&s, durable);
  return s;
}

Result<AckInfo> decodeAck(std::string_view payload) {
  if (payload.size() != 16) {
    return invalidArgument("ack: " + std::to_string(payload.size()) + " bytes");
  }
  AckInfo a;
  a.applied = get<uint64_t>(payload.data());
  a.durable = get<uint64_t>(payload.data() + 8);
  if (a.durable > a.applied) {
    return invalidArgument("ack: durable beyond applied");
  }
  return a;
}

std::string encodeNeed(const NeedRanges& need) {
  std::string s;
  put<uint16_t>(&s, need.root);
  put<uint64_t>(&s, need.seq);
  put<uint32_t>(&s, static_cast<uint32_t>(need.path.size()));
  s += need.path;
  put<uint32_t>(&s, static_cast<uint32_t>(need.ranges.size()));
  for (const auto& [offset, length] : need.ranges) {
    put<uint64_t>(&s, offset);
    put<uint64_t>(&s, length);
  }
  put<uint32_t>(&s, static_cast<uint32_t>(need.entries.size()));
  for (const auto& name : need.entries) {
    put<uint16_t>(&s, static_cast<uint16_t>(name.size()));
    s += name;
  }
  return s;
}

Result<NeedRanges> decodeNeed(std::string_view payload) {
  Cursor c(payload);
  NeedRanges n;
  uint32_t path_size = 0;
  uint32_t count = 0;
  if (!c.read(&n.root) || !c.read(&n.seq) || !c.read(&path_size) || path_size > kMaxPath ||
      !c.readBytes(path_size, &n.path) || !c.read(&count) || count > payload.size() / 16) {
    return invalidArgument("need: malformed");
  }
  if (!validRelativePath(n.path, true)) {  // "" : the root directory's entries
    return invalidArgument("need: invalid path");
  }
  uint64_t end = 0;
  for (uint32_t i = 0; i < count; ++i) {
    uint64_t offset = 0;
    uint64_t length = 0;
    if (!c.read(&offset) || !c.read(&length) || length == 0 || offset < end ||
        length > UINT64_MAX - offset) {
      return invalidArgument("need: bad range");
    }
    end = offset + length;
    n.ranges.emplace_back(offset, length);
  }
  uint32_t names = 0;
  if (!c.read(&names) || names > payload.size() / 3) {
    return invalidArgument("need: malformed entry list");
  }
  for (uint32_t i = 0; i < names; ++i) {
    uint16_t size = 0;
    std::string name;
    if (!c.read(&size) || !c.readBytes(size, &name) || !validRelativePath(name, false) ||
        name.find('/') != std::string::npos) {
      return invalidArgument("need: bad entry name");
    }
    n.entries.push_back(std::move(name));
  }
  if (!c.done()) {
    return invalidArgument("need: trailing bytes");
  }
  return n;
}

std::string encodeSince(const SinceInfo& since) {
  std::string s;
  put<uint64_t>(&s, since.base);
  put<uint16_t>(&s, since.flags);
  put<uint64_t>(&s, since.modified_after);
  s += since.log;
  return s;
}

Result<SinceInfo> decodeSince(std::string_view payload) {
  Cursor c(payload);
  SinceInfo since;
  if (!c.read(&since.base) || !c.read(&since.flags) || !c.read(&since.modified_after)) {
    return invalidArgument("since: too short");
  }
  since.log.assign(c.rest());
  return since;
}

std::string encodeRooted(uint16_t root, std::string_view bytes) {
  std::string s;
  put<uint16_t>(&s, root);
  s.append(bytes);
  return s;
}

Result<std::pair<uint16_t, std::string_view>> decodeRooted(std::string_view payload) {
  if (payload.size() < 2) {
    return invalidArgument("rooted frame: too short");
  }
  return std::make_pair(get<uint16_t>(payload.data()), payload.substr(2));
}

}  // namespace halo::rfs
