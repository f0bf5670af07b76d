#pragma once
// ResourceStore: the module's resources ($VAR/modules/AM/module.db, tables resource and
// resource_history). A resource is a named state (ping.gw up, usersetting.errd down) set by a
// component (its "setter": pingcheck, heart, user...). Failover rules read them, the console
// shows them, and each change is kept in a history.
//
// Some resources carry a free-text value instead of a state (heart.stopstartloop: an epoch,
// FarmProto_0: "50%"): setValue() sets it, leaving the state alone.
//
// Thread-safety: one thread at a time; several processes may write the same file at once.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "core/resource_state.h"
#include "base/time_source.h"
#include "sys/sqlite.h"

namespace halo {


// "class.id" (class: a letter then letters, digits, '_'; id: letters, digits and _ . : - *), or a
// bare class-like name for farm load shares ("FarmProto_0"); at most 128 characters.
Status validateResourceName(std::string_view name);

struct ResourceRecord {
  std::string name;
  ResourceState state = ResourceState::Init;
  std::string value;  // "" unless the resource carries a value
  std::string setter;
  SystemTime changed_at;  // of the last change of state or value

  bool operator==(const ResourceRecord&) const = default;
};

struct HistoryRecord {
  std::string name;
  ResourceState state = ResourceState::Init;
  std::string value;
  std::string setter;
  SystemTime at;

  bool operator==(const HistoryRecord&) const = default;
};

enum class HistoryMode {
  OnChange,  // a history row when the state or value changes
  Always,    // a history row for every assignment, even a repeated one
  Never,     // no history (values that change all the time, such as bandwidths)
};

struct ResourceStoreOptions {
  // The oldest history rows beyond max_history are deleted every trim_every history rows.
  int64_t max_history = 100000;
  int64_t trim_every = 1000;
};

class ResourceStore {
 public:
  static Result<ResourceStore> open(const std::string& db_path, ResourceStoreOptions options = {});

  // Sets the state; returns whether it changed (a new resource counts as changed). The setter
  // and time are updated only on a change, so the record tells who made the current state.
  Result<bool> set(std::string_view name, ResourceState state, std::string_view setter,
                   SystemTime t, HistoryMode history = HistoryMode::OnChange);
  // Same for the free-text value; a new resource starts in state init.
  Result<bool> setValue(std::string_view name, std::string_view value, std::string_view setter,
                        SystemTime t, HistoryMode history = HistoryMode::OnChange);

  Result<std::optional<ResourceRecord>> get(std::string_view name);
  Result<std::vector<ResourceRecord>> list();  // sorted by name
  // The last `limit` history rows of name (all when limit < 0), oldest first.
  Result<std::vector<HistoryRecord>> history(std::string_view name, int limit);
  // Removes the resource and its history; NotFound if there is no such resource.
  Status remove(std::string_view name);

 private:
  ResourceStore(Database db, ResourceStoreOptions options)
      : db_(std::move(db)), options_(options) {}
  Result<bool> assign(std::string_view name, std::optional<ResourceState> state,
                      std::optional<std::string_view> value, std::string_view setter,
                      SystemTime t, HistoryMode history);
  Status addHistory(const HistoryRecord& h);

  Database db_;
  ResourceStoreOptions options_;
};

}  // namespace halo
