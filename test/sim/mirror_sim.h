#pragma once
// A seeded two-node simulation of the mirror module's decisions (DESIGN 9): two MirrorMachine
// instances, a simulated clock and network (per-direction loss, delay, duplication, reordering,
// partitions), scripts with simulated durations, resyncs, a witness, operator commands, crashes
// and reboots. Invariants are checked after every step; see mirror_sim.cc.

#include <cstdint>
#include <string>
#include <vector>

namespace halo::sim {

struct ScenarioResult {
  bool ok = true;
  std::string failure;             // the broken invariant
  std::vector<std::string> trace;  // filled only when tracing
  uint64_t events = 0;
  bool converged_pair = false;  // ended PRIM+SECOND
};

struct ScenarioOptions {
  int operations = 100;  // random commands and faults before the healing phase
  bool trace = false;
};

ScenarioResult runScenario(uint64_t seed, const ScenarioOptions& options);

}  // namespace halo::sim
