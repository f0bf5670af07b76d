#include "module/module_log.h"

#include <syslog.h>

#include <cerrno>
#include <cstdio>

#include "module/schema_versions.h"

namespace halo {

namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS log(
  id INTEGER PRIMARY KEY,
  usec INTEGER NOT NULL,
  level TEXT NOT NULL,
  component TEXT NOT NULL,
  message TEXT NOT NULL);
)sql";

int syslogPriority(LogLevel level) {
  switch (level) {
    case LogLevel::Critical: return LOG_CRIT;
    case LogLevel::Error: return LOG_ERR;
    case LogLevel::User: return LOG_NOTICE;
    case LogLevel::State: return LOG_NOTICE;
    case LogLevel::Info: return LOG_INFO;
    case LogLevel::Debug: return LOG_DEBUG;
  }
  return LOG_INFO;
}

}  // namespace

char logLevelLetter(LogLevel level) {
  switch (level) {
    case LogLevel::Critical: return 'C';
    case LogLevel::Error: return 'E';
    case LogLevel::User: return 'U';
    case LogLevel::State: return 'S';
    case LogLevel::Info: return 'I';
    case LogLevel::Debug: return 'D';
  }
  return '?';
}

Result<LogLevel> parseLogLevel(char letter) {
  switch (letter) {
    case 'C': return LogLevel::Critical;
    case 'E': return LogLevel::Error;
    case 'U': return LogLevel::User;
    case 'S': return LogLevel::State;
    case 'I': return LogLevel::Info;
    case 'D': return LogLevel::Debug;
    default: break;
  }
  return invalidArgument(std::string("log level '") + letter +
                         "' is not one of C, E, U, S, I, D");
}

std::string singleLine(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' || s[i] == '\n') {
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') {
        ++i;
      }
      out += " / ";
    } else {
      out += s[i];
    }
  }
  return out;
}

bool shownByDefault(LogLevel level) {
  return level == LogLevel::Critical || level == LogLevel::Error || level == LogLevel::User ||
         level == LogLevel::State;
}

SystemSyslogSink::SystemSyslogSink() {
  // openlog keeps the identifier pointer: a literal lives long enough. Calling it again from
  // another sink is harmless: every Halo log uses the same identity.
  openlog("halo", LOG_PID, LOG_DAEMON);
}

void SystemSyslogSink::write(int priority, std::string_view line) {
  syslog(LOG_DAEMON | priority, "%.*s", static_cast<int>(line.size()), line.data());
}

Result<ModuleLog> ModuleLog::open(const std::string& db_path, std::string module,
                                  std::unique_ptr<SyslogSink> sink, ModuleLogOptions options) {
  HALO_ASSIGN_OR_RETURN(Database db, Database::open(db_path));
  // Losing the last lines to a power cut is acceptable; an fsync per line is not.
  HALO_RETURN_IF_ERROR(db.exec("PRAGMA synchronous=NORMAL"));
  HALO_RETURN_IF_ERROR(db.ensureSchema(kModuleDbSchemaVersion, kSchema));
  if (!sink) {
    sink = std::make_unique<SystemSyslogSink>();
  }
  return ModuleLog(std::move(db), std::move(module), std::move(sink), options);
}

Status ModuleLog::append(SystemTime t, LogLevel level, std::string_view component,
                         std::string_view message) {
  const std::string comp = singleLine(component);
  const std::string msg = singleLine(message);
  // Syslog first and regardless of the database: if the database fails, the event survives there.
  sink_->write(syslogPriority(level), module_ + " | " + comp + " | " + msg);

  HALO_ASSIGN_OR_RETURN(
      Statement ins,
      db_.prepare("INSERT INTO log(usec, level, component, message) VALUES (?, ?, ?, ?)"));
  const char letter = logLevelLetter(level);
  HALO_RETURN_IF_ERROR(ins.bindTime(1, t)
                           .bindText(2, std::string_view(&letter, 1))
                           .bindText(3, comp)
                           .bindText(4, msg)
                           .run());
  // Ids only grow, so the newest id tells how many to drop, whichever process appended.
  const int64_t id = db_.lastInsertRowId();
  if (options_.trim_every > 0 && id % options_.trim_every == 0) {
    HALO_ASSIGN_OR_RETURN(Statement del, db_.prepare("DELETE FROM log WHERE id <= ?"));
    HALO_RETURN_IF_ERROR(del.bindInt(1, id - options_.max_entries).run());
  }
  return okStatus();
}

Result<std::vector<std::string>> ModuleLog::lastLines(int count, bool verbose) {
  HALO_ASSIGN_OR_RETURN(Statement q, db_.prepare(R"sql(
      SELECT usec, level, component, message FROM (
        SELECT id, usec, level, component, message FROM log
        WHERE ?1 OR level IN ('C', 'E', 'U', 'S')
        ORDER BY id DESC LIMIT ?2)
      ORDER BY id)sql"));
  q.bindInt(1, verbose ? 1 : 0).bindInt(2, count < 0 ? -1 : count);
  std::vector<std::string> lines;
  while (true) {
    HALO_ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) {
      break;
    }
    lines.push_back("| " + formatLogTime(q.columnTime(0)) + " | " + q.columnText(2) + " | " +
                    q.columnText(1) + " | " + q.columnText(3) + " |");
  }
  return lines;
}

Status ModuleLog::saveTo(const std::string& path, bool verbose) {
  HALO_ASSIGN_OR_RETURN(std::vector<std::string> lines, lastLines(-1, verbose));
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    return errnoStatus("open " + path, errno);
  }
  bool failed = false;
  for (const std::string& line : lines) {
    failed = failed || std::fwrite(line.data(), 1, line.size(), f) != line.size() ||
             std::fputc('\n', f) == EOF;
  }
  const int err = errno;
  if (std::fclose(f) != 0 || failed) {
    return errnoStatus("write " + path, failed ? err : errno);
  }
  return okStatus();
}

}  // namespace halo
