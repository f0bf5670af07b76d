#pragma once
// Sealing of heartbeat packets (DESIGN 5.1, reference 9.6): AES-128-CBC then HMAC-SHA256 over the
// clear header, IV and ciphertext (encrypt-then-MAC), with the per-module key from
// `halo module genkey`. Without a key the body travels in clear with a SHA-256 checksum: that
// catches corruption but not forgery. Layout: docs/heartbeat-protocol.md.

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace halo::proto {

struct ModuleKey {
  std::array<uint8_t, 16> aes{};
  std::array<uint8_t, 32> mac{};
};

// Reads "halo-module-key 1\n<96 hex chars>\n" (the modulekey.dat written by genkey); what follows
// line 2 (the replication's TLS identity, rfs/channel.h parseModuleTls) is not its business.
Result<ModuleKey> parseModuleKey(std::string_view file_content);

// Fills the span with unpredictable bytes; injected so tests can make IVs deterministic.
using RandomBytes = std::function<Status(std::span<uint8_t>)>;
// OpenSSL's CSPRNG (RAND_bytes): the production RandomBytes.
Status osRandomBytes(std::span<uint8_t> out);

// Why a packet was refused, so receivers can count each class (HeartbeatStats).
enum class PacketError {
  None,
  Truncated,      // shorter than its header and trailer
  BadMagic,       // not "HALO"
  BadVersion,     // packet version or reserved header flags unknown
  ForeignModule,  // another module's heartbeat on our port
  KeyMismatch,    // sealed while we have no key, or clear while we have one
  Forged,         // MAC or checksum does not match
  BadPadding,     // authentic but undecryptable: a peer bug, not an attacker
};
const char* packetErrorName(PacketError e);

// key == nullptr sends in clear (flag kFlagUnauthenticated). Fails when the plaintext exceeds
// kMaxPlaintextSize or randomness/OpenSSL fails.
Result<std::vector<uint8_t>> seal(const ModuleKey* key, uint16_t module_id,
                                  std::span<const uint8_t> plaintext, const RandomBytes& random);

// Checks the header, then the MAC (before any decryption), then decrypts. Every refusal is an
// InvalidArgument; *error (when given) says which class.
Result<std::vector<uint8_t>> open(const ModuleKey* key, uint16_t expected_module_id,
                                  std::span<const uint8_t> packet, PacketError* error = nullptr);

}  // namespace halo::proto
