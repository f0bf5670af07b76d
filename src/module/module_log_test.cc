#include "module/module_log.h"

#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <utility>

#include <gtest/gtest.h>

#include "module/resource_store.h"
#include "sys/test_temp_dir.h"

namespace halo {
namespace {

using testutil::readFile;
using testutil::TempDir;

// 2026-11-26 18:40:01.123456 UTC
const SystemTime kT0 = SystemTime(std::chrono::microseconds(1795718401123456));

using Captured = std::vector<std::pair<int, std::string>>;

class CaptureSink : public SyslogSink {
 public:
  explicit CaptureSink(Captured* out) : out_(out) {}
  void write(int priority, std::string_view line) override {
    if (out_ != nullptr) {
      out_->emplace_back(priority, std::string(line));
    }
  }

 private:
  Captured* out_;
};

class ModuleLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Log dates are local time: pin the zone so the expected lines are exact.
    ::setenv("TZ", "UTC", 1);
    ::tzset();
  }
  ModuleLog openLog(ModuleLogOptions options = {}) {
    Result<ModuleLog> log = ModuleLog::open(db(), "web", std::make_unique<CaptureSink>(&syslog_),
                                            options);
    EXPECT_TRUE(log.ok()) << log.status().toString();
    return std::move(log).value();
  }
  std::string db() const { return dir_.file("module.db"); }

  TempDir dir_;
  Captured syslog_;
};

TEST(LogLevelTest, LettersRoundTrip) {
  const std::string letters = "CEUSID";
  for (char c : letters) {
    Result<LogLevel> l = parseLogLevel(c);
    ASSERT_TRUE(l.ok());
    EXPECT_EQ(logLevelLetter(*l), c);
    EXPECT_EQ(shownByDefault(*l), c != 'I' && c != 'D');
  }
  Result<LogLevel> bad = parseLogLevel('X');
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "log level 'X' is not one of C, E, U, S, I, D");
}

TEST_F(ModuleLogTest, AppendsFormatsAndCopiesToSyslog) {
  ModuleLog log = openLog();
  ASSERT_TRUE(log.append(kT0, LogLevel::State, "heart", "Local state ALONE Ready").ok());
  ASSERT_TRUE(log.append(kT0 + std::chrono::seconds(1), LogLevel::Critical, "errd",
                         "Action restart")
                  .ok());
  Result<std::vector<std::string>> lines = log.lastLines(10, false);
  ASSERT_TRUE(lines.ok());
  EXPECT_EQ(*lines, (std::vector<std::string>{
                        "| 2026-11-26 18:40:01.123456 | heart | S | Local state ALONE Ready |",
                        "| 2026-11-26 18:40:02.123456 | errd | C | Action restart |"}));
  EXPECT_EQ(syslog_, (Captured{{LOG_NOTICE, "web | heart | Local state ALONE Ready"},
                               {LOG_CRIT, "web | errd | Action restart"}}));
}

TEST_F(ModuleLogTest, MapsEveryLevelToASyslogPriority) {
  ModuleLog log = openLog();
  for (char c : std::string("CEUSID")) {
    ASSERT_TRUE(log.append(kT0, *parseLogLevel(c), "x", "m").ok());
  }
  std::vector<int> priorities;
  for (const auto& [p, line] : syslog_) {
    priorities.push_back(p);
  }
  EXPECT_EQ(priorities, (std::vector<int>{LOG_CRIT, LOG_ERR, LOG_NOTICE, LOG_NOTICE, LOG_INFO,
                                          LOG_DEBUG}));
}

TEST_F(ModuleLogTest, VerboseAddsInfoAndDebugAndCountTakesTheLast) {
  ModuleLog log = openLog();
  const LogLevel levels[] = {LogLevel::Info, LogLevel::User, LogLevel::Debug, LogLevel::Error,
                             LogLevel::Info};
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(log.append(kT0, levels[i], "c", "m" + std::to_string(i)).ok());
  }
  auto messages = [&](int count, bool verbose) {
    std::vector<std::string> out;
    const std::vector<std::string> lines = *log.lastLines(count, verbose);
    for (const std::string& line : lines) {
      out.push_back(line.substr(line.size() - 4, 2));
    }
    return out;
  };
  EXPECT_EQ(messages(10, false), (std::vector<std::string>{"m1", "m3"}));
  EXPECT_EQ(messages(-1, true), (std::vector<std::string>{"m0", "m1", "m2", "m3", "m4"}));
  EXPECT_EQ(messages(2, true), (std::vector<std::string>{"m3", "m4"}));
  EXPECT_EQ(messages(1, false), (std::vector<std::string>{"m3"}));
  EXPECT_TRUE(messages(0, true).empty());
}

TEST_F(ModuleLogTest, MessagesAreSingleLine) {
  ModuleLog log = openLog();
  ASSERT_TRUE(log.append(kT0, LogLevel::Error, "user\nplug", "line1\nline2\r\nline3\r").ok());
  EXPECT_EQ(log.lastLines(1, false)->at(0),
            "| 2026-11-26 18:40:01.123456 | user / plug | E | line1 / line2 / line3 /  |");
  EXPECT_EQ(syslog_.at(0).second, "web | user / plug | line1 / line2 / line3 / ");
}

TEST_F(ModuleLogTest, SavesToAFile) {
  ModuleLog log = openLog();
  ASSERT_TRUE(log.append(kT0, LogLevel::User, "a", "shown").ok());
  ASSERT_TRUE(log.append(kT0, LogLevel::Debug, "a", "verbose only").ok());
  ASSERT_TRUE(log.saveTo(dir_.file("log.txt"), false).ok());
  EXPECT_EQ(readFile(dir_.file("log.txt")), "| 2026-11-26 18:40:01.123456 | a | U | shown |\n");
  ASSERT_TRUE(log.saveTo(dir_.file("log.txt"), true).ok());
  EXPECT_NE(readFile(dir_.file("log.txt")).find("| D | verbose only |\n"), std::string::npos);
  EXPECT_FALSE(log.saveTo(dir_.file("missing/log.txt"), true).ok());
}

TEST_F(ModuleLogTest, KeepsAtMostMaxEntries) {
  ModuleLog log = openLog({.max_entries = 50, .trim_every = 10});
  for (int i = 1; i <= 125; ++i) {
    ASSERT_TRUE(log.append(kT0, LogLevel::User, "c", std::to_string(i)).ok());
  }
  std::vector<std::string> all = *log.lastLines(-1, true);
  // Trimmed at 120 down to ids 71..120, then 121..125 appended.
  ASSERT_EQ(all.size(), 55u);
  EXPECT_NE(all.front().find("| 71 |"), std::string::npos);
  EXPECT_NE(all.back().find("| 125 |"), std::string::npos);
}

TEST_F(ModuleLogTest, TwoProcessesAppendConcurrently) {
  constexpr int kPerProcess = 400;
  { ModuleLog created = openLog(); }  // schema exists before the race, as after install
  pid_t children[2];
  for (int c = 0; c < 2; ++c) {
    children[c] = ::fork();
    ASSERT_GE(children[c], 0);
    if (children[c] == 0) {
      // Child: its own connection, opened after fork; no gtest assertions here.
      Result<ModuleLog> log = ModuleLog::open(db(), "web", std::make_unique<CaptureSink>(nullptr));
      int failures = log.ok() ? 0 : 1;
      for (int i = 0; log.ok() && i < kPerProcess; ++i) {
        const std::string msg = "p" + std::to_string(c) + " " + std::to_string(i);
        failures += log->append(kT0, LogLevel::Info, "race", msg).ok() ? 0 : 1;
      }
      ::_exit(failures == 0 ? 0 : 1);
    }
  }
  for (pid_t child : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  ModuleLog log = openLog();
  std::vector<std::string> lines = *log.lastLines(-1, true);
  ASSERT_EQ(lines.size(), 2u * kPerProcess);
  int next[2] = {0, 0};  // each process's lines arrive complete and in its order
  for (const std::string& line : lines) {
    const size_t at = line.find("| I | p") + 7;
    const int c = line[at] - '0';
    ASSERT_TRUE(c == 0 || c == 1) << line;
    EXPECT_EQ(line.substr(at + 2, line.size() - at - 4), std::to_string(next[c])) << line;
    ++next[c];
  }
  EXPECT_EQ(next[0], kPerProcess);
  EXPECT_EQ(next[1], kPerProcess);
}

TEST_F(ModuleLogTest, SharesItsFileWithTheResourceStore) {
  ModuleLog log = openLog();
  Result<ResourceStore> store = ResourceStore::open(db());
  ASSERT_TRUE(store.ok()) << store.status().toString();
  ASSERT_TRUE(store->set("ping.gw", ResourceState::Up, "pingcheck", kT0).ok());
  ASSERT_TRUE(log.append(kT0, LogLevel::User, "c", "m").ok());
  Result<ModuleLog> again = ModuleLog::open(db(), "web", std::make_unique<CaptureSink>(nullptr));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->lastLines(-1, true)->size(), 1u);
}

}  // namespace
}  // namespace halo
