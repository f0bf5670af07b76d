#include "core/builtin_rules.h"

#include <gtest/gtest.h>

namespace halo::core {
namespace {

const std::string kValid = std::string(HALO_SOURCE_DIR) + "/test/corpus/config/valid/";

config::ModuleConfig loadFile(const std::string& name) {
  Result<config::ModuleConfig> m = config::parseModuleConfigFile(kValid + name, {});
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? *m : config::ModuleConfig{};
}

config::ModuleConfig load(const std::string& xml) {
  Result<config::ModuleConfig> m = config::parseModuleConfig(xml, "userconfig.xml", {});
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? *m : config::ModuleConfig{};
}

std::vector<std::string> formatted(const std::vector<Rule>& rules) {
  std::vector<std::string> out;
  for (const Rule& r : rules) {
    out.push_back(formatRule(r));
  }
  return out;
}

// A light module with one tcp checker; `failover` lands on line 7.
std::string lightXml(const std::string& failover, const std::string& mode = "light") {
  return "<!DOCTYPE safe>\n<safe>\n<service mode=\"" + mode + "\">\n<check>\n" +
         "<tcp ident=\"web\"><to addr=\"127.0.0.1\" port=\"80\"/></tcp>\n</check>\n" + failover +
         "\n</service>\n</safe>\n";
}

std::string moduleRulesError(const std::string& xml) {
  Result<RuleSet> r = moduleRules(load(xml));
  EXPECT_FALSE(r.ok());
  return r.status().message();
}

TEST(BuiltinRules, LightWithCheckers) {
  config::ModuleConfig m = load(R"(<!DOCTYPE safe>
<safe>
  <service mode="light">
    <check>
      <tcp ident="web"><to addr="127.0.0.1" port="80"/></tcp>
      <ping ident="gw"><to addr="10.0.0.1"/></ping>
      <custom ident="app" exec="check.sh" action="stopstart"/>
      <custom ident="quiet" exec="check.sh"/>
      <module name="db"/>
    </check>
  </service>
</safe>
)");
  std::vector<Rule> rules = builtinRules(m);
  EXPECT_EQ(formatted(rules), (std::vector<std::string>{
                                  "module_failure: if (module.? == down) then wait();",
                                  "t_web: if (tcp.web == down) then restart();",
                                  "p_gw: if (ping.gw == down) then wait();",
                                  "c_app: if (custom.app == down) then stopstart();",
                              }));
  for (const Rule& r : rules) {
    EXPECT_EQ(r.owner, RuleOwner::Checker);
    EXPECT_EQ(r.line, 0);
  }
}

TEST(BuiltinRules, LightWithoutCheckersHasNone) {
  EXPECT_TRUE(builtinRules(loadFile("light_demo.xml")).empty());
}

TEST(BuiltinRules, MirrorWithEveryChecker) {
  // all_checkers.xml: <interface check="off"> and <virtual_addr check="off">, but explicit
  // intf and ip checkers, a splitbrain checker and rfs without syncdelta.
  EXPECT_EQ(formatted(builtinRules(loadFile("all_checkers.xml"))),
            (std::vector<std::string>{
                "degraded_server: if (remote.rfs.degraded == up) then wait();",
                "splitbrain_failure: if (splitbrain.uptodate == down) then wait();",
                "interface_failure: if (intf.? == down) then wait();",
                "module_failure: if (module.? == down) then wait();",
                "ip_failure: if (ip.? == down) then stopstart();",
                "t_web: if (tcp.web == down) then stopstart();",
                "p_gateway: if (ping.gateway == down) then wait();",
                "c_appcheck: if (custom.appcheck == down) then restart();",
            }));
}

TEST(BuiltinRules, MirrorWithSyncdelta) {
  std::vector<Rule> rules = builtinRules(loadFile("mirror_kvm.xml"));
  ASSERT_EQ(rules.size(), 3u);
  EXPECT_EQ(formatRule(rules[0]),
            "rfs_forceuptodate: if (heartbeat.* == down && cluster() == down && rfs.synced == up "
            "&& rfs.uptodate == down) then rfs.uptodate=up;");
  EXPECT_EQ(rules[0].owner, RuleOwner::Rfs);
  EXPECT_EQ(rules[0].action.kind, ActionKind::Assign);
  EXPECT_EQ(rules[1].label, "degraded_server");
  EXPECT_EQ(formatRule(rules[2]), "c_vmcheck: if (custom.vmcheck == down) then restart();");
}

TEST(BuiltinRules, FarmVipChecks) {
  EXPECT_EQ(formatted(builtinRules(loadFile("farm_apache.xml"))),
            (std::vector<std::string>{
                "interface_failure: if (intf.? == down) then wait();",
                "ip_failure: if (ip.? == down) then stopstart();",
                "t_HTTP_APACHE: if (tcp.HTTP_APACHE == down) then restart();",
            }));
}

TEST(ModuleRules, UserBlocksAndLuaDisable) {
  Result<RuleSet> r = moduleRules(loadFile("mirror_postgresql.xml"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::vector<std::string> labels;
  for (const Rule& rule : r->rules) {
    labels.push_back(rule.label);
  }
  EXPECT_EQ(labels,
            (std::vector<std::string>{"degraded_server", "interface_failure", "t_pg", "pg_down"}));
  EXPECT_EQ(r->rules.back().owner, RuleOwner::User);
  EXPECT_EQ(r->rules.back().line, 41);
  EXPECT_EQ(r->rules.back().column, 1);
}

TEST(ModuleRules, ExtendsNoReplacesInPlace) {
  Result<RuleSet> r = moduleRules(
      load(lightXml("<failover extends=\"no\"><![CDATA[\nx: if (tcp.web == up) then stop();\n"
                    "t_web: if (tcp.web == down) then stopstart();\n]]></failover>")));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(formatted(r->rules), (std::vector<std::string>{
                                     "t_web: if (tcp.web == down) then stopstart();",
                                     "x: if (tcp.web == up) then stop();",
                                 }));
  EXPECT_EQ(r->rules[0].owner, RuleOwner::User);
}

TEST(ModuleRules, Errors) {
  EXPECT_EQ(moduleRulesError(lightXml(
                "<failover><![CDATA[\n  t_web: if (tcp.web == down) then stop();\n]]></failover>")),
            "userconfig.xml:8:3: rule label 't_web' is already a built-in rule (expected another "
            "label; with <failover extends=\"no\"> a user rule replaces the built-in rule of its "
            "label)");
  EXPECT_EQ(moduleRulesError(lightXml(
                "<failover><![CDATA[\na: if (remote.tcp.web == down) then stop();\n]]></failover>",
                "light")),
            "userconfig.xml:8:1: rule a reads a remote resource, but a light module has no peer "
            "resources (expected local resources only)");
  EXPECT_EQ(moduleRulesError(
                lightXml("<failover><![CDATA[\na: if (tcp.web == down) then stop();\n]]><![CDATA[\n"
                         "a: if (tcp.web == up) then stop();\n]]></failover>")),
            "userconfig.xml:10:1: duplicate rule label 'a' (expected a label not already used at "
            "line 8)");
  EXPECT_EQ(moduleRulesError(lightXml(
                "<failover><![CDATA[\n--Lua Rules\nRules.disable(\"t_wbe\")\n]]></failover>")),
            "userconfig.xml:9:16: no rule 't_wbe' to disable (expected the label of a built-in or "
            "user rule)");
  // Parse errors keep their file positions.
  EXPECT_EQ(moduleRulesError(lightXml(
                "<failover><![CDATA[\na: if (tcp.web == dwn) then stop();\n]]></failover>")),
            "userconfig.xml:8:19: unknown state 'dwn' (expected init, down, up or unknown)");
}

TEST(ModuleRules, DisableAbsentStaticBuiltinIsAccepted) {
  Result<RuleSet> r =
      moduleRules(load(lightXml("<failover><![CDATA[\n--Lua Rules\nRules.disable(\"ip_failure\")\n"
                                "Rules.disable(\"t_web\")\n]]></failover>")));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->rules.empty());
}

TEST(ModuleRules, ReplicationRulesAreProtected) {
  config::ModuleConfig m = loadFile("mirror_kvm.xml");
  m.failover->extends = false;
  m.failover->blocks = {{"--Lua Rules\nRules.disable(\"degraded_server\")", 30}};
  Result<RuleSet> r = moduleRules(m);
  EXPECT_EQ(r.status().message(),
            m.file +
                ":31:16: rule 'degraded_server' is a replication rule, which cannot be "
                "disabled (expected another label)");
  m.failover->blocks = {{"degraded_server: if (rfs.uptodate == up) then wait();", 30}};
  r = moduleRules(m);
  EXPECT_EQ(r.status().message(),
            m.file +
                ":30:1: rule label 'degraded_server' is a replication rule, which "
                "cannot be replaced (expected another label)");
}

}  // namespace
}  // namespace halo::core
