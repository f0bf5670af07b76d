// The TLS 1.3 Channel (OpenSSL 3) and the module's TLS identity (key generation, checks, parsing
// of modulekey.dat).

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "rfs/channel.h"

namespace halo::rfs {

namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL_free>>;

constexpr int kMaxIo = INT_MAX;
constexpr char kOtherCertificate[] = "the peer presented another module certificate";
constexpr char kPeerClosed[] = "connection closed by the peer";

// Drains this thread's OpenSSL error queue into one line.
std::string opensslErrors() {
  std::string out;
  char buf[256];
  while (unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out.empty() ? "no detail from OpenSSL" : out;
}

MonotonicTime now() {
  static RealTimeSource clock;
  return clock.monotonicTime();
}

// A negative timeout waits for ever, as poll does for the plain channel.
MonotonicTime deadlineAfter(Millis timeout) {
  return timeout.count() < 0 ? MonotonicTime::max() : now() + timeout;
}

// Never prompts on a terminal for a passphrase (OpenSSL's default for encrypted PEM keys).
int noPassphrase(char*, int, int, void*) { return 0; }

Result<X509Ptr> readCertificate(std::string_view pem) {
  ERR_clear_error();
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, noPassphrase, nullptr) : nullptr);
  if (!cert) {
    return invalidArgument("cannot read the certificate PEM: " + opensslErrors());
  }
  return cert;
}

Result<PkeyPtr> readPrivateKey(std::string_view pem) {
  ERR_clear_error();
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassphrase, nullptr) : nullptr);
  if (!key) {
    return invalidArgument("cannot read the private key PEM (unencrypted PKCS#8 expected): " +
                           opensslErrors());
  }
  return key;
}

std::string derOf(X509* cert) {
  unsigned char* buf = nullptr;
  const int n = i2d_X509(cert, &buf);
  if (n <= 0) {
    return {};
  }
  std::string der(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
  OPENSSL_free(buf);
  return der;
}

// A socket BIO that sends with MSG_NOSIGNAL: OpenSSL's own socket BIO uses write(), which raises
// SIGPIPE on a broken connection in a process that did not ignore it.
int fdOf(BIO* bio) { return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio))); }

int bioWrite(BIO* bio, const char* in, int size) {
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::send(fdOf(bio), in, static_cast<size_t>(size), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    BIO_set_retry_write(bio);
  }
  return static_cast<int>(n);
}

int bioRead(BIO* bio, char* out, int size) {
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::recv(fdOf(bio), out, static_cast<size_t>(size), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    BIO_set_retry_read(bio);
  }
  return static_cast<int>(n);
}

long bioCtrl(BIO* bio, int cmd, long, void* ptr) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // nothing is buffered here
    case BIO_C_GET_FD:
      if (ptr != nullptr) {
        *static_cast<int*>(ptr) = fdOf(bio);
      }
      return fdOf(bio);
    default:
      return 0;
  }
}

const BIO_METHOD* socketMethod() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "halo socket");
    if (m != nullptr) {
      BIO_meth_set_write(m, bioWrite);
      BIO_meth_set_read(m, bioRead);
      BIO_meth_set_ctrl(m, bioCtrl);
    }
    return m;
  }();
  return method;
}

// Self-signed certificates never pass chain verification; the pin is checked after the
// handshake (checkPeer) so both sides see the completed handshake and report the same refusal.
int acceptAnyChain(int, X509_STORE_CTX*) { return 1; }

class TlsChannel : public Channel {
 public:
  explicit TlsChannel(int fd) : fd_(fd) { fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK); }
  ~TlsChannel() override {
    ssl_.reset();
    ::close(fd_);
  }

  // Not yet shared with another thread, so no lock.
  Status handshake(const TlsIdentity& identity, bool server, Millis timeout) {
    const MonotonicTime deadline = deadlineAfter(timeout);
    HALO_RETURN_IF_ERROR(configure(identity, server));
    while (true) {
      ERR_clear_error();
      const int r = SSL_do_handshake(ssl_.get());
      const int saved_errno = errno;
      if (r == 1) {
        break;
      }
      const int err = SSL_get_error(ssl_.get(), r);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
        return failure(err, saved_errno).withPrefix("TLS handshake");
      }
      HALO_ASSIGN_OR_RETURN(bool ready,
                            waitFor(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline));
      if (!ready) {
        return deadlineExceeded("TLS handshake not done within " + std::to_string(timeout.count()) +
                                " ms");
      }
    }
    return checkPeer();
  }

  Status writeAll(std::string_view data, Millis timeout) override {
    // The timeout bounds each wait for progress, not the whole write.
    MonotonicTime deadline = deadlineAfter(timeout);
    while (!data.empty()) {
      short events = 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (closed_.load()) {
          return unavailable("the connection was shut down");
        }
        ERR_clear_error();
        // After a WANT_* the retry passes the same bytes, as SSL_write requires.
        const int n = SSL_write(ssl_.get(), data.data(),
                                static_cast<int>(std::min<size_t>(data.size(), kMaxIo)));
        const int saved_errno = errno;
        if (n > 0) {
          data.remove_prefix(static_cast<size_t>(n));
          deadline = deadlineAfter(timeout);
          continue;
        }
        const int err = SSL_get_error(ssl_.get(), n);
        if (err == SSL_ERROR_WANT_WRITE) {
          events = POLLOUT;
        } else if (err == SSL_ERROR_WANT_READ) {
          events = POLLIN;
        } else {
          return failure(err, saved_errno).withPrefix("TLS send");
        }
      }
      HALO_ASSIGN_OR_RETURN(bool ready, waitFor(events, deadline));
      if (!ready) {
        return deadlineExceeded("the peer read nothing for " + std::to_string(timeout.count()) +
                                " ms");
      }
    }
    return okStatus();
  }

  Result<size_t> read(char* out, size_t size, Millis timeout) override {
    const MonotonicTime deadline = deadlineAfter(timeout);
    while (true) {
      short events = 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (closed_.load()) {
          return unavailable("the connection was shut down");
        }
        ERR_clear_error();
        const int n = SSL_read(ssl_.get(), out, static_cast<int>(std::min<size_t>(size, kMaxIo)));
        const int saved_errno = errno;
        if (n > 0) {
          return static_cast<size_t>(n);
        }
        const int err = SSL_get_error(ssl_.get(), n);
        if (err == SSL_ERROR_WANT_READ) {
          // Bytes already inside OpenSSL would never wake poll on the socket.
          if (SSL_pending(ssl_.get()) > 0) {
            continue;
          }
          events = POLLIN;
        } else if (err == SSL_ERROR_WANT_WRITE) {
          events = POLLOUT;  // OpenSSL must send something (e.g. a key update) first
        } else {
          Status s = failure(err, saved_errno);
          return s.message() == kPeerClosed ? s : s.withPrefix("TLS receive");
        }
      }
      HALO_ASSIGN_OR_RETURN(bool ready, waitFor(events, deadline));
      if (!ready) {
        return deadlineExceeded("nothing received for " + std::to_string(timeout.count()) + " ms");
      }
    }
  }

  void shutdown() override {
    closed_ = true;
    ::shutdown(fd_, SHUT_RDWR);  // wakes the polls of both threads
  }

  const char* kind() const override { return "tls"; }

 private:
  Status configure(const TlsIdentity& identity, bool server) {
    HALO_ASSIGN_OR_RETURN(X509Ptr cert, readCertificate(identity.certificate_pem));
    HALO_ASSIGN_OR_RETURN(PkeyPtr key, readPrivateKey(identity.private_key_pem));
    own_der_ = derOf(cert.get());
    ERR_clear_error();
    ctx_.reset(SSL_CTX_new(TLS_method()));
    if (!ctx_) {
      return internalError("SSL_CTX_new: " + opensslErrors());
    }
    SSL_CTX* ctx = ctx_.get();
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        // AES-128-GCM first: the fastest with AES-NI, and enough for a session key.
        SSL_CTX_set_ciphersuites(ctx,
                                 "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                 "TLS_CHACHA20_POLY1305_SHA256") != 1 ||
        SSL_CTX_set_num_tickets(ctx, 0) != 1) {
      return internalError("TLS settings: " + opensslErrors());
    }
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate(ctx, cert.get()) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
      return invalidArgument("TLS identity: " + opensslErrors());
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       acceptAnyChain);
    ssl_.reset(SSL_new(ctx));
    const BIO_METHOD* method = socketMethod();
    BIO* bio = method != nullptr ? BIO_new(method) : nullptr;
    if (!ssl_ || bio == nullptr) {
      BIO_free(bio);
      return internalError("SSL_new: " + opensslErrors());
    }
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd_)));
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_.get(), bio, bio);  // the SSL owns the BIO
    if (server) {
      SSL_set_accept_state(ssl_.get());
    } else {
      SSL_set_connect_state(ssl_.get());
    }
    return okStatus();
  }

  // The pin: the pair shares one certificate, so anything else is another module (or node).
  Status checkPeer() {
    X509* peer = SSL_get0_peer_certificate(ssl_.get());
    if (peer == nullptr) {
      return Status(StatusCode::PermissionDenied, "the peer presented no certificate");
    }
    if (derOf(peer) != own_der_) {
      return Status(StatusCode::PermissionDenied, kOtherCertificate);
    }
    return okStatus();
  }

  // Why an SSL call failed; `saved_errno` is errno just after the call.
  static Status failure(int ssl_error, int saved_errno) {
    switch (ssl_error) {
      case SSL_ERROR_ZERO_RETURN:
        return unavailable(kPeerClosed);
      case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
          return saved_errno == 0 ? unavailable(kPeerClosed)
                                  : unavailable(std::strerror(saved_errno));
        }
        break;
      case SSL_ERROR_SSL:
        // OpenSSL 3 reports an EOF without close_notify this way.
        if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
          ERR_clear_error();
          return unavailable(kPeerClosed);
        }
        break;
      default:
        break;
    }
    return unavailable(opensslErrors());
  }

  // Waits until the socket is ready for `events` or `deadline` passed (false). Never called
  // with mu_ held, so the other direction keeps going meanwhile.
  Result<bool> waitFor(short events, MonotonicTime deadline) {
    while (true) {
      const auto left = deadline - now();
      if (left <= MonotonicTime::duration::zero()) {
        return false;
      }
      // Rounded up so a poll never spins with a zero timeout just before the deadline.
      const auto ms = std::chrono::ceil<Millis>(left).count();
      pollfd p{fd_, events, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::min<decltype(ms)>(ms, INT_MAX)));
      if (r > 0) {
        return true;
      }
      if (r < 0 && errno != EINTR) {
        return errnoStatus("poll", errno);
      }
    }
  }

  const int fd_;
  SslCtxPtr ctx_;
  std::mutex mu_;  // every use of ssl_ after the handshake (one reader and one writer thread)
  SslPtr ssl_;
  std::string own_der_;
  std::atomic<bool> closed_{false};
};

// The first PEM block whose label ends with `label` ("CERTIFICATE", "PRIVATE KEY"), with its
// final newline; empty when there is none or it is not terminated.
std::string_view findPemBlock(std::string_view text, std::string_view label) {
  constexpr std::string_view kBegin = "-----BEGIN ";
  size_t pos = 0;
  while ((pos = text.find(kBegin, pos)) != std::string_view::npos) {
    const size_t label_at = pos + kBegin.size();
    const size_t label_end = text.find("-----", label_at);
    if (label_end == std::string_view::npos) {
      return {};
    }
    const std::string_view found = text.substr(label_at, label_end - label_at);
    if (found.ends_with(label)) {
      const std::string end_line = "-----END " + std::string(found) + "-----";
      size_t end = text.find(end_line, label_end);
      if (end == std::string_view::npos) {
        return {};
      }
      end += end_line.size();
      if (end < text.size() && text[end] == '\n') {
        ++end;
      }
      return text.substr(pos, end - pos);
    }
    pos = label_end;
  }
  return {};
}

Status addExtension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  const bool ok = ext != nullptr && X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok ? okStatus()
            : internalError(std::string("certificate extension ") + value + ": " + opensslErrors());
}

std::string pemOf(const std::function<int(BIO*)>& write) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) {
    return {};
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

}  // namespace

Result<std::unique_ptr<Channel>> tlsChannel(int fd, const TlsIdentity& identity, bool server,
                                            Millis timeout) {
  auto channel = std::make_unique<TlsChannel>(fd);  // closes fd on failure too
  HALO_RETURN_IF_ERROR(channel->handshake(identity, server, timeout));
  return std::unique_ptr<Channel>(std::move(channel));
}

Result<TlsIdentity> makeTlsIdentity(const std::string& common_name) {
  if (common_name.empty() || common_name.size() > 64) {
    return invalidArgument("TLS identity: the common name must have 1 to 64 characters, not " +
                           std::to_string(common_name.size()));
  }
  ERR_clear_error();
  PkeyPtr key(EVP_EC_gen("P-256"));
  X509Ptr cert(X509_new());
  BignumPtr serial(BN_new());
  if (!key || !cert || !serial) {
    return internalError("TLS identity: cannot create the key: " + opensslErrors());
  }
  X509* x = cert.get();
  // 127 random bits: positive and within the 20 octets RFC 5280 allows.
  if (X509_set_version(x, X509_VERSION_3) != 1 ||
      BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(x)) == nullptr ||
      X509_gmtime_adj(X509_getm_notBefore(x), -24 * 3600) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(x), 100 * 365 + 24, 0, nullptr) == nullptr ||
      X509_set_pubkey(x, key.get()) != 1) {
    return internalError("TLS identity: cannot fill the certificate: " + opensslErrors());
  }
  X509_NAME* name = X509_get_subject_name(x);
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1 ||
      X509_set_issuer_name(x, name) != 1) {
    return internalError("TLS identity: cannot set the name: " + opensslErrors());
  }
  HALO_RETURN_IF_ERROR(addExtension(x, NID_basic_constraints, "critical,CA:FALSE"));
  HALO_RETURN_IF_ERROR(addExtension(x, NID_ext_key_usage, "serverAuth,clientAuth"));
  HALO_RETURN_IF_ERROR(addExtension(x, NID_subject_key_identifier, "hash"));
  if (X509_sign(x, key.get(), EVP_sha256()) <= 0) {
    return internalError("TLS identity: cannot sign the certificate: " + opensslErrors());
  }
  TlsIdentity identity;
  identity.certificate_pem = pemOf([&](BIO* b) { return PEM_write_bio_X509(b, x); });
  identity.private_key_pem = pemOf([&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  if (identity.certificate_pem.empty() || identity.private_key_pem.empty()) {
    return internalError("TLS identity: cannot write the PEMs: " + opensslErrors());
  }
  return identity;
}

Status checkTlsIdentity(const TlsIdentity& identity) {
  auto cert = readCertificate(identity.certificate_pem);
  if (!cert.ok()) {
    return cert.status().withPrefix("TLS identity");
  }
  auto key = readPrivateKey(identity.private_key_pem);
  if (!key.ok()) {
    return key.status().withPrefix("TLS identity");
  }
  ERR_clear_error();
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return invalidArgument("TLS identity: the private key does not match the certificate");
  }
  return okStatus();
}

Result<std::optional<TlsIdentity>> parseModuleTls(std::string_view key_file_content) {
  if (key_file_content.find("-----BEGIN ") == std::string_view::npos) {
    return std::optional<TlsIdentity>();  // a key file from before TLS
  }
  constexpr char kAgain[] = "; run `halo module genkey` again and copy the file to the other node";
  TlsIdentity identity;
  identity.certificate_pem = findPemBlock(key_file_content, "CERTIFICATE");
  identity.private_key_pem = findPemBlock(key_file_content, "PRIVATE KEY");
  if (identity.certificate_pem.empty()) {
    return invalidArgument(std::string("module key file: no complete certificate PEM block") +
                           kAgain);
  }
  if (identity.private_key_pem.empty()) {
    return invalidArgument(std::string("module key file: no complete private key PEM block") +
                           kAgain);
  }
  Status s = checkTlsIdentity(identity);
  if (!s.ok()) {
    return invalidArgument("module key file: " + s.message() + kAgain);
  }
  return std::optional<TlsIdentity>(std::move(identity));
}

}  // namespace halo::rfs
