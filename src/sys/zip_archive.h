#pragma once
// Module packages (NAME.safe): a zip of conf/userconfig.xml, bin/* (scripts) and optional web/.
// The obsolete manifest.xml and conf/userconfig.xml.template of SafeKit packages are accepted and
// ignored.
//
// A package is untrusted input (it comes from the operator, another node or the web console) and
// it is installed as root, so extraction validates the whole archive first, CRCs included, and
// writes nothing unless every entry is acceptable.

#include <cstdint>
#include <string>

#include "base/status.h"

namespace halo {

struct PackageLimits {
  uint64_t max_total_bytes = uint64_t{256} << 20;  // sum of uncompressed sizes
  int64_t max_entries = 10000;
};

// Extracts safe_path into dest_dir, an existing empty directory (the caller passes a fresh
// temporary directory and moves it into place). Only regular files and directories under conf/,
// bin/ and web/ are accepted; conf/userconfig.xml is required. Files in bin/ keep the zip's unix
// permission bits and are always made executable by their owner, since packages built on
// Windows carry no modes. Group and other write bits are dropped: the scripts run as root.
// Errors are InvalidArgument for a bad package, NotFound / Internal for I/O.
Status extractPackage(const std::string& safe_path, const std::string& dest_dir,
                      const PackageLimits& limits = {});

// Zips module_dir/conf, module_dir/bin and module_dir/web (when present) with their unix modes
// into out_path, atomically: out_path appears complete or not at all. Symbolic links to regular
// files are stored as the files they point to.
Status writePackage(const std::string& module_dir, const std::string& out_path);

}  // namespace halo
