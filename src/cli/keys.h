#pragma once
// Key files: 16 bytes of AES-128 key and 32 of HMAC-SHA256 key (encrypt-then-MAC of the UDP
// protocols), from OpenSSL's generator, hex-encoded after a header line, mode 0600. `trailer`
// (the module's TLS identity PEMs) follows those two lines, so one file carries all secrets.

#include <string>

#include "base/status.h"

namespace halo::cli {

Status writeKeyFile(const std::string& dir, const std::string& name, const std::string& header,
                    const std::string& trailer = "");

}  // namespace halo::cli
