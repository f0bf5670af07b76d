// Runs thousands of seeded two-node mirror scenarios. HALO_SIM_SEED=<n> replays one seed with
// its trace; HALO_SIM_SCENARIOS=<n> changes how many run.

#include "sim/mirror_sim.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace halo::sim {
namespace {

void printTrace(uint64_t seed, const ScenarioResult& r) {
  std::fprintf(stderr, "seed %llu failed: %s\n", static_cast<unsigned long long>(seed),
               r.failure.c_str());
  for (const auto& line : r.trace) {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fprintf(stderr, "replay: HALO_SIM_SEED=%llu ./mirror_sim_test\n",
               static_cast<unsigned long long>(seed));
}

TEST(MirrorSimTest, SeededScenariosKeepInvariants) {
  if (const char* s = std::getenv("HALO_SIM_SEED")) {
    const uint64_t seed = std::strtoull(s, nullptr, 10);
    ScenarioResult r = runScenario(seed, ScenarioOptions{.trace = true});
    if (!r.ok) {
      printTrace(seed, r);
    } else {
      for (const auto& line : r.trace) {
        std::fprintf(stderr, "%s\n", line.c_str());
      }
    }
    EXPECT_TRUE(r.ok) << r.failure;
    return;
  }
  int count = 10000;
  if (const char* n = std::getenv("HALO_SIM_SCENARIOS")) {
    count = std::atoi(n);
  }
  const auto t0 = std::chrono::steady_clock::now();
  uint64_t events = 0;
  int pairs = 0;
  int failures = 0;
  for (int i = 0; i < count; ++i) {
    const uint64_t seed = 1000 + static_cast<uint64_t>(i);
    ScenarioResult r = runScenario(seed, ScenarioOptions{});
    events += r.events;
    pairs += r.converged_pair ? 1 : 0;
    if (!r.ok) {
      if (++failures <= 1) {
        printTrace(seed, runScenario(seed, ScenarioOptions{.trace = true}));
      } else if (failures <= 20) {
        std::fprintf(stderr, "seed %llu failed: %s\n", static_cast<unsigned long long>(seed),
                     r.failure.c_str());
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%d scenarios, %llu events, %d ended PRIM+SECOND, %d failed, %.1f s\n", count,
              static_cast<unsigned long long>(events), pairs, failures, secs);
  EXPECT_EQ(failures, 0);
}

}  // namespace
}  // namespace halo::sim
