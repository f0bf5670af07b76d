#include "module/resource_store.h"

#include <cctype>

#include "base/strings.h"
#include "module/schema_versions.h"

namespace halo {

namespace {

constexpr size_t kMaxNameLength = 128;
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS resource(
  name TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  value TEXT NOT NULL DEFAULT '',
  setter TEXT NOT NULL,
  usec INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS resource_history(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  state TEXT NOT NULL,
  value TEXT NOT NULL,
  setter TEXT NOT NULL,
  usec INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS resource_history_by_name ON resource_history(name, id);
)sql";

bool isClassChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool isIdChar(char c) {
  return isClassChar(c) || c == '.' || c == ':' || c == '-' || c == '*';
}

// A stored state name we cannot parse means a newer writer or a corrupt row: show "unknown".
ResourceState stateOrUnknown(const std::string& text) {
  Result<ResourceState> s = parseResourceState(text);
  return s.ok() ? *s : ResourceState::Unknown;
}

}  // namespace

Status validateResourceName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= kMaxNameLength &&
            std::isalpha(static_cast<unsigned char>(name[0]));
  const size_t dot = name.find('.');
  for (size_t i = 0; ok && i < name.size(); ++i) {
    ok = i < dot ? isClassChar(name[i]) : isIdChar(name[i]);
  }
  ok = ok && (dot == std::string_view::npos || dot + 1 < name.size());
  if (!ok) {
    return invalidArgument("invalid resource name '" + std::string(name) +
                           "': expected class.id, where class is a letter followed by letters, "
                           "digits or '_', and id is letters, digits or _ . : - * (at most " +
                           std::to_string(kMaxNameLength) + " characters)");
  }
  return okStatus();
}

Result<ResourceStore> ResourceStore::open(const std::string& db_path,
                                          ResourceStoreOptions options) {
  HALO_ASSIGN_OR_RETURN(Database db, Database::open(db_path));
  HALO_RETURN_IF_ERROR(db.ensureSchema(kModuleDbSchemaVersion, kSchema));
  return ResourceStore(std::move(db), options);
}

Result<bool> ResourceStore::set(std::string_view name, ResourceState state,
                                std::string_view setter, SystemTime t, HistoryMode history) {
  return assign(name, state, std::nullopt, setter, t, history);
}

Result<bool> ResourceStore::setValue(std::string_view name, std::string_view value,
                                     std::string_view setter, SystemTime t,
                                     HistoryMode history) {
  return assign(name, std::nullopt, value, setter, t, history);
}

Result<bool> ResourceStore::assign(std::string_view name, std::optional<ResourceState> state,
                                   std::optional<std::string_view> value,
                                   std::string_view setter, SystemTime t, HistoryMode history) {
  HALO_RETURN_IF_ERROR(validateResourceName(name));
  bool changed = false;
  // One transaction, so that two processes setting the same resource cannot both see the old
  // state and both record a change.
  Status s = db_.transaction([&]() -> Status {
    HALO_ASSIGN_OR_RETURN(std::optional<ResourceRecord> old, get(name));
    ResourceRecord next;
    if (old) {
      next = *old;
    } else {
      next.name = std::string(name);
    }
    next.state = state.value_or(next.state);
    if (value) {
      next.value = std::string(*value);
    }
    changed = !old || next.state != old->state || next.value != old->value;
    if (changed) {
      next.setter = std::string(setter);
      next.changed_at = t;
      HALO_ASSIGN_OR_RETURN(Statement up, db_.prepare(R"sql(
          INSERT INTO resource(name, state, value, setter, usec) VALUES (?1, ?2, ?3, ?4, ?5)
          ON CONFLICT(name) DO UPDATE SET
            state = excluded.state, value = excluded.value, setter = excluded.setter,
            usec = excluded.usec)sql"));
      HALO_RETURN_IF_ERROR(up.bindText(1, next.name)
                               .bindText(2, resourceStateName(next.state))
                               .bindText(3, next.value)
                               .bindText(4, next.setter)
                               .bindTime(5, t)
                               .run());
    }
    if (history == HistoryMode::Always || (history == HistoryMode::OnChange && changed)) {
      return addHistory({next.name, next.state, next.value, std::string(setter), t});
    }
    return okStatus();
  });
  if (!s.ok()) {
    return s;
  }
  return changed;
}

Status ResourceStore::addHistory(const HistoryRecord& h) {
  HALO_ASSIGN_OR_RETURN(Statement ins, db_.prepare(R"sql(
      INSERT INTO resource_history(name, state, value, setter, usec)
      VALUES (?1, ?2, ?3, ?4, ?5))sql"));
  HALO_RETURN_IF_ERROR(ins.bindText(1, h.name)
                           .bindText(2, resourceStateName(h.state))
                           .bindText(3, h.value)
                           .bindText(4, h.setter)
                           .bindTime(5, h.at)
                           .run());
  // Ids only grow, so the newest id tells how many rows to drop.
  const int64_t id = db_.lastInsertRowId();
  if (options_.trim_every > 0 && id % options_.trim_every == 0) {
    HALO_ASSIGN_OR_RETURN(Statement del, db_.prepare("DELETE FROM resource_history WHERE id <= ?"));
    HALO_RETURN_IF_ERROR(del.bindInt(1, id - options_.max_history).run());
  }
  return okStatus();
}

Result<std::optional<ResourceRecord>> ResourceStore::get(std::string_view name) {
  HALO_ASSIGN_OR_RETURN(
      Statement q, db_.prepare("SELECT state, value, setter, usec FROM resource WHERE name = ?"));
  q.bindText(1, name);
  HALO_ASSIGN_OR_RETURN(bool row, q.step());
  if (!row) {
    return std::optional<ResourceRecord>();
  }
  return std::optional<ResourceRecord>(ResourceRecord{std::string(name),
                                                      stateOrUnknown(q.columnText(0)),
                                                      q.columnText(1), q.columnText(2),
                                                      q.columnTime(3)});
}

Result<std::vector<ResourceRecord>> ResourceStore::list() {
  HALO_ASSIGN_OR_RETURN(
      Statement q,
      db_.prepare("SELECT name, state, value, setter, usec FROM resource ORDER BY name"));
  std::vector<ResourceRecord> out;
  while (true) {
    HALO_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) {
      return out;
    }
    out.push_back({q.columnText(0), stateOrUnknown(q.columnText(1)), q.columnText(2),
                   q.columnText(3), q.columnTime(4)});
  }
}

Result<std::vector<HistoryRecord>> ResourceStore::history(std::string_view name, int limit) {
  HALO_ASSIGN_OR_RETURN(Statement q, db_.prepare(R"sql(
      SELECT state, value, setter, usec FROM (
        SELECT id, state, value, setter, usec FROM resource_history
        WHERE name = ?1 ORDER BY id DESC LIMIT ?2)
      ORDER BY id)sql"));
  q.bindText(1, name).bindInt(2, limit < 0 ? -1 : limit);
  std::vector<HistoryRecord> out;
  while (true) {
    HALO_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) {
      return out;
    }
    out.push_back({std::string(name), stateOrUnknown(q.columnText(0)), q.columnText(1),
                   q.columnText(2), q.columnTime(3)});
  }
}

Status ResourceStore::remove(std::string_view name) {
  return db_.transaction([&]() -> Status {
    HALO_ASSIGN_OR_RETURN(Statement del, db_.prepare("DELETE FROM resource WHERE name = ?"));
    HALO_RETURN_IF_ERROR(del.bindText(1, name).run());
    if (db_.changes() == 0) {
      return notFound("no resource '" + std::string(name) + "'");
    }
    HALO_ASSIGN_OR_RETURN(Statement hist,
                          db_.prepare("DELETE FROM resource_history WHERE name = ?"));
    return hist.bindText(1, name).run();
  });
}

}  // namespace halo
