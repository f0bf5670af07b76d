#include "module/tools.h"

#include "sys/files.h"
#include "sys/process.h"

namespace halo::module {

std::string findTool(const std::string& name) {
  const std::string self = sys::selfExeDir();
  for (const char* rel : {"", "/../libexec/halo", "/../bin", "/../sbin", "/../../bin",
                          "/../../sbin"}) {
    const std::string p = self + rel + "/" + name;
    if (sys::isExecutableFile(p)) {
      return p;
    }
  }
  return "";
}

std::string installPrefix() {
  std::string self = sys::selfExeDir();
  if (self.size() >= 13 && self.compare(self.size() - 13, 13, "/libexec/halo") == 0) {
    return self.substr(0, self.size() - 13);
  }
  auto slash = self.rfind('/');
  return slash == std::string::npos || slash == 0 ? "/" : self.substr(0, slash);
}

}  // namespace halo::module
