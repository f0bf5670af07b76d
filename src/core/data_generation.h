#pragma once
// Data generations (DESIGN 5.4): what each mirror node persists about its replicated data, and the
// pure comparison that decides, without clocks, which node holds the newest data on reconnection.
//
// A generation is a random 64-bit id. A node draws a new one (from a value the caller injects)
// when it starts writing without its peer, i.e. on entering ALONE; the old one becomes the parent.
// A node that already writes alone keeps its generation. A secondary that finished its resync
// adopts the primary's generation.

#include <cstdint>

namespace halo::core {

struct DataGeneration {
  uint64_t current = 0;  // 0: never written (first start after configuration)
  uint64_t parent = 0;
  bool uptodate = false;            // this node's data is the newest it knows of
  bool clean_stop = true;           // the last stop ran to its end (false after a crash)
  bool resync_interrupted = false;  // stopped mid-resync: data may be inconsistent
  bool last_primary = false;        // the node was primary (PRIM/ALONE) when it last ran
  bool alone = false;               // `current` was started alone and is not shared yet
  uint64_t role_epoch = 0;          // highest role epoch seen (section "split brain")
  bool operator==(const DataGeneration&) const = default;
};

enum class GenerationOrder {
  Same,         // same generation
  LocalNewer,   // local's generation descends from remote's
  RemoteNewer,  // remote's generation descends from local's
  SplitBrain,   // both started new generations from the same parent
  Unrelated,    // no common history we can see
};
const char* generationOrderName(GenerationOrder o);

GenerationOrder compareGenerations(const DataGeneration& local, const DataGeneration& remote);

// The record after the node starts writing without its peer: a new generation drawn from
// `random` (0 is mapped to 1) unless the current one is already private to this node.
DataGeneration enterAlone(const DataGeneration& g, uint64_t random);

}  // namespace halo::core
