#include "config/cluster_config.h"

#include <gtest/gtest.h>

namespace halo::config {
namespace {

const std::string kValid = std::string(HALO_SOURCE_DIR) + "/test/corpus/config/valid/";

TEST(ClusterConfig, TwoLans) {
  Result<ClusterConfig> c = parseClusterConfigFile(kValid + "cluster_two_lans.xml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->port, 4800);
  EXPECT_EQ(c->pulse, Millis(100));
  EXPECT_EQ(c->mlost_count, 20);
  EXPECT_EQ(c->slost_count, 10);
  ASSERT_EQ(c->lans.size(), 2u);
  EXPECT_EQ(c->lans[0].name, "default");
  EXPECT_TRUE(c->lans[0].command);
  EXPECT_FALSE(c->lans[1].command);
  EXPECT_EQ(c->lans[0].line, 3);
  EXPECT_EQ(c->lans[1].nodes[0].laddr, "10.0.0.1");
  EXPECT_EQ(c->lans[1].nodes[1].addr, "[fd00::2]");
  EXPECT_EQ(c->nodeNames(), (std::vector<std::string>{"node1", "node2", "node3"}));
  ASSERT_NE(c->findLan("repli"), nullptr);
  EXPECT_EQ(c->findLan("repli")->nodes.size(), 2u);
  EXPECT_EQ(c->findLan("nope"), nullptr);
  EXPECT_EQ(c->commandLan()->name, "default");
  EXPECT_NE(c->lans[0].findNode("node3"), nullptr);
  EXPECT_EQ(c->lans[1].findNode("node3"), nullptr);
}

TEST(ClusterConfig, DefaultsAndObsoleteAttributes) {
  Result<ClusterConfig> c = parseClusterConfigFile(kValid + "cluster_single_lan.xml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->pulse, Millis(200));
  EXPECT_EQ(c->mlost_count, 80);
  EXPECT_EQ(c->commandLan()->name, "default");  // the first lan by default
  ASSERT_EQ(c->warnings.size(), 1u);
  EXPECT_NE(c->warnings[0].find("'console' is obsolete"), std::string::npos);
}

TEST(ClusterConfig, FirstLanNotExplicitlyOffCarriesCommands) {
  Result<ClusterConfig> c = parseClusterConfig(R"(<cluster><lans>
    <lan name="a" command="off"><node name="n1" addr="10.0.0.1"/></lan>
    <lan name="b"><node name="n1" addr="10.0.1.1"/></lan>
  </lans></cluster>)",
                                               "c.xml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->commandLan()->name, "b");
}

TEST(ClusterConfig, Errors) {
  struct Case {
    const char* xml;
    const char* message;
  };
  const Case cases[] = {
      {"<cluster/>", "c.xml:1: <cluster> has no <lans> (expected exactly one)"},
      {"<cluster><lans/></cluster>", "c.xml:1: <lans> has no <lan> (expected at least one)"},
      {"<cluster><lans/><lans/></cluster>",
       "c.xml:1: duplicate <lans> in <cluster> (only one is allowed; the first is at line 1)"},
      {"<cluster>\n<lans pulse=\"0\"/></cluster>",
       "c.xml:2: <lans> attribute 'pulse': invalid value '0' (expected a duration of at least "
       "1ms)"},
      {"<cluster><lans><lan name=\"a\"><node addr=\"1.2.3.4\"/></lan></lans></cluster>",
       "c.xml:1: <node>: missing required attribute 'name'"},
      {"<cluster><lans><lan name=\"a\"><node name=\"n\" addr=\"1.2.3.4\" laddr=\"x\"/></lan>"
       "</lans></cluster>",
       "c.xml:1: <node> attribute 'laddr': invalid value 'x' (expected an IPv4 or IPv6 "
       "address)"},
      {"<cluster><lans><lan name=\"a\" command=\"off\"><node name=\"n\" addr=\"1.2.3.4\"/>"
       "</lan></lans></cluster>",
       "c.xml:1: <lans>: every <lan> has command=\"off\" (expected one lan to carry commands)"},
      {"<safe/>", "c.xml:1: malformed XML: the root element must be <cluster>, not <safe>"},
  };
  for (const Case& c : cases) {
    Result<ClusterConfig> r = parseClusterConfig(c.xml, "c.xml");
    ASSERT_FALSE(r.ok()) << c.xml;
    EXPECT_EQ(r.status().message(), c.message);
  }
}

TEST(ClusterConfig, MissingFileIsNotFound) {
  Result<ClusterConfig> r = parseClusterConfigFile("/nonexistent/cluster.xml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::NotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/cluster.xml"), std::string::npos);
}

}  // namespace
}  // namespace halo::config
