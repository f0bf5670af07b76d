#include "module/node_db.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <set>

#include <gtest/gtest.h>

#include "module/ports.h"
#include "sys/test_temp_dir.h"

namespace halo {
namespace {

using std::chrono::seconds;
using testutil::TempDir;

const SystemTime kT0 = SystemTime(std::chrono::microseconds(1795718401123456));

class NodeDbTest : public ::testing::Test {
 protected:
  NodeDb openDb(NodeDbOptions options = {}) {
    Result<NodeDb> db = NodeDb::open(path(), options);
    EXPECT_TRUE(db.ok()) << db.status().toString();
    return std::move(db).value();
  }
  std::string path() const { return dir_.file("node.db"); }
  TempDir dir_;
};

TEST_F(NodeDbTest, AssignsSmallestFreeIdsAndListsByName) {
  NodeDb db = openDb();
  EXPECT_EQ(*db.assignModuleId("web", std::nullopt, kT0), 1);
  EXPECT_EQ(*db.assignModuleId("db", std::nullopt, kT0 + seconds(1)), 2);
  EXPECT_EQ(*db.assignModuleId("farm", 5, kT0), 5);
  EXPECT_EQ(*db.assignModuleId("app", std::nullopt, kT0), 3);
  std::vector<ModuleEntry> mods = *db.modules();
  ASSERT_EQ(mods.size(), 4u);
  EXPECT_EQ(mods[0], (ModuleEntry{"app", 3, kT0}));
  EXPECT_EQ(mods[1], (ModuleEntry{"db", 2, kT0 + seconds(1)}));
  EXPECT_EQ((*db.findModuleById(5))->name, "farm");
  EXPECT_FALSE(db.findModuleById(4)->has_value());
  EXPECT_EQ((*db.findModule("web"))->id, 1);
  EXPECT_FALSE(db.findModule("nope")->has_value());
}

TEST_F(NodeDbTest, ReinstallReusesThePreviousIdWhenFree) {
  NodeDb db = openDb();
  ASSERT_EQ(*db.assignModuleId("web", 7, kT0), 7);
  ASSERT_TRUE(db.removeModule("web").ok());
  EXPECT_TRUE(db.modules()->empty());
  EXPECT_EQ(*db.assignModuleId("web", std::nullopt, kT0), 7);

  ASSERT_TRUE(db.removeModule("web").ok());
  ASSERT_EQ(*db.assignModuleId("other", 7, kT0), 7);
  EXPECT_EQ(*db.assignModuleId("web", std::nullopt, kT0), 1);  // 7 taken meanwhile
}

TEST_F(NodeDbTest, RejectsTakenOrOutOfRangeIds) {
  NodeDb db = openDb();
  ASSERT_EQ(*db.assignModuleId("db", 3, kT0), 3);
  Result<int> taken = db.assignModuleId("web", 3, kT0);
  EXPECT_EQ(taken.status().code(), StatusCode::AlreadyExists);
  EXPECT_EQ(taken.status().message(),
            "module id 3 is already used by module 'db'; choose another with -M or uninstall 'db'");
  EXPECT_EQ(db.assignModuleId("web", 0, kT0).status().message(),
            "module id 0 is out of range 1..255");
  EXPECT_FALSE(db.assignModuleId("web", 256, kT0).ok());
  EXPECT_FALSE(db.assignModuleId("../x", std::nullopt, kT0).ok());
  EXPECT_FALSE(db.findModule("web")->has_value());  // nothing half-registered
}

TEST_F(NodeDbTest, InstalledNameNeedsReplace) {
  NodeDb db = openDb();
  ASSERT_EQ(*db.assignModuleId("web", std::nullopt, kT0), 1);
  Result<int> again = db.assignModuleId("web", std::nullopt, kT0);
  EXPECT_EQ(again.status().code(), StatusCode::AlreadyExists);
  EXPECT_EQ(again.status().message(),
            "module 'web' is already installed (id 1); uninstall it first or use -r to replace it");

  EXPECT_EQ(*db.assignModuleId("web", std::nullopt, kT0 + seconds(5), InstallMode::Replace), 1);
  EXPECT_EQ((*db.findModule("web"))->installed_at, kT0 + seconds(5));
  EXPECT_EQ(*db.assignModuleId("web", 9, kT0, InstallMode::Replace), 9);
  EXPECT_EQ(*db.assignModuleId("new", std::nullopt, kT0, InstallMode::Replace), 1);
}

TEST_F(NodeDbTest, RemoveUnknownModuleIsNotFound) {
  NodeDb db = openDb();
  Status s = db.removeModule("web");
  EXPECT_EQ(s.code(), StatusCode::NotFound);
  EXPECT_EQ(s.message(), "module 'web' is not installed");
}

TEST_F(NodeDbTest, RunsOutOfIdsCleanly) {
  NodeDb db = openDb();
  for (int i = 1; i <= kMaxModuleId; ++i) {
    ASSERT_EQ(*db.assignModuleId("m" + std::to_string(i), std::nullopt, kT0), i);
  }
  Result<int> none = db.assignModuleId("last", std::nullopt, kT0);
  EXPECT_EQ(none.status().code(), StatusCode::FailedPrecondition);
}

TEST_F(NodeDbTest, CommandLogFormatsAndKeepsTheLast) {
  ::setenv("TZ", "UTC", 1);
  ::tzset();
  NodeDb db = openDb({.max_commands = 3, .trim_every = 2});
  ASSERT_TRUE(db.logCommand(kT0, "halo", "web", 7017, "START start -m web").ok());
  ASSERT_TRUE(db.logCommand(kT0 + seconds(1), "halo", "web", 7017, "END 0").ok());
  EXPECT_EQ(*db.commandLog(10),
            (std::vector<std::string>{
                "| 2026-11-26 18:40:01.123456 | halo | web | 7017 | START start -m web |",
                "| 2026-11-26 18:40:02.123456 | halo | web | 7017 | END 0 |"}));
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(db.logCommand(kT0, "halo", "", 1, "I line\n" + std::to_string(i)).ok());
  }
  std::vector<std::string> all = *db.commandLog(-1);
  ASSERT_EQ(all.size(), 3u);  // trimmed at id 6 down to 4..6
  EXPECT_EQ(all.back(), "| 2026-11-26 18:40:01.123456 | halo |  | 1 | I line / 3 |");
  EXPECT_EQ(db.commandLog(1)->size(), 1u);
}

TEST_F(NodeDbTest, ConcurrentInstallsGetDistinctIds) {
  { NodeDb created = openDb(); }
  constexpr int kPerProcess = 20;
  pid_t children[2];
  for (int c = 0; c < 2; ++c) {
    children[c] = ::fork();
    ASSERT_GE(children[c], 0);
    if (children[c] == 0) {
      Result<NodeDb> db = NodeDb::open(path());
      int failures = db.ok() ? 0 : 1;
      for (int i = 0; db.ok() && i < kPerProcess; ++i) {
        const std::string name = "p" + std::to_string(c) + "_" + std::to_string(i);
        failures += db->assignModuleId(name, std::nullopt, kT0).ok() ? 0 : 1;
        failures += db->logCommand(kT0, "halo", name, ::getpid(), "END 0").ok() ? 0 : 1;
      }
      ::_exit(failures == 0 ? 0 : 1);
    }
  }
  for (pid_t child : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  NodeDb db = openDb();
  std::set<int> ids;
  const std::vector<ModuleEntry> mods = *db.modules();
  for (const ModuleEntry& m : mods) {
    ids.insert(m.id);
  }
  EXPECT_EQ(ids.size(), 2u * kPerProcess);
  EXPECT_EQ(*ids.rbegin(), 2 * kPerProcess);
  EXPECT_EQ(db.commandLog(-1)->size(), 2u * kPerProcess);
}

TEST(ModulePortsTest, DeriveFromTheId) {
  EXPECT_EQ(portsForModuleId(1), (ModulePorts{8888, 5600, 5603, 4803}));
  EXPECT_EQ(portsForModuleId(2), (ModulePorts{8889, 5604, 5607, 4806}));
  static_assert(portsForModuleId(255).heart_udp == 8888 + 254);
}

}  // namespace
}  // namespace halo
