#pragma once
// Resource states (reference 10.3): what checkers, heartbeats and operators set, and what the
// failover rules read. Shared by the pure core and the stores.

#include <string_view>

#include "base/status.h"

namespace halo {

enum class ResourceState { Init, Up, Down, Unknown };

const char* resourceStateName(ResourceState state);  // "init", "up", "down", "unknown"
Result<ResourceState> parseResourceState(std::string_view name);

}  // namespace halo
