#pragma once
// Schema versions (SQLite user_version) of Halo's databases. ModuleLog and ResourceStore may
// share module.db, so they share one version: bump it, and migrate both, together.

namespace halo {

inline constexpr int kModuleDbSchemaVersion = 1;  // module.db: log, resource, resource_history
inline constexpr int kNodeDbSchemaVersion = 1;    // node.db: module, id_history, command_log

}  // namespace halo
