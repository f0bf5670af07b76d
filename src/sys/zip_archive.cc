#include "sys/zip_archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <memory>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

namespace halo {

namespace {

namespace fs = std::filesystem;

constexpr size_t kBufferSize = 64 * 1024;
constexpr char kUserConfig[] = "conf/userconfig.xml";

struct ZipDiscarder {
  void operator()(zip_t* z) const { zip_discard(z); }
};
using ZipPtr = std::unique_ptr<zip_t, ZipDiscarder>;

struct ZipFileCloser {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};
using ZipFilePtr = std::unique_ptr<zip_file_t, ZipFileCloser>;

class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

enum class Kind { File, Dir, Ignored };

struct Entry {
  zip_uint64_t index = 0;
  std::string name;  // without the trailing '/' of directories
  Kind kind = Kind::File;
  mode_t mode = 0644;
  uint64_t size = 0;
};

std::string libzipCodeText(int code) {
  zip_error_t e;
  zip_error_init_with_code(&e, code);
  std::string text = zip_error_strerror(&e);
  zip_error_fini(&e);
  return text;
}

Status bad(const std::string& path, const std::string& what) {
  return invalidArgument(path + ": invalid module package: " + what);
}

Status corrupt(const std::string& path, const std::string& entry, const std::string& what) {
  return invalidArgument(path + ": corrupt module package: entry '" + entry + "': " + what);
}

const char* fileTypeName(mode_t type) {
  switch (type) {
    case S_IFLNK: return "a symbolic link";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFIFO: return "a fifo";
    case S_IFSOCK: return "a socket";
    default: return "not a regular file or directory";
  }
}

// Returns "" when the name is acceptable, else why not. Sets *kind for accepted names.
std::string checkName(std::string_view name, Kind* kind) {
  if (name.empty()) {
    return "empty entry name";
  }
  if (name.front() == '/') {
    return "absolute path";
  }
  if (name.find('\\') != std::string_view::npos) {
    return "backslash in path";
  }
  const bool is_dir = name.back() == '/';
  if (is_dir) {
    name.remove_suffix(1);
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = std::min(name.find('/', start), name.size());
    std::string_view part = name.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") {
      return "'" + std::string(part) + "' path component";
    }
    start = end + 1;
  }
  if (name == "manifest.xml" && !is_dir) {
    *kind = Kind::Ignored;
    return "";
  }
  const std::string_view top = name.substr(0, name.find('/'));
  if (top != "conf" && top != "bin" && top != "web") {
    return "outside conf/, bin/ and web/";
  }
  if (top == name && !is_dir) {
    return "a file where directory " + std::string(top) + "/ is expected";
  }
  if (is_dir) {
    *kind = Kind::Dir;
  } else {
    *kind = name == "conf/userconfig.xml.template" ? Kind::Ignored : Kind::File;
  }
  return "";
}

// Permission bits for an extracted file: see extractPackage() in the header.
mode_t fileMode(std::string_view name, bool has_unix_mode, mode_t zip_mode) {
  const bool in_bin = name.starts_with("bin/");
  if (!has_unix_mode) {
    return in_bin ? 0755 : 0644;
  }
  return (zip_mode & 0755) | (in_bin ? 0700 : 0600);
}

// Checks names, types, limits and conflicts of every entry; reads nothing.
Result<std::vector<Entry>> planEntries(zip_t* za, const std::string& path,
                                       const PackageLimits& limits) {
  const zip_int64_t count = zip_get_num_entries(za, 0);
  if (count > limits.max_entries) {
    return bad(path, std::to_string(count) + " entries, more than the limit of " +
                         std::to_string(limits.max_entries));
  }
  std::vector<Entry> entries;
  std::set<std::string> files;
  std::set<std::string> dirs;
  uint64_t total = 0;
  for (zip_int64_t i = 0; i < count; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(za, static_cast<zip_uint64_t>(i), 0, &st) != 0 || st.name == nullptr) {
      return corrupt(path, "#" + std::to_string(i), zip_strerror(za));
    }
    Entry e;
    e.index = static_cast<zip_uint64_t>(i);
    std::string why = checkName(st.name, &e.kind);
    if (!why.empty()) {
      return bad(path, "entry '" + std::string(st.name) + "': " + why);
    }
    zip_uint8_t opsys = 0;
    zip_uint32_t attr = 0;
    if (zip_file_get_external_attributes(za, e.index, 0, &opsys, &attr) != 0) {
      return corrupt(path, st.name, zip_strerror(za));
    }
    const mode_t unix_mode = opsys == ZIP_OPSYS_UNIX ? static_cast<mode_t>(attr >> 16) : 0;
    const mode_t type = unix_mode & S_IFMT;
    if (type != 0 && type != S_IFREG && type != S_IFDIR) {
      return bad(path, "entry '" + std::string(st.name) + "' is " + fileTypeName(type));
    }
    if ((type == S_IFDIR && e.kind != Kind::Dir) || (type == S_IFREG && e.kind == Kind::Dir)) {
      return bad(path, "entry '" + std::string(st.name) + "': type and name disagree");
    }
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE) {
      return bad(path, "entry '" + std::string(st.name) + "' is encrypted");
    }
    if (e.kind == Kind::Ignored) {
      continue;
    }
    e.name = st.name;
    if (e.kind == Kind::Dir) {
      e.name.pop_back();
    } else {
      e.size = st.size;
      e.mode = fileMode(e.name, unix_mode != 0, unix_mode);
      total += st.size;
      if (total > limits.max_total_bytes) {
        return bad(path, "uncompressed size exceeds the limit of " +
                             std::to_string(limits.max_total_bytes >> 20) + " MiB");
      }
      if (!files.insert(e.name).second) {
        return bad(path, "duplicate entry '" + e.name + "'");
      }
    }
    for (size_t p = e.name.find('/'); p != std::string::npos; p = e.name.find('/', p + 1)) {
      dirs.insert(e.name.substr(0, p));
    }
    if (e.kind == Kind::Dir) {
      dirs.insert(e.name);
    }
    entries.push_back(std::move(e));
  }
  if (files.count(kUserConfig) == 0) {
    return bad(path, "no conf/userconfig.xml");
  }
  for (const std::string& d : dirs) {
    if (files.count(d) != 0) {
      return bad(path, "'" + d + "' is both a file and a directory");
    }
  }
  return entries;
}

// Reads one entry to its end, so libzip checks its CRC and size; hands each chunk to sink.
template <typename Sink>
Status readEntry(zip_t* za, const std::string& path, const Entry& e, Sink&& sink) {
  ZipFilePtr f(zip_fopen_index(za, e.index, 0));
  if (!f) {
    return corrupt(path, e.name, zip_strerror(za));
  }
  std::vector<char> buf(kBufferSize);
  uint64_t got = 0;
  while (true) {
    const zip_int64_t n = zip_fread(f.get(), buf.data(), buf.size());
    if (n < 0) {
      return corrupt(path, e.name, zip_file_strerror(f.get()));
    }
    if (n == 0) {
      break;
    }
    got += static_cast<uint64_t>(n);
    if (got > e.size) {
      return corrupt(path, e.name, "more data than its declared size");
    }
    HALO_RETURN_IF_ERROR(sink(buf.data(), static_cast<size_t>(n)));
  }
  if (got != e.size) {
    return corrupt(path, e.name, "less data than its declared size");
  }
  return okStatus();
}

Status writeAll(int fd, const char* data, size_t n, const std::string& target) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errnoStatus("write " + target, errno);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return okStatus();
}

Status makeDirs(const std::string& dest, std::string_view rel) {
  for (size_t p = 0; p != std::string_view::npos;) {
    p = rel.find('/', p + 1);
    const std::string dir = dest + "/" + std::string(rel.substr(0, p));
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return errnoStatus("mkdir " + dir, errno);
    }
  }
  return okStatus();
}

Status extractFile(zip_t* za, const std::string& path, const Entry& e, const std::string& dest) {
  const size_t slash = e.name.rfind('/');
  HALO_RETURN_IF_ERROR(makeDirs(dest, std::string_view(e.name).substr(0, slash)));
  const std::string target = dest + "/" + e.name;
  UniqueFd fd(::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    return errnoStatus("create " + target, errno);
  }
  HALO_RETURN_IF_ERROR(readEntry(za, path, e, [&](const char* data, size_t n) {
    return writeAll(fd.get(), data, n, target);
  }));
  // fchmod, not open's mode: the umask must not change what the package says.
  if (::fchmod(fd.get(), e.mode) != 0) {
    return errnoStatus("chmod " + target, errno);
  }
  if (::close(fd.release()) != 0) {
    return errnoStatus("close " + target, errno);
  }
  return okStatus();
}

struct SourceFile {
  std::string rel;  // name in the archive, without a trailing '/'
  std::string abs;
  bool dir = false;
  mode_t perm = 0;
};

// Lists dir_name (conf, bin or web) of module_dir recursively, in name order.
Status collect(const std::string& module_dir, const std::string& dir_name,
               std::vector<SourceFile>* out) {
  const fs::path root(module_dir);
  std::error_code ec;
  out->push_back({dir_name, (root / dir_name).string(), true, 0755});
  fs::recursive_directory_iterator it(root / dir_name, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    struct stat sb;
    if (::stat(p.c_str(), &sb) != 0) {
      return errnoStatus("stat " + p.string(), errno);
    }
    const bool link = it->is_symlink(ec);
    if (S_ISDIR(sb.st_mode) && link) {
      // Following directory links could loop or pull in arbitrary trees.
      return invalidArgument(p.string() + ": symbolic link to a directory cannot be packaged");
    }
    if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode)) {
      return invalidArgument(p.string() + ": not a regular file or directory");
    }
    const std::string rel = fs::relative(p, root, ec).generic_string();
    out->push_back({rel, p.string(), S_ISDIR(sb.st_mode), sb.st_mode & 0777});
  }
  if (ec) {
    return internalError("list " + (root / dir_name).string() + ": " + ec.message());
  }
  return okStatus();
}

Status addEntry(zip_t* za, const SourceFile& f) {
  zip_int64_t idx = -1;
  if (f.dir) {
    idx = zip_dir_add(za, (f.rel + "/").c_str(), ZIP_FL_ENC_UTF_8);
  } else {
    zip_source_t* src = zip_source_file_create(f.abs.c_str(), 0, -1, nullptr);  // -1: to the end
    if (src == nullptr) {
      return internalError("zip " + f.abs + ": cannot open");
    }
    idx = zip_file_add(za, f.rel.c_str(), src, ZIP_FL_ENC_UTF_8);
    if (idx < 0) {
      zip_source_free(src);
    }
  }
  const zip_uint32_t attr = static_cast<zip_uint32_t>((f.dir ? S_IFDIR : S_IFREG) | f.perm) << 16;
  if (idx < 0 || zip_file_set_external_attributes(za, static_cast<zip_uint64_t>(idx), 0,
                                                  ZIP_OPSYS_UNIX, attr) != 0) {
    return internalError("zip add " + f.rel + ": " + zip_strerror(za));
  }
  return okStatus();
}

}  // namespace

Status extractPackage(const std::string& safe_path, const std::string& dest_dir,
                      const PackageLimits& limits) {
  struct stat sb;
  if (::stat(safe_path.c_str(), &sb) != 0) {
    return errnoStatus(safe_path, errno);
  }
  if (!S_ISREG(sb.st_mode)) {
    return invalidArgument(safe_path + ": not a module package (not a regular file)");
  }
  int err = 0;
  ZipPtr za(zip_open(safe_path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &err));
  if (!za) {
    return invalidArgument(safe_path + ": not a module package (not a zip archive: " +
                           libzipCodeText(err) + ")");
  }
  HALO_ASSIGN_OR_RETURN(std::vector<Entry> entries, planEntries(za.get(), safe_path, limits));
  for (const Entry& e : entries) {
    if (e.kind == Kind::File) {
      HALO_RETURN_IF_ERROR(
          readEntry(za.get(), safe_path, e, [](const char*, size_t) { return okStatus(); }));
    }
  }
  for (const Entry& e : entries) {
    if (e.kind == Kind::Dir) {
      HALO_RETURN_IF_ERROR(makeDirs(dest_dir, e.name));
    } else {
      HALO_RETURN_IF_ERROR(extractFile(za.get(), safe_path, e, dest_dir));
    }
  }
  return okStatus();
}

}  // namespace halo

namespace halo {

Status writePackage(const std::string& module_dir, const std::string& out_path) {
  struct stat sb;
  const std::string user_config = module_dir + "/" + kUserConfig;
  if (::stat(user_config.c_str(), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    return notFound(module_dir + ": not a module directory (no " + kUserConfig + ")");
  }
  std::vector<SourceFile> files;
  for (const char* dir : {"conf", "bin", "web"}) {
    const std::string abs = module_dir + "/" + dir;
    if (std::string_view(dir) != "conf" && ::stat(abs.c_str(), &sb) != 0 && errno == ENOENT) {
      continue;
    }
    HALO_RETURN_IF_ERROR(collect(module_dir, dir, &files));
  }
  if (static_cast<int64_t>(files.size()) > PackageLimits{}.max_entries) {
    return invalidArgument(module_dir + ": too many files for a module package");
  }
  std::sort(files.begin(), files.end(),
            [](const SourceFile& a, const SourceFile& b) { return a.rel < b.rel; });

  // libzip writes beside tmp and renames onto it at close; the final rename publishes it.
  const std::string tmp = out_path + ".tmp";
  int err = 0;
  ZipPtr za(zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err));
  if (!za) {
    return internalError("create " + tmp + ": " + libzipCodeText(err));
  }
  for (const SourceFile& f : files) {
    HALO_RETURN_IF_ERROR(addEntry(za.get(), f));
  }
  if (zip_close(za.get()) != 0) {
    Status s = internalError("write " + tmp + ": " + zip_strerror(za.get()));
    ::unlink(tmp.c_str());
    return s;
  }
  za.release();  // closed by zip_close
  if (::rename(tmp.c_str(), out_path.c_str()) != 0) {
    Status s = errnoStatus("rename " + tmp + " to " + out_path, errno);
    ::unlink(tmp.c_str());
    return s;
  }
  return okStatus();
}

}  // namespace halo
