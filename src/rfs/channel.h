#pragma once
// Channel: one connected stream socket of the replication link (DESIGN 6.5), plain TCP or TLS 1.3.
// The link writes from one thread and reads from another on the same connection; a Channel makes
// that safe for both kinds (an OpenSSL object must never be used by two threads at once, so the
// TLS channel serialises its calls and never blocks while holding its lock).
//
// Thread-safety: at most one writer and one reader at a time (callers serialise their writes);
// shutdown() from any thread wakes both.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/time_source.h"

namespace halo::rfs {

class Channel {
 public:
  virtual ~Channel() = default;
  // Writes all of `data`. DeadlineExceeded when the peer read nothing for `timeout` (the
  // link's sendtimeout), Unavailable when the connection broke or was shut down.
  virtual Status writeAll(std::string_view data, Millis timeout) = 0;
  // Writes the pieces in order as one stream; the default writes them one by one (a plain
  // channel gathers them into few system calls).
  virtual Status writeAllv(const std::vector<std::string_view>& pieces, Millis timeout) {
    for (auto p : pieces) {
      HALO_RETURN_IF_ERROR(writeAll(p, timeout));
    }
    return okStatus();
  }
  // Writes what fits now without waiting: the bytes written (0 when none, or when this kind
  // of channel cannot: the caller queues the rest). Same thread rules as writeAll.
  virtual size_t tryWrite(std::string_view /*data*/) { return 0; }
  // The same for pieces written in order as one stream.
  virtual size_t tryWritev(const std::vector<std::string_view>& pieces) {
    return pieces.size() == 1 ? tryWrite(pieces[0]) : 0;
  }
  // Reads at least one byte and at most `size`, waiting at most `timeout` (DeadlineExceeded).
  // Unavailable with "connection closed by the peer" at the end of the stream.
  virtual Result<size_t> read(char* out, size_t size, Millis timeout) = 0;
  // Ends the connection: blocked and later reads and writes fail at once. Idempotent.
  virtual void shutdown() = 0;
  // "tls" or "tcp", for the logs.
  virtual const char* kind() const = 0;
};

// Takes ownership of a connected socket (made non-blocking here; closed by the Channel).
std::unique_ptr<Channel> plainChannel(int fd);

// Reads exactly `size` bytes, each wait bounded by `timeout` (hellos, fixed-size frames).
Status readExactly(Channel& channel, char* out, size_t size, Millis timeout);

// The module's TLS identity: one certificate and its private key (PEM), the same on both nodes
// (made by `halo module genkey`). Each node presents it and accepts only a peer presenting the
// very same certificate: the pair authenticates the module, not a host.
struct TlsIdentity {
  std::string certificate_pem;
  std::string private_key_pem;
};

// A new identity: an EC P-256 key and a self-signed X.509 v3 certificate (CN = common_name,
// SHA-256, valid from a day ago for 100 years: the pin, not the dates, is what is checked).
Result<TlsIdentity> makeTlsIdentity(const std::string& common_name);

// Parses both PEMs and checks that the key is the certificate's.
Status checkTlsIdentity(const TlsIdentity& identity);

// The identity held in modulekey.dat after the heartbeat key lines (certificate then private key
// PEM blocks, written by `halo module genkey`); nullopt for a key file without PEM blocks (made
// before TLS). Errors start with "module key file: " and say to run genkey again.
Result<std::optional<TlsIdentity>> parseModuleTls(std::string_view key_file_content);

// Performs a TLS 1.3 handshake on a connected socket (taking ownership of it) within `timeout`,
// as the server (the primary, which accepts) or the client. Refuses a peer without the identity's
// certificate. Errors say what failed ("the peer presented another module certificate").
Result<std::unique_ptr<Channel>> tlsChannel(int fd, const TlsIdentity& identity, bool server,
                                            Millis timeout);

}  // namespace halo::rfs
