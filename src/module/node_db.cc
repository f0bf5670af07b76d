#include "module/node_db.h"

#include <set>

#include "base/strings.h"
#include "module/module_log.h"
#include "module/ports.h"
#include "module/schema_versions.h"

namespace halo {

namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS module(
  name TEXT PRIMARY KEY,
  id INTEGER NOT NULL UNIQUE,
  installed_usec INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS id_history(
  name TEXT PRIMARY KEY,
  id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS command_log(
  id INTEGER PRIMARY KEY,
  usec INTEGER NOT NULL,
  type TEXT NOT NULL,
  module TEXT NOT NULL,
  pid INTEGER NOT NULL,
  text TEXT NOT NULL);
)sql";

constexpr char kSelectModule[] = "SELECT name, id, installed_usec FROM module";

ModuleEntry entryAt(const Statement& q) {
  return ModuleEntry{q.columnText(0), static_cast<int>(q.columnInt(1)), q.columnTime(2)};
}

Result<std::optional<ModuleEntry>> firstEntry(Statement& q) {
  HALO_ASSIGN_OR_RETURN(bool row, q.step());
  if (!row) {
    return std::optional<ModuleEntry>();
  }
  return std::optional<ModuleEntry>(entryAt(q));
}

}  // namespace

Result<NodeDb> NodeDb::open(const std::string& path, NodeDbOptions options) {
  HALO_ASSIGN_OR_RETURN(Database db, Database::open(path));
  HALO_RETURN_IF_ERROR(db.ensureSchema(kNodeDbSchemaVersion, kSchema));
  return NodeDb(std::move(db), options);
}

Result<std::vector<ModuleEntry>> NodeDb::modules() {
  HALO_ASSIGN_OR_RETURN(Statement q, db_.prepare(std::string(kSelectModule) + " ORDER BY name"));
  std::vector<ModuleEntry> out;
  while (true) {
    HALO_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) {
      return out;
    }
    out.push_back(entryAt(q));
  }
}

Result<std::optional<ModuleEntry>> NodeDb::findModule(std::string_view name) {
  HALO_ASSIGN_OR_RETURN(Statement q, db_.prepare(std::string(kSelectModule) + " WHERE name = ?"));
  q.bindText(1, name);
  return firstEntry(q);
}

Result<std::optional<ModuleEntry>> NodeDb::findModuleById(int id) {
  HALO_ASSIGN_OR_RETURN(Statement q, db_.prepare(std::string(kSelectModule) + " WHERE id = ?"));
  q.bindInt(1, id);
  return firstEntry(q);
}

Result<int> NodeDb::chooseId(std::string_view name, const std::optional<ModuleEntry>& existing,
                             std::optional<int> requested_id) {
  if (requested_id) {
    const int id = *requested_id;
    if (id < kMinModuleId || id > kMaxModuleId) {
      return invalidArgument("module id " + std::to_string(id) + " is out of range " +
                             std::to_string(kMinModuleId) + ".." + std::to_string(kMaxModuleId));
    }
    HALO_ASSIGN_OR_RETURN(std::optional<ModuleEntry> owner, findModuleById(id));
    if (owner && owner->name != name) {
      return alreadyExists("module id " + std::to_string(id) + " is already used by module '" +
                           owner->name + "'; choose another with -M or uninstall '" +
                           owner->name + "'");
    }
    return id;
  }
  if (existing) {
    return existing->id;
  }
  HALO_ASSIGN_OR_RETURN(std::vector<ModuleEntry> installed, modules());
  std::set<int> used;
  for (const ModuleEntry& m : installed) {
    used.insert(m.id);
  }
  HALO_ASSIGN_OR_RETURN(Statement q, db_.prepare("SELECT id FROM id_history WHERE name = ?"));
  q.bindText(1, name);
  HALO_ASSIGN_OR_RETURN(bool had, q.step());
  if (had && used.count(static_cast<int>(q.columnInt(0))) == 0) {
    return static_cast<int>(q.columnInt(0));
  }
  for (int id = kMinModuleId; id <= kMaxModuleId; ++id) {
    if (used.count(id) == 0) {
      return id;
    }
  }
  return failedPrecondition("no free module id: all " + std::to_string(kMaxModuleId) +
                            " ids are in use");
}

Result<int> NodeDb::assignModuleId(std::string_view name, std::optional<int> requested_id,
                                   SystemTime t, InstallMode mode) {
  if (!isValidModuleName(name)) {
    return invalidArgument("invalid module name '" + std::string(name) +
                           "': expected a letter followed by letters, digits, '_' or '-', at "
                           "most 32 characters");
  }
  int id = 0;
  // One transaction: two concurrent installs must not pick the same free id.
  Status s = db_.transaction([&]() -> Status {
    HALO_ASSIGN_OR_RETURN(std::optional<ModuleEntry> existing, findModule(name));
    if (existing && mode == InstallMode::New) {
      return alreadyExists("module '" + std::string(name) + "' is already installed (id " +
                           std::to_string(existing->id) +
                           "); uninstall it first or use -r to replace it");
    }
    HALO_ASSIGN_OR_RETURN(id, chooseId(name, existing, requested_id));
    HALO_ASSIGN_OR_RETURN(Statement up, db_.prepare(R"sql(
        INSERT INTO module(name, id, installed_usec) VALUES (?1, ?2, ?3)
        ON CONFLICT(name) DO UPDATE SET id = excluded.id, installed_usec = excluded.installed_usec
        )sql"));
    HALO_RETURN_IF_ERROR(up.bindText(1, name).bindInt(2, id).bindTime(3, t).run());
    HALO_ASSIGN_OR_RETURN(Statement hist, db_.prepare(R"sql(
        INSERT INTO id_history(name, id) VALUES (?1, ?2)
        ON CONFLICT(name) DO UPDATE SET id = excluded.id)sql"));
    return hist.bindText(1, name).bindInt(2, id).run();
  });
  if (!s.ok()) {
    return s;
  }
  return id;
}

Status NodeDb::removeModule(std::string_view name) {
  HALO_ASSIGN_OR_RETURN(Statement del, db_.prepare("DELETE FROM module WHERE name = ?"));
  HALO_RETURN_IF_ERROR(del.bindText(1, name).run());
  if (db_.changes() == 0) {
    return notFound("module '" + std::string(name) + "' is not installed");
  }
  return okStatus();
}

Status NodeDb::logCommand(SystemTime t, std::string_view type, std::string_view module, int pid,
                          std::string_view text) {
  HALO_ASSIGN_OR_RETURN(Statement ins, db_.prepare(R"sql(
      INSERT INTO command_log(usec, type, module, pid, text) VALUES (?1, ?2, ?3, ?4, ?5))sql"));
  HALO_RETURN_IF_ERROR(ins.bindTime(1, t)
                           .bindText(2, singleLine(type))
                           .bindText(3, singleLine(module))
                           .bindInt(4, pid)
                           .bindText(5, singleLine(text))
                           .run());
  // Ids only grow, so the newest id tells how many rows to drop.
  const int64_t id = db_.lastInsertRowId();
  if (options_.trim_every > 0 && id % options_.trim_every == 0) {
    HALO_ASSIGN_OR_RETURN(Statement del, db_.prepare("DELETE FROM command_log WHERE id <= ?"));
    HALO_RETURN_IF_ERROR(del.bindInt(1, id - options_.max_commands).run());
  }
  return okStatus();
}

Result<std::vector<std::string>> NodeDb::commandLog(int count) {
  HALO_ASSIGN_OR_RETURN(Statement q, db_.prepare(R"sql(
      SELECT usec, type, module, pid, text FROM (
        SELECT id, usec, type, module, pid, text FROM command_log ORDER BY id DESC LIMIT ?1)
      ORDER BY id)sql"));
  q.bindInt(1, count < 0 ? -1 : count);
  std::vector<std::string> out;
  while (true) {
    HALO_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) {
      return out;
    }
    out.push_back("| " + formatLogTime(q.columnTime(0)) + " | " + q.columnText(1) + " | " +
                  q.columnText(2) + " | " + std::to_string(q.columnInt(3)) + " | " +
                  q.columnText(4) + " |");
  }
}

}  // namespace halo
