#pragma once
// ModuleLog: the module log ($VAR/modules/AM/module.db, table log), shown by `halo logview`,
// and its copy to syslog/journald (`journalctl -t halo`), as SafeKit 8.2 does.
//
// Line format: "| 2026-11-26 18:40:01.123456 | heart | S | Local state ALONE Ready |".
// Levels C, E, U and S are the default log; I and D are only in the verbose log.
//
// Thread-safety: one thread at a time; several processes may append to the same file at once.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/time_source.h"
#include "sys/sqlite.h"

namespace halo {

enum class LogLevel { Critical, Error, User, State, Info, Debug };

char logLevelLetter(LogLevel level);
Result<LogLevel> parseLogLevel(char letter);
// True for C, E, U and S: the lines of the non-verbose log.
bool shownByDefault(LogLevel level);

// Replaces each newline (\n, \r\n or \r) with " / ": a log entry is always one line.
std::string singleLine(std::string_view s);

// Where log lines are copied for the system journal. Tests substitute a capturing sink.
class SyslogSink {
 public:
  virtual ~SyslogSink() = default;
  // priority: a syslog(3) LOG_* priority; line: "<module> | <component> | <message>".
  virtual void write(int priority, std::string_view line) = 0;
};

// syslog(3) with identifier "halo" and facility LOG_DAEMON.
class SystemSyslogSink : public SyslogSink {
 public:
  SystemSyslogSink();
  void write(int priority, std::string_view line) override;
};

struct ModuleLogOptions {
  // The oldest entries beyond max_entries are deleted every trim_every appends.
  int64_t max_entries = 100000;
  int64_t trim_every = 1000;
};

class ModuleLog {
 public:
  static Result<ModuleLog> open(const std::string& db_path, std::string module,
                                std::unique_ptr<SyslogSink> sink = nullptr,
                                ModuleLogOptions options = {});

  // Stores one line and copies it to syslog. Newlines in component or message become " / ",
  // so that one event is always one line.
  Status append(SystemTime t, LogLevel level, std::string_view component,
                std::string_view message);
  // The last `count` lines (all when count < 0), oldest first; verbose adds levels I and D.
  Result<std::vector<std::string>> lastLines(int count, bool verbose);
  // Writes every line to path (replacing it), one per line.
  Status saveTo(const std::string& path, bool verbose);

  const std::string& module() const { return module_; }

 private:
  ModuleLog(Database db, std::string module, std::unique_ptr<SyslogSink> sink,
            ModuleLogOptions options)
      : db_(std::move(db)),
        module_(std::move(module)),
        sink_(std::move(sink)),
        options_(options) {}

  Database db_;
  std::string module_;
  std::unique_ptr<SyslogSink> sink_;
  ModuleLogOptions options_;
};

}  // namespace halo
