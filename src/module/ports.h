#pragma once
// Network ports of a module, derived from its id so that every node agrees without
// configuration (DESIGN section 2; SafeKit's `module getports`).

namespace halo {

inline constexpr int kMinModuleId = 1;
inline constexpr int kMaxModuleId = 255;

struct ModulePorts {
  int heart_udp;      // mirror heartbeats
  int rfs_tcp_first;  // replication connections: rfs_tcp_first .. rfs_tcp_last
  int rfs_tcp_last;
  int farm_udp;  // farm membership

  bool operator==(const ModulePorts&) const = default;
};

// id must be in kMinModuleId..kMaxModuleId.
constexpr ModulePorts portsForModuleId(int id) {
  const int k = id - 1;
  return ModulePorts{8888 + k, 5600 + 4 * k, 5600 + 4 * k + 3, 4803 + 3 * k};
}

}  // namespace halo
