#include "config/validate.h"

#include <gtest/gtest.h>

namespace halo::config {
namespace {

const std::string kValid = std::string(HALO_SOURCE_DIR) + "/test/corpus/config/valid/";

ClusterConfig twoLans() {
  Result<ClusterConfig> c = parseClusterConfigFile(kValid + "cluster_two_lans.xml");
  EXPECT_TRUE(c.ok()) << c.status().message();
  return *c;
}

ModuleConfig module(std::string_view xml) {
  Result<ModuleConfig> m = parseModuleConfig(xml, "m.xml", {});
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? *m : ModuleConfig{};
}

TEST(ValidateAgainstCluster, MirrorOnTwoNodeLan) {
  ModuleConfig m = module(R"(<safe><service mode="mirror" defaultprim="node2">
    <heart><heartbeat name="repli"/></heart></service></safe>)");
  EXPECT_TRUE(validateAgainstCluster(m, twoLans()).ok());
}

TEST(ValidateAgainstCluster, FlowLanMustJoinTheMirrorNodes) {
  ModuleConfig m = module(R"(<safe><service mode="mirror">
    <heart><heartbeat name="repli"/></heart>
    <rfs><replicated dir="/d"/><flow name="default"/></rfs></service></safe>)");
  Status s = validateAgainstCluster(m, twoLans());
  EXPECT_EQ(s.message(),
            "m.xml:3: <flow> attribute 'name': invalid value 'default' (expected a lan of exactly "
            "2 nodes for a mirror module; lan 'default' has 3: node1, node2, node3)");
}

TEST(ValidateAgainstCluster, HeartbeatLansMustJoinTheSameNodes) {
  ClusterConfig c = twoLans();
  c.lans.push_back(
      {"other", false, {{"node1", "10.9.0.1", "", 0}, {"node3", "10.9.0.3", "", 0}}, 0});
  ModuleConfig m = module(R"(<safe><service mode="mirror">
    <heart><heartbeat name="repli"/><heartbeat name="other"/></heart></service></safe>)");
  EXPECT_EQ(validateAgainstCluster(m, c).message(),
            "m.xml:2: <heartbeat> attribute 'name': invalid value 'other' (expected a lan "
            "joining the same two nodes as lan 'repli': node1, node2)");
}

TEST(ValidateAgainstCluster, FarmUsesAllNodesOfItsLans) {
  Result<ModuleConfig> m = parseModuleConfigFile(kValid + "farm_apache.xml", {});
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_TRUE(validateAgainstCluster(*m, twoLans()).ok());
}

TEST(ValidateAgainstCluster, LightNeedsNothing) {
  ModuleConfig m = module(R"(<safe><service mode="light"/></safe>)");
  EXPECT_TRUE(validateAgainstCluster(m, twoLans()).ok());
}

}  // namespace
}  // namespace halo::config
