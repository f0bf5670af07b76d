#include "sys/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

namespace fs = std::filesystem;

namespace halo::sys {

namespace {
Status fsStatus(const std::string& what, const std::error_code& ec) {
  return errnoStatus(what, ec.value());
}
}  // namespace

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return errnoStatus("open " + path, errno ? errno : ENOENT);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status writeFileAtomic(const std::string& path, const std::string& content, int mode) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return errnoStatus("open " + tmp, errno);
  }
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      int e = errno;
      close(fd);
      unlink(tmp.c_str());
      return errnoStatus("write " + tmp, e);
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd) < 0 || close(fd) < 0) {
    int e = errno;
    unlink(tmp.c_str());
    return errnoStatus("fsync " + tmp, e);
  }
  if (rename(tmp.c_str(), path.c_str()) < 0) {
    int e = errno;
    unlink(tmp.c_str());
    return errnoStatus("rename " + tmp, e);
  }
  return okStatus();
}

Status makeDirs(const std::string& path, int mode) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) {
    return fsStatus("mkdir " + path, ec);
  }
  chmod(path.c_str(), static_cast<mode_t>(mode));
  return okStatus();
}

Status removeTree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) {
    return fsStatus("remove " + path, ec);
  }
  return okStatus();
}

Status copyTree(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing, ec);
  if (ec) {
    return fsStatus("copy " + from + " to " + to, ec);
  }
  return okStatus();
}

Status replaceDir(const std::string& from, const std::string& to) {
  const std::string old = to + ".old." + std::to_string(getpid());
  std::error_code ec;
  const bool had = fs::exists(to, ec);
  if (had) {
    fs::rename(to, old, ec);
    if (ec) {
      return fsStatus("rename " + to, ec);
    }
  }
  fs::rename(from, to, ec);
  if (ec) {
    if (had) {
      std::error_code ignored;
      fs::rename(old, to, ignored);
    }
    return fsStatus("rename " + from + " to " + to, ec);
  }
  if (had) {
    fs::remove_all(old, ec);
  }
  return okStatus();
}

bool pathExists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

bool isExecutableFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

std::vector<std::string> listDir(const std::string& path) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::directory_iterator(path, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    out.push_back(it->path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::string> makeTempDir(const std::string& parent, const std::string& prefix) {
  HALO_RETURN_IF_ERROR(makeDirs(parent, 0700));
  std::string templ = parent + "/" + prefix + ".XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    return errnoStatus("mkdtemp " + templ, errno);
  }
  return templ;
}

}  // namespace halo::sys
