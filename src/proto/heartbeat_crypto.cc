#include "proto/heartbeat_crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <memory>
#include <string>

#include "proto/heartbeat_format.h"

namespace halo::proto {
namespace {

constexpr std::string_view kKeyHeader = "halo-module-key 1\n";
constexpr size_t kKeyHexSize = 2 * (16 + 32);

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

int hexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

void putHeader(std::vector<uint8_t>& out, uint8_t flags, uint16_t module_id) {
  out.insert(out.end(), std::begin(kHeartbeatMagic), std::end(kHeartbeatMagic));
  out.push_back(kPacketVersion);
  out.push_back(flags);
  out.push_back(static_cast<uint8_t>(module_id));
  out.push_back(static_cast<uint8_t>(module_id >> 8));
}

bool hmacSha256(const ModuleKey& key, std::span<const uint8_t> data, uint8_t* tag) {
  unsigned int len = 0;
  return HMAC(EVP_sha256(), key.mac.data(), static_cast<int>(key.mac.size()), data.data(),
              data.size(), tag, &len) != nullptr &&
         len == kTagSize;
}

bool sha256(std::span<const uint8_t> data, uint8_t* digest) {
  unsigned int len = 0;
  return EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) == 1 &&
         len == kChecksumSize;
}

Status refuse(PacketError* error, PacketError e, std::string why) {
  if (error != nullptr) {
    *error = e;
  }
  return invalidArgument("heartbeat packet refused (" + std::string(packetErrorName(e)) +
                         "): " + why);
}

}  // namespace

const char* packetErrorName(PacketError e) {
  switch (e) {
    case PacketError::None:
      return "none";
    case PacketError::Truncated:
      return "truncated";
    case PacketError::BadMagic:
      return "bad magic";
    case PacketError::BadVersion:
      return "bad version";
    case PacketError::ForeignModule:
      return "foreign module";
    case PacketError::KeyMismatch:
      return "key mismatch";
    case PacketError::Forged:
      return "forged";
    case PacketError::BadPadding:
      return "bad padding";
  }
  return "unknown";
}

Result<ModuleKey> parseModuleKey(std::string_view content) {
  if (!content.starts_with(kKeyHeader)) {
    return invalidArgument(
        "module key: first line must be 'halo-module-key 1' "
        "(recreate it with `halo module genkey`)");
  }
  std::string_view hex = content.substr(kKeyHeader.size());
  // What follows line 2 (the module's TLS identity) is not the heartbeat's business.
  hex = hex.substr(0, hex.find('\n'));
  if (hex.size() != kKeyHexSize) {
    return invalidArgument("module key: expected " + std::to_string(kKeyHexSize) +
                           " hex characters on line 2, found " + std::to_string(hex.size()));
  }
  uint8_t raw[kKeyHexSize / 2];
  for (size_t i = 0; i < sizeof(raw); ++i) {
    const int hi = hexValue(hex[2 * i]);
    const int lo = hexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return invalidArgument("module key: non-hex character at line 2 column " +
                             std::to_string(2 * i + (hi < 0 ? 1 : 2)));
    }
    raw[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  ModuleKey key;
  std::copy(raw, raw + 16, key.aes.begin());
  std::copy(raw + 16, raw + 48, key.mac.begin());
  OPENSSL_cleanse(raw, sizeof(raw));
  return key;
}

Status osRandomBytes(std::span<uint8_t> out) {
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    return internalError("cannot draw random bytes from OpenSSL");
  }
  return okStatus();
}

Result<std::vector<uint8_t>> seal(const ModuleKey* key, uint16_t module_id,
                                  std::span<const uint8_t> plaintext, const RandomBytes& random) {
  if (plaintext.empty() || plaintext.size() > kMaxPlaintextSize) {
    return invalidArgument("heartbeat plaintext of " + std::to_string(plaintext.size()) +
                           " bytes: must be 1.." + std::to_string(kMaxPlaintextSize));
  }
  std::vector<uint8_t> out;
  out.reserve(kMaxPacketSize);
  if (key == nullptr) {
    putHeader(out, kFlagUnauthenticated, module_id);
    out.insert(out.end(), plaintext.begin(), plaintext.end());
    uint8_t digest[kChecksumSize];
    if (!sha256(out, digest)) {
      return internalError("SHA-256 of heartbeat failed");
    }
    out.insert(out.end(), digest, digest + kChecksumSize);
    return out;
  }
  putHeader(out, 0, module_id);
  uint8_t iv[kIvSize];
  HALO_RETURN_IF_ERROR(random(std::span<uint8_t>(iv, kIvSize)));
  out.insert(out.end(), iv, iv + kIvSize);
  const size_t cipher_offset = out.size();
  // One spare block: EVP may write up to a block beyond the input before Final trims it.
  out.resize(cipher_offset + plaintext.size() + 2 * kBlockSize);
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int len1 = 0;
  int len2 = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_cbc(), nullptr, key->aes.data(), iv) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out.data() + cipher_offset, &len1, plaintext.data(),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + cipher_offset + len1, &len2) != 1) {
    return internalError("AES-128-CBC encryption of heartbeat failed");
  }
  out.resize(cipher_offset + static_cast<size_t>(len1 + len2));
  uint8_t tag[kTagSize];
  if (!hmacSha256(*key, out, tag)) {
    return internalError("HMAC-SHA256 of heartbeat failed");
  }
  out.insert(out.end(), tag, tag + kTagSize);
  return out;
}

Result<std::vector<uint8_t>> open(const ModuleKey* key, uint16_t expected_module_id,
                                  std::span<const uint8_t> packet, PacketError* error) {
  if (error != nullptr) {
    *error = PacketError::None;
  }
  if (packet.size() < kHeaderSize) {
    return refuse(
        error, PacketError::Truncated,
        std::to_string(packet.size()) + " bytes, header is " + std::to_string(kHeaderSize));
  }
  if (!std::equal(std::begin(kHeartbeatMagic), std::end(kHeartbeatMagic), packet.begin())) {
    return refuse(error, PacketError::BadMagic, "not a Halo heartbeat");
  }
  const uint8_t version = packet[kVersionOffset];
  const uint8_t flags = packet[kFlagsOffset];
  if (version != kPacketVersion) {
    return refuse(error, PacketError::BadVersion,
                  "packet version " + std::to_string(version) + ", this node speaks " +
                      std::to_string(kPacketVersion) + " (upgrade both nodes)");
  }
  if ((flags & ~kKnownPacketFlags) != 0) {
    return refuse(error, PacketError::BadVersion, "unknown header flags");
  }
  const uint16_t module_id =
      static_cast<uint16_t>(packet[kModuleIdOffset] | (packet[kModuleIdOffset + 1] << 8));
  if (module_id != expected_module_id) {
    return refuse(error, PacketError::ForeignModule,
                  "module id " + std::to_string(module_id) + ", expected " +
                      std::to_string(expected_module_id) + " (check heart ports and module ids)");
  }
  const bool clear = (flags & kFlagUnauthenticated) != 0;
  if (clear && key != nullptr) {
    // Accepting it would let anyone downgrade a keyed module to unauthenticated heartbeats.
    return refuse(error, PacketError::KeyMismatch,
                  "peer sends without a key but this node has one: copy modulekey.dat to both "
                  "nodes");
  }
  if (!clear && key == nullptr) {
    return refuse(error, PacketError::KeyMismatch,
                  "peer sends encrypted heartbeats but this node has no module key: copy "
                  "modulekey.dat to both nodes");
  }
  if (clear) {
    if (packet.size() < kMinClearSize) {
      return refuse(error, PacketError::Truncated, std::to_string(packet.size()) + " bytes");
    }
    const size_t body_end = packet.size() - kChecksumSize;
    uint8_t digest[kChecksumSize];
    if (!sha256(packet.first(body_end), digest)) {
      return internalError("SHA-256 of heartbeat failed");
    }
    if (CRYPTO_memcmp(digest, packet.data() + body_end, kChecksumSize) != 0) {
      return refuse(error, PacketError::Forged, "checksum mismatch");
    }
    return std::vector<uint8_t>(packet.begin() + kHeaderSize, packet.begin() + body_end);
  }
  if (packet.size() < kMinSealedSize) {
    return refuse(error, PacketError::Truncated, std::to_string(packet.size()) + " bytes");
  }
  const size_t mac_end = packet.size() - kTagSize;
  uint8_t tag[kTagSize];
  if (!hmacSha256(*key, packet.first(mac_end), tag)) {
    return internalError("HMAC-SHA256 of heartbeat failed");
  }
  if (CRYPTO_memcmp(tag, packet.data() + mac_end, kTagSize) != 0) {
    return refuse(error, PacketError::Forged, "MAC mismatch (forged, corrupted or other key)");
  }
  const size_t cipher_offset = kHeaderSize + kIvSize;
  const size_t cipher_size = mac_end - cipher_offset;
  if (cipher_size % kBlockSize != 0 || cipher_size > kMaxCiphertextSize) {
    return refuse(error, PacketError::BadPadding,
                  "ciphertext of " + std::to_string(cipher_size) + " bytes");
  }
  std::vector<uint8_t> plain(cipher_size + kBlockSize);
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int len1 = 0;
  int len2 = 0;
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_128_cbc(), nullptr, key->aes.data(),
                         packet.data() + kHeaderSize) != 1 ||
      EVP_DecryptUpdate(ctx.get(), plain.data(), &len1, packet.data() + cipher_offset,
                        static_cast<int>(cipher_size)) != 1) {
    return internalError("AES-128-CBC decryption of heartbeat failed");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), plain.data() + len1, &len2) != 1) {
    return refuse(error, PacketError::BadPadding, "PKCS7 padding invalid");
  }
  plain.resize(static_cast<size_t>(len1 + len2));
  return plain;
}

}  // namespace halo::proto
