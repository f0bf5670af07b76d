#include "module/script_env.h"

#include "sys/process.h"

namespace halo::module {

std::vector<std::string> buildScriptEnv(const ScriptEnvInput& in, std::vector<std::string> env) {
  std::string path = in.cli_dir;
  for (const auto& e : env) {
    if (e.rfind("PATH=", 0) == 0) {
      path += ":" + e.substr(5);
    }
  }
  if (path == in.cli_dir) {
    path += ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  }
  const std::string bin = in.paths.activeBinDir(in.module);
  const std::string conf = in.paths.activeConfDir(in.module);
  const std::string uvar = in.paths.moduleVarDir(in.module);
  const std::pair<const char*, std::string> fixed[] = {
      {"PATH", path},
      {"HALO_ROOT", in.paths.root},
      {"HALO_MODULE", in.module},
      {"HALO_BIN", in.cli_dir},
      {"HALO_USERBIN", bin},
      {"HALO_USERCONF", conf},
      {"HALO_VAR", in.paths.var},
      {"HALO_USERVAR", uvar},
      {"SAFE", in.prefix},
      {"SAFEMODULE", in.module},
      {"SAFEBIN", in.cli_dir},
      {"SAFEUSERBIN", bin},
      {"SAFEUSERCONF", conf},
      {"SAFEVAR", in.paths.var},
      {"SAFEUSERVAR", uvar},
  };
  for (const auto& [name, value] : fixed) {
    sys::setEnv(env, name, value);
  }
  for (const auto& [name, value] : in.vars) {
    sys::setEnv(env, name, value);
  }
  return env;
}

}  // namespace halo::module
