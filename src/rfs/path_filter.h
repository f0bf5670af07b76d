#pragma once
// Which paths of a replicated directory are replicated: a predicate on the path relative to the
// directory and whether it names a directory (filter.h builds it from <notreplicated>; with
// "!regex" only matching files are replicated, directories always, so that they can hold them).
// Null means everything is.

#include <functional>
#include <string_view>

namespace halo::rfs {

using PathFilter = std::function<bool(std::string_view rel_path, bool is_dir)>;

}  // namespace halo::rfs
