// Plain and TLS channels over AF_UNIX socketpairs: round trips with one reader and one writer
// thread per side, pinning, timeouts, shutdown and EOF; the module TLS identity helpers.

#include "rfs/channel.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <thread>
#include <vector>

namespace halo::rfs {
namespace {

using std::chrono::steady_clock;

constexpr Millis kLong{5000};
constexpr size_t kVolume = 8 << 20;

std::pair<int, int> socketPair() {
  int fds[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  return {fds[0], fds[1]};
}

const TlsIdentity& identityA() {
  static const TlsIdentity id = *makeTlsIdentity("halo-module-a");
  return id;
}

const TlsIdentity& identityB() {
  static const TlsIdentity id = *makeTlsIdentity("halo-module-b");
  return id;
}

struct Handshakes {
  Result<std::unique_ptr<Channel>> server;
  Result<std::unique_ptr<Channel>> client;
};

Handshakes handshake(const TlsIdentity& server_id, const TlsIdentity& client_id) {
  auto [s, c] = socketPair();
  auto server = std::async(std::launch::async, [&, fd = s] {
    return tlsChannel(fd, server_id, /*server=*/true, kLong);
  });
  auto client = tlsChannel(c, client_id, /*server=*/false, kLong);
  return {server.get(), std::move(client)};
}

struct Pair {
  std::unique_ptr<Channel> a;
  std::unique_ptr<Channel> b;
};

Pair plainPair() {
  auto [a, b] = socketPair();
  return {plainChannel(a), plainChannel(b)};
}

Pair tlsPair() {
  Handshakes h = handshake(identityA(), identityA());
  EXPECT_TRUE(h.server.ok()) << h.server.status().message();
  EXPECT_TRUE(h.client.ok()) << h.client.status().message();
  if (!h.server.ok() || !h.client.ok()) {
    return {};
  }
  return {std::move(*h.server), std::move(*h.client)};
}

std::vector<Pair> bothKinds() {
  std::vector<Pair> pairs;
  pairs.push_back(plainPair());
  pairs.push_back(tlsPair());
  return pairs;
}

char patternByte(size_t i, unsigned seed) { return static_cast<char>((i * 131 + seed) % 251); }

// Writes kVolume bytes in uneven pieces.
void writePattern(Channel& channel, unsigned seed, Status* result) {
  std::string chunk;
  size_t sent = 0;
  size_t piece = 1;
  while (sent < kVolume) {
    piece = std::min(kVolume - sent, (piece * 7 + 1000) % 200000 + 1);
    chunk.resize(piece);
    for (size_t i = 0; i < piece; ++i) {
      chunk[i] = patternByte(sent + i, seed);
    }
    *result = channel.writeAll(chunk, kLong);
    if (!result->ok()) {
      return;
    }
    sent += piece;
  }
}

// Reads kVolume bytes and counts the ones that differ from the pattern.
void readPattern(Channel& channel, unsigned seed, Status* result, size_t* wrong) {
  std::vector<char> buf(100000);
  size_t got = 0;
  while (got < kVolume) {
    auto n = channel.read(buf.data(), std::min(buf.size(), kVolume - got), kLong);
    if (!n.ok()) {
      *result = n.status();
      return;
    }
    for (size_t i = 0; i < *n; ++i) {
      *wrong += buf[i] != patternByte(got + i, seed);
    }
    got += *n;
  }
}

void roundTrip(Pair p) {
  ASSERT_TRUE(p.a && p.b);
  Status wa, wb, ra, rb;
  size_t wrong_a = 0, wrong_b = 0;
  std::thread t1(writePattern, std::ref(*p.a), 1u, &wa);
  std::thread t2(writePattern, std::ref(*p.b), 2u, &wb);
  std::thread t3(readPattern, std::ref(*p.a), 2u, &ra, &wrong_a);
  std::thread t4(readPattern, std::ref(*p.b), 1u, &rb, &wrong_b);
  for (std::thread* t : {&t1, &t2, &t3, &t4}) {
    t->join();
  }
  EXPECT_TRUE(wa.ok()) << wa.message();
  EXPECT_TRUE(wb.ok()) << wb.message();
  EXPECT_TRUE(ra.ok()) << ra.message();
  EXPECT_TRUE(rb.ok()) << rb.message();
  EXPECT_EQ(wrong_a, 0u);
  EXPECT_EQ(wrong_b, 0u);
}

Millis since(steady_clock::time_point start) {
  return std::chrono::duration_cast<Millis>(steady_clock::now() - start);
}

TEST(ChannelTest, PlainRoundTripBothWaysAtOnce) {
  Pair p = plainPair();
  EXPECT_STREQ(p.a->kind(), "tcp");
  roundTrip(std::move(p));
}

TEST(ChannelTest, TlsRoundTripBothWaysAtOnce) {
  Pair p = tlsPair();
  ASSERT_TRUE(p.a);
  EXPECT_STREQ(p.a->kind(), "tls");
  roundTrip(std::move(p));
}

TEST(ChannelTest, TlsRefusesAnotherModuleOnBothSides) {
  Handshakes h = handshake(identityA(), identityB());
  ASSERT_FALSE(h.server.ok());
  ASSERT_FALSE(h.client.ok());
  EXPECT_EQ(h.server.status().code(), StatusCode::PermissionDenied);
  EXPECT_NE(h.server.status().message().find("the peer presented another module certificate"),
            std::string::npos)
      << h.server.status().message();
  EXPECT_NE(h.client.status().message().find("the peer presented another module certificate"),
            std::string::npos)
      << h.client.status().message();
}

TEST(ChannelTest, TlsRefusesAPlainPeer) {
  auto [s, c] = socketPair();
  std::thread junk([fd = c] {
    (void)!write(fd, "HALOxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 44);
    usleep(100000);
    close(fd);
  });
  auto server = tlsChannel(s, identityA(), true, kLong);
  junk.join();
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("TLS handshake"), std::string::npos);
}

TEST(ChannelTest, HandshakeTimesOutWhenThePeerIsSilent) {
  for (bool server : {true, false}) {
    auto [mine, silent] = socketPair();
    const auto start = steady_clock::now();
    auto r = tlsChannel(mine, identityA(), server, Millis(200));
    const Millis took = since(start);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::DeadlineExceeded) << r.status().message();
    EXPECT_GE(took, Millis(190));
    EXPECT_LT(took, Millis(1000));
    close(silent);
  }
}

TEST(ChannelTest, ReadTimesOut) {
  for (Pair& p : bothKinds()) {
    ASSERT_TRUE(p.a);
    char c;
    const auto start = steady_clock::now();
    auto r = p.a->read(&c, 1, Millis(100));
    ASSERT_FALSE(r.ok()) << p.a->kind();
    EXPECT_EQ(r.status().code(), StatusCode::DeadlineExceeded) << p.a->kind();
    EXPECT_GE(since(start), Millis(95));
    EXPECT_LT(since(start), Millis(1000));
  }
}

TEST(ChannelTest, WriteTimesOutWhenThePeerReadsNothing) {
  for (Pair& p : bothKinds()) {
    ASSERT_TRUE(p.a);
    Status s = p.a->writeAll(std::string(kVolume, 'x'), Millis(100));
    EXPECT_EQ(s.code(), StatusCode::DeadlineExceeded) << p.a->kind() << ": " << s.message();
  }
}

TEST(ChannelTest, ShutdownWakesABlockedReadAndWrite) {
  for (Pair& p : bothKinds()) {
    ASSERT_TRUE(p.a);
    Status read_status, write_status;
    steady_clock::time_point read_end, write_end;
    std::thread reader([&] {
      char c;
      read_status = p.a->read(&c, 1, Millis(10000)).status();
      read_end = steady_clock::now();
    });
    // Blocks once the socket buffers are full, since b reads nothing.
    std::thread writer([&] {
      write_status = p.a->writeAll(std::string(kVolume, 'x'), Millis(10000));
      write_end = steady_clock::now();
    });
    std::this_thread::sleep_for(Millis(100));
    const auto start = steady_clock::now();
    p.a->shutdown();
    reader.join();
    writer.join();
    EXPECT_EQ(read_status.code(), StatusCode::Unavailable) << read_status.message();
    EXPECT_EQ(write_status.code(), StatusCode::Unavailable) << write_status.message();
    EXPECT_LT(read_end - start, Millis(500)) << p.a->kind();
    EXPECT_LT(write_end - start, Millis(500)) << p.a->kind();
    char c;
    EXPECT_EQ(p.a->read(&c, 1, kLong).status().code(), StatusCode::Unavailable);
    EXPECT_EQ(p.a->writeAll("x", kLong).code(), StatusCode::Unavailable);
    p.a->shutdown();  // idempotent
  }
}

TEST(ChannelTest, EndOfStreamIsUnavailable) {
  for (Pair& p : bothKinds()) {
    ASSERT_TRUE(p.a);
    ASSERT_TRUE(p.b->writeAll("last", kLong).ok());
    p.b.reset();
    char buf[4];
    ASSERT_TRUE(readExactly(*p.a, buf, sizeof(buf), kLong).ok()) << p.a->kind();
    EXPECT_EQ(std::string(buf, 4), "last");
    auto r = p.a->read(buf, sizeof(buf), kLong);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::Unavailable);
    EXPECT_EQ(r.status().message(), "connection closed by the peer") << p.a->kind();
  }
}

TEST(TlsIdentityTest, MakesAValidSelfSignedCertificate) {
  auto id = makeTlsIdentity("halo-module-web");
  ASSERT_TRUE(id.ok()) << id.status().message();
  EXPECT_TRUE(id->certificate_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
  EXPECT_TRUE(id->private_key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
  EXPECT_TRUE(checkTlsIdentity(*id).ok());

  BIO* bio = BIO_new_mem_buf(id->certificate_pem.data(), -1);
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ASSERT_NE(cert, nullptr);
  char cn[64] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
  EXPECT_STREQ(cn, "halo-module-web");
  EXPECT_EQ(X509_get_version(cert), X509_VERSION_3);
  EXPECT_EQ(X509_check_issued(cert, cert), X509_V_OK);
  EXPECT_EQ(X509_verify(cert, X509_get0_pubkey(cert)), 1);
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert)), 1);
  EXPECT_GT(days, 99 * 365);
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert), nullptr), 1);
  EXPECT_GE(days, 0);
  EXPECT_GT(days * 86400 + secs, 23 * 3600);
  X509_free(cert);

  auto other = makeTlsIdentity("halo-module-web");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->certificate_pem, id->certificate_pem);  // fresh key and serial
}

TEST(TlsIdentityTest, ChecksRefuseMismatchedOrBrokenPems) {
  Status s = checkTlsIdentity({identityA().certificate_pem, identityB().private_key_pem});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("does not match"), std::string::npos) << s.message();
  s = checkTlsIdentity({"junk", identityA().private_key_pem});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("certificate"), std::string::npos) << s.message();
  s = checkTlsIdentity({identityA().certificate_pem, "junk"});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("private key"), std::string::npos) << s.message();
  EXPECT_FALSE(makeTlsIdentity("").ok());
}

TEST(TlsIdentityTest, ParsesTheModuleKeyFile) {
  const std::string head = "halo-module-key 1\n" + std::string(96, 'a') + "\n";
  auto none = parseModuleTls(head);
  ASSERT_TRUE(none.ok()) << none.status().message();
  EXPECT_FALSE(none->has_value());

  const TlsIdentity& a = identityA();
  auto full = parseModuleTls(head + a.certificate_pem + a.private_key_pem);
  ASSERT_TRUE(full.ok()) << full.status().message();
  ASSERT_TRUE(full->has_value());
  EXPECT_EQ((*full)->certificate_pem, a.certificate_pem);
  EXPECT_EQ((*full)->private_key_pem, a.private_key_pem);

  auto truncated = parseModuleTls(head + a.certificate_pem +
                                  a.private_key_pem.substr(0, a.private_key_pem.size() / 2));
  ASSERT_FALSE(truncated.ok());
  EXPECT_TRUE(truncated.status().message().starts_with("module key file: "));
  EXPECT_NE(truncated.status().message().find("halo module genkey"), std::string::npos);

  auto mixed = parseModuleTls(head + a.certificate_pem + identityB().private_key_pem);
  ASSERT_FALSE(mixed.ok());
  EXPECT_NE(mixed.status().message().find("does not match"), std::string::npos);
  EXPECT_NE(mixed.status().message().find("halo module genkey"), std::string::npos);
}

}  // namespace
}  // namespace halo::rfs
