#include "sys/probe_util.h"

#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace halo::sys::probe {

Result<std::vector<Endpoint>> resolve(const std::string& host, int socktype, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
  if (rc != 0) {
    return unavailable("resolve " + host + ": " + gai_strerror(rc));
  }
  std::vector<Endpoint> out;
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
        ai->ai_addrlen > sizeof(sockaddr_storage)) {
      continue;
    }
    Endpoint e;
    std::memcpy(&e.addr, ai->ai_addr, ai->ai_addrlen);
    e.len = ai->ai_addrlen;
    out.push_back(e);
  }
  freeaddrinfo(list);
  if (out.empty()) {
    return unavailable("resolve " + host + ": no IPv4 or IPv6 address");
  }
  return out;
}

std::string numericHost(const Endpoint& e) {
  char buf[NI_MAXHOST];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&e.addr), e.len, buf, sizeof(buf), nullptr, 0,
                  NI_NUMERICHOST) != 0) {
    return "?";
  }
  return buf;
}

std::string hostPort(const Endpoint& e, int port) {
  const std::string host = numericHost(e);
  return (e.family() == AF_INET6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool sameAddress(const sockaddr* a, const sockaddr* b) {
  if (a == nullptr || b == nullptr || a->sa_family != b->sa_family) {
    return false;
  }
  if (a->sa_family == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(a)->sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in*>(b)->sin_addr.s_addr;
  }
  if (a->sa_family == AF_INET6) {
    return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr,
                       &reinterpret_cast<const sockaddr_in6*>(b)->sin6_addr, sizeof(in6_addr)) == 0;
  }
  return false;
}

int Deadline::remainingMs() {
  const auto left = end_ - clock_.monotonicTime();
  if (left <= MonotonicTime::duration::zero()) {
    return 0;
  }
  const auto ms = std::chrono::ceil<Millis>(left).count();
  return static_cast<int>(std::min<decltype(ms)>(ms, 1 << 30));
}

}  // namespace halo::sys::probe
