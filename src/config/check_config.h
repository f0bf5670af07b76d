#pragma once
// <check> checkers (reference 3.2.11). Each sets resource <class>.<ident> to up/down; the failover
// rules act on it.

#include <optional>
#include <string>
#include <vector>

#include "base/time_source.h"
#include "config/service_config.h"

namespace halo::config {

// When a checker runs: pre = from prestart to poststop (all states); prim/second/both = between
// the matching start_xx and stop_xx scripts.
enum class CheckWhen { Pre, Prim, Second, Both };
const char* checkWhenName(CheckWhen when);

enum class CheckAction { Stop, Stopstart, Restart, Wait, Noaction };
const char* checkActionName(CheckAction action);

struct TcpChecker {
  std::string ident;
  CheckWhen when = CheckWhen::Prim;
  CheckAction action = CheckAction::Restart;   // default Wait when when="pre"
  std::string addr;                            // <to addr>
  int port = 0;                                // <to port>
  Millis interval = std::chrono::seconds(10);  // implicit unit s
  Millis timeout = std::chrono::seconds(5);    // implicit unit s
  int line = 0;
};

struct PingChecker {
  std::string ident;
  CheckWhen when = CheckWhen::Pre;
  CheckAction action = CheckAction::Wait;
  std::string addr;
  Millis interval = std::chrono::seconds(10);
  Millis timeout = std::chrono::seconds(5);
  int line = 0;
};

struct IntfChecker {  // rule interface_failure: wait
  std::string ident;
  CheckWhen when = CheckWhen::Pre;
  std::string local_addr;  // <to local_addr>: a physical address of the interface
  int line = 0;
};

struct IpChecker {  // rule ip_failure: stopstart
  std::string ident;
  CheckWhen when = CheckWhen::Prim;
  std::string addr;  // the VIP
  Millis interval = std::chrono::seconds(10);
  int line = 0;
};

struct CustomChecker {
  std::string ident;
  CheckWhen when = CheckWhen::Prim;
  std::string exec;  // absolute, or relative to the module's bin directory
  std::string arg;
  CheckAction action = CheckAction::Noaction;
  int line = 0;
};

struct ModuleChecker {  // rule module_failure: wait
  std::string ident;    // default: name, or name_addr with a <to>
  std::string name;     // the watched module
  std::string addr = "127.0.0.1";
  int port = 9010;
  Millis interval = std::chrono::seconds(10);
  Millis timeout = std::chrono::seconds(5);
  bool secure = false;
  bool remote = false;  // a <to> was given
  int line = 0;
};

struct SplitbrainChecker {  // mirror only, when="pre"; rule splitbrain_failure: wait
  std::string ident;
  std::string exec;  // "ping" (built in) or a program
  std::string arg;   // for ping: witness addresses separated by blanks
  int line = 0;
};

struct CheckConfig {
  std::vector<TcpChecker> tcp;
  std::vector<PingChecker> ping;
  std::vector<IntfChecker> intf;
  std::vector<IpChecker> ip;
  std::vector<CustomChecker> custom;
  std::vector<ModuleChecker> module;
  std::optional<SplitbrainChecker> splitbrain;
  int line = 0;
};

}  // namespace halo::config
