#include "cli/keys.h"

#include <openssl/rand.h>

#include <cstdio>

#include "sys/files.h"

namespace halo::cli {

Status writeKeyFile(const std::string& dir, const std::string& name, const std::string& header,
                    const std::string& trailer) {
  unsigned char key[48];
  if (RAND_bytes(key, sizeof(key)) != 1) {
    return internalError("cannot draw random bytes from OpenSSL");
  }
  std::string hex;
  char b[3];
  for (unsigned char c : key) {
    std::snprintf(b, sizeof(b), "%02x", c);
    hex += b;
  }
  HALO_RETURN_IF_ERROR(sys::makeDirs(dir, 0700));
  return sys::writeFileAtomic(dir + "/" + name, header + "\n" + hex + "\n" + trailer, 0600);
}

}  // namespace halo::cli
