#pragma once
// Syntax checks for attribute values shared by the cluster and module parsers (internal).

#include <cstdint>
#include <optional>
#include <string_view>

namespace halo::config::internal {

// Decimal integer with an optional leading '-', surrounded by optional blanks; nullopt on junk or
// overflow.
std::optional<int64_t> parseInteger(std::string_view text);
// Like parseInteger, also accepting "0x..." hexadecimal (rfs roflags).
std::optional<int64_t> parseIntegerOrHex(std::string_view text);

// IPv4 dotted quad or IPv6 literal (inet_pton); `allow_brackets` accepts "[2001:db8::1]".
bool isIpAddress(std::string_view text, bool allow_brackets = false);
// RFC 1123 host name: dot-separated labels of letters, digits and '-', the last not all digits
// (so a mistyped IPv4 address such as 10.0.0.300 is not taken for a name).
bool isHostName(std::string_view text);
// Cluster node name: a letter or digit, then up to 62 letters, digits, '_', '-' or '.'.
bool isNodeName(std::string_view text);
bool isIpOrHostName(std::string_view text, bool allow_brackets = false);
// "5A:FE:C0:A8:01:DE" or with '-' separators.
bool isMacAddress(std::string_view text);
// Dotted IPv4 mask with contiguous ones, or a prefix length 0..128.
bool isNetmask(std::string_view text);
// Linux network interface name: 1..15 characters, no '/', ':' or blanks.
bool isInterfaceName(std::string_view text);
// Resource identifier part ("tcp.<ident>"): letters, digits and "_-.:@" (generated idents hold
// addresses such as 10.0.0.0 or fe80::1).
bool isResourceIdent(std::string_view text);
// Absolute path without "." or ".." components, empty components or a trailing '/'.
bool isCleanAbsolutePath(std::string_view text);
// Relative path without "..", empty components or a leading '/'.
bool isCleanRelativePath(std::string_view text);
// True when `inner` is `outer` or below it (both clean absolute paths).
bool isSameOrBelow(std::string_view inner, std::string_view outer);
// POSIX extended regular expression that compiles (regcomp, so no exception can escape).
bool isExtendedRegex(std::string_view text);
// crontab time spec: exactly five blank-separated fields of [0-9*,/-] or names (e.g. "mon").
bool isCronSpec(std::string_view text);

}  // namespace halo::config::internal
