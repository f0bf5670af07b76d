#pragma once
// The environment module scripts receive (reference 4.2): SafeKit's names, so existing scripts
// run unchanged, Halo's own names, and every <var> of <user>.

#include <string>
#include <utility>
#include <vector>

#include "base/paths.h"

namespace halo::module {

struct ScriptEnvInput {
  Paths paths;
  std::string module;
  std::string cli_dir;  // directory holding the `halo` command (SAFEBIN), put first on PATH
  std::string prefix;   // installation prefix (SAFE)
  std::vector<std::pair<std::string, std::string>> vars;
};

std::vector<std::string> buildScriptEnv(const ScriptEnvInput& in, std::vector<std::string> base);

}  // namespace halo::module
