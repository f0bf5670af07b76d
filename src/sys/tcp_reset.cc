#include "sys/tcp_reset.h"

#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "sys/netlink_socket.h"

namespace halo::sys {

namespace {

// Connected states worth a reset: not LISTEN, TIME_WAIT, CLOSE or SYN_RECV (request sockets).
constexpr uint32_t kConnectedStates =
    (1u << TCP_ESTABLISHED) | (1u << TCP_SYN_SENT) | (1u << TCP_FIN_WAIT1) | (1u << TCP_FIN_WAIT2) |
    (1u << TCP_CLOSE_WAIT) | (1u << TCP_LAST_ACK) | (1u << TCP_CLOSING);

// Bytecode "source address == vip/len": one S_COND op; yes falls through to the end (accept),
// no jumps past the end (reject).
std::vector<uint8_t> sourceFilter(const IpAddr& vip) {
  const size_t alen = vip.length();
  const size_t len = sizeof(inet_diag_bc_op) + sizeof(inet_diag_hostcond) + alen;
  std::vector<uint8_t> bc(len, 0);
  inet_diag_bc_op op{};
  op.code = INET_DIAG_BC_S_COND;
  op.yes = static_cast<uint8_t>(len);
  op.no = static_cast<uint16_t>(len + 4);
  inet_diag_hostcond cond{};
  cond.family = static_cast<uint8_t>(vip.family);
  cond.prefix_len = static_cast<uint8_t>(vip.maxPrefix());
  cond.port = -1;
  std::memcpy(bc.data(), &op, sizeof(op));
  std::memcpy(bc.data() + sizeof(op), &cond, sizeof(cond));
  std::memcpy(bc.data() + sizeof(op) + sizeof(cond), vip.bytes.data(), alen);
  return bc;
}

bool localIsVip(const inet_diag_msg& m, const IpAddr& vip) {
  const auto* src = reinterpret_cast<const uint8_t*>(m.id.idiag_src);
  if (m.idiag_family == vip.family) {
    return std::memcmp(src, vip.bytes.data(), vip.length()) == 0;
  }
  if (m.idiag_family == AF_INET6 && vip.family == AF_INET) {  // ::ffff:a.b.c.d
    static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(src, kMapped, 12) == 0 && std::memcmp(src + 12, vip.bytes.data(), 4) == 0;
  }
  return false;
}

}  // namespace

Result<TcpResetReport> resetTcpConnections(const IpAddr& vip) {
  if (vip.family != AF_INET && vip.family != AF_INET6) {
    return invalidArgument("tcpreset: VIP address family is neither IPv4 nor IPv6");
  }
  HALO_ASSIGN_OR_RETURN(NetlinkSocket nl, NetlinkSocket::open(NETLINK_SOCK_DIAG));
  const std::string what = "tcpreset " + vip.toString();
  std::vector<inet_diag_msg> victims;
  const std::vector<uint8_t> filter = sourceFilter(vip);
  const int families[] = {AF_INET, AF_INET6};
  for (int family : families) {
    if (vip.family == AF_INET6 && family == AF_INET) {
      continue;
    }
    inet_diag_req_v2 req{};
    req.sdiag_family = static_cast<uint8_t>(family);
    req.sdiag_protocol = IPPROTO_TCP;
    req.idiag_states = kConnectedStates;
    NetlinkMessage msg(SOCK_DIAG_BY_FAMILY, 0, &req, sizeof(req));
    msg.addAttr(INET_DIAG_REQ_BYTECODE, filter.data(), filter.size());
    Status st = nl.dump(msg, "netlink SOCK_DIAG_BY_FAMILY (" + what + ")", [&](const nlmsghdr* h) {
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) {
        return;
      }
      const auto* m = reinterpret_cast<const inet_diag_msg*>(NLMSG_DATA(h));
      if (localIsVip(*m, vip)) {  // the kernel filtered; check anyway
        victims.push_back(*m);
      }
    });
    HALO_RETURN_IF_ERROR(st);
  }
  TcpResetReport report;
  report.found = static_cast<int>(victims.size());
  int vanished = 0;
  for (const auto& m : victims) {
    inet_diag_req_v2 req{};
    req.sdiag_family = m.idiag_family;
    req.sdiag_protocol = IPPROTO_TCP;
    req.idiag_states = ~0u;
    req.id = m.id;
    NetlinkMessage msg(SOCK_DESTROY, 0, &req, sizeof(req));
    Status st = nl.request(msg, "netlink SOCK_DESTROY (" + what + ")");
    if (st.ok()) {
      ++report.destroyed;
      continue;
    }
    const std::string& text = st.message();
    const std::string unsupported = std::strerror(EOPNOTSUPP);
    if (text.size() >= unsupported.size() &&
        text.compare(text.size() - unsupported.size(), unsupported.size(), unsupported) == 0) {
      report.warning = st.message() + " (kernel without CONFIG_INET_DIAG_DESTROY?): " +
                       std::to_string(report.found) + " connection(s) left to time out";
      return report;
    }
    ++vanished;  // ENOENT: it closed meanwhile; anything else: report and carry on
    report.warning = st.message();
  }
  if (vanished > 0) {
    report.warning = std::to_string(vanished) + " socket(s) not destroyed, last: " + report.warning;
  }
  return report;
}

}  // namespace halo::sys
