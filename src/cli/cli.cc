#include "cli/cli.h"

#include <openssl/evp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "base/strings.h"
#include "module/module_log.h"
#include "module/runtime_state.h"
#include "module/script_env.h"
#include "module/tools.h"
#include "sys/files.h"
#include "sys/process.h"
#include "sys/unix_socket.h"

namespace halo::cli {

int Cli::fail(const std::string& message, int code) const {
  std::cerr << "halo: " << message << "\n";
  return code;
}

bool Cli::installed(const std::string& module) const {
  return sys::pathExists(paths.moduleUserConfig(module));
}

Status Cli::requireInstalled(const std::string& m) const {
  if (!installed(m)) {
    const auto all = installedModules();
    return notFound("module '" + m + "' is not installed (installed: " +
                    (all.empty() ? std::string("none") : join(all, ", ")) +
                    "); install it with halo module install FILE.safe");
  }
  return okStatus();
}

Status Cli::requireModule() const {
  if (module.empty()) {
    return invalidArgument("no module given: use -m NAME or set HALO_MODULE");
  }
  return requireInstalled(module);
}

std::vector<std::string> Cli::installedModules() const {
  std::vector<std::string> out;
  for (const auto& name : sys::listDir(paths.etc + "/modules")) {
    if (installed(name)) {
      out.push_back(name);
    }
  }
  return out;
}

Result<proto::Reply> Cli::daemon(const proto::Request& req) const {
  auto line = sys::requestLine(paths.daemonSocket(), proto::encodeRequest(req), Millis(30000));
  if (!line.ok()) {
    if (line.status().code() == StatusCode::Unavailable) {
      return unavailable("halod is not running (no " + paths.daemonSocket() +
                         "); start it with: systemctl start halod (or halod)");
    }
    return line.status();
  }
  return proto::decodeReply(*line);
}

Result<proto::Reply> Cli::runtime(const std::string& m, const proto::Request& req,
                                  std::optional<Millis> timeout) const {
  auto line = sys::requestLine(paths.moduleSocket(m), proto::encodeRequest(req), timeout);
  if (!line.ok()) {
    return line.status();
  }
  return proto::decodeReply(*line);
}

Cli::StateInfo Cli::moduleState(const std::string& m) const {
  StateInfo info;
  auto r = runtime(m, proto::Request{"state", m, "", {}}, Millis(5000));
  if (r.ok() && r->ok()) {
    info.runtime_alive = true;
    info.details = r->data;
    auto main = core::parseMainState(r->data.value("state", ""));
    auto ready = core::parseReadiness(r->data.value("readiness", ""));
    if (main && ready) {
      info.state = {*main, *ready};
    }
    return info;
  }
  auto p = module::loadPersistedState(paths, m);
  if (p.ok()) {
    info.state = p->state;
    info.details = {{"operation", core::operationName(p->operation)},
                    {"last_error", p->last_error}};
  }
  return info;
}

bool Cli::moduleStarted(const std::string& m) const {
  const auto st = moduleState(m);
  return st.runtime_alive || st.state.main != core::MainState::Stop;
}

bool Cli::startPending(const std::string& m) const {
  auto r = daemon(proto::Request{"runtimes", "", "", {}});
  if (!r.ok() || !r->ok()) {
    return false;
  }
  for (const auto& e : r->data.value("runtimes", nlohmann::json::array())) {
    if (e.value("module", "") == m) {
      return true;
    }
  }
  return false;
}

Result<config::ModuleConfig> Cli::installedConfig(const std::string& m) const {
  auto env = config::processEnvironment();
  env["HALO_ROOT"] = paths.root;
  env["HALO_MODULE"] = m;
  return config::parseModuleConfigFile(paths.moduleUserConfig(m), env);
}

std::vector<std::string> Cli::scriptEnv(const std::string& m, const std::string& bin_dir,
                                        const std::string& conf_dir) const {
  const std::string cli = module::findTool("halo");
  module::ScriptEnvInput in{paths, m, cli.empty() ? "" : cli.substr(0, cli.rfind('/')),
                            module::installPrefix(), {}};
  // The <var>s of the configuration the script belongs to (staged, active or installed).
  auto env_in = config::processEnvironment();
  env_in["HALO_ROOT"] = paths.root;
  auto cfg = config::parseModuleConfigFile(conf_dir + "/userconfig.xml", env_in);
  if (cfg.ok() && cfg->user) {
    for (const auto& v : cfg->user->vars) {
      in.vars.emplace_back(v.name, v.value);
    }
  }
  auto env = module::buildScriptEnv(in, sys::currentEnvironment());
  sys::setEnv(env, "SAFEUSERBIN", bin_dir);
  sys::setEnv(env, "HALO_USERBIN", bin_dir);
  sys::setEnv(env, "SAFEUSERCONF", conf_dir);
  sys::setEnv(env, "HALO_USERCONF", conf_dir);
  return env;
}

std::optional<int> Cli::runScript(const std::string& m, const std::string& bin_dir,
                                  const std::string& conf_dir, const std::string& name,
                                  const std::vector<std::string>& args) const {
  const std::string path = bin_dir + "/" + name;
  if (!sys::pathExists(path)) {
    return std::nullopt;
  }
  sys::SpawnOptions o;
  o.path = path;
  o.argv = {path};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.env = scriptEnv(m, bin_dir, conf_dir);
  o.cwd = bin_dir;
  o.output_fd = STDOUT_FILENO;
  auto child = sys::spawn(o);
  if (!child.ok()) {
    fail("script " + name + ": " + child.status().message());
    return 127;
  }
  int status = 0;
  waitpid(child->pid, &status, 0);
  close(child->pidfd);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void Cli::refreshRuntime(const std::string& m) const {
  (void)runtime(m, proto::Request{"refresh", m, identity, {}}, Millis(5000));
}

void Cli::moduleLog(const std::string& m, char level, const std::string& message) const {
  (void)sys::makeDirs(paths.moduleVarDir(m));
  auto log = ModuleLog::open(paths.moduleLogDb(m), m);
  auto lvl = parseLogLevel(level);
  if (log.ok() && lvl.ok()) {
    (void)log->append(time.systemTime(), *lvl, "cli", message);
  }
}

std::string fileSha256(const std::string& path) {
  auto data = sys::readFile(path);
  if (!data.ok()) {
    return "";
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data->data(), data->size(), md, &len, EVP_sha256(), nullptr);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(b, sizeof(b), "%02x", md[i]);
    hex += b;
  }
  return hex;
}

}  // namespace halo::cli
