#include "rfs/tree_diff.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "rfs/varint.h"

// XXH3-128 rather than SHA-256 or BLAKE2 through OpenSSL: the digests guard against accidental
// corruption and divergence, not against an attacker (the peer is authenticated by the
// transport), and XXH3 hashes at memory speed (tens of GB/s per core, against ~2 GB/s for SHA-256
// with SHA-NI), so a walk of a multi-GiB tree is bound by the disk, not by the hash. 128 bits
// make an accidental collision negligible. Header-only, so there is no library to link, and the
// XXH3 output is frozen since xxHash 0.8.0, so nodes with different package versions agree.
#include "rfs/digest.h"

// Linux 6.14+: a buffered read whose pages are dropped afterwards unless they were cached
// already; older glibc headers do not name it.
#ifndef RWF_DONTCACHE
#define RWF_DONTCACHE 0x00000080
#endif

namespace halo::rfs {
namespace {

constexpr uint64_t kMaxBlockSize = uint64_t{1} << 30;
constexpr uint64_t kReadBufferBytes = 4 << 20;
constexpr size_t kMaxPathBytes = 4096;
constexpr size_t kMaxSymlinkTargetBytes = 4095;
constexpr size_t kXattrDigestBytes = 16;
constexpr char kMagic[4] = {'H', 'R', 'F', 'M'};
constexpr uint8_t kVersion = 1;
constexpr uint8_t kDigestXxh3_128 = 1;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

std::string joinPath(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

// Opens `rel` below `root_fd` without following any symlink and without leaving the root's mount
// (openat2 RESOLVE_*), so a directory swapped for a symlink mid-walk cannot make us read outside.
int openBeneath(int root_fd, const std::string& rel, int flags) {
  flags |= O_CLOEXEC | O_NOFOLLOW;
  open_how how{};
  how.flags = static_cast<uint64_t>(flags);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, root_fd, rel.c_str(), &how, sizeof how);
  if (fd < 0 && errno == ENOSYS) {
    // Pre-5.6 kernel: only the last component is protected; callers check dev/ino after opening.
    fd = ::openat(root_fd, rel.c_str(), flags);
  }
  return static_cast<int>(fd);
}

// O_NOATIME needs ownership or CAP_FOWNER; without them the read still has to happen.
int openForRead(int root_fd, const std::string& rel) {
  int fd = openBeneath(root_fd, rel, O_RDONLY | O_NOATIME);
  if (fd < 0 && errno == EPERM) {
    fd = openBeneath(root_fd, rel, O_RDONLY);
  }
  return fd;
}

bool isVanished(int err) { return err == ENOENT || err == ENOTDIR || err == ELOOP || err == EXDEV; }

void appendHash(XXH128_hash_t h, std::string* out) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, h);
  out->append(reinterpret_cast<const char*>(c.digest), sizeof c.digest);
}

BlockDigest toDigest(XXH128_hash_t h) { return toBlockDigest(h); }

// Digest of all extended attributes of `path` (not following a final symlink): names sorted, each
// (name, value) length-prefixed so that no two different sets hash the same input.
Result<std::string> xattrDigest(const std::string& path) {
  std::string names;
  for (;;) {
    ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
    if (n < 0) {
      if (errno == ENOTSUP) {
        return std::string();
      }
      if (errno == ENOENT) {
        return notFound(path);
      }
      return errnoStatus("llistxattr " + path, errno);
    }
    if (n == 0) {
      return std::string();
    }
    names.resize(static_cast<size_t>(n));
    n = ::llistxattr(path.c_str(), names.data(), names.size());
    if (n >= 0) {
      names.resize(static_cast<size_t>(n));
      break;
    }
    if (errno != ERANGE) {  // ERANGE: the list grew between the two calls
      return errnoStatus("llistxattr " + path, errno);
    }
  }
  std::vector<std::string> sorted;
  for (size_t start = 0; start < names.size();) {
    size_t end = names.find('\0', start);
    if (end == std::string::npos) {
      end = names.size();
    }
    if (end > start) {
      sorted.emplace_back(names, start, end - start);
    }
    start = end + 1;
  }
  std::sort(sorted.begin(), sorted.end());
  std::string input;
  std::string value;
  for (const std::string& name : sorted) {
    ssize_t n;
    for (;;) {
      n = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
      if (n < 0) {
        break;
      }
      value.resize(static_cast<size_t>(n));
      n = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
      if (n >= 0 || errno != ERANGE) {
        break;
      }
    }
    if (n < 0) {
      if (errno == ENODATA) {
        continue;  // removed since the listing
      }
      return errnoStatus("lgetxattr " + path + " " + name, errno);
    }
    value.resize(static_cast<size_t>(n));
    uint64_t lens[2] = {name.size(), value.size()};
    input.append(reinterpret_cast<const char*>(lens), sizeof lens);
    input += name;
    input += value;
  }
  if (sorted.empty()) {
    return std::string();
  }
  std::string digest;
  appendHash(XXH3_128bits(input.data(), input.size()), &digest);
  return digest;
}

struct Node {
  TreeEntry entry;
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint32_t nlink = 0;
};

uint64_t devOf(const struct statx& st) {
  return (uint64_t{st.stx_dev_major} << 32) | st.stx_dev_minor;
}

void fillEntry(const struct statx& st, Node* node) {
  node->entry.type_and_mode = st.stx_mode;
  node->entry.uid = st.stx_uid;
  node->entry.gid = st.stx_gid;
  node->entry.size = st.stx_size;
  node->entry.mtime_sec = st.stx_mtime.tv_sec;
  node->entry.mtime_nsec = st.stx_mtime.tv_nsec;
  node->dev = devOf(st);
  node->ino = st.stx_ino;
  node->nlink = st.stx_nlink;
}

bool isMountRoot(const struct statx& st) {
  return (st.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0 &&
         (st.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
}

// Shared state of one walk's hashing phase.
class Hasher {
 public:
  Hasher(int root_fd, uint64_t block_size, std::vector<Node>* nodes)
      : root_fd_(root_fd), block_size_(block_size), nodes_(nodes) {}

  void add(size_t node) {
    TreeEntry& e = (*nodes_)[node].entry;
    uint64_t count = e.size / block_size_ + (e.size % block_size_ != 0 ? 1 : 0);
    e.block_digests.assign(count, BlockDigest{});
    // One worker per file, not slices of a large file: reading is disk-bound (one sequential
    // reader is as fast), and concurrent readers of one file race the RWF_DONTCACHE drop, which
    // left a quarter of a 512 MiB file in the page cache in a test.
    files_.push_back(node);
  }

  Status run(unsigned threads) {
    // Largest first, so a big file does not start last and hold up the end of the walk.
    std::stable_sort(files_.begin(), files_.end(), [this](size_t a, size_t b) {
      return (*nodes_)[a].entry.size > (*nodes_)[b].entry.size;
    });
    threads = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>(files_.size())));
    if (files_.empty()) {
      return okStatus();
    }
    std::vector<std::thread> workers;
    for (unsigned i = 1; i < threads; ++i) {
      workers.emplace_back([this] { work(); });
    }
    work();
    for (std::thread& t : workers) {
      t.join();
    }
    return first_error_;
  }

  uint64_t bytesHashed() const { return bytes_hashed_.load(); }
  std::vector<std::string> takeNotes() {
    std::sort(notes_.begin(), notes_.end());
    notes_.erase(std::unique(notes_.begin(), notes_.end()), notes_.end());
    return std::move(notes_);
  }

 private:
  void work() {
    std::unique_ptr<char[]> buffer(new char[kReadBufferBytes]);
    std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                   &XXH3_freeState);
    for (;;) {
      size_t i = next_.fetch_add(1);
      if (i >= files_.size() || failed_.load()) {
        return;
      }
      Status s = hashFile(files_[i], buffer.get(), state.get());
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        if (first_error_.ok()) {
          first_error_ = s;
        }
        failed_.store(true);
      }
    }
  }

  void note(std::string text) {
    std::lock_guard<std::mutex> lock(mu_);
    notes_.push_back(std::move(text));
  }

  ssize_t readAt(int fd, char* buf, size_t len, uint64_t offset) {
    if (dontcache_.load(std::memory_order_relaxed)) {
      iovec iov{buf, len};
      ssize_t n = ::preadv2(fd, &iov, 1, static_cast<off_t>(offset), RWF_DONTCACHE);
      if (n >= 0 || (errno != EOPNOTSUPP && errno != EINVAL)) {
        return n;
      }
      dontcache_.store(false, std::memory_order_relaxed);
    }
    ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(offset));
    if (n > 0) {
      // Without RWF_DONTCACHE, drop what we read: a verification must not push the services'
      // working set out of the page cache.
      ::posix_fadvise(fd, static_cast<off_t>(offset), n, POSIX_FADV_DONTNEED);
    }
    return n;
  }

  Status hashFile(size_t index, char* buf, XXH3_state_t* state) {
    Node& node = (*nodes_)[index];
    TreeEntry& e = node.entry;
    Fd fd(openForRead(root_fd_, e.path));
    if (!fd.valid()) {
      if (isVanished(errno)) {
        note("vanished during walk: " + e.path);
        return okStatus();
      }
      return errnoStatus("open " + e.path, errno);
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) {
      return errnoStatus("fstat " + e.path, errno);
    }
    if (st.st_ino != node.ino || !S_ISREG(st.st_mode)) {
      note("changed during walk: " + e.path);
      return okStatus();
    }
    uint64_t offset = 0;
    const uint64_t end = e.size;
    ::posix_fadvise(fd.get(), static_cast<off_t>(offset), static_cast<off_t>(end - offset),
                    POSIX_FADV_SEQUENTIAL);
    uint64_t block = 0;
    uint64_t in_block = 0;  // bytes of `block` fed to `state` so far
    while (offset < end) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(kReadBufferBytes, end - offset));
      ssize_t n = readAt(fd.get(), buf, want, offset);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        return errnoStatus("read " + e.path, errno);
      }
      if (n == 0) {
        note("changed during walk: " + e.path + " (shrank)");
        return okStatus();
      }
      bytes_hashed_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      for (size_t p = 0; p < static_cast<size_t>(n);) {
        size_t take =
            static_cast<size_t>(std::min<uint64_t>(block_size_ - in_block, uint64_t(n) - p));
        if (in_block == 0 && take == block_size_) {
          e.block_digests[block++] = toDigest(XXH3_128bits(buf + p, take));
        } else {
          if (in_block == 0) {
            XXH3_128bits_reset(state);
          }
          XXH3_128bits_update(state, buf + p, take);
          in_block += take;
          if (in_block == block_size_) {
            e.block_digests[block++] = toDigest(XXH3_128bits_digest(state));
            in_block = 0;
          }
        }
        p += take;
      }
      offset += static_cast<uint64_t>(n);
    }
    if (in_block > 0) {  // the file's last, partial block
      e.block_digests[block] = toDigest(XXH3_128bits_digest(state));
    }
    struct stat after;
    if (::fstat(fd.get(), &after) == 0 &&
        (static_cast<uint64_t>(after.st_size) != e.size || after.st_mtim.tv_sec != e.mtime_sec ||
         after.st_mtim.tv_nsec != e.mtime_nsec)) {
      note("changed during walk: " + e.path);
    }
    return okStatus();
  }

  const int root_fd_;
  const uint64_t block_size_;
  std::vector<Node>* const nodes_;  // each worker writes only the digests of its own files
  std::vector<size_t> files_;       // indexes into nodes_
  std::atomic<size_t> next_{0};
  std::atomic<bool> failed_{false};
  std::atomic<bool> dontcache_{true};
  std::atomic<uint64_t> bytes_hashed_{0};
  std::mutex mu_;
  Status first_error_;
  std::vector<std::string> notes_;
};

// Assigns link_group ids in path order to the inodes that have several names in the walk, and
// returns, for each node, the node whose digests it shares (itself for the first name).
std::vector<size_t> assignLinkGroups(std::vector<Node>* nodes) {
  std::vector<size_t> leader(nodes->size());
  struct Key {
    uint64_t dev, ino;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return std::hash<uint64_t>()(k.ino * 31 + k.dev); }
  };
  std::unordered_map<Key, size_t, KeyHash> first;
  uint64_t next_group = 1;
  for (size_t i = 0; i < nodes->size(); ++i) {
    leader[i] = i;
    Node& n = (*nodes)[i];
    if (n.nlink < 2 || S_ISDIR(n.entry.type_and_mode)) {
      continue;
    }
    auto [it, inserted] = first.emplace(Key{n.dev, n.ino}, i);
    if (inserted) {
      continue;
    }
    Node& head = (*nodes)[it->second];
    if (head.entry.link_group == 0) {
      head.entry.link_group = next_group++;
    }
    n.entry.link_group = head.entry.link_group;
    leader[i] = it->second;
  }
  return leader;
}

}  // namespace

Result<WalkResult> walkTree(const std::string& root, const WalkOptions& options) {
  if (options.block_digests && (options.block_size == 0 || options.block_size > kMaxBlockSize)) {
    return invalidArgument("walk " + root + ": block size " + std::to_string(options.block_size) +
                           " out of range 1.." + std::to_string(kMaxBlockSize));
  }
  Fd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd.valid()) {
    return errnoStatus("open " + root, errno);
  }
  // Extended attributes have no *at() calls in glibc; /proc/self/fd/N/name resolves through the
  // directory we hold, so it cannot be redirected by a rename above it.
  const bool have_proc = ::access("/proc/self/fd", X_OK) == 0;
  WalkResult result;
  std::vector<Node> nodes;
  struct statx st;
  if (::statx(root_fd.get(), "", AT_EMPTY_PATH, STATX_BASIC_STATS, &st) != 0) {
    return errnoStatus("statx " + root, errno);
  }
  const uint64_t root_dev = devOf(st);
  nodes.emplace_back();
  fillEntry(st, &nodes.back());
  {
    // "/.": the l*xattr calls must act on the directory, not on the /proc magic link.
    std::string xpath =
        (have_proc ? "/proc/self/fd/" + std::to_string(root_fd.get()) : root) + "/.";
    HALO_ASSIGN_OR_RETURN(nodes.back().entry.xattr_digest, xattrDigest(xpath));
  }

  std::vector<std::string> pending = {""};  // directories still to read
  while (!pending.empty()) {
    std::string dir = std::move(pending.back());
    pending.pop_back();
    Fd dfd(dir.empty() ? ::dup(root_fd.get())
                       : openBeneath(root_fd.get(), dir, O_RDONLY | O_DIRECTORY));
    if (!dfd.valid()) {
      if (isVanished(errno)) {
        result.notes.push_back("vanished during walk: " + dir);
        continue;
      }
      return errnoStatus("open " + root + "/" + dir, errno);
    }
    std::vector<std::string> names;
    {
      int dup_fd = ::dup(dfd.get());
      DIR* d = dup_fd >= 0 ? ::fdopendir(dup_fd) : nullptr;
      if (d == nullptr) {
        if (dup_fd >= 0) {
          ::close(dup_fd);
        }
        return errnoStatus("opendir " + root + "/" + dir, errno);
      }
      errno = 0;
      while (dirent* de = ::readdir(d)) {
        if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0) {
          names.emplace_back(de->d_name);
        }
        errno = 0;
      }
      int err = errno;
      ::closedir(d);
      if (err != 0) {
        return errnoStatus("readdir " + root + "/" + dir, err);
      }
    }
    const std::string proc_dir = "/proc/self/fd/" + std::to_string(dfd.get()) + "/";
    for (const std::string& name : names) {
      std::string rel = joinPath(dir, name);
      if (::statx(dfd.get(), name.c_str(), AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS,
                  &st) != 0) {
        if (errno == ENOENT) {
          result.notes.push_back("vanished during walk: " + rel);
          continue;
        }
        return errnoStatus("statx " + root + "/" + rel, errno);
      }
      if (options.include && !options.include(rel, S_ISDIR(st.stx_mode))) {
        continue;
      }
      // A different device is another file system; MOUNT_ROOT also catches bind mounts of this one.
      if (devOf(st) != root_dev || isMountRoot(st)) {
        result.notes.push_back("skipped mount point " + rel);
        continue;
      }
      Node node;
      fillEntry(st, &node);
      node.entry.path = rel;
      if (S_ISLNK(st.stx_mode)) {
        char target[kMaxSymlinkTargetBytes + 2];
        ssize_t n = ::readlinkat(dfd.get(), name.c_str(), target, sizeof target);
        if (n < 0) {
          if (errno == ENOENT || errno == EINVAL) {
            result.notes.push_back("vanished during walk: " + rel);
            continue;
          }
          return errnoStatus("readlink " + root + "/" + rel, errno);
        }
        node.entry.symlink_target.assign(target, static_cast<size_t>(n));
      }
      Result<std::string> xattrs = xattrDigest(have_proc ? proc_dir + name : root + "/" + rel);
      if (!xattrs.ok()) {
        if (xattrs.status().code() == StatusCode::NotFound) {
          result.notes.push_back("vanished during walk: " + rel);
          continue;
        }
        return xattrs.status();
      }
      node.entry.xattr_digest = std::move(*xattrs);
      if (S_ISDIR(st.stx_mode)) {
        pending.push_back(rel);
      }
      nodes.push_back(std::move(node));
    }
  }

  std::sort(nodes.begin(), nodes.end(),
            [](const Node& a, const Node& b) { return a.entry.path < b.entry.path; });
  std::vector<size_t> leader = assignLinkGroups(&nodes);
  if (options.block_digests) {
    Hasher hasher(root_fd.get(), options.block_size, &nodes);
    // The names of one inode are read once, unless the file changed size between their statx.
    auto shares = [&](size_t i) {
      return leader[i] != i && nodes[i].entry.size == nodes[leader[i]].entry.size;
    };
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (S_ISREG(nodes[i].entry.type_and_mode) && !shares(i)) {
        hasher.add(i);
      }
    }
    HALO_RETURN_IF_ERROR(hasher.run(options.threads).withPrefix("walk " + root));
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (S_ISREG(nodes[i].entry.type_and_mode) && shares(i)) {
        nodes[i].entry.block_digests = nodes[leader[i]].entry.block_digests;
      }
    }
    result.bytes_hashed = hasher.bytesHashed();
    for (std::string& n : hasher.takeNotes()) {
      result.notes.push_back(std::move(n));
    }
    result.manifest.block_size = options.block_size;
  }
  result.manifest.entries.reserve(nodes.size());
  for (Node& n : nodes) {
    result.manifest.entries.push_back(std::move(n.entry));
  }
  return result;
}

// ---- Manifest encoding ----
//
// "HRFM", version, digest algorithm, varint block size, varint entry count, then per entry:
// varint shared-prefix length with the previous path, varint suffix length, suffix, varints mode,
// uid, gid, size, zigzag mtime_sec, mtime_nsec, link_group, varint symlink target length and
// bytes, varint xattr digest length and bytes, varint digest count and 16 bytes per digest.

namespace {

using codec::putBytes;
using codec::putVarint;
using codec::Reader;

uint64_t zigzag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

// Smallest possible encoded entry: 12 one-byte fields. Bounds the entry count a header may claim
// before anything is allocated.
constexpr size_t kMinEntryBytes = 12;

std::string pathValidity(std::string_view p) {
  if (p.size() > kMaxPathBytes) {
    return "longer than " + std::to_string(kMaxPathBytes) + " bytes";
  }
  if (p.find('\0') != std::string_view::npos) {
    return "contains a NUL byte";
  }
  if (p.front() == '/' || p.back() == '/') {
    return "not a normalised relative path";
  }
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) {
      end = p.size();
    }
    std::string_view comp = p.substr(start, end - start);
    if (comp.empty() || comp == "." || comp == "..") {
      return "has an empty, '.' or '..' component";
    }
    start = end + 1;
  }
  return "";
}

bool knownType(mode_t m) {
  switch (m & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::string encodeManifest(const Manifest& manifest) {
  std::string out(kMagic, sizeof kMagic);
  out.push_back(static_cast<char>(kVersion));
  out.push_back(static_cast<char>(kDigestXxh3_128));
  putVarint(manifest.block_size, &out);
  putVarint(manifest.entries.size(), &out);
  std::string_view prev;
  for (const TreeEntry& e : manifest.entries) {
    size_t shared = 0;
    while (shared < prev.size() && shared < e.path.size() && prev[shared] == e.path[shared]) {
      ++shared;
    }
    putVarint(shared, &out);
    putBytes(std::string_view(e.path).substr(shared), &out);
    putVarint(e.type_and_mode, &out);
    putVarint(e.uid, &out);
    putVarint(e.gid, &out);
    putVarint(e.size, &out);
    putVarint(zigzag(e.mtime_sec), &out);
    putVarint(static_cast<uint64_t>(e.mtime_nsec), &out);
    putVarint(e.link_group, &out);
    putBytes(e.symlink_target, &out);
    putBytes(e.xattr_digest, &out);
    putVarint(e.block_digests.size(), &out);
    for (const BlockDigest& d : e.block_digests) {
      out.append(reinterpret_cast<const char*>(d.data()), d.size());
    }
    prev = e.path;
  }
  return out;
}

Result<Manifest> decodeManifest(std::string_view bytes) {
  Reader r(bytes);
  std::string_view magic;
  if (!r.bytes(sizeof kMagic, &magic) || magic != std::string_view(kMagic, sizeof kMagic)) {
    return invalidArgument("manifest: bad magic (not a tree manifest)");
  }
  std::string_view vb;
  if (!r.bytes(2, &vb)) {
    return invalidArgument("manifest: truncated header");
  }
  if (static_cast<uint8_t>(vb[0]) != kVersion) {
    return invalidArgument("manifest: unsupported version " +
                           std::to_string(static_cast<uint8_t>(vb[0])));
  }
  if (static_cast<uint8_t>(vb[1]) != kDigestXxh3_128) {
    return invalidArgument("manifest: unknown digest algorithm " +
                           std::to_string(static_cast<uint8_t>(vb[1])));
  }
  Manifest m;
  uint64_t count = 0;
  if (!r.varint(&m.block_size) || !r.varint(&count)) {
    return invalidArgument("manifest: truncated header");
  }
  if (m.block_size > kMaxBlockSize) {
    return invalidArgument("manifest: block size " + std::to_string(m.block_size) + " exceeds " +
                           std::to_string(kMaxBlockSize));
  }
  if (count == 0 || count > r.remaining() / kMinEntryBytes) {
    return invalidArgument("manifest: entry count " + std::to_string(count) + " impossible for " +
                           std::to_string(r.remaining()) + " bytes");
  }
  m.entries.reserve(count);
  std::string prev;
  for (uint64_t i = 0; i < count; ++i) {
    const std::string where = "manifest entry " + std::to_string(i);
    auto truncated = [&](const char* field) {
      return invalidArgument(where + ": truncated or malformed " + field + " at byte " +
                             std::to_string(r.pos()));
    };
    TreeEntry e;
    uint64_t shared = 0;
    uint64_t len = 0;
    std::string_view sv;
    if (!r.varint(&shared)) {
      return truncated("path prefix");
    }
    if (shared > prev.size()) {
      return invalidArgument(where + ": path prefix " + std::to_string(shared) +
                             " longer than the previous path");
    }
    if (!r.varint(&len) || !r.bytes(len, &sv)) {
      return truncated("path");
    }
    if (shared + len > kMaxPathBytes) {
      return invalidArgument(where + ": path longer than " + std::to_string(kMaxPathBytes));
    }
    e.path = prev.substr(0, shared);
    e.path += sv;
    if (i == 0) {
      if (!e.path.empty()) {
        return invalidArgument(where + ": the first entry must be the root \"\"");
      }
    } else {
      std::string bad = e.path.empty() ? "is empty" : pathValidity(e.path);
      if (!bad.empty()) {
        return invalidArgument(where + ": path '" + e.path.substr(0, 256) + "' " + bad);
      }
      if (!(prev < e.path)) {
        return invalidArgument(where + ": path '" + e.path + "' not after '" + prev +
                               "' (unsorted or duplicate)");
      }
    }
    uint64_t mode, uid, gid, sec, nsec;
    if (!r.varint(&mode) || !r.varint(&uid) || !r.varint(&gid) || !r.varint(&e.size) ||
        !r.varint(&sec) || !r.varint(&nsec) || !r.varint(&e.link_group)) {
      return truncated("attributes");
    }
    if (mode > 0xffff || !knownType(static_cast<mode_t>(mode))) {
      return invalidArgument(where + " ('" + e.path + "'): bad mode " + std::to_string(mode));
    }
    if (uid > UINT32_MAX || gid > UINT32_MAX) {
      return invalidArgument(where + " ('" + e.path + "'): uid/gid out of range");
    }
    if (nsec >= 1000000000) {
      return invalidArgument(where + " ('" + e.path + "'): mtime nanoseconds " +
                             std::to_string(nsec) + " out of range");
    }
    e.type_and_mode = static_cast<mode_t>(mode);
    e.uid = static_cast<uid_t>(uid);
    e.gid = static_cast<gid_t>(gid);
    e.mtime_sec = unzigzag(sec);
    e.mtime_nsec = static_cast<int64_t>(nsec);
    if (i == 0 && !S_ISDIR(e.type_and_mode)) {
      return invalidArgument(where + ": the root is not a directory");
    }
    if (S_ISDIR(e.type_and_mode) && e.link_group != 0) {
      return invalidArgument(where + " ('" + e.path + "'): directory with a hard-link group");
    }
    if (!r.varint(&len) || !r.bytes(len, &sv)) {
      return truncated("symlink target");
    }
    if (S_ISLNK(e.type_and_mode) != !sv.empty() || len > kMaxSymlinkTargetBytes ||
        sv.find('\0') != std::string_view::npos) {
      return invalidArgument(where + " ('" + e.path + "'): bad symlink target of " +
                             std::to_string(len) + " bytes");
    }
    e.symlink_target = sv;
    if (!r.varint(&len) || !r.bytes(len, &sv)) {
      return truncated("xattr digest");
    }
    if (len != 0 && len != kXattrDigestBytes) {
      return invalidArgument(where + " ('" + e.path + "'): xattr digest of " + std::to_string(len) +
                             " bytes");
    }
    e.xattr_digest = sv;
    uint64_t digests = 0;
    if (!r.varint(&digests)) {
      return truncated("digest count");
    }
    if (digests != 0) {
      if (!S_ISREG(e.type_and_mode) || m.block_size == 0) {
        return invalidArgument(where + " ('" + e.path +
                               "'): block digests on a non-file or "
                               "without a block size");
      }
      uint64_t expected = e.size / m.block_size + (e.size % m.block_size != 0 ? 1 : 0);
      if (digests != expected) {
        return invalidArgument(where + " ('" + e.path + "'): " + std::to_string(digests) +
                               " block digests for size " + std::to_string(e.size) + ", expected " +
                               std::to_string(expected));
      }
      if (digests > r.remaining() / sizeof(BlockDigest)) {
        return truncated("block digests");
      }
      e.block_digests.resize(digests);
      for (BlockDigest& d : e.block_digests) {
        (void)r.bytes(d.size(), &sv);
        std::memcpy(d.data(), sv.data(), d.size());
      }
    }
    prev = e.path;
    m.entries.push_back(std::move(e));
  }
  if (r.remaining() != 0) {
    return invalidArgument("manifest: " + std::to_string(r.remaining()) +
                           " trailing bytes after the last entry");
  }
  return m;
}

// ---- Comparison ----

namespace {

std::string typeName(mode_t m) {
  switch (m & S_IFMT) {
    case S_IFREG:
      return "file";
    case S_IFDIR:
      return "directory";
    case S_IFLNK:
      return "symlink";
    case S_IFCHR:
      return "char device";
    case S_IFBLK:
      return "block device";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
    default:
      return "unknown";
  }
}

std::string octal(mode_t m) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

std::string mtimeText(const TreeEntry& e) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld.%09lld", static_cast<long long>(e.mtime_sec),
                static_cast<long long>(e.mtime_nsec));
  return buf;
}

// "block 3 differs", "blocks 3, 7-9 differ"; long lists are cut after a few ranges.
std::string blocksText(const std::vector<uint64_t>& blocks) {
  constexpr size_t kMaxRanges = 8;
  std::string text;
  size_t ranges = 0;
  for (size_t i = 0; i < blocks.size();) {
    size_t j = i;
    while (j + 1 < blocks.size() && blocks[j + 1] == blocks[j] + 1) {
      ++j;
    }
    if (ranges < kMaxRanges) {
      text += (ranges > 0 ? ", " : "") + std::to_string(blocks[i]);
      if (j > i) {
        text += "-" + std::to_string(blocks[j]);
      }
    }
    ++ranges;
    i = j + 1;
  }
  if (ranges > kMaxRanges) {
    text += " and " + std::to_string(ranges - kMaxRanges) + " more ranges (" +
            std::to_string(blocks.size()) + " blocks)";
  }
  return (blocks.size() == 1 ? "block " : "blocks ") + text +
         (blocks.size() == 1 ? " differs" : " differ");
}

// Members of each hard-link group, in path order.
class LinkGroups {
 public:
  explicit LinkGroups(const std::vector<const TreeEntry*>& sorted) {
    for (const TreeEntry* e : sorted) {
      if (e->link_group != 0) {
        groups_[e->link_group].push_back(&e->path);
      }
    }
  }
  // Other names of `e`'s inode within the tree.
  std::vector<std::string> others(const TreeEntry& e) const {
    std::vector<std::string> out;
    if (e.link_group == 0) {
      return out;
    }
    for (const std::string* p : groups_.at(e.link_group)) {
      if (*p != e.path) {
        out.push_back(*p);
      }
    }
    return out;
  }

 private:
  std::unordered_map<uint64_t, std::vector<const std::string*>> groups_;
};

std::string linksText(const std::vector<std::string>& names) {
  constexpr size_t kMaxNames = 4;
  if (names.empty()) {
    return "not linked";
  }
  std::string text = "linked with ";
  for (size_t i = 0; i < names.size() && i < kMaxNames; ++i) {
    text += (i > 0 ? ", " : "") + names[i];
  }
  if (names.size() > kMaxNames) {
    text += " and " + std::to_string(names.size() - kMaxNames) + " more";
  }
  return text;
}

std::vector<const TreeEntry*> sortedView(const Manifest& m) {
  std::vector<const TreeEntry*> v;
  v.reserve(m.entries.size());
  for (const TreeEntry& e : m.entries) {
    v.push_back(&e);
  }
  auto less = [](const TreeEntry* a, const TreeEntry* b) { return a->path < b->path; };
  if (!std::is_sorted(v.begin(), v.end(), less)) {
    std::stable_sort(v.begin(), v.end(), less);
  }
  return v;
}

bool hasAllDigests(const TreeEntry& e, uint64_t block_size) {
  if (block_size == 0) {
    return false;
  }
  uint64_t expected = e.size / block_size + (e.size % block_size != 0 ? 1 : 0);
  return e.block_digests.size() == expected;
}

void compareEntries(const TreeEntry& l, const TreeEntry& r, const Manifest& local,
                    const Manifest& remote, const LinkGroups& local_links,
                    const LinkGroups& remote_links, const DiffOptions& options,
                    std::vector<DiffEntry>* out) {
  auto add = [&](DiffKind kind, std::string detail) {
    out->push_back({l.path, kind, std::move(detail), {}});
  };
  if ((l.type_and_mode & S_IFMT) != (r.type_and_mode & S_IFMT)) {
    add(DiffKind::Type, "type " + typeName(l.type_and_mode) + " vs " + typeName(r.type_and_mode));
    return;
  }
  const bool is_dir = S_ISDIR(l.type_and_mode);
  const bool is_reg = S_ISREG(l.type_and_mode);
  const bool is_link = S_ISLNK(l.type_and_mode);
  // A symlink's permission bits are meaningless on Linux (always 0777).
  if (!is_link && (l.type_and_mode & 07777) != (r.type_and_mode & 07777)) {
    add(DiffKind::Mode, "mode " + octal(l.type_and_mode) + " vs " + octal(r.type_and_mode));
  }
  if (l.uid != r.uid || l.gid != r.gid) {
    add(DiffKind::Owner, "owner " + std::to_string(l.uid) + ":" + std::to_string(l.gid) + " vs " +
                             std::to_string(r.uid) + ":" + std::to_string(r.gid));
  }
  if (is_reg && l.size != r.size) {
    add(DiffKind::Size, "size " + std::to_string(l.size) + " vs " + std::to_string(r.size));
  }
  if (options.compare_mtime && (!is_dir || options.compare_directory_mtime) &&
      (l.mtime_sec != r.mtime_sec || l.mtime_nsec != r.mtime_nsec)) {
    add(DiffKind::Mtime, "mtime " + mtimeText(l) + " vs " + mtimeText(r));
  }
  if (is_reg && hasAllDigests(l, local.block_size) && hasAllDigests(r, remote.block_size)) {
    std::vector<uint64_t> blocks;
    size_t n = std::max(l.block_digests.size(), r.block_digests.size());
    for (size_t i = 0; i < n; ++i) {
      if (i >= l.block_digests.size() || i >= r.block_digests.size() ||
          l.block_digests[i] != r.block_digests[i]) {
        blocks.push_back(i);
      }
    }
    if (!blocks.empty()) {
      std::string detail = blocksText(blocks);
      out->push_back({l.path, DiffKind::Content, std::move(detail), std::move(blocks)});
    }
  }
  if (is_link && l.symlink_target != r.symlink_target) {
    add(DiffKind::SymlinkTarget, "target '" + l.symlink_target + "' vs '" + r.symlink_target + "'");
  }
  if (l.xattr_digest != r.xattr_digest) {
    add(DiffKind::Xattrs, l.xattr_digest.empty()   ? "extended attributes: none vs some"
                          : r.xattr_digest.empty() ? "extended attributes: some vs none"
                                                   : "extended attribute values differ");
  }
  if (!is_dir) {
    std::vector<std::string> lo = local_links.others(l);
    std::vector<std::string> ro = remote_links.others(r);
    if (lo != ro) {
      add(DiffKind::HardLinks, linksText(lo) + " vs " + linksText(ro));
    }
  }
}

std::string escapePath(std::string_view p) {
  if (p.empty()) {
    return ".";
  }
  std::string out;
  for (char c : p) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

const char* diffKindName(DiffKind kind) {
  switch (kind) {
    case DiffKind::OnlyLocal:
      return "only-local";
    case DiffKind::OnlyRemote:
      return "only-remote";
    case DiffKind::Type:
      return "type";
    case DiffKind::Mode:
      return "mode";
    case DiffKind::Owner:
      return "owner";
    case DiffKind::Size:
      return "size";
    case DiffKind::Mtime:
      return "mtime";
    case DiffKind::Content:
      return "content";
    case DiffKind::SymlinkTarget:
      return "symlink";
    case DiffKind::Xattrs:
      return "xattrs";
    case DiffKind::HardLinks:
      return "hardlinks";
  }
  return "unknown";
}

Result<std::vector<DiffEntry>> diffTrees(const Manifest& local, const Manifest& remote,
                                         const DiffOptions& options) {
  if (local.block_size != 0 && remote.block_size != 0 && local.block_size != remote.block_size) {
    return failedPrecondition("tree diff: block sizes differ (" + std::to_string(local.block_size) +
                              " vs " + std::to_string(remote.block_size) + "): walk both alike");
  }
  std::vector<const TreeEntry*> l = sortedView(local);
  std::vector<const TreeEntry*> r = sortedView(remote);
  LinkGroups local_links(l);
  LinkGroups remote_links(r);
  std::vector<DiffEntry> out;
  size_t i = 0;
  size_t j = 0;
  while (i < l.size() || j < r.size()) {
    if (j == r.size() || (i < l.size() && l[i]->path < r[j]->path)) {
      out.push_back({l[i]->path, DiffKind::OnlyLocal, typeName(l[i]->type_and_mode), {}});
      ++i;
    } else if (i == l.size() || r[j]->path < l[i]->path) {
      out.push_back({r[j]->path, DiffKind::OnlyRemote, typeName(r[j]->type_and_mode), {}});
      ++j;
    } else {
      compareEntries(*l[i], *r[j], local, remote, local_links, remote_links, options, &out);
      ++i;
      ++j;
    }
  }
  return out;
}

std::string describeDiff(const DiffEntry& d) {
  std::string line = diffKindName(d.kind);
  line.resize(std::max<size_t>(line.size(), 11), ' ');
  line += " " + escapePath(d.path);
  if (!d.detail.empty()) {
    line += ": " + escapePath(d.detail);
  }
  return line;
}

DiffSummary summarize(const std::vector<DiffEntry>& diffs, const Manifest& local) {
  DiffSummary sum;
  std::vector<const TreeEntry*> sorted = sortedView(local);
  auto find = [&](const std::string& path) -> const TreeEntry* {
    auto it =
        std::lower_bound(sorted.begin(), sorted.end(), path,
                         [](const TreeEntry* e, const std::string& p) { return e->path < p; });
    return it != sorted.end() && (*it)->path == path ? *it : nullptr;
  };
  const uint64_t bs = local.block_size;
  for (size_t i = 0; i < diffs.size();) {
    size_t j = i;
    bool whole = false;
    const DiffEntry* content = nullptr;
    bool size = false;
    for (; j < diffs.size() && diffs[j].path == diffs[i].path; ++j) {
      switch (diffs[j].kind) {
        case DiffKind::OnlyLocal:
        case DiffKind::Type:
          whole = true;
          break;
        case DiffKind::Content:
          content = &diffs[j];
          break;
        case DiffKind::Size:
          size = true;
          break;
        default:
          break;
      }
    }
    const TreeEntry* e = find(diffs[i].path);
    i = j;
    if (e == nullptr || S_ISDIR(e->type_and_mode)) {
      continue;  // remote-only (a deletion) or a directory (created, no data)
    }
    if (whole || (size && content == nullptr)) {
      ++sum.files;
      sum.bytes += S_ISREG(e->type_and_mode) ? e->size : 0;
    } else if (content != nullptr) {
      ++sum.files;
      for (uint64_t b : content->blocks) {
        if (bs != 0 && b < (e->size + bs - 1) / bs) {
          sum.bytes += std::min(bs, e->size - b * bs);
        }
      }
    }
  }
  return sum;
}

}  // namespace halo::rfs
