#include "module/resource_store.h"

#include <gtest/gtest.h>

#include "sys/test_temp_dir.h"

namespace halo {
namespace {

using std::chrono::seconds;
using testutil::TempDir;

const SystemTime kT0 = SystemTime(std::chrono::microseconds(1795718401123456));

class ResourceStoreTest : public ::testing::Test {
 protected:
  ResourceStore openStore(ResourceStoreOptions options = {}) {
    Result<ResourceStore> s = ResourceStore::open(dir_.file("module.db"), options);
    EXPECT_TRUE(s.ok()) << s.status().toString();
    return std::move(s).value();
  }
  TempDir dir_;
};

TEST(ResourceStateTest, NamesRoundTrip) {
  for (ResourceState s : {ResourceState::Init, ResourceState::Up, ResourceState::Down,
                          ResourceState::Unknown}) {
    EXPECT_EQ(*parseResourceState(resourceStateName(s)), s);
  }
  EXPECT_EQ(*parseResourceState("UP"), ResourceState::Up);
  Result<ResourceState> bad = parseResourceState("on");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "invalid resource state 'on': expected init, up, down or unknown");
}

TEST(ResourceNameTest, AcceptsClassDotIdAndFarmShares) {
  for (const char* name : {"ping.gw", "heartbeat.192.168.1.10", "connections.fe80::1",
                           "usersetting.rfssyncmode", "custom.my-check", "rfs.*", "FarmProto_0",
                           "state.local"}) {
    EXPECT_TRUE(validateResourceName(name).ok()) << name;
  }
  for (const char* name : {"", "1ping.gw", "ping.", ".gw", "ping gw", "ping.g/w", "pi-ng.gw",
                           "ping.gw\n"}) {
    Status s = validateResourceName(name);
    EXPECT_EQ(s.code(), StatusCode::InvalidArgument) << name;
    EXPECT_NE(s.message().find("expected class.id"), std::string::npos);
  }
  EXPECT_FALSE(validateResourceName("a." + std::string(200, 'b')).ok());
}

TEST_F(ResourceStoreTest, SetReportsChangesAndKeepsTheSetterOfTheChange) {
  ResourceStore store = openStore();
  EXPECT_TRUE(*store.set("ping.gw", ResourceState::Down, "pingcheck", kT0));
  EXPECT_FALSE(*store.set("ping.gw", ResourceState::Down, "other", kT0 + seconds(5)));
  Result<std::optional<ResourceRecord>> r = store.get("ping.gw");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ(**r, (ResourceRecord{"ping.gw", ResourceState::Down, "", "pingcheck", kT0}));

  EXPECT_TRUE(*store.set("ping.gw", ResourceState::Up, "pingcheck", kT0 + seconds(9)));
  EXPECT_EQ((*store.get("ping.gw"))->changed_at, kT0 + seconds(9));
  EXPECT_FALSE(store.get("ping.other")->has_value());
  EXPECT_FALSE(store.set("bad name", ResourceState::Up, "x", kT0).ok());
}

TEST_F(ResourceStoreTest, HistoryFollowsTheMode) {
  ResourceStore store = openStore();
  ASSERT_TRUE(store.set("tcp.db", ResourceState::Up, "tcpcheck", kT0).ok());
  ASSERT_TRUE(store.set("tcp.db", ResourceState::Up, "tcpcheck", kT0 + seconds(1)).ok());
  ASSERT_TRUE(store.set("tcp.db", ResourceState::Up, "user", kT0 + seconds(2),
                        HistoryMode::Always)
                  .ok());
  ASSERT_TRUE(store.set("tcp.db", ResourceState::Down, "tcpcheck", kT0 + seconds(3),
                        HistoryMode::Never)
                  .ok());
  ASSERT_TRUE(store.set("tcp.db", ResourceState::Up, "tcpcheck", kT0 + seconds(4)).ok());
  Result<std::vector<HistoryRecord>> h = store.history("tcp.db", -1);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, (std::vector<HistoryRecord>{
                    {"tcp.db", ResourceState::Up, "", "tcpcheck", kT0},
                    {"tcp.db", ResourceState::Up, "", "user", kT0 + seconds(2)},
                    {"tcp.db", ResourceState::Up, "", "tcpcheck", kT0 + seconds(4)}}));
  Result<std::vector<HistoryRecord>> last = store.history("tcp.db", 1);
  ASSERT_EQ(last->size(), 1u);
  EXPECT_EQ(last->at(0).at, kT0 + seconds(4));
}

TEST_F(ResourceStoreTest, ValuesLeaveTheStateAlone) {
  ResourceStore store = openStore();
  EXPECT_TRUE(*store.setValue("FarmProto_0", "50%", "farm", kT0));
  EXPECT_FALSE(*store.setValue("FarmProto_0", "50%", "farm", kT0 + seconds(1)));
  EXPECT_TRUE(*store.setValue("FarmProto_0", "100%", "farm", kT0 + seconds(2)));
  ResourceRecord r = **store.get("FarmProto_0");
  EXPECT_EQ(r.state, ResourceState::Init);
  EXPECT_EQ(r.value, "100%");
  EXPECT_EQ(r.changed_at, kT0 + seconds(2));

  ASSERT_TRUE(store.set("FarmProto_0", ResourceState::Up, "farm", kT0 + seconds(3)).ok());
  EXPECT_EQ((*store.get("FarmProto_0"))->value, "100%");
  EXPECT_EQ(store.history("FarmProto_0", -1)->size(), 3u);
}

TEST_F(ResourceStoreTest, ListsSortedAndRemoves) {
  ResourceStore store = openStore();
  for (const char* name : {"usersetting.errd", "heartbeat.0", "ping.gw"}) {
    ASSERT_TRUE(store.set(name, ResourceState::Up, "t", kT0).ok());
  }
  std::vector<std::string> names;
  const std::vector<ResourceRecord> records = *store.list();
  for (const ResourceRecord& r : records) {
    names.push_back(r.name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"heartbeat.0", "ping.gw", "usersetting.errd"}));

  ASSERT_TRUE(store.remove("ping.gw").ok());
  EXPECT_FALSE(store.get("ping.gw")->has_value());
  EXPECT_TRUE(store.history("ping.gw", -1)->empty());
  Status s = store.remove("ping.gw");
  EXPECT_EQ(s.code(), StatusCode::NotFound);
  EXPECT_EQ(s.message(), "no resource 'ping.gw'");
  EXPECT_EQ(store.list()->size(), 2u);
}

TEST_F(ResourceStoreTest, KeepsAtMostMaxHistory) {
  ResourceStore store = openStore({.max_history = 20, .trim_every = 5});
  for (int i = 0; i < 43; ++i) {
    ASSERT_TRUE(store.set("ping.gw", i % 2 ? ResourceState::Up : ResourceState::Down, "p",
                          kT0 + seconds(i))
                    .ok());
  }
  std::vector<HistoryRecord> h = *store.history("ping.gw", -1);
  ASSERT_EQ(h.size(), 23u);  // trimmed at 40 down to 21..40, then 41..43
  EXPECT_EQ(h.front().at, kT0 + seconds(20));
  EXPECT_EQ(h.back().at, kT0 + seconds(42));
}

TEST_F(ResourceStoreTest, SurvivesReopen) {
  {
    ResourceStore store = openStore();
    ASSERT_TRUE(store.set("module.db", ResourceState::Down, "modulecheck", kT0).ok());
  }
  ResourceStore store = openStore();
  EXPECT_EQ((*store.get("module.db"))->setter, "modulecheck");
}

}  // namespace
}  // namespace halo
