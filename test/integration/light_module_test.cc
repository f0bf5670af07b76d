// End-to-end tests of a light module: real halod, runtimes, scripts and an HTTP server, each
// node in its own network namespace under its own HALO_ROOT.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "harness/module_fixture.h"

namespace halo::test {
namespace {

namespace fs = std::filesystem;

using ::testing::HasSubstr;
using ::testing::Not;


using LightModuleTest = ModuleFixture;

TEST_F(LightModuleTest, StartServesStopRemovesServer) {
  const std::string safe = makeModule("web");
  auto r = node_->halo({"module", "install", "-M", "7", safe});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("installed with id 7"));
  EXPECT_EQ(node_->halo({"module", "listid"}).output, "web 7\n");
  // Not configured yet: start says what to do.
  r = node_->halo({"start", "-m", "web"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("halo config -m web"));
  ASSERT_EQ(node_->halo({"config", "-m", "web"}).exit_code, 0);
  startAndWaitUp("web");

  r = node_->halo({"state", "-m", "web"});
  EXPECT_EQ(r.output, "web: UP (Ready)\n");
  EXPECT_EQ(node_->halo({"state", "-m", "web", "-lq"}).exit_code, 2);
  std::string err;
  EXPECT_THAT(node_->httpGet("http://127.0.0.1:8080/", &err), HasSubstr("Hello from Halo module web"))
      << err;
  const pid_t server = node_->readPid(node_->varDir("web") + "/web.pid");
  ASSERT_TRUE(processAlive(server));

  // Starting a started module changes nothing.
  r = node_->halo({"start", "-m", "web"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("already started (UP (Ready))"));

  ASSERT_EQ(node_->halo({"stop", "-m", "web"}).exit_code, 0);
  r = node_->halo({"waitstop", "-m", "web", "-t", "30"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(node_->halo({"state", "-m", "web"}).output, "web: STOP (NotReady)\n");
  EXPECT_EQ(node_->halo({"state", "-m", "web", "-lq"}).exit_code, 0);
  EXPECT_FALSE(processAlive(server));
  EXPECT_EQ(node_->httpGet("http://127.0.0.1:8080/", &err), "");

  // The module log has the reference's shape and the lifecycle in it.
  const std::string log = node_->halo({"log", "-m", "web"}).output;
  EXPECT_THAT(log, HasSubstr("| runtime | U | Action start called by admin |"));
  EXPECT_THAT(log, HasSubstr("| runtime | S | Local state UP Ready |"));
  EXPECT_THAT(log, HasSubstr("| runtime | S | Local state STOP NotReady |"));
  EXPECT_THAT(log, Not(HasSubstr("| I |")));  // verbose lines only with -A
  EXPECT_THAT(node_->halo({"log", "-A", "-m", "web"}).output,
              HasSubstr("| userplug | I | Script start_both WAIT UP start > userlog_"));
  EXPECT_THAT(node_->halo({"cmdlog"}).output, HasSubstr("START start -m web"));
}

TEST_F(LightModuleTest, ScriptsGetReferenceArgumentsAndEnvironment) {
  installAndConfigure("web", makeModule("web"));
  startAndWaitUp("web");
  ASSERT_EQ(node_->halo({"stop", "-m", "web"}).exit_code, 0);
  ASSERT_EQ(node_->halo({"waitstop", "-m", "web", "-t", "30"}).exit_code, 0);
  const std::string var = node_->varDir("web");
  const std::string env = " | SAFEMODULE=web SAFEUSERVAR=" + var + " WEB_PORT=8080";
  const std::string expected = "transition STOP WAIT start" + env + "\n" +
                               "prestart STOP WAIT start" + env + "\n" +
                               "transition WAIT UP start" + env + "\n" +
                               "start_both WAIT UP start" + env + "\n" +
                               "stop_both UP STOP stop" + env + "\n" +
                               "stop_both force UP STOP stop" + env + "\n" +
                               "transition UP STOP stop" + env + "\n" +
                               "poststop UP STOP stop" + env + "\n";
  EXPECT_EQ(node_->readFile(var + "/calls.log"), expected);
  // Output went to per-script userlog files.
  bool found = false;
  for (const auto& e : fs::directory_iterator(var)) {
    found |= e.path().filename().string().find("_start_both.ulog") != std::string::npos;
  }
  EXPECT_TRUE(found);
}

TEST_F(LightModuleTest, KilledRuntimeIsRestartedWithoutRestartingTheApplication) {
  installAndConfigure("web", makeModule("web"));
  startAndWaitUp("web");
  const std::string var = node_->varDir("web");
  const pid_t server = node_->readPid(var + "/web.pid");
  const std::string pidfile = node_->root() + "/run/halo/modules/web.pid";
  const pid_t runtime = node_->readPid(pidfile);
  ASSERT_TRUE(processAlive(runtime));
  const std::string calls_before = node_->readFile(var + "/calls.log");

  ASSERT_TRUE(killPid(runtime, SIGKILL));
  // waitstate rides over the missing runtime and returns once the new one reports UP (Ready).
  auto r = node_->halo({"waitstate", "-m", "web", "UP", "-t", "30"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const pid_t respawned = node_->readPid(pidfile);
  EXPECT_NE(respawned, runtime);
  EXPECT_TRUE(processAlive(respawned));
  EXPECT_EQ(node_->halo({"state", "-m", "web"}).output, "web: UP (Ready)\n");
  // The application kept running, untouched.
  EXPECT_EQ(node_->readPid(var + "/web.pid"), server);
  EXPECT_TRUE(processAlive(server));
  EXPECT_EQ(node_->readFile(var + "/calls.log"), calls_before);
  EXPECT_THAT(node_->httpGet("http://127.0.0.1:8080/"), HasSubstr("Hello"));
  const std::string log = node_->halo({"log", "-m", "web"}).output;
  EXPECT_THAT(log, HasSubstr("| halod | C | Module runtime (pid " + std::to_string(runtime) +
                             ") died: killed by signal 9"));
  // And the respawned runtime still controls the module.
  ASSERT_EQ(node_->halo({"stop", "-m", "web"}).exit_code, 0);
  ASSERT_EQ(node_->halo({"waitstop", "-m", "web", "-t", "30"}).exit_code, 0);
  EXPECT_FALSE(processAlive(server));
}

TEST_F(LightModuleTest, FailingStartScriptStopsTheModuleWithTheReasonLogged) {
  installAndConfigure("bad", makeModule("bad", [](const std::string& dir) {
    writeScript(dir + "/bin/start_both", ". \"$(dirname \"$0\")/common\"\nrecord \"$@\"\n"
                                         "echo database is corrupt\nexit 3");
  }));
  ASSERT_EQ(node_->halo({"start", "-m", "bad"}).exit_code, 0);
  auto r = node_->halo({"waitstart", "-m", "bad", "-t", "30"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("script start_both failed (exit code 3)"));
  EXPECT_EQ(node_->halo({"state", "-m", "bad"}).output, "bad: STOP (NotReady)\n");
  EXPECT_THAT(node_->halo({"state", "-v", "-m", "bad"}).output,
              HasSubstr("last error: script start_both failed (exit code 3)"));
  EXPECT_THAT(node_->halo({"log", "-m", "bad"}).output,
              HasSubstr("| runtime | E | Script start_both failed (exit code 3): stopping the "
                        "module |"));
  // The half-started application was stopped with force.
  EXPECT_THAT(node_->readFile(node_->varDir("bad") + "/calls.log"),
              HasSubstr("stop_both force UP STOP stop"));
}

TEST_F(LightModuleTest, StopWhileStartingIsRefusedAndForcestopWorks) {
  installAndConfigure("slow", makeModule("slow", [](const std::string& dir) {
    // Blocks until the test opens the gate (a FIFO): the module stays "starting".
    writeScript(dir + "/bin/start_both", "read x < \"$SAFEUSERVAR/gate\"\nexit 0");
  }));
  const std::string gate = node_->varDir("slow") + "/gate";
  fs::create_directories(node_->varDir("slow"));
  ASSERT_EQ(mkfifo(gate.c_str(), 0600), 0);
  ASSERT_EQ(node_->halo({"start", "-m", "slow"}).exit_code, 0);
  // The runtime answers while the script runs: the stop is refused with a way out.
  CommandResult r;
  for (int i = 0; i < 300; ++i) {
    r = node_->halo({"state", "-v", "-m", "slow"});
    if (r.output.find("running script start_both") != std::string::npos) {
      break;
    }
    usleep(20000);  // bounded: the start reaches start_both within a few script runs
  }
  ASSERT_THAT(r.output, HasSubstr("running script start_both"));
  r = node_->halo({"stop", "-m", "slow"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("start in progress"));
  EXPECT_THAT(r.output, HasSubstr("halo forcestop"));
  r = node_->halo({"forcestop", "-m", "slow"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = node_->halo({"waitstop", "-m", "slow", "-t", "30"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(node_->halo({"log", "-m", "slow"}).output,
              HasSubstr("Script start_both killed by forcestop"));
}

TEST_F(LightModuleTest, HangingGracefulStopIsKilledAfterNicestoptimeout) {
  installAndConfigure("hang", makeModule("hang", [this](const std::string& dir) {
    std::string cfg = node_->readFile(dir + "/conf/userconfig.xml");
    cfg.replace(cfg.find("nicestoptimeout=\"20s\""), 21, "nicestoptimeout=\"1\"");
    std::ofstream(dir + "/conf/userconfig.xml") << cfg;
    writeScript(dir + "/bin/stop_both",
                ". \"$(dirname \"$0\")/common\"\nrecord \"$@\"\n"
                "if [ \"$1\" != force ]; then exec sleep 600; fi\nkill -9 $(web_pid)\nexit 0");
  }));
  startAndWaitUp("hang");
  ASSERT_EQ(node_->halo({"stop", "-m", "hang"}).exit_code, 0);
  auto r = node_->halo({"waitstop", "-m", "hang", "-t", "30"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string log = node_->halo({"log", "-m", "hang"}).output;
  EXPECT_THAT(log, HasSubstr("Script stop_both failed (timed out after 1 s, killed): calling it "
                             "with force"));
  EXPECT_THAT(node_->readFile(node_->varDir("hang") + "/calls.log"),
              HasSubstr("stop_both force UP STOP stop"));
}

TEST_F(LightModuleTest, RestartAndStopstartBehaveAsTheReferenceSays) {
  installAndConfigure("web", makeModule("web"));
  startAndWaitUp("web");
  const std::string calls = node_->varDir("web") + "/calls.log";
  const pid_t runtime = node_->readPid(node_->root() + "/run/halo/modules/web.pid");
  std::filesystem::remove(calls);
  ASSERT_EQ(node_->halo({"restart", "-m", "web"}).exit_code, 0);
  ASSERT_EQ(node_->halo({"waitstate", "-m", "web", "UP", "-t", "30"}).exit_code, 0);
  EXPECT_EQ(node_->readFile(calls).find("prestart"), std::string::npos);
  EXPECT_THAT(node_->readFile(calls), HasSubstr("start_both UP UP restart"));
  std::filesystem::remove(calls);
  ASSERT_EQ(node_->halo({"stopstart", "-m", "web"}).exit_code, 0);
  ASSERT_EQ(node_->halo({"waitstate", "-m", "web", "UP", "-t", "30"}).exit_code, 0);
  const std::string ss = node_->readFile(calls);
  EXPECT_THAT(ss, HasSubstr("poststop UP STOP stopstart"));
  EXPECT_THAT(ss, HasSubstr("prestart STOP WAIT stopstart"));
  EXPECT_THAT(ss, HasSubstr("start_both WAIT UP stopstart"));
  // Both happen inside the same runtime: neither is a crash.
  EXPECT_EQ(node_->readPid(node_->root() + "/run/halo/modules/web.pid"), runtime);
}

TEST_F(LightModuleTest, DynamicReconfigurationOfScriptsWhileRunning) {
  installAndConfigure("web", makeModule("web"));
  startAndWaitUp("web");
  // Edit the installed script and re-apply: the running module uses it at the next call.
  const std::string installed = node_->root() + "/etc/halo/modules/web/bin/stop_both";
  std::string body = node_->readFile(installed);
  body.insert(body.find("record \"$@\""), "echo reconfigured >> \"$SAFEUSERVAR/marker\"\n");
  std::ofstream(installed) << body;
  auto r = node_->halo({"config", "-m", "web"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("applied it dynamically"));
  ASSERT_EQ(node_->halo({"stop", "-m", "web"}).exit_code, 0);
  ASSERT_EQ(node_->halo({"waitstop", "-m", "web", "-t", "30"}).exit_code, 0);
  EXPECT_EQ(node_->readFile(node_->varDir("web") + "/marker"), "reconfigured\nreconfigured\n");
}

TEST_F(LightModuleTest, BadInputGetsOneClearMessageAndChangesNothing) {
  const std::string safe = makeModule("web");
  installAndConfigure("web", safe);
  // Unknown module.
  auto r = node_->halo({"start", "-m", "nosuch"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("module 'nosuch' is not installed (installed: web)"));
  // A second module claiming the same id.
  r = node_->halo({"module", "install", "-m", "other", "-M", "1", safe});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("module id 1 is already used by module 'web'"));
  EXPECT_EQ(node_->halo({"module", "list"}).output, "web\n");
  // A corrupt package.
  const std::string corrupt = node_->root() + "/corrupt.safe";
  std::ofstream(corrupt) << "PK\x03\x04 this is not a zip";
  r = node_->halo({"module", "install", corrupt});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("nothing was installed"));
  EXPECT_EQ(node_->halo({"module", "list"}).output, "web\n");
  // An invalid configuration: file, line, reason; the active configuration stays.
  const std::string conf = node_->root() + "/etc/halo/modules/web/conf/userconfig.xml";
  const std::string good = node_->readFile(conf);
  std::string bad = good;
  bad.replace(bad.find("nicestoptimeout=\"20s\""), 21, "nicestoptimeout=\"soon\"");
  std::ofstream(conf) << bad;
  r = node_->halo({"config", "-m", "web"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("userconfig.xml:9:"));
  EXPECT_THAT(r.output, HasSubstr("nicestoptimeout"));
  EXPECT_THAT(r.output, HasSubstr("'soon'"));
  EXPECT_THAT(r.output, HasSubstr("the active configuration is unchanged"));
  EXPECT_EQ(node_->halo({"confcheck", "-m", "web"}).exit_code, 1);
  EXPECT_THAT(node_->halo({"confinfo", "-m", "web"}).output, HasSubstr("They differ"));
  std::ofstream(conf) << good;
  // A script that is not executable.
  const std::string script = node_->root() + "/etc/halo/modules/web/bin/start_both";
  chmod(script.c_str(), 0644);
  r = node_->halo({"config", "-m", "web"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("start_both: script is not executable"));
  chmod(script.c_str(), 0755);
  // Nothing broke: the module still starts with the configuration applied before.
  startAndWaitUp("web");
  // Stop of a stopped module, unknown verbs and missing arguments.
  EXPECT_EQ(node_->halo({"bogus"}).exit_code, 2);
  EXPECT_EQ(node_->halo({"waitstate", "-m", "web"}).exit_code, 2);
  r = node_->halo({"set", "-m", "web", "-r", "custom.x", "-v", "sideways"});
  EXPECT_EQ(r.exit_code, 2);
}

TEST_F(LightModuleTest, ResourcesSettingsAndPaths) {
  installAndConfigure("web", makeModule("web"));
  auto r = node_->halo({"set", "-m", "web", "-r", "custom.db", "-v", "down", "-i", "dbcheck"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(node_->halo({"get", "-m", "web", "-r", "custom.db"}).output,
              HasSubstr("custom.db = down (set by dbcheck"));
  EXPECT_THAT(node_->halo({"log", "-A", "-m", "web"}).output,
              HasSubstr("Resource custom.db set to down by dbcheck"));
  ASSERT_EQ(node_->halo({"set", "-m", "web", "-r", "custom.db", "-v", "up"}).exit_code, 0);
  r = node_->halo({"get", "-m", "web", "-r", "custom.db"});
  EXPECT_THAT(r.output, HasSubstr("custom.db = up (set by admin"));
  EXPECT_THAT(r.output, HasSubstr("down  by dbcheck\n"));
  EXPECT_THAT(r.output, HasSubstr("up  by admin\n"));
  // Scripts write to the module log with printi (verbose) and printe (shown by default).
  ASSERT_EQ(node_->halo({"printe", "-m", "web", "disk almost full"}).exit_code, 0);
  ASSERT_EQ(node_->halo({"printi", "-m", "web", "cache warmed"}).exit_code, 0);
  const std::string log = node_->halo({"log", "-m", "web"}).output;
  EXPECT_THAT(log, HasSubstr("| script | E | disk almost full |"));
  EXPECT_THAT(log, Not(HasSubstr("cache warmed")));
  EXPECT_THAT(node_->halo({"log", "-A", "-m", "web"}).output,
              HasSubstr("| script | I | cache warmed |"));
  EXPECT_THAT(node_->halo({"level"}).output, HasSubstr("Halo "));
  ASSERT_EQ(node_->halo({"boot", "on", "-m", "web"}).exit_code, 0);
  EXPECT_EQ(node_->halo({"boot", "status", "-m", "web"}).output,
            "web: boot on (halo boot setting)\n");
  EXPECT_THAT(node_->halo({"-p"}).output, HasSubstr("HALO_ROOT=" + node_->root()));
  // HALO_MODULE stands in for -m.
  auto e = node_->exec({"env", "HALO_MODULE=web", toolPath("halo"), "state"});
  EXPECT_EQ(e.output, "web: STOP (NotReady)\n");
  EXPECT_THAT(node_->halo({"module", "getports", "-m", "web"}).output, HasSubstr("UDP 8888"));
}

TEST_F(LightModuleTest, BootSettingStartsTheModuleAtBoot) {
  installAndConfigure("web", makeModule("web"));
  ASSERT_EQ(node_->halo({"boot", "on", "-m", "web"}).exit_code, 0);
  // Simulate a reboot: the daemon goes away and the runtime directory is emptied.
  node_->killDaemon();
  fs::remove_all(node_->root() + "/run");
  std::string why;
  ASSERT_TRUE(node_->startDaemon(&why)) << why;
  auto r = node_->halo({"waitstate", "-m", "web", "UP", "-t", "30"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(node_->halo({"log", "-m", "web"}).output, HasSubstr("Action start called by boot"));
}

TEST_F(LightModuleTest, HalodRestartAdoptsRunningRuntimes) {
  installAndConfigure("web", makeModule("web"));
  startAndWaitUp("web");
  const std::string pidfile = node_->root() + "/run/halo/modules/web.pid";
  const pid_t runtime = node_->readPid(pidfile);
  node_->killDaemon();
  ASSERT_TRUE(processAlive(runtime));  // modules keep running without halod
  std::string why;
  ASSERT_TRUE(node_->startDaemon(&why)) << why;
  EXPECT_THAT(node_->halo({"log", "-A", "-m", "web"}).output,
              HasSubstr("halod adopted the running module runtime (pid " +
                        std::to_string(runtime) + ")"));
  // The adopted runtime is supervised: killing it brings a new one.
  ASSERT_TRUE(killPid(runtime, SIGKILL));
  auto r = node_->halo({"waitstate", "-m", "web", "UP", "-t", "30"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(node_->readPid(pidfile), runtime);
}

TEST_F(LightModuleTest, ModuleIdsStayStableAcrossReinstallAndPackagesRoundTrip) {
  const std::string safe = makeModule("web");
  ASSERT_EQ(node_->halo({"module", "install", "-M", "5", safe}).exit_code, 0);
  ASSERT_EQ(node_->halo({"config", "-m", "web"}).exit_code, 0);
  // -r replaces a stopped module and keeps its id.
  auto r = node_->halo({"module", "install", "-r", safe});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("with id 5"));
  // A package of the installed module installs elsewhere as is.
  const std::string copy = node_->root() + "/copy.safe";
  ASSERT_EQ(node_->halo({"module", "package", "-m", "web", copy}).exit_code, 0);
  r = node_->halo({"module", "install", "-m", "web2", copy});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("with id 1"));
  // Uninstall, then reinstall without -M: the name gets its id back.
  ASSERT_EQ(node_->halo({"module", "uninstall", "-m", "web"}).exit_code, 0);
  EXPECT_EQ(node_->halo({"module", "listid"}).output, "web2 1\n");
  r = node_->halo({"module", "install", safe});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("with id 5"));
  EXPECT_THAT(node_->halo({"module", "getports", "-m", "web"}).output, HasSubstr("UDP 8892"));
}

TEST_F(LightModuleTest, ShutdownStopsEveryModule) {
  installAndConfigure("web", makeModule("web"));
  startAndWaitUp("web");
  const pid_t server = node_->readPid(node_->varDir("web") + "/web.pid");
  ASSERT_TRUE(processAlive(server));
  auto r = node_->halo({"shutdown"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(node_->halo({"state"}).output,
            "---------------------- Summary State ----------------------\n"
            "  web                  | STOP (NotReady)\n");
  EXPECT_FALSE(processAlive(server));
  // A running module cannot be uninstalled; a stopped one can.
  startAndWaitUp("web");
  r = node_->halo({"module", "uninstall", "-m", "web"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("is running; stop it first"));
}

TEST_F(LightModuleTest, ConfigurationNamesMissingExecutablesAndClusterFiles) {
  // A custom checker whose program is missing: refused at config, with file and line.
  const std::string safe = makeModule("chk", [](const std::string& dir) {
    std::ofstream(dir + "/conf/userconfig.xml")
        << "<safe>\n  <service mode=\"light\">\n    <user/>\n    <check>\n"
           "      <custom ident=\"db\" exec=\"dbcheck\" action=\"restart\"/>\n"
           "    </check>\n  </service>\n</safe>\n";
  });
  ASSERT_EQ(node_->halo({"module", "install", safe}).exit_code, 0);
  auto r = node_->halo({"config", "-m", "chk"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("userconfig.xml:5: <custom> exec 'dbcheck' not found"));
  EXPECT_FALSE(fs::exists(node_->varDir("chk") + "/active"));

  // A cluster.xml: confcheck reports, config applies it with fresh cluster keys.
  const std::string cluster = node_->root() + "/cluster.xml";
  std::ofstream(cluster) << "<cluster>\n  <lans>\n    <lan name=\"default\">\n"
                            "      <node name=\"n1\" addr=\"198.18.0.1\"/>\n"
                            "      <node name=\"n2\" addr=\"198.18.0.2\"/>\n"
                            "    </lan>\n  </lans>\n</cluster>\n";
  r = node_->halo({"cluster", "confcheck", cluster});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("nodes n1, n2"));
  EXPECT_FALSE(fs::exists(node_->root() + "/etc/halo/cluster.xml"));
  ASSERT_EQ(node_->halo({"cluster", "config", cluster}).exit_code, 0);
  const std::string key = node_->root() + "/etc/halo/keys/cluster.key";
  ASSERT_TRUE(fs::exists(key));
  EXPECT_EQ(fs::status(key).permissions() & fs::perms::all, fs::perms::owner_read |
                                                                fs::perms::owner_write);
  EXPECT_THAT(node_->halo({"cluster", "state"}).output, HasSubstr("n1=198.18.0.1 n2=198.18.0.2"));

  // A mirror module validates, but this node is neither n1 nor n2 (no such address here):
  // start says so plainly and nothing changes.
  const std::string mirror = makeModule("mir", [](const std::string& dir) {
    std::ofstream(dir + "/conf/userconfig.xml")
        << "<safe>\n  <service mode=\"mirror\">\n"
           "    <heart><heartbeat name=\"default\"/></heart>\n    <user/>\n"
           "  </service>\n</safe>\n";
  });
  ASSERT_EQ(node_->halo({"module", "install", mirror}).exit_code, 0);
  r = node_->halo({"config", "-m", "mir"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = node_->halo({"start", "-m", "mir"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("none of the nodes of lan 'default' in cluster.xml (n1 "
                                  "198.18.0.1, n2 198.18.0.2) has an address on this server"));
  EXPECT_EQ(node_->halo({"state", "-m", "mir"}).output, "mir: STOP (NotReady)\n");
}

TEST_F(LightModuleTest, HarnessRunsCommandsInTheNodesMountNamespace) {
  // A mount made by the node's processes (as a replicated directory's FUSE mount will be) is
  // visible through execMounted, and neither through exec nor on the machine.
  const std::string mnt = node_->root() + "/mnt";
  std::filesystem::create_directories(mnt);
  auto r = node_->execMounted({"mount", "-t", "tmpfs", "tmpfs", mnt});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string probe = "grep -q ' " + mnt + " ' /proc/self/mounts";
  EXPECT_EQ(node_->execMounted({"sh", "-c", probe}).exit_code, 0);
  EXPECT_NE(node_->exec({"sh", "-c", probe}).exit_code, 0);
  EXPECT_NE(runCommand({"sh", "-c", probe}, {}).exit_code, 0);
}

}  // namespace
}  // namespace halo::test
