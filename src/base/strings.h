#pragma once
// Small string helpers shared by the configuration, the CLI and the daemons.

#include <string>
#include <string_view>
#include <vector>

namespace halo {

std::string trim(std::string_view s);
// Splits on any character of `seps`, dropping empty pieces and trimming each piece.
std::vector<std::string> splitTrimmed(std::string_view s, std::string_view seps);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
std::string toLower(std::string_view s);
// "512 B", "1.5 KiB", "3.2 GiB": sizes for people (binary units, one decimal).
std::string humanBytes(double bytes);
// A module name is a C identifier of at most 32 characters: it names files, sockets and
// environment values, so nothing that a shell or a path would interpret is allowed.
bool isValidModuleName(std::string_view name);

}  // namespace halo
