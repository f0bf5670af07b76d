#include "config/module_config.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace halo::config {
namespace {

const std::string kValid = std::string(HALO_SOURCE_DIR) + "/test/corpus/config/valid/";

ModuleConfig load(const std::string& name, const Environment& env = {}) {
  Result<ModuleConfig> m = parseModuleConfigFile(kValid + name, env);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? *m : ModuleConfig{};
}

Status parseError(std::string_view xml) { return parseModuleConfig(xml, "m.xml", {}).status(); }

TEST(ModuleConfig, LightDemo) {
  ModuleConfig m = load("light_demo.xml");
  EXPECT_EQ(m.service.mode, Mode::Light);
  EXPECT_STREQ(modeName(m.service.mode), "light");
  EXPECT_EQ(m.service.line, 3);
  EXPECT_EQ(m.service.boot, Boot::Ignore);
  EXPECT_EQ(m.service.maxloop, 3);
  EXPECT_EQ(m.service.loop_interval, std::chrono::hours(24));
  ASSERT_TRUE(m.user.has_value());
  EXPECT_EQ(m.user->nicestoptimeout, std::chrono::seconds(300));
  EXPECT_EQ(m.user->logging, UserLogging::Userlog);
  EXPECT_EQ(m.user->userlogsize_kb, 2048);
  ASSERT_EQ(m.user->vars.size(), 1u);
  EXPECT_EQ(m.user->vars[0].name, "DEMO_MESSAGE");
  EXPECT_EQ(m.user->vars[0].value, "hello from halo");
  EXPECT_EQ(m.user->vars[0].line, 5);
  EXPECT_FALSE(m.heart || m.farm || m.vip || m.rfs || m.errd || m.check || m.failover);
  EXPECT_TRUE(m.warnings.empty());
  EXPECT_EQ(m.file, kValid + "light_demo.xml");
}

TEST(ModuleConfig, MirrorPostgresql) {
  ModuleConfig m = load("mirror_postgresql.xml");
  EXPECT_EQ(m.service.mode, Mode::Mirror);
  EXPECT_EQ(m.service.boot, Boot::On);
  EXPECT_EQ(m.service.boot_delay, std::chrono::seconds(10));
  EXPECT_EQ(m.service.defaultprim, "lastprim");
  EXPECT_TRUE(m.service.failover);
  ASSERT_TRUE(m.heart.has_value());
  EXPECT_FALSE(m.heart->port.has_value());
  ASSERT_EQ(m.heart->heartbeats.size(), 2u);
  EXPECT_EQ(m.heart->heartbeats[0].ident, "default");
  EXPECT_EQ(m.heart->heartbeats[1].ident, "flow");
  EXPECT_EQ(m.heart->heartbeats[1].pulse, Millis(700));
  EXPECT_EQ(m.heart->heartbeats[1].timeout, Millis(30000));
  EXPECT_EQ(m.flowLan(), "repli");
  ASSERT_TRUE(m.vip.has_value());
  ASSERT_EQ(m.vip->interfaces.size(), 1u);
  const InterfaceConfig& intf = m.vip->interfaces[0];
  EXPECT_TRUE(intf.arpreroute);
  EXPECT_EQ(intf.arpinterval, std::chrono::seconds(60));
  EXPECT_FALSE(intf.virtual_interface.has_value());
  ASSERT_EQ(intf.addrs.size(), 1u);
  EXPECT_EQ(intf.addrs[0].addr, "192.168.1.99");
  EXPECT_EQ(intf.addrs[0].where, VipWhere::OneSideAlias);
  ASSERT_TRUE(m.rfs.has_value());
  EXPECT_EQ(m.rfs->async, RfsAsync::Second);
  EXPECT_EQ(m.rfs->locktimeout, std::chrono::seconds(100));
  EXPECT_EQ(m.rfs->checktime, Millis(220000));
  ASSERT_EQ(m.rfs->replicated.size(), 1u);
  const ReplicatedConfig& rep = m.rfs->replicated[0];
  EXPECT_EQ(rep.dir, "/var/lib/pgsql/data");
  EXPECT_TRUE(rep.read_only);
  EXPECT_EQ(rep.tocheck[0].path, "PG_VERSION");
  ASSERT_EQ(rep.notreplicated.size(), 2u);
  EXPECT_EQ(rep.notreplicated[0].path, "pg_stat_tmp");
  EXPECT_TRUE(rep.notreplicated[1].only_matching);
  EXPECT_EQ(rep.notreplicated[1].regexpath, "\\.conf$");
  ASSERT_TRUE(m.user.has_value());
  EXPECT_EQ(m.user->nicestoptimeout, std::chrono::seconds(120));
  EXPECT_EQ(m.user->vars[0].value, "/var/lib/pgsql/data");
  ASSERT_TRUE(m.errd.has_value());
  EXPECT_EQ(m.errd->polltimer, std::chrono::seconds(10));
  ASSERT_EQ(m.errd->procs.size(), 1u);
  EXPECT_TRUE(m.errd->procs[0].service);
  EXPECT_EQ(m.errd->procs[0].action, ProcAction::Restart);
  EXPECT_EQ(m.errd->procs[0].proc_class, "prim");
  EXPECT_EQ(m.errd->procs[0].atleast, 1);
  EXPECT_EQ(m.errd->procs[0].atmax, -1);
  ASSERT_TRUE(m.check.has_value());
  ASSERT_EQ(m.check->tcp.size(), 1u);
  EXPECT_EQ(m.check->tcp[0].port, 5432);
  EXPECT_EQ(m.check->tcp[0].interval, std::chrono::seconds(10));
  EXPECT_EQ(m.check->tcp[0].action, CheckAction::Restart);
  ASSERT_TRUE(m.failover.has_value());
  EXPECT_TRUE(m.failover->extends);
  ASSERT_EQ(m.failover->blocks.size(), 2u);
  EXPECT_EQ(m.failover->blocks[0].line, 40);
  EXPECT_NE(m.failover->blocks[0].text.find("pg_down: if (tcp.pg == down)"), std::string::npos);
  EXPECT_EQ(m.failover->blocks[1].line, 43);
  ASSERT_EQ(m.macros.size(), 1u);
  EXPECT_EQ(m.macros[0].first, "PGDATA");
  EXPECT_NE(m.expanded_xml.find("dir=\"/var/lib/pgsql/data\""), std::string::npos);
  EXPECT_EQ(m.expanded_xml.find("%PGDATA%"), std::string::npos);
}

TEST(ModuleConfig, FarmApache) {
  ModuleConfig m = load("farm_apache.xml");
  EXPECT_EQ(m.service.mode, Mode::Farm);
  ASSERT_TRUE(m.farm.has_value());
  EXPECT_EQ(m.farm->pulse, Millis(100));
  EXPECT_EQ(m.farm->mlost_count, 20);
  ASSERT_EQ(m.farm->lans.size(), 1u);
  EXPECT_EQ(m.farm->lans[0].name, "default");
  ASSERT_TRUE(m.vip.has_value());
  const InterfaceConfig& intf = m.vip->interfaces.at(0);
  ASSERT_TRUE(intf.virtual_interface.has_value());
  EXPECT_EQ(intf.virtual_interface->type, VmacType::Directed);
  EXPECT_EQ(intf.addrs.at(0).addr, "192.168.1.240");
  EXPECT_EQ(intf.addrs.at(0).where, VipWhere::Alias);
  EXPECT_EQ(intf.addrs.at(0).netmask, "255.255.255.0");
  ASSERT_EQ(m.vip->groups.size(), 1u);
  const LbGroupConfig& g = m.vip->groups[0];
  EXPECT_EQ(g.name, "APACHE");
  ASSERT_EQ(g.hosts.size(), 2u);
  EXPECT_EQ(g.hosts[0].power, 3);
  ASSERT_EQ(g.rules.size(), 1u);
  EXPECT_EQ(g.rules[0].port, 80);
  EXPECT_EQ(g.rules[0].virtual_addr, "*");
  EXPECT_EQ(g.rules[0].proto, LbProto::Tcp);
  EXPECT_EQ(g.rules[0].filter, LbFilter::OnAddr);
  ASSERT_EQ(m.check->tcp.size(), 1u);
  EXPECT_EQ(m.check->tcp[0].when, CheckWhen::Both);
  EXPECT_EQ(m.check->tcp[0].addr, "192.168.1.240");
}

TEST(ModuleConfig, EveryChecker) {
  ModuleConfig m = load("all_checkers.xml");
  ASSERT_TRUE(m.check.has_value());
  const CheckConfig& c = *m.check;
  ASSERT_EQ(c.tcp.size(), 1u);
  EXPECT_EQ(c.tcp[0].action, CheckAction::Stopstart);
  EXPECT_EQ(c.tcp[0].timeout, std::chrono::seconds(3));
  ASSERT_EQ(c.ping.size(), 1u);
  EXPECT_EQ(c.ping[0].when, CheckWhen::Pre);
  EXPECT_EQ(c.ping[0].action, CheckAction::Wait);
  EXPECT_EQ(c.ping[0].interval, std::chrono::seconds(5));
  ASSERT_EQ(c.intf.size(), 1u);
  EXPECT_EQ(c.intf[0].ident, "10.0.0.0");
  EXPECT_EQ(c.intf[0].local_addr, "10.0.0.11");
  ASSERT_EQ(c.ip.size(), 1u);
  EXPECT_EQ(c.ip[0].when, CheckWhen::Prim);
  EXPECT_EQ(c.ip[0].interval, std::chrono::seconds(20));
  ASSERT_EQ(c.custom.size(), 1u);
  EXPECT_EQ(c.custom[0].exec, "appcheck.sh");
  EXPECT_EQ(c.custom[0].arg, "--quick 2");
  EXPECT_EQ(c.custom[0].action, CheckAction::Restart);
  ASSERT_EQ(c.module.size(), 2u);
  EXPECT_EQ(c.module[0].ident, "leader_10.0.0.21");
  EXPECT_TRUE(c.module[0].remote);
  EXPECT_EQ(c.module[0].port, 9010);
  EXPECT_EQ(c.module[1].ident, "local_leader");
  EXPECT_EQ(c.module[1].addr, "127.0.0.1");
  EXPECT_FALSE(c.module[1].remote);
  ASSERT_TRUE(c.splitbrain.has_value());
  EXPECT_EQ(c.splitbrain->ident, "witness");
  EXPECT_EQ(c.splitbrain->arg, "10.0.0.1 10.0.0.2");
  EXPECT_EQ(m.vip->interfaces[0].name, "eth0");
  EXPECT_EQ(m.vip->interfaces[0].addrs[0].where, VipWhere::OneSide);
  EXPECT_TRUE(m.vip->interfaces[0].addrs[0].connections);
}

TEST(ModuleConfig, LegacyUnitlessValues) {
  ModuleConfig m = load("legacy_unitless.xml");
  EXPECT_EQ(m.service.loop_interval, std::chrono::hours(24));
  EXPECT_EQ(m.heart->pulse, Millis(700));
  EXPECT_EQ(m.heart->timeout, Millis(30000));
  EXPECT_EQ(m.heart->heartbeats[0].ident, "flow");
  EXPECT_EQ(m.user->forcestoptimeout, std::chrono::seconds(300));
  EXPECT_EQ(m.rfs->locktimeout, std::chrono::seconds(200));
  EXPECT_EQ(m.rfs->nbrei, 3);
  EXPECT_EQ(m.rfs->nbremconn, 4);
  EXPECT_EQ(m.rfs->syncdelta, std::chrono::minutes(30));
  EXPECT_EQ(m.rfs->checkintv, std::chrono::seconds(120));
  EXPECT_EQ(m.errd->polltimer, std::chrono::seconds(10));
  EXPECT_EQ(m.failover->period, Millis(5000));
  EXPECT_TRUE(m.failover->blocks.empty());
  ASSERT_EQ(m.warnings.size(), 1u);
  EXPECT_EQ(m.warnings[0], kValid +
                               "legacy_unitless.xml:13: <rfs> attribute 'mountover' is "
                               "legacy SafeKit 7 syntax and is ignored");
  // The comment before the DOCTYPE survives into safeconf.xml.
  EXPECT_EQ(m.expanded_xml.rfind("<!-- Mirror", 0), 0u);
}

TEST(ModuleConfig, MacrosAndEnvironment) {
  const Environment env = {{"HALO_TEST_HOME", "/opt/halo-test"}, {"SERVICES", "from-env"}};
  ModuleConfig m = load("macros_env.xml", env);
  EXPECT_EQ(m.service.boot, Boot::Auto);
  EXPECT_EQ(m.service.boot_delay, std::chrono::minutes(2));
  ASSERT_EQ(m.user->vars.size(), 4u);
  EXPECT_EQ(m.user->vars[0].value, "/opt/halo-test/data/app");
  EXPECT_EQ(m.user->vars[1].value, "100%");
  EXPECT_EQ(m.user->vars[2].value, "/opt/halo-test");
  EXPECT_EQ(m.user->vars[3].value, "svc1, svc2");  // the macro wins over the environment
  EXPECT_EQ(m.check->custom[0].exec, "/opt/halo-test/bin/check");
  EXPECT_EQ(m.check->custom[0].when, CheckWhen::Both);  // default outside a mirror
  ASSERT_EQ(m.failover->blocks.size(), 1u);
  EXPECT_NE(m.failover->blocks[0].text.find("then restart();"), std::string::npos);
  EXPECT_EQ(m.failover->blocks[0].line, 15);
  ASSERT_EQ(m.macros.size(), 5u);
  EXPECT_EQ(m.macros[2].second, "/opt/halo-test/data");
  EXPECT_NE(m.expanded_xml.find("<macro name=\"DATA_DIR\" value=\"/opt/halo-test/data\"/>"),
            std::string::npos);
  EXPECT_EQ(m.expanded_xml.rfind("<?xml", 0), 0u);
}

TEST(ModuleConfig, MacroNeedsItsEnvironmentVariable) {
  Result<ModuleConfig> m = parseModuleConfigFile(kValid + "macros_env.xml", {});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message(),
            kValid + "macros_env.xml:23: undefined macro %HALO_TEST_HOME% in attribute 'value'");
}

TEST(ModuleConfig, FarmWithoutVip) {
  ModuleConfig m = load("farm_legacy_no_vip.xml");
  EXPECT_EQ(m.service.mode, Mode::Farm);
  EXPECT_EQ(m.farm->lans.at(0).name, "default");
  EXPECT_EQ(m.farm->lans.at(0).line, 8);
  EXPECT_TRUE(m.user.has_value());
  EXPECT_FALSE(m.vip.has_value());
}

TEST(ModuleConfig, MirrorKvm) {
  ModuleConfig m = load("mirror_kvm.xml");
  EXPECT_EQ(m.service.defaultprim, "node1");
  EXPECT_EQ(m.heart->port, 8890);
  EXPECT_FALSE(m.heart->permanent_arp);
  EXPECT_EQ(m.heart->heartbeats[0].pulse, std::chrono::seconds(1));
  EXPECT_EQ(m.heart->heartbeats[0].timeout, std::chrono::seconds(10));
  EXPECT_EQ(m.heart->pulse, Millis(100));  // Halo's default
  EXPECT_EQ(m.rfs->async, RfsAsync::None);
  EXPECT_EQ(m.rfs->syncat, "01 0 * * *");
  EXPECT_EQ(m.rfs->syncdelta, std::chrono::minutes(10));
  EXPECT_EQ(m.rfs->mountoversuffix, "_replicated");
  EXPECT_EQ(m.rfs->replicated[0].dir, "/var/lib/libvirt/images/vm1");
  EXPECT_EQ(m.flowLan(), "default");
  ASSERT_TRUE(m.vhost.has_value());
  EXPECT_EQ(m.vhost->names.at(0).name, "vmhost");
  EXPECT_EQ(m.vhost->names.at(0).when, VhostWhen::Prim);
  EXPECT_FALSE(m.failover->extends);
  EXPECT_EQ(m.failover->period, std::chrono::seconds(2));
  EXPECT_EQ(m.failover->handle_time, std::chrono::seconds(6));
  EXPECT_FALSE(m.vip.has_value());
}

TEST(ModuleConfig, LinesStayExactAfterMacroExpansion) {
  // The macro value spans lines; the error must still point at the element's own line.
  Status s = parseError(
      "<safe>\n"
      "  <macro name=\"LONG\" value=\"a\nb\nc\"/>\n"
      "  <service mode=\"light\">\n"
      "    <user>\n"
      "      <var name=\"X\" value=\"%LONG%\"/>\n"
      "    </user>\n"
      "    <check>\n"
      "      <custom ident=\"c\" exec=\"x\" when=\"%LONG%\"/>\n"
      "    </check>\n"
      "  </service>\n"
      "</safe>\n");
  EXPECT_EQ(s.message(),
            "m.xml:10: <custom> attribute 'when': invalid value 'a b c' (expected one of: pre, "
            "both)");
}

TEST(ModuleConfig, CrLfLineEndings) {
  Status s = parseError(
      "<safe>\r\n<service mode=\"light\">\r\n<user x=\"1\"/>\r\n</service>"
      "\r\n</safe>\r\n");
  EXPECT_EQ(s.message(),
            "m.xml:3: unknown attribute 'x' on <user> (expected one of: nicestoptimeout, "
            "forcestoptimeout, logging, userlogsize)");
}

TEST(ModuleConfig, ExpandedXmlKeepsLayout) {
  const std::string xml =
      "<!DOCTYPE safe>\n<safe>\n  <macro name=\"P\" value=\"8080\"/>\n  <!-- note -->\n"
      "  <service mode=\"light\">\n    <check>\n      <tcp ident=\"t\">\n"
      "        <to addr=\"127.0.0.1\" port=\"%P%\"/>\n      </tcp>\n    </check>\n"
      "  </service>\n</safe>\n";
  Result<ModuleConfig> m = parseModuleConfig(xml, "m.xml", {});
  ASSERT_TRUE(m.ok()) << m.status().message();
  std::string expected = xml;
  expected.replace(expected.find("%P%"), 3, "8080");
  EXPECT_EQ(m->expanded_xml, expected);
  EXPECT_EQ(m->check->tcp[0].port, 8080);
}

TEST(ModuleConfig, FarmDefaults) {
  Result<ModuleConfig> m = parseModuleConfig(R"(<safe><service mode="farm" failover="off">
    <farm><lan name="default"/></farm>
    <user/>
    <errd><proc name="httpd"/></errd>
    <check><ip ident="vip"><to addr="10.0.0.1"/></ip></check>
  </service></safe>)",
                                             "m.xml", {});
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->errd->procs[0].proc_class, "both");
  EXPECT_EQ(m->errd->procs[0].action, ProcAction::Stopstart);
  EXPECT_EQ(m->check->ip[0].when, CheckWhen::Both);
  ASSERT_EQ(m->warnings.size(), 1u);
  EXPECT_EQ(m->warnings[0],
            "m.xml:1: <service> attribute 'failover' only applies to a mirror "
            "module and is ignored");
}

TEST(ModuleConfig, ProcHandlerAndRestartServices) {
  Result<ModuleConfig> m = parseModuleConfig(R"(<safe><service mode="light"><user/><errd>
    <proc name="svc" service="yes" action="restart" restart_services="a, b" class="custom1"/>
    <proc name="averyveryverylongname" action="myhandler.sh" atleast="-1" atmax="0"/>
  </errd></service></safe>)",
                                             "m.xml", {});
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->errd->procs[0].restart_services, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(m->errd->procs[0].proc_class, "custom1");
  EXPECT_EQ(m->errd->procs[1].action, ProcAction::Handler);
  EXPECT_EQ(m->errd->procs[1].handler, "myhandler.sh");
  ASSERT_EQ(m->warnings.size(), 1u);
  EXPECT_NE(m->warnings[0].find("'averyveryverylo' is matched"), std::string::npos);
}

TEST(ModuleConfig, MissingFileIsNotFound) {
  Result<ModuleConfig> m = parseModuleConfigFile("/nonexistent/userconfig.xml", {});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::NotFound);
}

TEST(ModuleConfig, MoreErrors) {
  struct Case {
    const char* xml;
    const char* message;
  };
  const Case cases[] = {
      {R"(<safe><service mode="light"><failover><x/></failover></service></safe>)",
       "m.xml:1: unknown element <x> in <failover> (<failover> holds only rule text, usually in "
       "<![CDATA[ ... ]]>)"},
      {R"(<safe><service mode="light"><failover period="4s"/></service></safe>)",
       "m.xml:1: <failover> attribute 'period': invalid value '4s' (expected a divisor of the "
       "handle_time, 15s)"},
      {R"(<safe><service mode="light"><check><custom ident="a b" exec="x"/>)"
       R"(</check></service></safe>)",
       "m.xml:1: <custom> attribute 'ident': invalid value 'a b' (expected a name of letters, "
       "digits and _ - . : @)"},
      {R"(<safe><service mode="light"><vhost/></service></safe>)",
       "m.xml:1: <vhost> has no <virtualhostname> (expected one)"},
      {R"(<safe x="1"><service mode="light"/></safe>)",
       "m.xml:1: unknown attribute 'x' on <safe> (<safe> has no attributes)"},
      {R"(<safe><service mode="mirror"><heart><heartbeat name="a" pulse="40s"/>)"
       R"(</heart></service></safe>)",
       "m.xml:1: <heartbeat> attribute 'pulse': invalid value '40s' (expected a duration less "
       "than the timeout, 500ms)"},
      {R"(<safe><service mode="light"><user><var name="A"/></user></service></safe>)",
       "m.xml:1: <var>: missing required attribute 'value'"},
      {R"(<safe><service mode="light"><check><tcp ident="t"><to addr="h" port="1"/>)"
       R"(<to addr="h" port="2"/></tcp></check></service></safe>)",
       "m.xml:1: duplicate <to> in <tcp> (only one is allowed; the first is at line 1)"},
  };
  for (const Case& c : cases) {
    Status s = parseError(c.xml);
    ASSERT_FALSE(s.ok()) << c.xml;
    EXPECT_EQ(s.message(), c.message);
  }
}

}  // namespace
}  // namespace halo::config

namespace halo::config {
namespace {

TEST(ModuleConfig, Utf8ByteOrderMarkIsAccepted) {
  Result<ModuleConfig> m =
      parseModuleConfig("\xEF\xBB\xBF<safe>\n<service mode=\"light\"/>\n</safe>", "m.xml", {});
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->service.line, 2);
}

TEST(ModuleConfig, DeepNestingIsRefused) {
  std::string xml = "<safe><service mode=\"light\">";
  for (int i = 0; i < 100; ++i) {
    xml += "<user>";
  }
  for (int i = 0; i < 100; ++i) {
    xml += "</user>";
  }
  xml += "</service></safe>";
  EXPECT_EQ(parseModuleConfig(xml, "m.xml", {}).status().message(),
            "m.xml:1: malformed XML: elements nested deeper than 32 levels");
}

TEST(ModuleConfig, TextAfterRootIsRefused) {
  EXPECT_EQ(parseModuleConfig("<safe><service mode=\"light\"/></safe>\njunk\n", "m.xml", {})
                .status()
                .message(),
            "m.xml:2: malformed XML: text outside the root element");
  EXPECT_FALSE(parseModuleConfig("x<safe/>", "m.xml", {}).ok());
}

}  // namespace
}  // namespace halo::config
