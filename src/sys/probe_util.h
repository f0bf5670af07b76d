#pragma once
// Helpers shared by the probes (not a public API): name resolution, numeric formatting and a
// monotonic deadline for bounded waits.

#include <sys/socket.h>

#include <string>
#include <vector>

#include "base/status.h"
#include "base/time_source.h"

namespace halo::sys::probe {

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family() const { return addr.ss_family; }
};

// IPv4/IPv6 literal or host name -> addresses, in getaddrinfo order (port left 0 unless given).
// Resolution of a name is not bounded by any probe timeout: the resolver has its own.
Result<std::vector<Endpoint>> resolve(const std::string& host, int socktype, int port = 0);
// "127.0.0.1" / "::1" for an address.
std::string numericHost(const Endpoint& e);
// "127.0.0.1:80" / "[::1]:80".
std::string hostPort(const Endpoint& e, int port);
// Same IP address (ports and IPv6 scopes ignored).
bool sameAddress(const sockaddr* a, const sockaddr* b);

class Deadline {
 public:
  explicit Deadline(Millis timeout) : end_(clock_.monotonicTime() + timeout) {}
  // Milliseconds left for poll(), rounded up so a wait never ends before the deadline; 0 after.
  int remainingMs();
  bool expired() { return remainingMs() == 0; }

 private:
  RealTimeSource clock_;
  MonotonicTime end_;
};

}  // namespace halo::sys::probe
