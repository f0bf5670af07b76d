#include "proto/heartbeat.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "proto/heartbeat_crypto.h"
#include "proto/heartbeat_format.h"
#include "proto/heartbeat_receiver.h"
#include "proto/replay_window.h"

namespace halo::proto {
namespace {

constexpr uint16_t kModuleId = 7;
constexpr std::string_view kKeyFile =
    "halo-module-key 1\n"
    "000102030405060708090a0b0c0d0e0f"
    "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f\n";

// Deterministic "randomness": a counter, so IVs differ per packet yet runs are reproducible.
RandomBytes counterRandom() {
  auto state = std::make_shared<uint8_t>(0);
  return [state](std::span<uint8_t> out) {
    for (uint8_t& b : out) {
      b = (*state)++;
    }
    return okStatus();
  };
}

ModuleKey testKey() { return *parseModuleKey(kKeyFile); }

Heartbeat sample() {
  Heartbeat hb;
  hb.module_id = kModuleId;
  hb.module_name = "mirror";
  hb.node_name = "node1";
  hb.boot_id = 0x1122334455667788ULL;
  hb.sequence = 42;
  hb.main_state = core::MainState::Prim;
  hb.readiness = core::Readiness::Ready;
  hb.role_epoch = 9;
  hb.generation = 0xdeadbeefcafef00dULL;
  hb.parent_generation = 0x0102030405060708ULL;
  hb.uptodate = true;
  hb.failover_on = true;
  hb.alone = true;
  hb.handover = true;
  hb.replication_status = 3;
  hb.resources = {{"heartbeat.default", ResourceState::Up},
                  {"fileset.mirror", ResourceState::Init},
                  {"usersetting.encryption", ResourceState::Down}};
  return hb;
}

std::vector<uint8_t> sealed(const ModuleKey* key, const Heartbeat& hb, RandomBytes random) {
  auto plain = encodeHeartbeat(hb);
  EXPECT_TRUE(plain.ok()) << plain.status().message();
  auto packet = seal(key, hb.module_id, *plain, random);
  EXPECT_TRUE(packet.ok()) << packet.status().message();
  return *packet;
}

TEST(HeartbeatCodecTest, RoundTrip) {
  const Heartbeat hb = sample();
  auto bytes = encodeHeartbeat(hb);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->at(0), kMessageVersion);
  auto back = decodeHeartbeat(*bytes);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, hb);
}

TEST(HeartbeatCodecTest, LittleEndianFixedLayout) {
  Heartbeat hb = sample();
  hb.resources.clear();
  auto bytes = *encodeHeartbeat(hb);
  EXPECT_EQ(bytes[2], 7);  // module id low byte
  EXPECT_EQ(bytes[3], 0);
  EXPECT_EQ(bytes[4], 0x88);  // boot id, least significant byte first
  EXPECT_EQ(bytes[11], 0x11);
  EXPECT_EQ(bytes[44], static_cast<uint8_t>(core::MainState::Prim));
  EXPECT_EQ(bytes[47], hb.module_name.size());
  EXPECT_EQ(bytes.size(), kMessageFixedSize + 1 + 6 + 1 + 5 + 2);
}

TEST(HeartbeatCodecTest, EveryTruncationIsRejected) {
  auto bytes = *encodeHeartbeat(sample());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = decodeHeartbeat(std::span(bytes).first(n));
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_EQ(r.status().code(), StatusCode::InvalidArgument);
  }
}

TEST(HeartbeatCodecTest, RejectsOutOfRangeFieldsNamingThem) {
  auto bytes = *encodeHeartbeat(sample());
  auto with = [&](size_t off, uint8_t v) {
    auto copy = bytes;
    copy[off] = v;
    return decodeHeartbeat(copy);
  };
  EXPECT_NE(with(0, 0).status().message().find("version"), std::string::npos);
  EXPECT_NE(with(1, 0x80).status().message().find("flags"), std::string::npos);
  EXPECT_NE(with(44, 6).status().message().find("main_state"), std::string::npos);
  EXPECT_NE(with(45, 3).status().message().find("readiness"), std::string::npos);
  EXPECT_NE(with(47, 33).status().message().find("module_name"), std::string::npos);
  EXPECT_NE(with(48, '\n').status().message().find("control"), std::string::npos);
  EXPECT_NE(with(bytes.size() - 1, 4).status().message().find("state"), std::string::npos);
  auto trailing = bytes;
  trailing.push_back(0);
  EXPECT_NE(decodeHeartbeat(trailing).status().message().find("trailing"), std::string::npos);
}

TEST(HeartbeatCodecTest, NewerVersionTrailingFieldsAndFlagsAreSkipped) {
  auto bytes = *encodeHeartbeat(sample());
  bytes[0] = 2;
  bytes[1] |= 0x80;
  bytes.insert(bytes.end(), {1, 2, 3, 4});
  auto back = decodeHeartbeat(bytes);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, sample());
}

TEST(HeartbeatCodecTest, EncodeRejectsOversizedFields) {
  Heartbeat hb = sample();
  hb.module_name = std::string(33, 'm');
  EXPECT_FALSE(encodeHeartbeat(hb).ok());
  hb = sample();
  hb.node_name = std::string(65, 'n');
  EXPECT_FALSE(encodeHeartbeat(hb).ok());
  hb = sample();
  hb.node_name.clear();
  EXPECT_FALSE(encodeHeartbeat(hb).ok());
  hb = sample();
  hb.resources.push_back({std::string(129, 'r'), ResourceState::Up});
  EXPECT_FALSE(encodeHeartbeat(hb).ok());
  hb = sample();
  hb.resources.assign(257, {"r", ResourceState::Up});
  EXPECT_FALSE(encodeHeartbeat(hb).ok());
}

// The largest message the codec accepts, sealed, still fits one 1400-byte packet; one more
// byte is refused at encode time.
TEST(HeartbeatCodecTest, MaxSizeMessageFitsOnePacket) {
  Heartbeat hb = sample();
  hb.module_name = std::string(kMaxModuleNameSize, 'm');
  hb.node_name = std::string(kMaxNodeNameSize, 'n');
  hb.resources.clear();
  size_t size = encodeHeartbeat(hb)->size();
  // Fill with 128-byte names, then pad the last name so the message is exactly at the limit.
  while (size + 2 + kMaxResourceNameSize <= kMaxPlaintextSize) {
    hb.resources.push_back({std::string(kMaxResourceNameSize, 'r'), ResourceState::Up});
    size += 2 + kMaxResourceNameSize;
  }
  hb.resources.push_back({std::string(kMaxPlaintextSize - size - 2, 'x'), ResourceState::Down});
  auto plain = encodeHeartbeat(hb);
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_EQ(plain->size(), kMaxPlaintextSize);
  const ModuleKey key = testKey();
  auto packet = sealed(&key, hb, counterRandom());
  EXPECT_LE(packet.size(), kMaxPacketSize);
  EXPECT_LE(sealed(nullptr, hb, counterRandom()).size(), kMaxPacketSize);
  HeartbeatReceiver rx(kModuleId, key);
  auto back = rx.receive(packet);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, hb);

  hb.resources.back().name += 'x';
  auto over = encodeHeartbeat(hb);
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.status().message().find("limit"), std::string::npos);
}

TEST(ModuleKeyTest, ParsesGenkeyFormat) {
  auto key = parseModuleKey(kKeyFile);
  ASSERT_TRUE(key.ok()) << key.status().message();
  EXPECT_EQ(key->aes[0], 0x00);
  EXPECT_EQ(key->aes[15], 0x0f);
  EXPECT_EQ(key->mac[0], 0x10);
  EXPECT_EQ(key->mac[31], 0x2f);
  std::string upper(kKeyFile);
  upper[20] = 'A';
  EXPECT_TRUE(parseModuleKey(upper).ok());
}

// genkey appends the module's TLS identity (PEM blocks) after line 2; the heartbeat ignores it.
TEST(ModuleKeyTest, IgnoresTheTlsIdentityAfterLine2) {
  const std::string file = std::string(kKeyFile) +
                           "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                           "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n";
  auto key = parseModuleKey(file);
  ASSERT_TRUE(key.ok()) << key.status().message();
  EXPECT_EQ(key->aes[0], 0x00);
  EXPECT_EQ(key->mac[31], 0x2f);
  std::string no_newline(kKeyFile);
  no_newline.pop_back();
  EXPECT_TRUE(parseModuleKey(no_newline).ok());
  // Line 2 is still checked on its own.
  auto longer = parseModuleKey("halo-module-key 1\n" + std::string(98, 'a') + "\n-----BEGIN");
  ASSERT_FALSE(longer.ok());
  EXPECT_NE(longer.status().message().find("found 98"), std::string::npos);
}

TEST(ModuleKeyTest, RejectsBadFiles) {
  EXPECT_FALSE(parseModuleKey("").ok());
  EXPECT_FALSE(parseModuleKey("halo-module-key 2\n" + std::string(96, 'a') + "\n").ok());
  EXPECT_FALSE(parseModuleKey("halo-module-key 1\n" + std::string(94, 'a') + "\n").ok());
  EXPECT_FALSE(parseModuleKey("halo-module-key 1\n" + std::string(98, 'a') + "\n").ok());
  auto bad = parseModuleKey("halo-module-key 1\n" + std::string(95, 'a') + "g\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("column 96"), std::string::npos);
}

TEST(HeartbeatCryptoTest, SealedRoundTripHidesPlaintext) {
  const ModuleKey key = testKey();
  const Heartbeat hb = sample();
  auto packet = sealed(&key, hb, counterRandom());
  EXPECT_EQ(std::memcmp(packet.data(), "HALO", 4), 0);
  EXPECT_EQ(packet[kFlagsOffset], 0);
  EXPECT_EQ((packet.size() - kHeaderSize - kIvSize - kTagSize) % kBlockSize, 0u);
  const std::string text(packet.begin(), packet.end());
  EXPECT_EQ(text.find("node1"), std::string::npos);
  EXPECT_EQ(text.find("heartbeat.default"), std::string::npos);
  auto plain = open(&key, kModuleId, packet);
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_EQ(*decodeHeartbeat(*plain), hb);
}

TEST(HeartbeatCryptoTest, FreshIvPerPacket) {
  const ModuleKey key = testKey();
  auto random = counterRandom();
  EXPECT_NE(sealed(&key, sample(), random), sealed(&key, sample(), random));
}

TEST(HeartbeatCryptoTest, ClearRoundTripIsMarkedUnauthenticated) {
  auto packet = sealed(nullptr, sample(), counterRandom());
  EXPECT_EQ(packet[kFlagsOffset], kFlagUnauthenticated);
  auto plain = open(nullptr, kModuleId, packet);
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_EQ(*decodeHeartbeat(*plain), sample());
}

TEST(HeartbeatCryptoTest, RejectionClasses) {
  const ModuleKey key = testKey();
  ModuleKey other = key;
  other.mac[0] ^= 1;
  auto packet = sealed(&key, sample(), counterRandom());
  auto clear = sealed(nullptr, sample(), counterRandom());
  auto classOf = [](const ModuleKey* k, uint16_t id, std::vector<uint8_t> p) {
    PacketError e = PacketError::None;
    auto r = open(k, id, p, &e);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::InvalidArgument);
    return e;
  };
  EXPECT_EQ(classOf(&key, kModuleId, {1, 2, 3}), PacketError::Truncated);
  auto bad_magic = packet;
  bad_magic[0] = 'X';
  EXPECT_EQ(classOf(&key, kModuleId, bad_magic), PacketError::BadMagic);
  auto bad_version = packet;
  bad_version[kVersionOffset] = 2;
  EXPECT_EQ(classOf(&key, kModuleId, bad_version), PacketError::BadVersion);
  auto bad_flags = packet;
  bad_flags[kFlagsOffset] = 0x80;
  EXPECT_EQ(classOf(&key, kModuleId, bad_flags), PacketError::BadVersion);
  EXPECT_EQ(classOf(&key, kModuleId + 1, packet), PacketError::ForeignModule);
  EXPECT_EQ(classOf(&other, kModuleId, packet), PacketError::Forged);
  EXPECT_EQ(classOf(nullptr, kModuleId, packet), PacketError::KeyMismatch);
  EXPECT_EQ(classOf(&key, kModuleId, clear), PacketError::KeyMismatch);
  auto bad_sum = clear;
  bad_sum[kHeaderSize] ^= 1;
  EXPECT_EQ(classOf(nullptr, kModuleId, bad_sum), PacketError::Forged);
}

// Authentic (correct MAC) but undecryptable: a bug on the peer, counted as malformed.
TEST(HeartbeatCryptoTest, BadPaddingAfterValidMac) {
  const ModuleKey key = testKey();
  std::vector<uint8_t> p = {'H', 'A', 'L', 'O', kPacketVersion, 0, kModuleId, 0};
  p.resize(kHeaderSize + kIvSize + kBlockSize, 0);  // zero IV, garbage block
  p.back() = 0x55;
  unsigned int len = 0;
  uint8_t tag[kTagSize];
  ASSERT_NE(HMAC(EVP_sha256(), key.mac.data(), 32, p.data(), p.size(), tag, &len), nullptr);
  p.insert(p.end(), tag, tag + kTagSize);
  PacketError e = PacketError::None;
  EXPECT_FALSE(open(&key, kModuleId, p, &e).ok());
  EXPECT_EQ(e, PacketError::BadPadding);
}

TEST(HeartbeatCryptoTest, EveryTruncationAndEveryByteFlipIsRejected) {
  const ModuleKey key = testKey();
  auto packet = sealed(&key, sample(), counterRandom());
  for (size_t n = 0; n < packet.size(); ++n) {
    PacketError e = PacketError::None;
    ASSERT_FALSE(open(&key, kModuleId, std::span(packet).first(n), &e).ok()) << n;
    EXPECT_TRUE(e == PacketError::Truncated || e == PacketError::Forged) << n;
  }
  const std::set<PacketError> allowed = {PacketError::BadMagic, PacketError::BadVersion,
                                         PacketError::KeyMismatch, PacketError::ForeignModule,
                                         PacketError::Forged};
  for (size_t i = 0; i < packet.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      auto copy = packet;
      copy[i] ^= mask;
      PacketError e = PacketError::None;
      ASSERT_FALSE(open(&key, kModuleId, copy, &e).ok()) << i;
      EXPECT_TRUE(allowed.count(e)) << i << " " << packetErrorName(e);
      if (i >= kHeaderSize) {
        EXPECT_EQ(e, PacketError::Forged) << i;
      }
    }
  }
}

TEST(ReplayWindowTest, SequencesMustIncreasePerBootId) {
  ReplayWindow w;
  EXPECT_TRUE(w.admit(1, 5).ok());
  EXPECT_TRUE(w.admit(1, 6).ok());
  EXPECT_EQ(w.admit(1, 6).code(), StatusCode::FailedPrecondition);  // duplicate
  EXPECT_FALSE(w.admit(1, 3).ok());                                 // older
  EXPECT_TRUE(w.admit(1, 100).ok());                                // gaps are losses: fine
  EXPECT_EQ(w.accepted(), 3u);
  EXPECT_EQ(w.replayed(), 2u);
}

TEST(ReplayWindowTest, NewBootIdResetsAndOldBootIdIsReplay) {
  ReplayWindow w;
  EXPECT_TRUE(w.admit(1, 50).ok());
  EXPECT_TRUE(w.admit(2, 1).ok());  // peer restarted: its sequence starts again
  EXPECT_EQ(w.bootChanges(), 1u);
  EXPECT_EQ(w.currentBootId(), 2u);
  EXPECT_FALSE(w.admit(1, 51).ok());  // a capture from the earlier boot
  EXPECT_TRUE(w.admit(2, 2).ok());
  EXPECT_EQ(w.replayed(), 1u);
}

TEST(ReplayWindowTest, RetiredBootIdsAreBounded) {
  ReplayWindow w;
  for (uint64_t boot = 1; boot <= ReplayWindow::kMaxRetiredBootIds + 2; ++boot) {
    ASSERT_TRUE(w.admit(boot, 1).ok());
  }
  EXPECT_FALSE(w.admit(3, 2).ok());  // still remembered
  EXPECT_TRUE(w.admit(1, 2).ok());   // forgotten: the bound is documented
}

TEST(HeartbeatReceiverTest, SenderToReceiverWithAndWithoutKey) {
  for (bool keyed : {true, false}) {
    std::optional<ModuleKey> key;
    if (keyed) {
      key = testKey();
    }
    HeartbeatSender tx(kModuleId, key, 77, counterRandom());
    HeartbeatReceiver rx(kModuleId, key);
    for (uint64_t i = 1; i <= 3; ++i) {
      auto packet = tx.next(sample());
      ASSERT_TRUE(packet.ok()) << packet.status().message();
      auto hb = rx.receive(*packet);
      ASSERT_TRUE(hb.ok()) << hb.status().message();
      EXPECT_EQ(hb->sequence, i);
      EXPECT_EQ(hb->boot_id, 77u);
      EXPECT_EQ(hb->node_name, "node1");
    }
    EXPECT_EQ(rx.stats().accepted, 3u);
  }
}

TEST(HeartbeatReceiverTest, CountsEveryRefusalClass) {
  const ModuleKey key = testKey();
  HeartbeatSender tx(kModuleId, key, 1, counterRandom());
  HeartbeatReceiver rx(kModuleId, key);
  auto first = *tx.next(sample());
  auto second = *tx.next(sample());
  ASSERT_TRUE(rx.receive(second).ok());
  EXPECT_FALSE(rx.receive(second).ok());  // duplicate
  EXPECT_FALSE(rx.receive(first).ok());   // older
  EXPECT_FALSE(rx.receive(std::span(second).first(10)).ok());
  auto magic = second;
  magic[1] = 'X';
  EXPECT_FALSE(rx.receive(magic).ok());
  HeartbeatSender foreign(kModuleId + 1, key, 1, counterRandom());
  EXPECT_FALSE(rx.receive(*foreign.next(sample())).ok());
  auto forged = second;
  forged[30] ^= 1;
  EXPECT_FALSE(rx.receive(forged).ok());
  HeartbeatSender keyless(kModuleId, std::nullopt, 1, counterRandom());
  EXPECT_FALSE(rx.receive(*keyless.next(sample())).ok());
  // Authentic but the inner module id contradicts the header: malformed.
  Heartbeat lying = sample();
  lying.module_id = kModuleId + 1;
  auto inner = *encodeHeartbeat(lying);
  EXPECT_FALSE(rx.receive(*seal(&key, kModuleId, inner, counterRandom())).ok());

  const HeartbeatStats& s = rx.stats();
  EXPECT_EQ(s.accepted, 1u);
  EXPECT_EQ(s.replayed, 2u);
  EXPECT_EQ(s.truncated, 1u);
  EXPECT_EQ(s.bad_magic, 1u);
  EXPECT_EQ(s.foreign_module, 1u);
  EXPECT_EQ(s.forged, 1u);
  EXPECT_EQ(s.key_mismatch, 1u);
  EXPECT_EQ(s.malformed, 1u);
}

TEST(HeartbeatReceiverTest, PeerRestartIsAcceptedAndCounted) {
  const ModuleKey key = testKey();
  HeartbeatReceiver rx(kModuleId, key);
  HeartbeatSender before(kModuleId, key, 10, counterRandom());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(rx.receive(*before.next(sample())).ok());
  }
  auto old_packet = *before.next(sample());
  HeartbeatSender after(kModuleId, key, 11, counterRandom());
  auto hb = rx.receive(*after.next(sample()));
  ASSERT_TRUE(hb.ok());
  EXPECT_EQ(hb->sequence, 1u);
  EXPECT_EQ(rx.stats().boot_changes, 1u);
  EXPECT_FALSE(rx.receive(old_packet).ok());  // the earlier boot cannot come back
  EXPECT_EQ(rx.stats().replayed, 1u);
}

TEST(HeartbeatFuzzTest, RandomBuffersNeverCrashOrPass) {
  std::mt19937 rng(12345);
  const ModuleKey key = testKey();
  HeartbeatReceiver keyed(kModuleId, key);
  HeartbeatReceiver clear(kModuleId, std::nullopt);
  for (int i = 0; i < 10000; ++i) {
    std::vector<uint8_t> buf(rng() % 1500);
    for (uint8_t& b : buf) {
      b = static_cast<uint8_t>(rng());
    }
    if (i % 2 == 0 && buf.size() >= kHeaderSize) {
      // Valid header so the fuzz reaches the MAC, checksum and decoder paths.
      std::memcpy(buf.data(), "HALO", 4);
      buf[kVersionOffset] = kPacketVersion;
      buf[kFlagsOffset] = static_cast<uint8_t>(rng() % 2);
      buf[kModuleIdOffset] = kModuleId;
      buf[kModuleIdOffset + 1] = 0;
    }
    EXPECT_FALSE(keyed.receive(buf).ok());
    EXPECT_FALSE(clear.receive(buf).ok());
    (void)decodeHeartbeat(buf);  // the decoder alone must also survive anything
  }
  EXPECT_EQ(keyed.stats().accepted, 0u);
  EXPECT_EQ(clear.stats().accepted, 0u);
}

TEST(HeartbeatFuzzTest, MutatedSealedPacketsAreNeverAccepted) {
  std::mt19937 rng(6789);
  const ModuleKey key = testKey();
  HeartbeatSender tx(kModuleId, key, 5, counterRandom());
  const auto valid = *tx.next(sample());
  HeartbeatReceiver rx(kModuleId, key);
  for (int i = 0; i < 10000; ++i) {
    auto m = valid;
    switch (rng() % 4) {
      case 0:  // flip 1..4 bytes
        for (int k = 1 + static_cast<int>(rng() % 4); k > 0; --k) {
          m[rng() % m.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
        }
        break;
      case 1:
        m.resize(rng() % m.size());
        break;
      case 2:
        m.insert(m.begin() + static_cast<long>(rng() % m.size()), static_cast<uint8_t>(rng()));
        break;
      default:
        m.erase(m.begin() + static_cast<long>(rng() % m.size()));
        break;
    }
    ASSERT_FALSE(rx.receive(m).ok()) << i;
  }
  EXPECT_EQ(rx.stats().accepted, 0u);
  // The pristine packet is still fresh: no mutation moved the replay window.
  EXPECT_TRUE(rx.receive(valid).ok());
}

TEST(HeartbeatFuzzTest, MutatedClearPacketsAreDetectedByChecksum) {
  std::mt19937 rng(4242);
  HeartbeatSender tx(kModuleId, std::nullopt, 5, counterRandom());
  const auto valid = *tx.next(sample());
  HeartbeatReceiver rx(kModuleId, std::nullopt);
  for (int i = 0; i < 10000; ++i) {
    auto m = valid;
    m[rng() % m.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    ASSERT_FALSE(rx.receive(m).ok()) << i;
  }
  EXPECT_TRUE(rx.receive(valid).ok());
}

// Authentic packets around mutated plaintexts reach the decoder behind the MAC: it must refuse
// or decode, never crash, and a refusal counts as malformed without moving the window.
TEST(HeartbeatFuzzTest, MutatedPlaintextsBehindAValidMac) {
  std::mt19937 rng(99);
  const ModuleKey key = testKey();
  const auto plain = *encodeHeartbeat(sample());
  HeartbeatReceiver rx(kModuleId, key);
  auto random = counterRandom();
  uint64_t refused = 0;
  for (int i = 0; i < 10000; ++i) {
    auto m = plain;
    for (int k = 1 + static_cast<int>(rng() % 3); k > 0; --k) {
      m[rng() % m.size()] = static_cast<uint8_t>(rng());
    }
    if (rng() % 4 == 0) {
      m.resize(1 + rng() % m.size());
    }
    auto packet = seal(&key, kModuleId, m, random);
    ASSERT_TRUE(packet.ok());
    if (!rx.receive(*packet).ok()) {
      ++refused;
    }
  }
  EXPECT_EQ(rx.stats().malformed + rx.stats().replayed, refused);
}

}  // namespace
}  // namespace halo::proto
