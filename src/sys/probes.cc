#include "sys/probes.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "sys/probe_util.h"

namespace halo::sys {

namespace {

ProbeOutcome down(std::string detail) { return {false, std::move(detail)}; }

// One connect attempt; nullopt when the deadline passed without an answer.
std::optional<int> connectOnce(const probe::Endpoint& e, probe::Deadline& deadline) {
  const int fd = socket(e.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return errno;
  }
  int err = 0;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&e.addr), e.len) < 0) {
    err = errno;
  }
  while (err == EINPROGRESS || err == EINTR) {
    pollfd p{fd, POLLOUT, 0};
    const int rc = poll(&p, 1, deadline.remainingMs());
    if (rc < 0 && errno == EINTR) {
      continue;
    }
    if (rc <= 0) {
      close(fd);
      return std::nullopt;
    }
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
      err = errno;
    }
  }
  close(fd);
  return err;
}

struct HeldBy {
  std::string ifname;
  unsigned flags = 0;
  std::string addr;  // the matching address, numeric
};

// The interface holding one of `host`'s addresses; nullopt when none does.
Result<std::optional<HeldBy>> findHolder(const std::string& host) {
  HALO_ASSIGN_OR_RETURN(std::vector<probe::Endpoint> wanted, probe::resolve(host, SOCK_DGRAM));
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) < 0) {
    return errnoStatus("getifaddrs", errno);
  }
  std::optional<HeldBy> found;
  for (const probe::Endpoint& w : wanted) {
    for (ifaddrs* ifa = list; ifa != nullptr && !found; ifa = ifa->ifa_next) {
      if (probe::sameAddress(ifa->ifa_addr, reinterpret_cast<const sockaddr*>(&w.addr))) {
        found = HeldBy{ifa->ifa_name, ifa->ifa_flags, probe::numericHost(w)};
      }
    }
  }
  freeifaddrs(list);
  return found;
}

}  // namespace

ProbeOutcome probeTcp(const std::string& addr, int port, Millis timeout) {
  if (port <= 0 || port > 65535) {
    return down("invalid port " + std::to_string(port) + " for " + addr);
  }
  auto endpoints = probe::resolve(addr, SOCK_STREAM, port);
  if (!endpoints.ok()) {
    return down(endpoints.status().message());
  }
  probe::Deadline deadline(timeout);
  std::string detail;
  // A name may resolve to several addresses: the first that answers wins, within one timeout.
  for (const probe::Endpoint& e : *endpoints) {
    const std::string where = "connect " + probe::hostPort(e, port);
    const std::optional<int> err = connectOnce(e, deadline);
    if (!err) {
      return down(where + ": no answer within " + std::to_string(timeout.count()) + " ms");
    }
    if (*err == 0) {
      return {true, where + ": connected"};
    }
    detail = where + ": " + std::strerror(*err);
    if (deadline.expired()) {
      break;
    }
  }
  return down(detail);
}

ProbeOutcome probeInterface(const std::string& local_addr) {
  auto holder = findHolder(local_addr);
  if (!holder.ok()) {
    return down(holder.status().message());
  }
  if (!*holder) {
    return down("no interface holds " + local_addr);
  }
  const HeldBy& h = **holder;
  const std::string which = "interface " + h.ifname + " (" + h.addr + ")";
  if ((h.flags & IFF_UP) == 0) {
    return down(which + " administratively down");
  }
  if ((h.flags & IFF_RUNNING) == 0) {
    return down(which + " link down");
  }
  return {true, which + " up"};
}

ProbeOutcome probeAddressPresent(const std::string& addr) {
  auto holder = findHolder(addr);
  if (!holder.ok()) {
    return down(holder.status().message());
  }
  if (!*holder) {
    return down("no interface holds " + addr);
  }
  return {true, (*holder)->addr + " held by interface " + (*holder)->ifname};
}

}  // namespace halo::sys
