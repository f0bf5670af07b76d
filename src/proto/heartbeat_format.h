#pragma once
// Wire constants of the mirror heartbeat (docs/heartbeat-protocol.md mirrors every number here).
// Kept apart from the codec so the crypto layer, the codec and the doc agree on one source.

#include <cstddef>
#include <cstdint>

namespace halo::proto {

// Clear packet header: magic "HALO", packet version, flags, module id (little-endian).
inline constexpr uint8_t kHeartbeatMagic[4] = {'H', 'A', 'L', 'O'};
inline constexpr uint8_t kPacketVersion = 1;
inline constexpr size_t kMagicOffset = 0;
inline constexpr size_t kVersionOffset = 4;
inline constexpr size_t kFlagsOffset = 5;
inline constexpr size_t kModuleIdOffset = 6;
inline constexpr size_t kHeaderSize = 8;
// Set when the module has no key: the body is clear and followed by a SHA-256 checksum.
inline constexpr uint8_t kFlagUnauthenticated = 0x01;
inline constexpr uint8_t kKnownPacketFlags = kFlagUnauthenticated;

inline constexpr size_t kIvSize = 16;  // AES block size: one random IV per packet
inline constexpr size_t kBlockSize = 16;
inline constexpr size_t kTagSize = 32;       // full HMAC-SHA256, never truncated
inline constexpr size_t kChecksumSize = 32;  // SHA-256 of the clear packet

// 1400 bytes keeps a packet in one frame on a 1500-byte MTU link with IPv4/IPv6, UDP and a
// tunnel or VLAN header to spare: a fragmented heartbeat is lost whole if one fragment is lost.
inline constexpr size_t kMaxPacketSize = 1400;
// Largest plaintext whose sealed form fits: header + IV + padded ciphertext + tag <= 1400.
// PKCS7 always adds 1..16 bytes, so the ciphertext budget (1344) holds at most 1343 bytes.
inline constexpr size_t kMaxCiphertextSize =
    (kMaxPacketSize - kHeaderSize - kIvSize - kTagSize) / kBlockSize * kBlockSize;
inline constexpr size_t kMaxPlaintextSize = kMaxCiphertextSize - 1;
inline constexpr size_t kMinSealedSize = kHeaderSize + kIvSize + kBlockSize + kTagSize;
inline constexpr size_t kMinClearSize = kHeaderSize + 1 + kChecksumSize;

// Message (plaintext) layout, version 1. Later versions only append fields.
inline constexpr uint8_t kMessageVersion = 1;
inline constexpr size_t kMessageFixedSize = 47;  // up to and including replication status
inline constexpr size_t kMaxModuleNameSize = 32;
inline constexpr size_t kMaxNodeNameSize = 64;
inline constexpr size_t kMaxResourceNameSize = 128;
inline constexpr size_t kMaxResources = 256;

// Message flags byte.
inline constexpr uint8_t kMsgFlagUptodate = 0x01;
inline constexpr uint8_t kMsgFlagCleanStop = 0x02;
inline constexpr uint8_t kMsgFlagResyncInterrupted = 0x04;
inline constexpr uint8_t kMsgFlagFailoverOn = 0x08;
inline constexpr uint8_t kMsgFlagAlone = 0x10;        // generation written without the peer
inline constexpr uint8_t kMsgFlagLastPrimary = 0x20;  // the sender was primary when it last ran
inline constexpr uint8_t kMsgFlagHandover = 0x40;     // the sender released the primary role (swap)
inline constexpr uint8_t kKnownMsgFlags = kMsgFlagUptodate | kMsgFlagCleanStop |
                                          kMsgFlagResyncInterrupted | kMsgFlagFailoverOn |
                                          kMsgFlagAlone | kMsgFlagLastPrimary | kMsgFlagHandover;

static_assert(kMaxCiphertextSize == 1344);
static_assert(kHeaderSize + kIvSize + kMaxCiphertextSize + kTagSize <= kMaxPacketSize);
static_assert(kHeaderSize + kMaxPlaintextSize + kChecksumSize <= kMaxPacketSize);

}  // namespace halo::proto
