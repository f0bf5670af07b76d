// Mirror modules end to end: two real nodes (halod, runtimes, heartbeats, VIP, scripts) in their
// own network namespaces joined by a bridge; the client is the switch namespace.

#include <signal.h>
#include <sys/socket.h>

#include "harness/mirror_fixture.h"

namespace halo::test {
namespace {

using ::testing::HasSubstr;

TEST_F(MirrorFixture, FirstStartWaitsUntilPrim) {
  install();
  auto r = n1_->halo({"start", "-m", kModule});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  waitState(*n1_, "WAIT");
  EXPECT_TRUE(eventually([&] { return logHas(*n1_, "Data may be not uptodate"); }));
  EXPECT_EQ(viaVip(), "");
  ASSERT_EQ(n1_->halo({"stop", "-m", kModule}).exit_code, 0);
  waitState(*n1_, "STOP");
  startPair();
  EXPECT_TRUE(vipServedBy("198.18.1.1", std::chrono::seconds(10)));
  const std::string calls = n1_->readFile(n1_->varDir(kModule) + "/calls.log");
  EXPECT_THAT(calls, HasSubstr("start_prim WAIT ALONE start"));
  EXPECT_THAT(calls, HasSubstr("transition ALONE PRIM start"));
  EXPECT_THAT(n2_->readFile(n2_->varDir(kModule) + "/calls.log"),
              HasSubstr("start_second SECOND SECOND start"));
}

TEST_F(MirrorFixture, PowerOffOfThePrimaryMovesTheVip) {
  install();
  startPair();
  ASSERT_TRUE(vipServedBy("198.18.1.1", std::chrono::seconds(10)));
  n1_->powerOff();
  waitState(*n2_, "ALONE");
  EXPECT_TRUE(vipServedBy("198.18.1.2", std::chrono::seconds(10)));
  EXPECT_TRUE(logHas(*n2_, "Action alone called by heart: no heartbeat"));
  EXPECT_TRUE(logHas(*n2_, "Resource heartbeat.default set to down by heart"));

  // The old primary comes back: it joins as secondary, the application stays on n2.
  ASSERT_TRUE(n1_->setLink("eth0", true));
  std::string why;
  ASSERT_TRUE(n1_->startDaemon(&why)) << why;
  ASSERT_EQ(n1_->halo({"start", "-m", kModule}).exit_code, 0);
  waitState(*n1_, "SECOND");
  waitState(*n2_, "PRIM");
  EXPECT_TRUE(vipServedBy("198.18.1.2", std::chrono::seconds(5)));
}

// "2026-11-26 21:19:08.815280" of the first log line containing `text` ("" if none).
std::string logTime(const TestNode& n, const std::string& text) {
  const std::string log = n.halo({"log", "-A", "-s", "3000", "-m", kModule}).output;
  const auto at = log.find(text);
  if (at == std::string::npos) {
    return "";
  }
  // Lines read "| 2026-11-26 21:19:08.815280 | ...": the date starts 2 bytes into the line.
  const auto line = log.rfind('\n', at);
  const size_t start = (line == std::string::npos ? 0 : line + 1) + 2;
  return log.substr(start, 26);
}

int stateChanges(const TestNode& n) {
  const std::string log = n.halo({"log", "-A", "-s", "3000", "-m", kModule}).output;
  int count = 0;
  for (size_t at = log.find("Local state"); at != std::string::npos;
       at = log.find("Local state", at + 1)) {
    ++count;
  }
  return count;
}

TEST_F(MirrorFixture, StopOfThePrimaryHandsOver) {
  install();
  startPair();
  ASSERT_EQ(n1_->halo({"stop", "-m", kModule}).exit_code, 0);
  waitState(*n1_, "STOP");
  waitState(*n2_, "ALONE");
  EXPECT_TRUE(logHas(*n2_, "Action alone called by heart: remote stop"));
  EXPECT_TRUE(vipServedBy("198.18.1.2", std::chrono::seconds(10)));
  EXPECT_THAT(n1_->readFile(n1_->varDir(kModule) + "/calls.log"),
              HasSubstr("stop_prim PRIM STOP stop"));
  // n1's data is no longer the newest: alone, it would wait; with n2 running it joins.
  ASSERT_EQ(n1_->halo({"start", "-m", kModule}).exit_code, 0);
  waitState(*n1_, "SECOND");
  waitState(*n2_, "PRIM");
}

TEST_F(MirrorFixture, SwapStopsThePrimaryBeforeStartingTheSecondary) {
  install();
  startPair();
  auto r = n1_->halo({"swap", "-m", kModule});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  waitState(*n2_, "PRIM");
  waitState(*n1_, "SECOND");
  EXPECT_TRUE(vipServedBy("198.18.1.2", std::chrono::seconds(10)));
  const std::string stopped = logTime(*n1_, "Script stop_prim force PRIM SECOND swap");
  const std::string started = logTime(*n2_, "Script start_prim");
  ASSERT_FALSE(stopped.empty());
  ASSERT_FALSE(started.empty());
  EXPECT_LT(stopped, started);
  EXPECT_TRUE(logHas(*n1_, "Begin of Swap"));
  // A swap needs a ready secondary: on the secondary it is refused with the way out.
  r = n1_->halo({"swap", "-m", kModule});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("run halo swap on the primary"));
}

TEST_F(MirrorFixture, LinkLossOfThePrimaryMovesTheModule) {
  install();
  startPair();
  // The primary's link goes down while it runs: its interface checker makes it WAIT, the
  // secondary stops hearing it and takes over.
  ASSERT_TRUE(n1_->setLink("eth0", false));
  waitState(*n2_, "ALONE");
  waitState(*n1_, "WAIT");
  EXPECT_TRUE(vipServedBy("198.18.1.2", std::chrono::seconds(10)));
  ASSERT_TRUE(n1_->setLink("eth0", true));
  waitState(*n1_, "SECOND");
  waitState(*n2_, "PRIM");
}

TEST_F(MirrorFixture, SplitBrainWithoutWitnessKeepsTheFormerPrimary) {
  install();
  startPair();
  // Partition: n2 unplugged from the switch, both links stay up.
  ASSERT_TRUE(lan_->plug(2, false));
  waitState(*n2_, "ALONE");
  waitState(*n1_, "ALONE");
  ASSERT_TRUE(lan_->plug(2, true));
  waitState(*n2_, "SECOND");
  waitState(*n1_, "PRIM");
  EXPECT_TRUE(logHas(*n1_, "Split brain recovery: staying alone"));
  EXPECT_TRUE(logHas(*n2_, "Split brain recovery: exiting alone"));
  EXPECT_TRUE(vipServedBy("198.18.1.1", std::chrono::seconds(10)));
}

TEST_F(MirrorFixture, SplitBrainWitnessKeepsTheIsolatedNodeWaiting) {
  install([](const std::string& dir) {
    setConfig(dir, "<check>",
              "<check>\n      <splitbrain ident=\"witness\" exec=\"ping\" arg=\"198.18.1.254\"/>");
  });
  startPair();
  ASSERT_TRUE(lan_->plug(2, false));
  waitState(*n2_, "WAIT");
  EXPECT_TRUE(eventually([&] { return logHas(*n2_, "Split brain witness: no witness answered"); }));
  // n1 reached the witness: it goes on alone.
  waitState(*n1_, "ALONE");
  EXPECT_TRUE(vipServedBy("198.18.1.1", std::chrono::seconds(10)));
  ASSERT_TRUE(lan_->plug(2, true));
  waitState(*n2_, "SECOND");
  waitState(*n1_, "PRIM");
  EXPECT_FALSE(logHas(*n2_, "Split brain recovery"));
}

TEST_F(MirrorFixture, FailoverOffLeavesTheSecondaryWaiting) {
  install();
  startPair();
  for (TestNode* n : {n1_.get(), n2_.get()}) {
    auto r = n->halo({"failover", "off", "-m", kModule});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  n1_->powerOff();
  waitState(*n2_, "WAIT");
  EXPECT_TRUE(logHas(*n2_, "Failover-off configured"));
  EXPECT_EQ(viaVip(), "");
  // Only prim promotes it.
  ASSERT_EQ(n2_->halo({"stop", "-m", kModule}).exit_code, 0);
  waitState(*n2_, "STOP");
  auto r = n2_->halo({"prim", "-m", kModule});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  waitState(*n2_, "ALONE");
  EXPECT_TRUE(vipServedBy("198.18.1.2", std::chrono::seconds(10)));
}

TEST_F(MirrorFixture, DefaultprimSwapsBackToItsNode) {
  install([](const std::string& dir) {
    setConfig(dir, "defaultprim=\"alone\"", "defaultprim=\"n2\"");
  });
  // n1 primary first; n2 joins, then takes the role it is configured for.
  ASSERT_EQ(n1_->halo({"prim", "-m", kModule}).exit_code, 0);
  waitState(*n1_, "ALONE");
  ASSERT_EQ(n2_->halo({"start", "-m", kModule}).exit_code, 0);
  waitState(*n2_, "PRIM");
  waitState(*n1_, "SECOND");
  EXPECT_TRUE(logHas(*n1_, "Transition SWAP from defaultprim"));
  EXPECT_TRUE(vipServedBy("198.18.1.2", std::chrono::seconds(10)));
}

TEST_F(MirrorFixture, CustomCheckerStopstartMovesTheModule) {
  install([](const std::string& dir) {
    setConfig(dir, "<check>",
              "<check>\n      <custom ident=\"app\" when=\"prim\" exec=\"appcheck\" "
              "action=\"stopstart\"/>");
    std::ofstream(dir + "/bin/appcheck")
        << "#!/bin/sh\nlast=\nwhile true; do\n"
           "  if [ -f \"$SAFEUSERVAR/fail\" ]; then s=down; else s=up; fi\n"
           "  [ \"$s\" != \"$last\" ] && halo set -r \"$2\" -v $s -i appcheck -m \"$1\"\n"
           "  last=$s; sleep 0.2\ndone\n";
    chmod((dir + "/bin/appcheck").c_str(), 0755);
  });
  startPair();
  std::ofstream(n1_->varDir(kModule) + "/fail") << "x";
  EXPECT_TRUE(
      eventually([&] { return logHas(*n1_, "Action stopstart from failover rule c_app"); }));
  waitState(*n1_, "SECOND");
  waitState(*n2_, "PRIM");
  EXPECT_TRUE(vipServedBy("198.18.1.2", std::chrono::seconds(10)));
}

TEST_F(MirrorFixture, BadPacketsOnTheHeartbeatPortChangeNothing) {
  install();
  startPair();
  const int changes_before = stateChanges(*n1_);
  const int peer_changes_before = stateChanges(*n2_);
  // From the switch: garbage, a truncated header and a foreign module's header. From n2 itself
  // (its address and port): a copy of one of its real heartbeats, sent three more times.
  auto r = lan_->exec({"python3", "-c", R"PY(
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for p in [b"garbage" * 20, b"HAL", b"HALO\x01\x00\x07\x00" + b"x" * 80]:
    s.sendto(p, ("198.18.1.1", 8888))
)PY"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = n2_->exec({"python3", "-c", R"PY(
import socket, time
sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
sniff.settimeout(3)
end = time.time() + 3
payload = None
while time.time() < end and payload is None:
    frame = sniff.recv(2048)
    if frame[12:14] != b"\x08\x00":
        continue
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    if ip[9] == 17 and ip[16:20] == socket.inet_aton("198.18.1.1") and ip[ihl+2:ihl+4] == (8888).to_bytes(2, "big"):
        payload = ip[ihl+8:]
if payload is None:
    raise SystemExit("no heartbeat seen")
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
out.bind(("198.18.1.2", 8888))
for _ in range(3):
    out.sendto(payload, ("198.18.1.1", 8888))
)PY"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string verbose;
  ASSERT_TRUE(eventually(
      [&] {
        verbose = n1_->halo({"state", "-v", "-m", kModule}).output;
        return verbose.find("replayed 3") != std::string::npos &&
               verbose.find("wrong source 3") != std::string::npos;
      },
      std::chrono::seconds(10)))
      << verbose;
  EXPECT_THAT(state(*n1_), HasSubstr("PRIM (Ready)"));
  EXPECT_THAT(state(*n2_), HasSubstr("SECOND (Ready)"));
  EXPECT_EQ(stateChanges(*n1_), changes_before);
  EXPECT_EQ(stateChanges(*n2_), peer_changes_before);
}

TEST_F(MirrorFixture, VanishedVipMovesTheModule) {
  install();
  startPair();
  // Someone deletes the VIP on the primary: its ip checker fails, rule ip_failure stopstarts.
  auto r = n1_->exec({"ip", "addr", "del", std::string(kVip) + "/24", "dev", "eth0"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  waitState(*n2_, "PRIM");
  waitState(*n1_, "SECOND");
  EXPECT_TRUE(logHas(*n1_, "Action stopstart from failover rule ip_failure"));
  EXPECT_TRUE(vipServedBy("198.18.1.2", std::chrono::seconds(10)));
}

TEST_F(MirrorFixture, RuntimeCrashKeepsTheRolesAndTheApplication) {
  install();
  startPair();
  const std::string pidfile = n1_->root() + "/run/halo/modules/web.pid";
  const pid_t runtime = n1_->readPid(pidfile);
  const pid_t server = n1_->readPid(n1_->varDir(kModule) + "/web.pid");
  ASSERT_TRUE(killPid(runtime, SIGKILL));
  ASSERT_TRUE(eventually([&] {
    const pid_t now = n1_->readPid(pidfile);
    return now != runtime && processAlive(now);
  }));
  // Whatever the peer saw meanwhile, the roles settle back with n1 primary, its server intact.
  ASSERT_TRUE(eventually([&] {
    return state(*n1_).find("PRIM (Ready)") != std::string::npos &&
           state(*n2_).find("SECOND (Ready)") != std::string::npos;
  }));
  EXPECT_EQ(n1_->readPid(n1_->varDir(kModule) + "/web.pid"), server);
  EXPECT_TRUE(processAlive(server));
  EXPECT_TRUE(vipServedBy("198.18.1.1", std::chrono::seconds(10)));
}

TEST_F(MirrorFixture, NodeWithOutdatedDataWaitsForItsPeer) {
  install();
  startPair();
  ASSERT_EQ(n1_->halo({"stop", "-m", kModule}).exit_code, 0);
  waitState(*n2_, "ALONE");  // n2 now holds the newest data
  ASSERT_EQ(n2_->halo({"stop", "-m", kModule}).exit_code, 0);
  waitState(*n2_, "STOP");
  // n1 alone must not become primary with older data.
  ASSERT_EQ(n1_->halo({"start", "-m", kModule}).exit_code, 0);
  waitState(*n1_, "WAIT");
  EXPECT_TRUE(eventually([&] { return logHas(*n1_, "Data may be not uptodate"); }));
  EXPECT_EQ(viaVip(), "");
  ASSERT_EQ(n2_->halo({"start", "-m", kModule}).exit_code, 0);
  waitState(*n2_, "PRIM");
  waitState(*n1_, "SECOND");
}

TEST_F(MirrorFixture, SecondHeartbeatLanPreventsASplitBrain) {
  // A second lan (198.18.2.0/24, its own switch) carries a second heartbeat.
  auto lan2 = TestLan::create("sw2");
  ASSERT_NE(lan2, nullptr);
  ASSERT_TRUE(lan2->attach(*n1_, "eth1", "198.18.2.1/24"));
  ASSERT_TRUE(lan2->attach(*n2_, "eth1", "198.18.2.2/24"));
  for (TestNode* n : {n1_.get(), n2_.get()}) {
    const std::string cluster = n->root() + "/cluster.xml";
    std::ofstream(cluster) << "<cluster><lans>\n"
                              "  <lan name=\"default\"><node name=\"n1\" addr=\"198.18.1.1\"/>"
                              "<node name=\"n2\" addr=\"198.18.1.2\"/></lan>\n"
                              "  <lan name=\"repli\"><node name=\"n1\" addr=\"198.18.2.1\"/>"
                              "<node name=\"n2\" addr=\"198.18.2.2\"/></lan>\n"
                              "</lans></cluster>\n";
    auto r = n->halo({"cluster", "config", cluster});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  install([](const std::string& dir) {
    setConfig(dir, "<heartbeat name=\"default\"/>",
              "<heartbeat name=\"default\"/>\n      <heartbeat name=\"repli\"/>");
  });
  startPair();
  const int before = stateChanges(*n1_);
  // The production lan loses n2: the repli heartbeat still flows, nobody moves.
  ASSERT_TRUE(lan_->plug(2, false));
  ASSERT_TRUE(eventually([&] { return logHas(*n2_, "Resource heartbeat.default set to down"); }));
  EXPECT_TRUE(eventually([&] {
    return n1_->halo({"get", "-m", kModule, "-r", "heartbeat.repli"}).output.find("= up") !=
           std::string::npos;
  }));
  EXPECT_THAT(state(*n1_), HasSubstr("PRIM (Ready)"));
  EXPECT_THAT(state(*n2_), HasSubstr("SECOND (Ready)"));
  EXPECT_EQ(stateChanges(*n1_), before);
  EXPECT_TRUE(vipServedBy("198.18.1.1", std::chrono::seconds(5)));
  ASSERT_TRUE(lan_->plug(2, true));
  EXPECT_TRUE(eventually([&] { return logHas(*n2_, "Resource heartbeat.default set to up"); }));
}

TEST_F(MirrorFixture, Ipv6HeartbeatsAndVipFailOver) {
  // IPv6 next to IPv4 on the same link: a second heartbeat lan over IPv6, and an IPv6 VIP.
  int i = 0;
  for (TestNode* n : {n1_.get(), n2_.get()}) {
    auto r = n->exec({"ip", "addr", "add", "fd00:198:18:6::" + std::to_string(++i) + "/64", "dev",
                      "eth0", "nodad"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const std::string cluster = n->root() + "/cluster.xml";
    std::ofstream(cluster) << "<cluster><lans>\n"
                              "  <lan name=\"default\"><node name=\"n1\" addr=\"198.18.1.1\"/>"
                              "<node name=\"n2\" addr=\"198.18.1.2\"/></lan>\n"
                              "  <lan name=\"v6\"><node name=\"n1\" addr=\"[fd00:198:18:6::1]\"/>"
                              "<node name=\"n2\" addr=\"[fd00:198:18:6::2]\"/></lan>\n"
                              "</lans></cluster>\n";
    r = n->halo({"cluster", "config", cluster});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  install([](const std::string& dir) {
    setConfig(dir, "<heartbeat name=\"default\"/>",
              "<heartbeat name=\"default\"/>\n      <heartbeat name=\"v6\"/>");
    setConfig(dir, "<virtual_addr addr=\"%VIRTUAL_IP%\" where=\"one_side_alias\"/>",
              "<virtual_addr addr=\"%VIRTUAL_IP%\" where=\"one_side_alias\"/>\n"
              "            <virtual_addr addr=\"fd00:198:18:6::100\" where=\"one_side_alias\"/>");
  });
  startPair();
  auto has_vip6 = [](const TestNode& n) {
    return n.exec({"ip", "-6", "addr", "show", "dev", "eth0"}).output.find("fd00:198:18:6::100") !=
           std::string::npos;
  };
  EXPECT_TRUE(has_vip6(*n1_));
  EXPECT_FALSE(has_vip6(*n2_));
  ASSERT_TRUE(eventually([&] {
    return n1_->halo({"get", "-m", kModule, "-r", "heartbeat.v6"}).output.find("= up") !=
           std::string::npos;
  }));
  n1_->powerOff();
  waitState(*n2_, "ALONE");
  EXPECT_TRUE(has_vip6(*n2_));
  // From the switch: the VIP answers at n2 (the server listens on IPv4 only, so a refused
  // connection is the proof that the address is reachable; a lost one would time out).
  auto r = lan_->exec({"ip", "addr", "add", "fd00:198:18:6::254/64", "dev", "br0", "nodad"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = lan_->exec({"python3", "-c",
                  "import socket\n"
                  "try:\n"
                  "    socket.create_connection(('fd00:198:18:6::100', 8080), 3)\n"
                  "except ConnectionRefusedError:\n"
                  "    print('reachable')\n"});
  EXPECT_THAT(r.output, HasSubstr("reachable"));
}

}  // namespace
}  // namespace halo::test
