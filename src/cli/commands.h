#pragma once
// The verbs of `halo`, one function each; main.cc wires them to the command line.

#include <optional>
#include <string>
#include <vector>

#include "cli/cli.h"

namespace halo::cli {

int moduleInstall(Cli& cli, const std::string& file, std::optional<int> id, bool replace);
int moduleList(Cli& cli, bool with_ids);
int moduleGetports(Cli& cli);
int moduleUninstall(Cli& cli);
int modulePackage(Cli& cli, const std::string& out);
int moduleGenkey(Cli& cli);

int moduleConfig(Cli& cli);
int moduleConfcheck(Cli& cli);
int moduleConfinfo(Cli& cli);
int moduleDeconfig(Cli& cli);
int clusterConfig(Cli& cli, const std::string& file);
int clusterConfcheck(Cli& cli, const std::string& file);
int clusterState(Cli& cli);

// verb: start, prim, second or primforce (the last three: mirror modules only).
// fullsync: "fullsync" makes the next reintegration send every file whole.
int controlStart(Cli& cli, const std::string& verb = "start", const std::string& fullsync = "");
// halo rfsverify: both trees compared by the replication process; exit 1 when they differ.
int rfsVerify(Cli& cli);
int rfsDiff(Cli& cli);
// halo secondforce -d DATE: start as secondary, reintegrating only the files modified since.
int secondForce(Cli& cli, const std::string& date);
// stop, restart, stopstart, forcestop: sent to the module's runtime.
int controlCommand(Cli& cli, const std::string& verb);
int controlShutdown(Cli& cli);
// kind: "start", "stop" or "state" (then `state` names the awaited state).
int controlWait(Cli& cli, const std::string& kind, const std::string& state,
                std::optional<int> timeout_s);
int controlState(Cli& cli, bool verbose, bool lq);

int showLog(Cli& cli, int count, bool all);
int saveLog(Cli& cli, const std::string& file, bool all);
int printMessage(Cli& cli, char level, const std::string& message);
int showCmdlog(Cli& cli, int count);
int showLevel(Cli& cli);
int getResource(Cli& cli, const std::string& name);
int setResource(Cli& cli, const std::string& name, const std::string& value);
int bootSetting(Cli& cli, const std::string& what);
int printPaths(Cli& cli);

// setting: "checker" or "failover"; value: "on" or "off".
int settingSwitch(Cli& cli, const std::string& setting, const std::string& value);
// sub: on, off, suspend, resume, enable CLASS, disable CLASS, list.
int errdCommand(Cli& cli, const std::string& sub, const std::string& arg);
// verb: incloop, resetloop, checkloop (sent to the running module).
int loopCommand(Cli& cli, const std::string& verb);

}  // namespace halo::cli
