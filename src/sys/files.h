#pragma once
// File helpers for configuration and state files. Every write that others read is atomic
// (temporary file, fsync, rename) so a crash leaves the old or the new content, never a mix.

#include <string>
#include <vector>

#include "base/status.h"

namespace halo::sys {

Result<std::string> readFile(const std::string& path);
Status writeFileAtomic(const std::string& path, const std::string& content, int mode = 0644);
Status makeDirs(const std::string& path, int mode = 0755);
// Removes a file or a whole tree; a missing path is not an error.
Status removeTree(const std::string& path);
// Copies a directory tree (regular files with their modes, and directories).
Status copyTree(const std::string& from, const std::string& to);
// Replaces directory `to` with `from` (rename, so readers never see a half-written tree).
Status replaceDir(const std::string& from, const std::string& to);
bool pathExists(const std::string& path);
bool isExecutableFile(const std::string& path);
// Names (not paths) of the entries of a directory, sorted; empty if it does not exist.
std::vector<std::string> listDir(const std::string& path);
// A fresh private directory under `parent` (created if needed): parent/prefix.XXXXXX.
Result<std::string> makeTempDir(const std::string& parent, const std::string& prefix);

}  // namespace halo::sys
