// openStartState (service_util.h): the journal and the activity log at a replication process's
// start, in either role.

#include <unistd.h>

#include <chrono>

#include "rfs/digest.h"
#include "rfs/service_util.h"

namespace halo::rfs {

Result<StartState> openStartState(const ServiceOptions& options, TimeSource& time) {
  StartState state;
  if (options.journal.empty()) {
    return state;
  }
  HALO_ASSIGN_OR_RETURN(state.journal, Journal::open(options.journal));
  state.journal->setBeforeCommit(options.journal_fault);
  HALO_ASSIGN_OR_RETURN(Journal::Loaded loaded, state.journal->load());
  state.base = loaded.base;
  state.log = std::move(loaded.log);
  state.quarantined = loaded.quarantined;
  const uint64_t pair =
      options.pair.empty() ? 0 : XXH3_64bits(options.pair.data(), options.pair.size());
  if (loaded.pair != pair) {
    if (state.base != 0 && loaded.pair != 0) {
      state.log.markIncomplete();
      state.note = "This node is paired with another node than at its last sync point (" +
                   options.pair + "): the next reintegration compares every file";
    }
    HALO_RETURN_IF_ERROR(state.journal->setPair(pair));
  }
  if (options.activity_log.empty()) {
    if (!loaded.clean) {
      state.log.markIncomplete();
    }
    return state;
  }
  ActivityLog::Options ao;
  ao.zone_size = options.zone_size;
  ao.grace = options.activity_grace;
  ao.broken_marker = options.untracked_marker;
  HALO_ASSIGN_OR_RETURN(state.activity, ActivityLog::open(options.activity_log, ao, time));
  if (!loaded.clean && state.base != 0) {
    const ActivityLog::Recovered& r = state.activity->recovered();
    // An activity log that was never started by a process (no epoch) says nothing.
    if (r.oldest_start_us == 0) {
      state.log.markIncomplete();
      state.note =
          "The replication process did not stop cleanly last time and left no activity log: "
          "the next reintegration compares every file";
    } else {
      std::vector<int> roots;
      std::vector<PathFilter> filters;
      for (const auto& d : options.dirs) {
        roots.push_back(::open(d.dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        filters.push_back(d.replicated);
      }
      const int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                              time.systemTime().time_since_epoch())
                              .count();
      const size_t before = state.log.paths();
      recoverActivity(r, roots, filters, now, options.activity_grace, &state.log);
      for (int fd : roots) {
        if (fd >= 0) {
          ::close(fd);
        }
      }
      state.note =
          "The replication process did not stop cleanly last time: its activity log "
          "names " +
          std::to_string(r.keys.size()) + " places that may differ from the peer (" +
          std::to_string(state.log.paths() - std::min(before, state.log.paths())) +
          " more paths to reintegrate)";
    }
    // In the journal before the activity log starts afresh.
    HALO_RETURN_IF_ERROR(state.journal->write(rewriteOf(state.log, state.base)));
  }
  if (!options.untracked_marker.empty() && ::access(options.untracked_marker.c_str(), F_OK) == 0) {
    state.log.markIncomplete();
    state.note =
        "The replicated directories were changed while nothing tracked the changes (the "
        "replication process had died, or its activity log could not be written): the next "
        "reintegration compares every file";
    HALO_RETURN_IF_ERROR(state.journal->write(rewriteOf(state.log, state.base)));
    ::unlink(options.untracked_marker.c_str());
  }
  (void)state.log.takeTouched();
  HALO_RETURN_IF_ERROR(state.activity->reset());
  return state;
}

}  // namespace halo::rfs
