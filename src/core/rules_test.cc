#include "core/rules.h"

#include <gtest/gtest.h>

#include "core/rule_eval.h"

namespace halo::core {
namespace {

constexpr const char* kFile = "userconfig.xml";

RuleSet parseOk(std::string_view text) {
  Result<RuleSet> r = parseRules(text, 40, kFile);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : RuleSet{};
}

std::string parseError(std::string_view text) {
  Result<RuleSet> r = parseRules(text, 40, kFile);
  EXPECT_FALSE(r.ok()) << text;
  EXPECT_EQ(r.status().code(), StatusCode::InvalidArgument);
  return r.status().message();
}

std::string format(std::string_view text) {
  RuleSet s = parseOk(text);
  return s.rules.size() == 1 ? formatRule(s.rules[0]) : "<" + std::to_string(s.rules.size()) + ">";
}

TEST(RulesParse, ReferenceExamples) {
  RuleSet s = parseOk(R"(
    -- the user's rules
    c_db: if (custom.db == down) then stopstart();   -- restart elsewhere
    rfs_forceuptodate: if (heartbeat.* == down && cluster() == down && rfs.synced == up
                           && rfs.uptodate == down) then rfs.uptodate=up;
  )");
  ASSERT_EQ(s.rules.size(), 2u);
  EXPECT_EQ(s.rules[0].label, "c_db");
  EXPECT_EQ(s.rules[0].line, 42);
  EXPECT_EQ(s.rules[0].column, 5);
  EXPECT_EQ(s.rules[0].owner, RuleOwner::User);
  EXPECT_EQ(s.rules[0].action.kind, ActionKind::Stopstart);
  EXPECT_EQ(formatRule(s.rules[0]), "c_db: if (custom.db == down) then stopstart();");
  EXPECT_EQ(s.rules[1].line, 43);
  EXPECT_EQ(formatRule(s.rules[1]),
            "rfs_forceuptodate: if (heartbeat.* == down && cluster() == down && rfs.synced == up "
            "&& rfs.uptodate == down) then rfs.uptodate=up;");
  ASSERT_TRUE(s.rules[1].action.assignment.has_value());
  EXPECT_EQ(s.rules[1].action.assignment->target.toString(), "rfs.uptodate");
  EXPECT_EQ(s.rules[1].action.assignment->state, ResourceState::Up);
  EXPECT_TRUE(s.disables.empty());
}

TEST(RulesParse, ResourcesAndActions) {
  EXPECT_EQ(format("a:if(ip.192.168.1.10!=up)then swap();"),
            "a: if (ip.192.168.1.10 != up) then swap();");
  EXPECT_EQ(format("a: if (remote.ip.fe80::1 == UNKNOWN) then stop();"),
            "a: if (remote.ip.fe80::1 == unknown) then stop();");
  EXPECT_EQ(format("a: if (local.heartbeat.default == init) then wait();"),
            "a: if (heartbeat.default == init) then wait();");
  EXPECT_EQ(format("a-1: if (module.? == down || intf.* != up) then restart();"),
            "a-1: if (module.? == down || intf.* != up) then restart();");
  EXPECT_EQ(format("a: if (cluster ( ) != up) then stop ( ) ;"),
            "a: if (cluster() != up) then stop();");
  EXPECT_EQ(format("a: if (!tcp.x == up) then wait();"), "a: if (!(tcp.x == up)) then wait();");
  RuleSet s = parseOk("a: if (remote.custom.app@host == down) then wait();");
  const ResourceRef& r = s.rules.at(0).condition->resource;
  EXPECT_EQ(r.side, Side::Remote);
  EXPECT_EQ(r.cls, "custom");
  EXPECT_EQ(r.id, "app@host");
}

TEST(RulesParse, EmptyAndCommentOnly) {
  EXPECT_TRUE(parseOk("").rules.empty());
  EXPECT_TRUE(parseOk("  \n -- nothing here\n\t\n").rules.empty());
}

TEST(RulesParse, PrecedenceAndFormatting) {
  // && binds tighter than ||; parentheses survive formatting only where needed.
  EXPECT_EQ(format("a: if (t.a == up || t.b == up && t.c == up) then wait();"),
            "a: if (t.a == up || t.b == up && t.c == up) then wait();");
  RuleSet s = parseOk("a: if (t.a == up || t.b == up && t.c == up) then wait();");
  EXPECT_EQ(s.rules[0].condition->kind, Expr::Kind::Or);
  EXPECT_EQ(s.rules[0].condition->rhs->kind, Expr::Kind::And);
  EXPECT_EQ(format("a: if ((t.a == up || t.b == up) && t.c == up) then wait();"),
            "a: if ((t.a == up || t.b == up) && t.c == up) then wait();");
  EXPECT_EQ(format("a: if (!(t.a == up && t.b == up) || t.c == up) then wait();"),
            "a: if (!(t.a == up && t.b == up) || t.c == up) then wait();");
  // Formatting is re-parsable to the same text.
  const std::string once = format("a: if (!!(t.a==up||t.b!=down)&&(cluster()==up)) then stop();");
  EXPECT_EQ(format(once), once);
}

struct Malformed {
  std::string text;
  std::string message;
};

TEST(RulesParse, MalformedPlainRules) {
  const std::string states = "(expected init, down, up or unknown)";
  const std::vector<Malformed> cases = {
      {"c_db: if (custom.db == dwn) then stop();",
       "userconfig.xml:40:24: unknown state 'dwn' " + states},
      {"c_db: if (custom.db == down) then stop()\n  c_x: if (tcp.a == up) then wait();",
       "userconfig.xml:41:3: missing ';' after the action of rule c_db"},
      {"c_db if (custom.db == down) then stop();",
       "userconfig.xml:40:6: missing ':' after the rule label 'c_db'"},
      {"c_db: when (custom.db == down) then stop();",
       "userconfig.xml:40:7: missing 'if' after 'c_db:' (expected c_db: if (condition) then "
       "action;)"},
      {"c_db: if custom.db == down then stop();",
       "userconfig.xml:40:10: missing '(' after 'if' in rule c_db"},
      {"c_db: if (custom.db == down then stop();",
       "userconfig.xml:40:29: missing ')' after the condition of rule c_db, found 'then'"},
      {"c_db: if (custom.db == down) stop();",
       "userconfig.xml:40:30: missing 'then' after the condition of rule c_db"},
      {"c_db: if (custom.db == down) then reboot();",
       "userconfig.xml:40:35: unknown action 'reboot' in rule c_db (expected stop(), "
       "stopstart(), wait(), restart(), swap() or resource=state)"},
      {"c_db: if (custom.db == down) then stop;",
       "userconfig.xml:40:39: missing '()' after action 'stop' in rule c_db"},
      {"c_db: if (custom.db) then stop();",
       "userconfig.xml:40:20: unexpected ')' after custom.db in rule c_db (expected '==' or '!=')"},
      {"c_db: if (custom.db = down) then stop();",
       "userconfig.xml:40:21: unexpected '=' after custom.db in rule c_db (expected '==' or '!=')"},
      {"c_db: if (db == down) then stop();",
       "userconfig.xml:40:11: invalid resource 'db' (expected [local.|remote.]class.id, e.g. "
       "tcp.web)"},
      {"c_db: if (tcp.w*b == down) then stop();",
       "userconfig.xml:40:15: invalid resource id 'w*b' in 'tcp.w*b' (expected *, ? or a name of "
       "letters, digits and _ - . : @)"},
      {"c_db: if (remote.9x.a == down) then stop();",
       "userconfig.xml:40:18: invalid resource class '9x' in 'remote.9x.a' (expected a name of "
       "letters, digits and _)"},
      {"a: if (tcp.a == down) then stop();\nb: if (tcp.b == down) then stop();\n"
       "a: if (tcp.c == down) then stop();",
       "userconfig.xml:42:1: duplicate rule label 'a' (expected a label not already used at line "
       "40)"},
      {"c_db: if (tcp.a == down) then stop();;",
       "userconfig.xml:40:38: unexpected ';' where a rule starts (expected label: if (condition) "
       "then action;)"},
      {"r: if (cluster() == init) then wait();",
       "userconfig.xml:40:21: cluster() is only up or down, not 'init' (expected up or down)"},
      {"r: if (tcp.a == down & tcp.b == down) then wait();",
       "userconfig.xml:40:22: unexpected '&' in rule r (expected '&&')"},
      {"r: if (tcp.a == down | tcp.b == down) then wait();",
       "userconfig.xml:40:22: unexpected '|' in rule r (expected '||')"},
      {"r: if (tcp.a == down && ) then wait();",
       "userconfig.xml:40:25: unexpected ')' in the condition of rule r (expected resource == "
       "state, cluster() == up|down, '!' or '(')"},
      {"r: if (tcp.a == ) then wait();",
       "userconfig.xml:40:17: missing state after '==' " + states},
      {"r: if (tcp.a == down) then tcp.* = up;",
       "userconfig.xml:40:28: cannot assign wildcard resource tcp.* in rule r (expected a named "
       "resource)"},
      {"r: if (tcp.a == down) then remote.rfs.uptodate = up;",
       "userconfig.xml:40:28: cannot assign remote resource remote.rfs.uptodate in rule r "
       "(expected a local resource)"},
      {"r: if (tcp.a == down) then rfs.uptodate == up;",
       "userconfig.xml:40:41: missing '=' after rfs.uptodate in the action of rule r (expected "
       "resource=state)"},
      {"r: if (tcp.a == down) then rfs.uptodate = upp;",
       "userconfig.xml:40:43: unknown state 'upp' " + states},
      {"r: if (tcp.a == down) then ;",
       "userconfig.xml:40:28: missing action after 'then' in rule r (expected stop(), "
       "stopstart(), wait(), restart(), swap() or resource=state)"},
      {"r: if (cluster == up) then wait();",
       "userconfig.xml:40:16: missing '()' after cluster in rule r"},
      {"Implicit_wakeup: if (tcp.a == up) then wait();",
       "userconfig.xml:40:1: rule label 'Implicit_wakeup' is reserved (expected another label)"},
      {"-- comment\n\n  r: if (tcp.a == dwn) then wait();",
       "userconfig.xml:42:19: unknown state 'dwn' " + states},
      {"r: if ((tcp.a == up) then wait();",
       "userconfig.xml:40:22: missing ')' after the condition of rule r, found 'then'"},
      {"r: if ((tcp.a == up then wait();",
       "userconfig.xml:40:21: missing ')' in the condition of rule r, found 'then'"},
      {"r: if (tcp.a == up) then wait();\nr2: if (tcp.a == up) then wait()",
       "userconfig.xml:41:33: missing ';' after the action of rule r2"},
  };
  ASSERT_GE(cases.size(), 15u);
  for (const Malformed& c : cases) {
    EXPECT_EQ(parseError(c.text), c.message) << c.text;
  }
}

TEST(RulesParse, NestingIsBounded) {
  const std::string deep =
      "r: if (" + std::string(70, '(') + "t.a == up" + std::string(71, ')') + " then wait();";
  EXPECT_EQ(parseError(deep),
            "userconfig.xml:40:72: condition of rule r nested too deeply (expected at most 64 "
            "levels of '(' and '!')");
  const std::string ok =
      "r: if (" + std::string(30, '(') + "t.a == up" + std::string(31, ')') + " then wait();";
  EXPECT_EQ(parseOk(ok).rules.size(), 1u);
}

TEST(RulesParse, FirstColumnShiftsTheFirstLineOnly) {
  Result<RuleSet> r = parseRules(" r: if (tcp.a == dwn) then wait();", 7, "u.xml", 20);
  EXPECT_EQ(r.status().message(), "u.xml:7:37: unknown state 'dwn' " +
                                      std::string("(expected init, down, up or unknown)"));
  r = parseRules("\nr: if (tcp.a == dwn) then wait();", 7, "u.xml", 20);
  EXPECT_EQ(r.status().message(), "u.xml:8:17: unknown state 'dwn' " +
                                      std::string("(expected init, down, up or unknown)"));
}

TEST(RulesLua, ReferenceExample) {
  RuleSet s = parseOk(R"(
  --Lua Rules
  Rules = Rules + { custom_failure=if_then("custom.AppChecker","down",Action.stopstart),
                    _group="checker" }
  Rules.disable("ip_failure")
  -- a comment
  Rules = Rules + {
    a=if_then('remote.tcp.?', "UP", Action.wait),
    b=if_then("ip.10.0.0.1", "unknown", Action.swap);
  };
  )");
  ASSERT_EQ(s.rules.size(), 3u);
  EXPECT_EQ(formatRule(s.rules[0]),
            "custom_failure: if (custom.AppChecker == down) then stopstart();");
  EXPECT_EQ(s.rules[0].group, "checker");
  EXPECT_EQ(s.rules[0].line, 42);
  EXPECT_EQ(s.rules[0].column, 21);
  EXPECT_EQ(formatRule(s.rules[1]), "a: if (remote.tcp.? == up) then wait();");
  EXPECT_EQ(s.rules[1].group, "");
  EXPECT_EQ(formatRule(s.rules[2]), "b: if (ip.10.0.0.1 == unknown) then swap();");
  ASSERT_EQ(s.disables.size(), 1u);
  EXPECT_EQ(s.disables[0].label, "ip_failure");
  EXPECT_EQ(s.disables[0].line, 44);
  EXPECT_EQ(s.disables[0].column, 18);
}

TEST(RulesLua, Malformed) {
  const std::string unsupported =
      "unsupported Lua statement (Halo supports Rules + {..=if_then(..)} and Rules.disable(..))";
  const std::string head = "--Lua Rules\n";
  const std::vector<Malformed> cases = {
      {head + "Rules = {}", "userconfig.xml:41:1: " + unsupported},
      {head + "  print(\"x\")", "userconfig.xml:41:3: " + unsupported},
      {head + "Rules.enable(\"x\")", "userconfig.xml:41:1: " + unsupported},
      {head + "Rules = Rules + { x=if_then(\"tcp.a\",\"down\",Action.reboot) }",
       "userconfig.xml:41:44: unknown action 'Action.reboot' in rule x (expected Action.stop, "
       "Action.stopstart, Action.wait, Action.restart or Action.swap)"},
      {head + "Rules = Rules + { x=if_then(\"tcp.a\",\"dwn\",Action.wait) }",
       "userconfig.xml:41:38: unknown state 'dwn' (expected init, down, up or unknown)"},
      {head + "Rules = Rules + { x=if_then(\"tcp\",\"down\",Action.wait) }",
       "userconfig.xml:41:30: invalid resource 'tcp' (expected [local.|remote.]class.id, e.g. "
       "tcp.web)"},
      {head + "Rules = Rules + { x=when(\"tcp.a\",\"down\",Action.wait) }",
       "userconfig.xml:41:21: missing if_then(..) for rule x (expected "
       "x=if_then(\"resource\", \"state\", Action.x))"},
      {head + "Rules = Rules + { x=if_then(\"tcp.a\" \"down\",Action.wait) }",
       "userconfig.xml:41:37: missing ',' after the resource of rule x, found '\"'"},
      {head + "Rules.disable(\"ip_failure)",
       "userconfig.xml:41:15: unterminated string (expected a closing \" on the same line)"},
      {head + "Rules = Rules + { x=if_then(\"tcp.a\",\"down\",Action.wait) y=1 }",
       "userconfig.xml:41:57: missing ',' or '}' in Rules + {..}, found 'y'"},
      {head + "Rules = Rules + { x=if_then(\"tcp.a\",\"down\",Action.wait), x=if_then(\"tcp.b\","
              "\"down\",Action.wait) }",
       "userconfig.xml:41:58: duplicate rule label 'x' (expected a label not already used at "
       "line 41)"},
  };
  for (const Malformed& c : cases) {
    EXPECT_EQ(parseError(c.text), c.message) << c.text;
  }
}

bool holds(std::string_view condition, const ResourceView& view) {
  RuleSet s = parseOk("r: if (" + std::string(condition) + ") then wait();");
  return !s.rules.empty() && evaluate(*s.rules[0].condition, view);
}

TEST(RuleEval, Wildcards) {
  MapResourceView v;
  v.set("heartbeat.default", ResourceState::Down);
  v.set("heartbeat.flow", ResourceState::Down);
  v.set("tcp.a", ResourceState::Up);
  v.set("tcp.b", ResourceState::Down);
  v.set("tcpx.c", ResourceState::Down);  // another class sharing a prefix
  EXPECT_TRUE(holds("heartbeat.* == down", v));
  EXPECT_TRUE(holds("heartbeat.? == down", v));
  EXPECT_FALSE(holds("tcp.* == down", v));
  EXPECT_TRUE(holds("tcp.? == down", v));
  EXPECT_FALSE(holds("tcp.* != down", v));  // tcp.b does not differ
  EXPECT_TRUE(holds("tcp.? != down", v));
  EXPECT_TRUE(holds("tcp.* != init", v));
  EXPECT_FALSE(holds("tcp.? == init", v));
  // A class without resources: no wildcard comparison holds, whatever the operator.
  EXPECT_FALSE(holds("ip.* == down", v));
  EXPECT_FALSE(holds("ip.? == down", v));
  EXPECT_FALSE(holds("ip.* != down", v));
  EXPECT_FALSE(holds("ip.? != down", v));
  EXPECT_TRUE(holds("!(ip.? == down)", v));
  // Remote resources are a separate table.
  EXPECT_FALSE(holds("remote.tcp.? == down", v));
  v.set(Side::Remote, "tcp.a", ResourceState::Down);
  EXPECT_TRUE(holds("remote.tcp.* == down", v));
  EXPECT_TRUE(holds("local.tcp.a == up && remote.tcp.a == down", v));
}

TEST(RuleEval, AbsentResourceIsUnknown) {
  MapResourceView v;
  EXPECT_TRUE(holds("tcp.missing == unknown", v));
  EXPECT_FALSE(holds("tcp.missing == init", v));
  EXPECT_FALSE(holds("tcp.missing == down", v));
  EXPECT_TRUE(holds("tcp.missing != down", v));
  EXPECT_TRUE(holds("remote.rfs.uptodate != up", v));
  v.set("tcp.missing", ResourceState::Init);
  EXPECT_TRUE(holds("tcp.missing == init", v));
}

TEST(RuleEval, PrecedenceAndCluster) {
  MapResourceView v;
  v.set("t.a", ResourceState::Up);
  v.set("t.b", ResourceState::Down);
  v.set("t.c", ResourceState::Down);
  // a || (b && c) is true; (a || b) && c ... both true here, so vary: b && c false.
  EXPECT_TRUE(holds("t.a == up || t.b == up && t.c == up", v));
  EXPECT_FALSE(holds("(t.a == up || t.b == up) && t.c == up", v));
  EXPECT_FALSE(holds("!t.a == up || t.b == up", v));
  EXPECT_TRUE(holds("!(t.a == up && t.b == up)", v));
  EXPECT_TRUE(holds("cluster() == down", v));
  EXPECT_FALSE(holds("cluster() == up", v));
  v.setClusterUp(true);
  EXPECT_TRUE(holds("cluster() == up && cluster() != down", v));
}

TEST(RuleEval, ReadsInitResource) {
  MapResourceView v;
  v.set("ping.gw", ResourceState::Init);
  v.set("intf.a", ResourceState::Up);
  auto reads = [&](std::string_view cond) {
    RuleSet s = parseOk("r: if (" + std::string(cond) + ") then wait();");
    return readsInitResource(*s.rules.at(0).condition, v);
  };
  EXPECT_TRUE(reads("ping.gw == down"));
  EXPECT_TRUE(reads("intf.? == down || !(ping.? == up)"));
  EXPECT_FALSE(reads("intf.? == down"));
  EXPECT_FALSE(reads("ping.other == down"));
  EXPECT_FALSE(reads("cluster() == down"));
  EXPECT_FALSE(reads("remote.ping.gw == down"));
}

}  // namespace
}  // namespace halo::core
