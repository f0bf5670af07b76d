#pragma once
// Helpers shared by the rfs benchmark programs (halo-rfs-bench: rfs_bench.cc, and
// halo-rfs-fastbench: fast_resync_bench.cc): private namespaces, child processes, the
// pseudo-random generator of the trees.

#include <sys/resource.h>
#include <sys/time.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "base/time_source.h"

namespace halo::rfs::bench {

// splitmix64: several GB/s per core, and its output does not compress.
inline uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline double seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

// Spawns argv[0] (PATH search) and waits for it, at most `timeout`; on timeout the child is
// killed (SIGKILL, by its pid) and reaped. `status` and `usage` (the child and the descendants
// it waited for) are filled when it exited. With `stdout_path`, the child's standard output goes
// to that file (created or truncated).
bool spawnAndWait(TimeSource& time, const std::vector<std::string>& args,
                  std::chrono::seconds timeout, int* status, rusage* usage, std::string* why,
                  const std::string& stdout_path = "");

// "exit status 3", "killed by signal 9".
std::string describeStatus(int status);

// Private mount and network namespaces, with loopback up. Must run before any thread starts.
bool enterPrivateNamespaces(std::string& why);

}  // namespace halo::rfs::bench
