#include "rfs/quarantine.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>

#include "rfs/applier_util.h"
#include "sys/files.h"

namespace halo::rfs {

namespace {

using applier_internal::openBeneath;
using applier_internal::UniqueFd;

// Depth bound of a copied subtree (a loop would be a bug; real trees are far shallower).
constexpr int kMaxDepth = 4096;

std::string dateFolder(SystemTime now) {
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H-%M-%SZ", &tm);
  return buf;
}

// "/var/lib/pgsql" -> "var_lib_pgsql": one folder per replicated directory.
std::string flatten(const std::string& dir) {
  std::string out;
  for (char c : dir) {
    out += c == '/' ? '_' : c;
  }
  while (!out.empty() && out.front() == '_') {
    out.erase(0, 1);
  }
  return out.empty() ? "root" : out;
}

class Copier {
 public:
  Copier(int root, QuarantineReport* report) : root_(root), report_(report) {}

  // Copies `rel` (beneath the root) to `dest` (absolute), whatever it is.
  void copy(const std::string& rel, const std::string& dest, int depth = 0) {
    struct stat st {};
    if (::fstatat(root_, rel.empty() ? "." : rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return;  // gone since: nothing of it to keep
    }
    if (depth > kMaxDepth) {
      report_->errors.push_back(rel + ": too deep");
      return;
    }
    if (S_ISDIR(st.st_mode)) {
      copyDir(rel, dest, st, depth);
    } else if (S_ISREG(st.st_mode)) {
      copyFile(rel, dest, st);
    } else if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      const ssize_t n = ::readlinkat(root_, rel.c_str(), target.data(), target.size());
      if (n < 0 || ::symlink(target.substr(0, static_cast<size_t>(n)).c_str(), dest.c_str()) != 0) {
        report_->errors.push_back(rel + ": " + std::strerror(errno));
        return;
      }
      (void)::lchown(dest.c_str(), st.st_uid, st.st_gid);
    } else {
      report_->errors.push_back(rel + ": a special file, not copied");
    }
  }

 private:
  void copyFile(const std::string& rel, const std::string& dest, const struct stat& st) {
    auto in = openBeneath(root_, rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    UniqueFd out(::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!in.ok() || out.get() < 0) {
      report_->errors.push_back(
          rel + ": " + (in.ok() ? std::string(std::strerror(errno)) : in.status().message()));
      return;
    }
    uint64_t left = static_cast<uint64_t>(st.st_size);
    while (left > 0) {
      const ssize_t n = ::copy_file_range(in->get(), nullptr, out.get(), nullptr, left, 0);
      if (n <= 0) {
        if (n < 0) {
          report_->errors.push_back(rel + ": " + std::strerror(errno));
        }
        break;
      }
      left -= static_cast<uint64_t>(n);
    }
    finish(out.get(), st);
    report_->bytes += static_cast<uint64_t>(st.st_size) - left;
  }

  void copyDir(const std::string& rel, const std::string& dest, const struct stat& st, int depth) {
    if (::mkdir(dest.c_str(), 0700) != 0 && errno != EEXIST) {
      report_->errors.push_back(rel + ": " + std::strerror(errno));
      return;
    }
    auto fd = openBeneath(root_, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    DIR* d = fd.ok() ? ::fdopendir(::dup(fd->get())) : nullptr;
    if (d == nullptr) {
      report_->errors.push_back(rel + ": cannot list it");
      return;
    }
    std::set<std::string> names;
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") {
        names.insert(name);
      }
    }
    ::closedir(d);
    for (const auto& name : names) {
      copy(rel.empty() ? name : rel + "/" + name, dest + "/" + name, depth + 1);
    }
    UniqueFd self(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (self.get() >= 0) {
      finish(self.get(), st);
    }
  }

  static void finish(int fd, const struct stat& st) {
    (void)::fchown(fd, st.st_uid, st.st_gid);
    (void)::fchmod(fd, st.st_mode & 07777);
    const struct timespec times[2] = {st.st_atim, st.st_mtim};
    (void)::futimens(fd, times);
  }

  const int root_;
  QuarantineReport* report_;
};

}  // namespace

Result<QuarantineReport> quarantineChanges(const ChangeLog& changes,
                                           const std::vector<std::string>& dirs,
                                           const std::vector<int>& roots,
                                           const std::string& splitbrain_dir, SystemTime now) {
  QuarantineReport report;
  report.dir = splitbrain_dir + "/" + dateFolder(now);
  HALO_RETURN_IF_ERROR(sys::makeDirs(report.dir, 0700));
  for (const auto& [root, r] : changes.roots()) {
    if (root >= roots.size() || root >= dirs.size()) {
      continue;
    }
    const std::string base = report.dir + "/" + flatten(dirs[root]);
    Copier copier(roots[root], &report);
    std::set<std::string> wanted(r.fresh.begin(), r.fresh.end());
    wanted.insert(r.uncertain.begin(), r.uncertain.end());
    for (const auto& [path, pc] : r.paths) {
      wanted.insert(path);
    }
    for (const auto& path : wanted) {
      if (path.empty()) {
        continue;  // the directory's own metadata: nothing to keep
      }
      const auto slash = path.rfind('/');
      HALO_RETURN_IF_ERROR(sys::makeDirs(
          slash == std::string::npos ? base : base + "/" + path.substr(0, slash), 0700));
      const size_t before = report.errors.size();
      copier.copy(path, base + "/" + path);
      if (report.errors.size() == before) {
        report.copied.push_back(dirs[root] + "/" + path);
      }
    }
    for (const auto& d : r.dirs) {
      report.gone.push_back(dirs[root] + (d.empty() ? "" : "/" + d));
    }
  }
  std::ofstream list(report.dir + "/CHANGES.txt");
  list << "# What this node changed while it was isolated from its peer (split brain), copied\n"
          "# here before it was resynchronised from the peer. Review and merge by hand.\n";
  for (const auto& c : report.copied) {
    list << "changed  " << c << "\n";
  }
  for (const auto& g : report.gone) {
    list << "entries  " << g << "  (names created, renamed or removed here)\n";
  }
  for (const auto& e : report.errors) {
    list << "error    " << e << "\n";
  }
  if (!list) {
    return internalError("cannot write " + report.dir + "/CHANGES.txt");
  }
  return report;
}

}  // namespace halo::rfs
