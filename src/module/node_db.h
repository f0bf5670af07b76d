#pragma once
// NodeDb: the node database ($VAR/node.db, Paths::nodeDb()): the registry of installed modules
// with their ids, and the command log shown by `halo cmdlog`.
//
// Module ids are small integers (1..255) that must be identical on every node, since ports
// derive from them (module/ports.h). The id a name had is remembered across uninstall, so that
// reinstalling a module gives it back the id its peers still use.
//
// Thread-safety: one thread at a time; several processes may write the same file at once.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/time_source.h"
#include "sys/sqlite.h"

namespace halo {

struct ModuleEntry {
  std::string name;
  int id = 0;
  SystemTime installed_at;

  bool operator==(const ModuleEntry&) const = default;
};

enum class InstallMode {
  New,      // the name must not be installed
  Replace,  // `module install -r`: an installed name keeps its id unless another is requested
};

struct NodeDbOptions {
  // The oldest command log rows beyond max_commands are deleted every trim_every rows.
  int64_t max_commands = 100000;
  int64_t trim_every = 1000;
};

class NodeDb {
 public:
  static Result<NodeDb> open(const std::string& path, NodeDbOptions options = {});

  Result<std::vector<ModuleEntry>> modules();  // sorted by name
  Result<std::optional<ModuleEntry>> findModule(std::string_view name);
  Result<std::optional<ModuleEntry>> findModuleById(int id);

  // Registers name as installed at t and returns its id: requested_id when given (1..255, not
  // used by another module), else the id the name had before if it is free, else the smallest
  // free id.
  Result<int> assignModuleId(std::string_view name, std::optional<int> requested_id,
                             SystemTime t, InstallMode mode = InstallMode::New);
  // Unregisters name; its id stays remembered for a later install. NotFound if not installed.
  Status removeModule(std::string_view name);

  // type: who ran the command ("halo"); text: "START start -m web", "END 0", "I <message>".
  Status logCommand(SystemTime t, std::string_view type, std::string_view module, int pid,
                    std::string_view text);
  // The last `count` entries (all when count < 0), oldest first, formatted
  // "| <date> | <type> | <module> | <pid> | <text> |".
  Result<std::vector<std::string>> commandLog(int count);

 private:
  NodeDb(Database db, NodeDbOptions options) : db_(std::move(db)), options_(options) {}
  Result<int> chooseId(std::string_view name, const std::optional<ModuleEntry>& existing,
                       std::optional<int> requested_id);

  Database db_;
  NodeDbOptions options_;
};

}  // namespace halo
