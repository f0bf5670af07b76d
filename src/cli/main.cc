// halo: the Halo command line (verbs and exit codes of the reference, section 5).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <functional>
#include <iostream>

#include "cli/commands.h"
#include "module/node_db.h"
#include "sys/files.h"

using halo::cli::Cli;

namespace {

std::string joinArgs(int argc, char** argv) {
  std::string s;
  for (int i = 1; i < argc; ++i) {
    s += (i > 1 ? " " : "") + std::string(argv[i]);
  }
  return s;
}

// The node command log (`halo cmdlog`) records every command that changes something.
void logCommand(const Cli& cli, const std::string& text) {
  if (!halo::sys::pathExists(cli.paths.var)) {
    return;
  }
  auto db = halo::NodeDb::open(cli.paths.nodeDb());
  if (db.ok()) {
    (void)db->logCommand(cli.time.systemTime(), "halo", cli.module, getpid(), text);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"halo: high availability for Linux applications (HALO_ROOT roots every path)",
               "halo"};
  app.require_subcommand(0, 1);
  Cli cli;
  std::function<int()> action;
  bool changes = false;  // logged in the command log
  bool print_paths = false;
  app.add_flag("-p", print_paths, "Print Halo's directories (HALO_ROOT, etc, var, run...)");

  auto with_module = [&](CLI::App* sub) {
    sub->add_option("-m", cli.module, "Module name (default: $HALO_MODULE, then $SAFEMODULE)");
  };
  auto with_identity = [&](CLI::App* sub) {
    sub->add_option("-i", cli.identity, "Identity of the caller (scripts, checkers)");
  };
  auto verb = [&](CLI::App* parent, const char* name, const char* help, bool mutating,
                  std::function<int()> fn) {
    CLI::App* sub = parent->add_subcommand(name, help);
    sub->callback([&, fn, mutating] {
      action = fn;
      changes = mutating;
    });
    return sub;
  };

  std::string file;
  std::string state_arg;
  std::string message;
  std::string resource;
  std::string value;
  std::optional<int> module_id;
  std::optional<int> timeout_s;
  bool replace = false;
  bool verbose = false;
  bool lq = false;
  bool all = false;
  int count = 300;

  // cluster
  CLI::App* cluster = app.add_subcommand("cluster", "Cluster configuration");
  cluster->require_subcommand(1);
  verb(cluster, "config", "Apply a cluster.xml (or re-check the current one)", true, [&] {
    return clusterConfig(cli, file);
  })->add_option("FILE", file, "cluster.xml to apply");
  verb(cluster, "confcheck", "Validate a cluster.xml without applying it", false,
       [&] { return clusterConfcheck(cli, file); })
      ->add_option("FILE", file, "cluster.xml to check")
      ->required();
  verb(cluster, "state", "Show the cluster configuration and the modules of this node", false,
       [&] { return clusterState(cli); });

  // module
  CLI::App* module = app.add_subcommand("module", "Install and manage module packages");
  module->require_subcommand(1);
  CLI::App* install = verb(module, "install", "Install a module package (NAME.safe)", true,
                           [&] { return moduleInstall(cli, file, module_id, replace); });
  with_module(install);
  install->add_option("-M", module_id, "Module id to use (1..255), identical on every node");
  install->add_flag("-r", replace, "Replace an installed module, keeping its id");
  install->add_option("FILE", file, "The .safe package")->required();
  verb(module, "list", "List installed modules", false, [&] { return moduleList(cli, false); });
  verb(module, "listid", "List installed modules with their ids", false,
       [&] { return moduleList(cli, true); });
  with_module(verb(module, "getports", "Show the ports a module uses", false,
                   [&] { return moduleGetports(cli); }));
  with_module(verb(module, "uninstall", "Remove a stopped module", true,
                   [&] { return moduleUninstall(cli); }));
  CLI::App* package = verb(module, "package", "Write a module into a .safe package", false,
                           [&] { return modulePackage(cli, file); });
  with_module(package);
  package->add_option("FILE", file, "The .safe file to write")->required();
  with_module(verb(module, "genkey", "Create the module's encryption key", true,
                   [&] { return moduleGenkey(cli); }));

  // configuration
  with_module(verb(&app, "config", "Validate and apply the module's configuration", true,
                   [&] { return moduleConfig(cli); }));
  with_module(verb(&app, "confcheck", "Validate the module's configuration only", false,
                   [&] { return moduleConfcheck(cli); }));
  with_module(verb(&app, "confinfo", "Compare the active and installed configurations", false,
                   [&] { return moduleConfinfo(cli); }));
  with_module(verb(&app, "deconfig", "Remove the module's active configuration", true,
                   [&] { return moduleDeconfig(cli); }));

  // control
  CLI::App* start =
      verb(&app, "start", "Start the module", true, [&] { return controlStart(cli); });
  with_module(start);
  with_identity(start);
  for (const char* v : {"prim", "second", "primforce"}) {
    const std::string name = v;
    const char* help = name == "prim"     ? "Start a mirror module as primary (its data is the "
                                            "reference)"
                       : name == "second" ? "Start a mirror module as secondary (its data will "
                                            "be replaced)"
                                          : "Start as primary even with data left inconsistent "
                                            "by an interrupted reintegration";
    auto full = std::make_shared<std::string>();
    CLI::App* sub =
        verb(&app, v, help, true, [&cli, name, full] { return controlStart(cli, name, *full); });
    with_module(sub);
    if (name != "primforce") {
      sub->add_option("fullsync", *full,
                      "fullsync: the next reintegration sends every file whole, without "
                      "comparing (replicated directories)")
          ->check(CLI::IsMember({"fullsync"}));
    }
  }
  with_module(verb(&app, "rfsverify",
                   "Compare the replicated directories of both nodes and list the differences",
                   false, [&] { return rfsVerify(cli); }));
  with_module(verb(&app, "rfsdiff",
                   "On the primary: what a reintegration would copy if the secondary joined now",
                   false, [&] { return rfsDiff(cli); }));
  {
    auto date = std::make_shared<std::string>();
    CLI::App* sub = verb(&app, "secondforce",
                         "Start a mirror module as secondary, copying only the files modified "
                         "since -d DATE (the rest is taken as identical)",
                         true, [&cli, date] { return secondForce(cli, *date); });
    with_module(sub);
    sub->add_option("-d", *date,
                    "YYYY-MM-DD, \"YYYY-MM-DD hh:mm:ss\" or YYYY-MM-DDThh:mm:ss "
                    "(local time; Z for UTC)")
        ->required();
  }
  for (const char* v : {"stop", "restart", "stopstart", "forcestop", "swap"}) {
    const std::string name = v;
    const char* help = name == "stop"        ? "Stop the module"
                       : name == "restart"   ? "Restart the application locally (stop and start "
                                               "scripts only)"
                       : name == "stopstart" ? "Stop the module completely, then start it"
                       : name == "swap"      ? "Exchange the roles of a mirror's primary and "
                                               "secondary (run it on the primary)"
                                             : "Stop the module even if a script hangs";
    CLI::App* sub = verb(&app, v, help, true, [&cli, name] { return controlCommand(cli, name); });
    with_module(sub);
    with_identity(sub);
  }
  verb(&app, "shutdown", "Stop every module of this node", true,
       [&] { return controlShutdown(cli); });
  for (const char* v : {"waitstart", "waitstop"}) {
    const std::string kind = std::string(v).substr(4);
    CLI::App* sub = verb(&app, v,
                         kind == "start" ? "Wait for the end of a start (exit 0 if UP)"
                                         : "Wait until the module is stopped",
                         false, [&, kind] { return controlWait(cli, kind, "", timeout_s); });
    with_module(sub);
    sub->add_option("-t", timeout_s, "Give up after this many seconds");
  }
  CLI::App* waitstate = verb(&app, "waitstate", "Wait for a stable state", false,
                             [&] { return controlWait(cli, "state", state_arg, timeout_s); });
  with_module(waitstate);
  waitstate->add_option("STATE", state_arg, "STOP, WAIT, ALONE, PRIM, SECOND or UP")->required();
  waitstate->add_option("-t", timeout_s, "Give up after this many seconds");
  CLI::App* state = verb(&app, "state", "Show module states", false,
                         [&] { return controlState(cli, verbose, lq); });
  with_module(state);
  auto* v_opt = state->add_flag("-v", verbose, "Details: runtime, resources, state script");
  state
      ->add_flag("--lq", lq,
                 "Exit code from the state: STOP 0, WAIT 1, ALONE/UP 2, PRIM 3, "
                 "SECOND 4")
      ->excludes(v_opt);

  // logs
  CLI::App* log =
      verb(&app, "log", "Show the module log", false, [&] { return showLog(cli, count, all); });
  with_module(log);
  log->add_option("-s", count, "Number of lines (default 300)");
  log->add_flag("-A", all, "Include the verbose levels I and D");
  CLI::App* logsave = verb(&app, "logsave", "Save the module log to a file", false,
                           [&] { return saveLog(cli, file, all); });
  with_module(logsave);
  logsave->add_flag("-A", all, "Include the verbose levels I and D");
  logsave->add_option("FILE", file, "Destination file")->required();
  for (const char* v : {"printi", "printe"}) {
    const char level = v[5] == 'i' ? 'I' : 'E';
    CLI::App* sub = verb(&app, v,
                         level == 'I' ? "Write an information line to the module log (verbose)"
                                      : "Write an error line to the module log",
                         false, [&, level] { return printMessage(cli, level, message); });
    with_module(sub);
    sub->add_option("MESSAGE", message)->required();
  }
  CLI::App* cmdlog = verb(&app, "cmdlog", "Show the node's command log", false,
                          [&] { return showCmdlog(cli, count); });
  cmdlog->add_option("-s", count, "Number of lines (default 300)");
  with_module(verb(&app, "level", "Show Halo's version (and the module's, with -m)", false,
                   [&] { return showLevel(cli); }));

  // resources and settings
  CLI::App* get = verb(&app, "get", "Read a module resource", false,
                       [&] { return getResource(cli, resource); });
  with_module(get);
  get->add_option("-r", resource, "Resource name, e.g. usersetting.boot")->required();
  CLI::App* set = verb(&app, "set", "Set a module resource", true,
                       [&] { return setResource(cli, resource, value); });
  with_module(set);
  with_identity(set);
  set->add_option("-r", resource, "Resource name, e.g. custom.mycheck")->required();
  set->add_option("-v", value, "init, up, down or unknown")->required();
  // persistent settings
  std::string sub_arg;
  for (const char* v : {"checker", "failover"}) {
    const std::string name = v;
    CLI::App* sub = verb(&app, v,
                         name == "checker" ? "Turn all checkers on or off (persistent)"
                                           : "Turn automatic failover on or off (persistent)",
                         true, [&, name] { return settingSwitch(cli, name, state_arg); });
    with_module(sub);
    sub->add_option("WHAT", state_arg, "on or off")
        ->required()
        ->check(CLI::IsMember({"on", "off"}));
  }
  CLI::App* errd = verb(&app, "errd",
                        "Process monitoring: on, off, suspend, resume, enable "
                        "CLASS, disable CLASS, list",
                        true, [&] { return errdCommand(cli, state_arg, sub_arg); });
  with_module(errd);
  errd->add_option("WHAT", state_arg, "on, off, suspend, resume, enable, disable or list")
      ->required()
      ->check(CLI::IsMember({"on", "off", "suspend", "resume", "enable", "disable", "list"}));
  errd->add_option("CLASS", sub_arg, "class name for enable/disable");
  for (const char* v : {"incloop", "resetloop", "checkloop"}) {
    const std::string name = v;
    const char* help = name == "incloop"     ? "Count an automatic action (exit 1 at maxloop)"
                       : name == "resetloop" ? "Reset the maxloop counter"
                                             : "Exit 1 if one more automatic action would "
                                               "exceed maxloop";
    CLI::App* sub =
        verb(&app, v, help, name != "checkloop", [&cli, name] { return loopCommand(cli, name); });
    with_module(sub);
    with_identity(sub);
  }
  CLI::App* boot = verb(&app, "boot", "Start the module at boot: on, off, status", true,
                        [&] { return bootSetting(cli, state_arg); });
  with_module(boot);
  boot->add_option("WHAT", state_arg, "on, off or status")
      ->required()
      ->check(CLI::IsMember({"on", "off", "status"}));

  // The reference spells it "-lq"; CLI11 short options are one letter, so accept it as --lq.
  std::vector<std::string> args_in;
  for (int i = argc - 1; i >= 1; --i) {
    args_in.push_back(std::string(argv[i]) == "-lq" ? "--lq" : argv[i]);
  }
  try {
    app.parse(args_in);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : halo::cli::kExitUsage;
  }
  if (cli.module.empty()) {
    for (const char* env : {"HALO_MODULE", "SAFEMODULE"}) {
      if (const char* m = std::getenv(env); m && *m) {
        cli.module = m;
        break;
      }
    }
  }
  if (print_paths && !action) {
    return halo::cli::printPaths(cli);
  }
  if (!action) {
    std::cout << app.help();
    return halo::cli::kExitUsage;
  }
  if (state_arg == "status" || state_arg == "list") {
    changes = false;
  }
  const std::string args = joinArgs(argc, argv);
  if (changes) {
    logCommand(cli, "START " + args);
  }
  const int rc = action();
  if (changes) {
    logCommand(cli, "END " + std::to_string(rc));
  }
  return rc;
}
