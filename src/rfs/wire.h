#pragma once
// The replication link's framing (DESIGN 6.5), apart from the op records themselves (op.h).
//
// The secondary's replication process connects to the primary's (TCP 5600 + 4 (id - 1) on the
// replication lan, `nbremconn` connections per session, each TLS 1.3 when the module has a TLS
// identity) and opens each connection with a Hello; the primary answers with an Answer. In a
// replication session the primary then sends op records on every connection (each batch on one
// of them; the secondary restores the order by sequence number) and the secondary sends Frames on
// connection 0: acknowledgements, the blocks a reintegration must copy, and at the start the
// hints (what its tree holds). In a manifest session (rfsverify) the primary sends one Frame per
// replicated directory with its manifest (tree_diff.h), then closes.
//
// Everything read here comes from the network: decoders check every length and value.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace halo::rfs {

inline constexpr char kLinkMagic[4] = {'H', 'R', 'F', 'S'};
inline constexpr uint8_t kLinkVersion = 3;
inline constexpr size_t kHelloSize = 24;
inline constexpr size_t kAnswerHeaderSize = 20;  // + the refusal text
inline constexpr size_t kMaxAnswerText = 1024;

enum class SessionKind : uint8_t { Replicate = 1, Manifest = 2 };

inline constexpr uint16_t kHelloFull = 1;  // a full reintegration was asked (fullsync)

struct Hello {
  SessionKind kind = SessionKind::Replicate;
  uint16_t module_id = 0;
  uint64_t session = 0;  // random, the same on every connection of one session
  uint8_t index = 0;     // this connection's number, 0 .. count - 1
  uint8_t count = 1;     // nbremconn
  uint16_t flags = 0;
  bool operator==(const Hello&) const = default;
};
std::string encodeHello(const Hello& h);
Result<Hello> decodeHello(std::string_view bytes);  // exactly kHelloSize bytes

struct Answer {
  bool accepted = false;
  uint16_t module_id = 0;
  uint64_t first_seq = 0;  // replication: the sequence number of the session's first record
  std::string refusal;     // why not, when refused
  bool operator==(const Answer&) const = default;
};
std::string encodeAnswer(const Answer& a);
// The fixed part; then refusalSize() more bytes hold the text (decodeAnswerText).
Result<Answer> decodeAnswerHeader(std::string_view header, uint32_t* text_size);

enum class FrameType : uint8_t {
  Ack = 1,        // AckInfo: every record up to this sequence is applied (and durable)
  Need = 2,       // NeedRanges (applier.h)
  Hint = 3,       // u16 root, then a manifest without digests of the secondary's directory
  HintsDone = 4,  // every directory's hint was sent: the reintegration may begin
  Error = 5,      // text: why the secondary gives up (it closes next)
  Manifest = 6,   // u16 root, then a manifest with digests (rfsverify)
  // Instead of hints, before HintsDone: the sync point the secondary's data derives from and
  // its own changes since then (Since), so that only what changed is reintegrated.
  Since = 7,
};

struct Frame {
  FrameType type = FrameType::Ack;
  std::string payload;
};
inline constexpr size_t kFrameHeaderSize = 5;  // u8 type, u32 payload length
// Manifests of large trees are big; anything above this is refused as garbage.
inline constexpr uint32_t kMaxFramePayload = 512u << 20;

void appendFrame(FrameType type, std::string_view payload, std::string* out);
// Decodes the frame at the front of `in`: the frame and the bytes it used; Unavailable when
// incomplete; InvalidArgument for an unknown type or an oversize length.
Result<std::pair<Frame, size_t>> decodeFrame(std::string_view in);

// Ack payload: u64 applied (every record up to it is applied), u64 durable (... and on the
// secondary's disk, after its last syncfs), durable <= applied.
struct AckInfo {
  uint64_t applied = 0;
  uint64_t durable = 0;
};
std::string encodeAck(uint64_t applied, uint64_t durable);
Result<AckInfo> decodeAck(std::string_view payload);

struct NeedRanges;
std::string encodeNeed(const NeedRanges& need);
Result<NeedRanges> decodeNeed(std::string_view payload);

// The Since payload: u64 sync point id, u16 flags, u64 modified_after, then ChangeLog::encode()
// of the secondary's own changes since that point (an activity log's zones, or what it wrote as
// primary). With base 0 (hints sent, every file compared), modified_after (Unix seconds, 0:
// none) asks that only files modified since then be copied (halo secondforce -d).
struct SinceInfo {
  uint64_t base = 0;
  uint16_t flags = 0;
  uint64_t modified_after = 0;
  std::string log;
  bool operator==(const SinceInfo&) const = default;
};
std::string encodeSince(const SinceInfo& since);
Result<SinceInfo> decodeSince(std::string_view payload);

// Hint and Manifest payloads: the root index, then bytes.
std::string encodeRooted(uint16_t root, std::string_view bytes);
Result<std::pair<uint16_t, std::string_view>> decodeRooted(std::string_view payload);

}  // namespace halo::rfs
