// Checkers, process monitoring, failover rules, maxloop and persistent settings on light
// modules, with real processes; each node in its own network namespace and HALO_ROOT.
#include <signal.h>

#include "harness/module_fixture.h"

namespace halo::test {
namespace {

using ::testing::HasSubstr;
using MonitoringTest = ModuleFixture;

const char* kFastRules = "    <failover period=\"1s\" handle_time=\"0\"/>\n";

std::string tcpChecker(const std::string& action) {
  return "    <check><tcp ident=\"web\" when=\"both\" action=\"" + action +
         "\"><to addr=\"127.0.0.1\" port=\"8080\" interval=\"1\" timeout=\"1\"/></tcp></check>\n";
}

const char* kErrdWeb =
    "    <errd polltimer=\"1\"><proc name=\"python3\" argregex=\"http[.]server\" atleast=\"1\" "
    "action=\"restart\" class=\"both\"/></errd>\n";

class Server {
 public:
  Server(TestNode& node, std::string module) : node_(node), module_(std::move(module)) {}
  pid_t pid() const { return node_.readPid(node_.varDir(module_) + "/web.pid"); }
  // Kills the application behind Halo's back and returns the pid it had.
  pid_t kill() const {
    const pid_t p = pid();
    EXPECT_TRUE(killPid(p, SIGKILL));
    return p;
  }

 private:
  TestNode& node_;
  std::string module_;
};

TEST_F(MonitoringTest, TcpCheckerDownRestartsTheApplication) {
  installAndConfigure("web", makeModuleWithConfig("web", webConfig(tcpChecker("restart") +
                                                                   kFastRules)));
  startAndWaitUp("web");
  Server server(*node_, "web");
  const pid_t old = server.kill();
  ASSERT_TRUE(eventually([&] { return logHas("web", "Action restart from failover rule t_web"); }))
      << node_->halo({"log", "-A", "-m", "web"}).output;
  ASSERT_EQ(node_->halo({"waitstate", "-m", "web", "UP", "-t", "30"}).exit_code, 0);
  EXPECT_NE(server.pid(), old);
  EXPECT_TRUE(processAlive(server.pid()));
  EXPECT_TRUE(logHas("web", "tcp.web down: "));
  // state -v lists the checker with its last result.
  EXPECT_THAT(node_->halo({"state", "-v", "-m", "web"}).output,
              HasSubstr("    tcp.web              up       when both  127.0.0.1:8080  last: "));
}

TEST_F(MonitoringTest, ErrdRestartsAKilledProcess) {
  installAndConfigure("web", makeModuleWithConfig("web", webConfig(kErrdWeb)));
  startAndWaitUp("web");
  Server server(*node_, "web");
  ASSERT_TRUE(eventually([&] {
    return node_->halo({"get", "-m", "web", "-r", "proc.python3"}).output.find("= up") !=
           std::string::npos;
  }));
  const pid_t old = server.kill();
  ASSERT_TRUE(eventually([&] { return logHas("web", "Action restart called by errd"); }))
      << node_->halo({"log", "-A", "-m", "web"}).output;
  ASSERT_EQ(node_->halo({"waitstate", "-m", "web", "UP", "-t", "30"}).exit_code, 0);
  EXPECT_NE(server.pid(), old);
  EXPECT_TRUE(processAlive(server.pid()));
  EXPECT_THAT(node_->halo({"errd", "list", "-m", "web"}).output, HasSubstr("proc.python3"));
  // After the restart the class is active again; the next poll finds the new process.
  EXPECT_TRUE(eventually([&] {
    return node_->halo({"state", "-v", "-m", "web"}).output.find(
               "    proc.python3         up       class both  last: Process python3 running (count 1)") !=
           std::string::npos;
  })) << node_->halo({"state", "-v", "-m", "web"}).output;
}

TEST_F(MonitoringTest, MaxloopStopsTheModuleOnTheFourthDetection) {
  installAndConfigure("web", makeModuleWithConfig("web", webConfig(kErrdWeb)));
  startAndWaitUp("web");
  Server server(*node_, "web");
  for (int detection = 1; detection <= 3; ++detection) {
    ASSERT_TRUE(eventually([&] {
      return node_->halo({"get", "-m", "web", "-r", "proc.python3"}).output.find("= up") !=
             std::string::npos;
    })) << detection;
    const pid_t old = server.kill();
    ASSERT_TRUE(eventually([&] { return server.pid() != old && processAlive(server.pid()); }))
        << detection << node_->halo({"log", "-A", "-m", "web"}).output;
    ASSERT_EQ(node_->halo({"waitstate", "-m", "web", "UP", "-t", "30"}).exit_code, 0);
    if (detection == 2) {
      // The count survives a crash of the runtime (halod respawns it from its state file).
      const std::string pidfile = node_->root() + "/run/halo/modules/web.pid";
      const pid_t runtime = node_->readPid(pidfile);
      ASSERT_TRUE(killPid(runtime, SIGKILL));
      ASSERT_TRUE(eventually([&] {
        const pid_t now = node_->readPid(pidfile);
        return now != runtime && processAlive(now);
      }));
      ASSERT_EQ(node_->halo({"waitstate", "-m", "web", "UP", "-t", "30"}).exit_code, 0);
      EXPECT_THAT(node_->halo({"state", "-v", "-m", "web"}).output,
                  HasSubstr("maxloop:   2 automatic action(s) of 3 allowed"));
    }
  }
  EXPECT_EQ(node_->halo({"checkloop", "-m", "web"}).exit_code, 1);  // one more would exceed
  ASSERT_TRUE(eventually([&] {
    return node_->halo({"get", "-m", "web", "-r", "proc.python3"}).output.find("= up") !=
           std::string::npos;
  }));
  server.kill();
  auto r = node_->halo({"waitstop", "-m", "web", "-t", "30"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(logHas("web", "Action stop called by maxloop"));
  EXPECT_TRUE(logHas("web", "maxloop reached"));
}

TEST_F(MonitoringTest, AtmaxActsWhenTooManyProcessesRun) {
  installAndConfigure("web", makeModuleWithConfig(
                                 "web", webConfig("    <errd polltimer=\"1\"><proc name=\"sleep\" "
                                                  "argregex=\"halo-atmax-marker\" atleast=\"-1\" "
                                                  "atmax=\"2\" action=\"stop\" class=\"both\"/>"
                                                  "</errd>\n")));
  startAndWaitUp("web");
  // Two copies inside the node: the second reaches atmax.
  for (int i = 0; i < 2; ++i) {
    // comm stays "sleep"; argv[0] carries the marker the argregex looks for.
    ASSERT_EQ(node_->exec({"bash", "-c",
                           "setsid bash -c 'exec -a halo-atmax-marker sleep 300' "
                           ">/dev/null 2>&1 &"})
                  .exit_code,
              0);
  }
  auto r = node_->halo({"waitstop", "-m", "web", "-t", "30"});
  ASSERT_EQ(r.exit_code, 0) << r.output << node_->halo({"errd", "list", "-m", "web"}).output
                            << node_->halo({"log", "-A", "-m", "web"}).output;
  EXPECT_TRUE(logHas("web", "atmax"));
  EXPECT_TRUE(logHas("web", "Action stop called by errd"));
}

TEST_F(MonitoringTest, CustomCheckerSetsItsResourceAndTriggersItsAction) {
  const std::string cfg = webConfig(
      "    <check><custom ident=\"app\" when=\"both\" exec=\"appcheck\" action=\"stopstart\"/>"
      "</check>\n" + std::string(kFastRules));
  installAndConfigure("web", makeModule("web", [&](const std::string& dir) {
    std::ofstream(dir + "/conf/userconfig.xml") << cfg;
    // Called with module and resource; sets the resource only when it changes (as templates do).
    writeScript(dir + "/bin/appcheck",
                "last=\nwhile true; do\n"
                "  if [ -f \"$SAFEUSERVAR/fail\" ]; then s=down; else s=up; fi\n"
                "  [ \"$s\" != \"$last\" ] && halo set -r \"$2\" -v $s -i appcheck -m \"$1\"\n"
                "  last=$s; sleep 0.2\ndone");
  }));
  startAndWaitUp("web");
  ASSERT_TRUE(eventually([&] {
    return node_->halo({"get", "-m", "web", "-r", "custom.app"}).output.find("= up") !=
           std::string::npos;
  }));
  std::ofstream(node_->varDir("web") + "/fail") << "x";
  ASSERT_TRUE(eventually([&] { return logHas("web", "Action stopstart from failover rule c_app"); }))
      << node_->halo({"log", "-A", "-m", "web"}).output;
  std::filesystem::remove(node_->varDir("web") + "/fail");
  ASSERT_EQ(node_->halo({"waitstate", "-m", "web", "UP", "-t", "30"}).exit_code, 0);
  EXPECT_TRUE(logHas("web", "Resource custom.app set to down by appcheck"));
}

TEST_F(MonitoringTest, PingCheckerHoldsTheStartInWaitUntilTheWitnessAnswers) {
  // 198.18.0.99 is unreachable in the node's fresh namespace until the test adds it.
  installAndConfigure("web", makeModuleWithConfig(
                                 "web", webConfig("    <check><ping ident=\"gw\"><to "
                                                  "addr=\"198.18.0.99\" interval=\"1\" "
                                                  "timeout=\"1\"/></ping></check>\n" +
                                                  std::string(kFastRules))));
  ASSERT_EQ(node_->halo({"start", "-m", "web"}).exit_code, 0);
  auto r = node_->halo({"waitstate", "-m", "web", "WAIT", "-t", "30"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(node_->halo({"state", "-m", "web"}).output, "web: WAIT (NotReady)\n");
  EXPECT_FALSE(processAlive(Server(*node_, "web").pid()));  // the application never started
  ASSERT_EQ(node_->exec({"ip", "addr", "add", "198.18.0.99/32", "dev", "lo"}).exit_code, 0);
  r = node_->halo({"waitstate", "-m", "web", "UP", "-t", "30"});
  ASSERT_EQ(r.exit_code, 0) << r.output << node_->halo({"log", "-A", "-m", "web"}).output;
  EXPECT_TRUE(logHas("web", "Action wakeup from failover rule Implicit_wakeup"));
}

TEST_F(MonitoringTest, InterfaceDownMakesTheModuleWaitAndUpWakesItUp) {
  // A veth pair inside the node (this kernel has no dummy links); d0's link is what we cut.
  ASSERT_EQ(node_->exec({"ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"})
                .exit_code,
            0);
  ASSERT_EQ(node_->exec({"ip", "addr", "add", "198.18.1.1/24", "dev", "d0"}).exit_code, 0);
  ASSERT_EQ(node_->exec({"ip", "link", "set", "d1", "up"}).exit_code, 0);
  ASSERT_EQ(node_->exec({"ip", "link", "set", "d0", "up"}).exit_code, 0);
  installAndConfigure("web", makeModuleWithConfig(
                                 "web", webConfig("    <check><intf ident=\"lan\"><to "
                                                  "local_addr=\"198.18.1.1\"/></intf></check>\n" +
                                                  std::string(kFastRules))));
  startAndWaitUp("web");
  const pid_t server = Server(*node_, "web").pid();
  ASSERT_EQ(node_->exec({"ip", "link", "set", "d0", "down"}).exit_code, 0);
  auto r = node_->halo({"waitstate", "-m", "web", "WAIT", "-t", "40"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(logHas("web", "Action wait from failover rule interface_failure"));
  EXPECT_FALSE(processAlive(server));  // stop_both ran (stopwait)
  ASSERT_EQ(node_->exec({"ip", "link", "set", "d0", "up"}).exit_code, 0);
  r = node_->halo({"waitstate", "-m", "web", "UP", "-t", "40"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(MonitoringTest, MissingAddressStopstartsTheModule) {
  ASSERT_EQ(node_->exec({"ip", "addr", "add", "198.18.2.1/32", "dev", "lo"}).exit_code, 0);
  installAndConfigure("web", makeModuleWithConfig(
                                 "web", webConfig("    <check><ip ident=\"vip\"><to "
                                                  "addr=\"198.18.2.1\" interval=\"1\"/></ip>"
                                                  "</check>\n" + std::string(kFastRules))));
  startAndWaitUp("web");
  ASSERT_EQ(node_->exec({"ip", "addr", "del", "198.18.2.1/32", "dev", "lo"}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return logHas("web", "Action stopstart from failover rule ip_failure"); }))
      << node_->halo({"log", "-A", "-m", "web"}).output;
  ASSERT_EQ(node_->exec({"ip", "addr", "add", "198.18.2.1/32", "dev", "lo"}).exit_code, 0);
  ASSERT_EQ(node_->halo({"waitstate", "-m", "web", "UP", "-t", "30"}).exit_code, 0);
}

TEST_F(MonitoringTest, ModuleCheckerWaitsForTheModuleItDependsOn) {
  installAndConfigure("dep", makeModuleWithConfig("dep", "<safe><service mode=\"light\"/></safe>"));
  installAndConfigure(
      "app", makeModuleWithConfig(
                 "app", webConfig("    <check><module name=\"dep\"><to addr=\"127.0.0.1\" "
                                  "interval=\"1\"/></module></check>\n" +
                                  std::string(kFastRules))));
  ASSERT_EQ(node_->halo({"start", "-m", "app"}).exit_code, 0);
  ASSERT_EQ(node_->halo({"waitstate", "-m", "app", "WAIT", "-t", "30"}).exit_code, 0);
  startAndWaitUp("dep");
  auto r = node_->halo({"waitstate", "-m", "app", "UP", "-t", "30"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(node_->halo({"stop", "-m", "dep"}).exit_code, 0);
  r = node_->halo({"waitstate", "-m", "app", "WAIT", "-t", "30"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(logHas("app", "Action wait from failover rule module_failure"));
}

TEST_F(MonitoringTest, SettingsPersistAndCheckersOffMeansNoAction) {
  installAndConfigure("web", makeModuleWithConfig("web", webConfig(tcpChecker("restart") +
                                                                   kErrdWeb + kFastRules)));
  // Changed while the module is stopped.
  ASSERT_EQ(node_->halo({"checker", "off", "-m", "web"}).exit_code, 0);
  ASSERT_EQ(node_->halo({"errd", "off", "-m", "web"}).exit_code, 0);
  ASSERT_EQ(node_->halo({"failover", "off", "-m", "web"}).exit_code, 0);
  startAndWaitUp("web");
  ASSERT_EQ(node_->halo({"stop", "-m", "web"}).exit_code, 0);
  ASSERT_EQ(node_->halo({"waitstop", "-m", "web", "-t", "30"}).exit_code, 0);
  // ...and survive stop/start and a halod restart.
  node_->killDaemon();
  std::string why;
  ASSERT_TRUE(node_->startDaemon(&why)) << why;
  startAndWaitUp("web");
  for (const char* s : {"usersetting.checker", "usersetting.errd", "usersetting.failover"}) {
    EXPECT_THAT(node_->halo({"get", "-m", "web", "-r", s}).output, HasSubstr("= down")) << s;
  }
  EXPECT_THAT(node_->halo({"state", "-v", "-m", "web"}).output, HasSubstr("usersetting.checker"));
  // Checkers and errd off: a dead application is left alone.
  Server server(*node_, "web");
  const pid_t old = server.kill();
  EXPECT_FALSE(eventually([&] { return server.pid() != old; }, std::chrono::seconds(4)));
  EXPECT_FALSE(logHas("web", "Action restart"));
  EXPECT_EQ(node_->halo({"state", "-m", "web"}).output, "web: UP (Ready)\n");
  // Checkers on again: the failure is seen and acted on.
  ASSERT_EQ(node_->halo({"checker", "on", "-m", "web"}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return logHas("web", "Action restart from failover rule t_web"); }))
      << node_->halo({"log", "-A", "-m", "web"}).output;
  ASSERT_EQ(node_->halo({"waitstate", "-m", "web", "UP", "-t", "30"}).exit_code, 0);
}

TEST_F(MonitoringTest, CheckersAreReconfiguredWhileTheModuleRuns) {
  installAndConfigure("web", makeModuleWithConfig("web", webConfig(tcpChecker("restart") +
                                                                   kFastRules)));
  startAndWaitUp("web");
  // A new checker set, applied dynamically: the old probes go, the new ones act.
  const std::string conf = node_->root() + "/etc/halo/modules/web/conf/userconfig.xml";
  std::ofstream(conf) << webConfig(tcpChecker("stopstart") + kFastRules);
  auto r = node_->halo({"config", "-m", "web"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("applied it dynamically"));
  Server(*node_, "web").kill();
  ASSERT_TRUE(eventually([&] { return logHas("web", "Action stopstart from failover rule t_web"); }))
      << node_->halo({"log", "-A", "-m", "web"}).output;
  ASSERT_EQ(node_->halo({"waitstate", "-m", "web", "UP", "-t", "30"}).exit_code, 0);
}

TEST_F(MonitoringTest, RuleSyntaxErrorsNameLineAndColumn) {
  const std::string cfg = webConfig(
      "    <failover><![CDATA[\n"
      "      my_rule: if (custom.x == dwn) then restart();\n"
      "    ]]></failover>\n");
  ASSERT_EQ(node_->halo({"module", "install", "-m", "web", makeModuleWithConfig("web", cfg)})
                .exit_code,
            0);
  auto r = node_->halo({"confcheck", "-m", "web"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("userconfig.xml:10:32: unknown state 'dwn'"));
}

}  // namespace
}  // namespace halo::test
