#pragma once
// What drives the application: <user> scripts (reference 3.2.8), <vhost> (3.2.9), <errd> process
// monitoring (3.2.10) and <failover> rules (3.2.12).

#include <string>
#include <vector>

#include "base/time_source.h"
#include "config/check_config.h"

namespace halo::config {

struct Var {
  std::string name;  // exported to the scripts' environment
  std::string value;
  int line = 0;
};

enum class UserLogging { Userlog, None };

struct UserConfig {
  Millis nicestoptimeout = std::chrono::seconds(300);   // implicit unit s
  Millis forcestoptimeout = std::chrono::seconds(300);  // implicit unit s
  UserLogging logging = UserLogging::Userlog;
  int userlogsize_kb = 2048;
  std::vector<Var> vars;
  int line = 0;
};

enum class VhostWhen { Prim, Second, Both };

struct VirtualHostNameConfig {
  std::string name;     // the host name the application sees
  std::string envfile;  // absolute, or relative to the module's bin directory
  VhostWhen when = VhostWhen::Prim;
  int line = 0;
};

struct VhostConfig {
  std::vector<VirtualHostNameConfig> names;  // at least one
  int line = 0;
};

enum class ProcAction { Restart, Stopstart, Stop, Noaction, Handler };

struct ProcConfig {
  std::string name;  // command name (or systemd unit with service); resource proc.<name>
  bool service = false;
  std::string nameregex;  // ERE on the command name
  std::string argregex;   // ERE on the full command line
  int atleast = 1;        // -1 = ignore
  int atmax = -1;         // -1 = ignore; 0 = act each time the process starts
  ProcAction action = ProcAction::Stopstart;
  std::string handler;  // action=Handler: absolute or relative to the module's bin directory
  std::vector<std::string> restart_services;
  std::string proc_class = "prim";  // "class": prim, both, pre, second, sec or a custom name
  int start_after = 0;              // monitoring starts (n - 1) * polltimer after activation
  int line = 0;
};

struct ErrdConfig {
  Millis polltimer = std::chrono::seconds(30);  // implicit unit s
  std::vector<ProcConfig> procs;
  int line = 0;
};

struct FailoverConfig {
  bool extends = true;        // user rules extend the built-in rules; false replaces them
  Millis period{5000};        // implicit unit ms
  Millis handle_time{15000};  // implicit unit ms; a multiple of period
  struct RuleBlock {
    std::string text;  // rule text ("label: if (...) then action;" or "--Lua Rules" ...)
    int line = 0;      // line of the first character of text
  };
  std::vector<RuleBlock> blocks;
  int line = 0;
};

}  // namespace halo::config
