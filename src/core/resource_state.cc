#include "core/resource_state.h"

#include <string>

#include "base/strings.h"

namespace halo {

const char* resourceStateName(ResourceState state) {
  switch (state) {
    case ResourceState::Init: return "init";
    case ResourceState::Up: return "up";
    case ResourceState::Down: return "down";
    case ResourceState::Unknown: return "unknown";
  }
  return "unknown";
}

Result<ResourceState> parseResourceState(std::string_view name) {
  const std::string lower = toLower(name);
  for (ResourceState s : {ResourceState::Init, ResourceState::Up, ResourceState::Down,
                          ResourceState::Unknown}) {
    if (lower == resourceStateName(s)) {
      return s;
    }
  }
  return invalidArgument("invalid resource state '" + std::string(name) +
                         "': expected init, up, down or unknown");
}

}  // namespace halo
