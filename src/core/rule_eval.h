#pragma once
// Evaluation of rule conditions over a snapshot of the module's resources (reference 10.3).
//
// Semantics (docs/failover-rules.md):
// - `class.* == s` holds when the class has resources and ALL are s; `class.* != s` when it has
//   resources and ALL differ from s.
// - `class.? == s` holds when ANY resource of the class is s; `class.? != s` when ANY differs.
// - A named resource that does not exist compares as `unknown`: nobody has reported on it, which
//   is what unknown means for a remote resource. So `== init` requires that it exists.
// - `cluster()` is up when the runtime says the peer daemon is reachable (ResourceView).

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/resource_state.h"
#include "core/rules.h"

namespace halo::core {

class ResourceView {
 public:
  virtual ~ResourceView() = default;
  // nullopt when the resource does not exist.
  virtual std::optional<ResourceState> state(Side side, std::string_view cls,
                                             std::string_view id) const = 0;
  // Every resource of `cls` on `side`, as (id, state).
  virtual std::vector<std::pair<std::string, ResourceState>> resourcesOfClass(
      Side side, std::string_view cls) const = 0;
  virtual bool clusterUp() const = 0;
};

// A resource table in memory: the runtime fills one per evaluation; tests use it directly.
class MapResourceView : public ResourceView {
 public:
  // `name` is "class.id", e.g. "tcp.web", "ip.192.168.1.10" (the class ends at the first dot).
  void set(Side side, const std::string& name, ResourceState state);
  void set(const std::string& name, ResourceState state) { set(Side::Local, name, state); }
  void erase(Side side, const std::string& name);
  void setClusterUp(bool up) { cluster_up_ = up; }

  std::optional<ResourceState> state(Side side, std::string_view cls,
                                     std::string_view id) const override;
  std::vector<std::pair<std::string, ResourceState>> resourcesOfClass(
      Side side, std::string_view cls) const override;
  bool clusterUp() const override { return cluster_up_; }

 private:
  using Table = std::map<std::string, ResourceState, std::less<>>;
  const Table& table(Side side) const { return side == Side::Local ? local_ : remote_; }

  Table local_;
  Table remote_;
  bool cluster_up_ = false;
};

bool evaluate(const Expr& expr, const ResourceView& view);

// True when a resource that `expr` reads is `init` (wildcards read their whole class): the rule
// cannot be judged yet because its checker has not reported.
bool readsInitResource(const Expr& expr, const ResourceView& view);

}  // namespace halo::core
