#pragma once
// Finds Halo's own executables next to the running one, both in the build tree (all in bin/) and
// in an installation (bin/halo, sbin/halod, libexec/halo/halo-module).

#include <string>

namespace halo::module {

// Full path of `name`, or "" when not found.
std::string findTool(const std::string& name);
// The installation prefix (SAFE): the directory above bin/, sbin/ or libexec/halo/.
std::string installPrefix();

}  // namespace halo::module
