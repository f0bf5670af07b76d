#include "core/data_generation.h"

namespace halo::core {

const char* generationOrderName(GenerationOrder o) {
  switch (o) {
    case GenerationOrder::Same:
      return "same";
    case GenerationOrder::LocalNewer:
      return "local newer";
    case GenerationOrder::RemoteNewer:
      return "remote newer";
    case GenerationOrder::SplitBrain:
      return "split brain";
    case GenerationOrder::Unrelated:
      return "unrelated";
  }
  return "unrelated";
}

GenerationOrder compareGenerations(const DataGeneration& local, const DataGeneration& remote) {
  if (local.current == remote.current) {
    return GenerationOrder::Same;
  }
  if (local.current != 0 && remote.current == 0) {
    return GenerationOrder::LocalNewer;
  }
  if (remote.current != 0 && local.current == 0) {
    return GenerationOrder::RemoteNewer;
  }
  if (local.parent != 0 && local.parent == remote.current) {
    return GenerationOrder::LocalNewer;
  }
  if (remote.parent != 0 && remote.parent == local.current) {
    return GenerationOrder::RemoteNewer;
  }
  if (local.parent != 0 && local.parent == remote.parent) {
    return GenerationOrder::SplitBrain;
  }
  return GenerationOrder::Unrelated;
}

DataGeneration enterAlone(const DataGeneration& g, uint64_t random) {
  DataGeneration out = g;
  if (g.alone && g.current != 0) {
    return out;
  }
  out.parent = g.current;
  out.current = random == 0 ? 1 : random;
  if (out.current == out.parent) {
    out.current ^= 0x9e3779b97f4a7c15ULL;
  }
  out.alone = true;
  out.uptodate = true;
  return out;
}

}  // namespace halo::core
