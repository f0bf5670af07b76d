#include "sys/proc_scan.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "sys/process.h"
#include "sys/test_temp_dir.h"

namespace halo::sys {
namespace {

const ProcessInfo* findPid(const std::vector<ProcessInfo>& all, pid_t pid) {
  auto it =
      std::find_if(all.begin(), all.end(), [&](const ProcessInfo& p) { return p.pid == pid; });
  return it == all.end() ? nullptr : &*it;
}

TEST(ScanProcessesTest, FindsSelfAndASpawnedChild) {
  SpawnOptions opts;
  opts.path = "/bin/sleep";
  // A fractional duration unique to this run, so the command line identifies our child.
  const std::string arg = "30." + std::to_string(getpid());
  opts.argv = {"sleep", arg};
  opts.env = currentEnvironment();
  auto child = spawn(opts);
  ASSERT_TRUE(child.ok()) << child.status().toString();

  auto all = scanProcesses();
  ASSERT_TRUE(all.ok()) << all.status().toString();
  const ProcessInfo* self = findPid(*all, getpid());
  ASSERT_NE(self, nullptr);
  EXPECT_EQ(self->comm, "sys_test");
  EXPECT_EQ(self->cmdline.find("sys_test") != std::string::npos, true) << self->cmdline;
  const ProcessInfo* sleeper = findPid(*all, child->pid);
  ASSERT_NE(sleeper, nullptr);
  EXPECT_EQ(sleeper->comm, "sleep");
  EXPECT_EQ(sleeper->cmdline, "sleep " + arg);

  kill(child->pid, SIGKILL);
  int status;
  waitpid(child->pid, &status, 0);
  close(child->pidfd);
}

TEST(ScanProcessesTest, SkipsVanishedAndKeepsKernelThreads) {
  testutil::TempDir dir;
  testutil::writeFile(dir.file("12/comm"), "postgres\n");
  testutil::writeFile(dir.file("12/cmdline"), std::string("postgres\0-D\0/var/lib/pg\0", 24));
  testutil::writeFile(dir.file("13/comm"), "gone\n");  // exited before cmdline was read
  testutil::writeFile(dir.file("14/comm"), "kthreadd\n");
  testutil::writeFile(dir.file("14/cmdline"), "");
  testutil::writeFile(dir.file("self/comm"), "x\n");
  auto all = scanProcesses(dir.path());
  ASSERT_TRUE(all.ok());
  std::sort(all->begin(), all->end(),
            [](const ProcessInfo& a, const ProcessInfo& b) { return a.pid < b.pid; });
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].pid, 12);
  EXPECT_EQ((*all)[0].comm, "postgres");
  EXPECT_EQ((*all)[0].cmdline, "postgres -D /var/lib/pg");
  EXPECT_EQ((*all)[1].comm, "kthreadd");
  EXPECT_EQ((*all)[1].cmdline, "");
  EXPECT_FALSE(scanProcesses(dir.file("missing")).ok());
}

TEST(CommandSucceedsTest, ExitCodeAndTimeout) {
  EXPECT_TRUE(commandSucceeds({"/bin/true"}, Millis(5000)).up);
  const ProbeOutcome f = commandSucceeds({"/bin/false"}, Millis(5000));
  EXPECT_FALSE(f.up);
  EXPECT_EQ(f.detail, "/bin/false: exit code 1");
  const auto start = std::chrono::steady_clock::now();
  const ProbeOutcome slow = commandSucceeds({"/bin/sleep", "20"}, Millis(200));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_FALSE(slow.up);
  EXPECT_EQ(slow.detail, "/bin/sleep 20: no answer within 200 ms (killed)");
  EXPECT_FALSE(commandSucceeds({"sleep", "1"}, Millis(200)).up);  // not absolute
}

TEST(ServiceActiveTest, UnknownAndInvalidNamesAreDown) {
  const ProbeOutcome unknown = serviceActive("halo-no-such-service");
  EXPECT_FALSE(unknown.up);
  EXPECT_NE(unknown.detail.find("halo-no-such-service"), std::string::npos);
  const ProbeOutcome bad = serviceActive("../../bin/true");
  EXPECT_FALSE(bad.up);
  EXPECT_EQ(bad.detail, "invalid service name '../../bin/true'");
  EXPECT_FALSE(serviceActive("--all").up);
}

}  // namespace
}  // namespace halo::sys
