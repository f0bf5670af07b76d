#include "base/paths.h"

#include <cstdlib>

namespace halo {

Paths Paths::fromRoot(const std::string& root_in) {
  std::string root = root_in.empty() ? "/" : root_in;
  while (root.size() > 1 && root.back() == '/') {
    root.pop_back();
  }
  const std::string base = root == "/" ? "" : root;
  Paths p;
  p.root = root;
  p.etc = base + "/etc/halo";
  p.var = base + "/var/lib/halo";
  p.run = base + "/run/halo";
  p.log = base + "/var/log/halo";
  return p;
}

Paths Paths::fromEnvironment() {
  const char* r = std::getenv("HALO_ROOT");
  return fromRoot(r ? r : "/");
}

}  // namespace halo
