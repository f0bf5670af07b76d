#include "rfs/filter.h"

#include <regex.h>

namespace halo::rfs {

struct ReplicationFilter::Regex {
  regex_t compiled;
  ~Regex() { regfree(&compiled); }
};

ReplicationFilter::~ReplicationFilter() = default;

Result<std::unique_ptr<ReplicationFilter>> ReplicationFilter::create(
    const config::ReplicatedConfig& dir) {
  std::unique_ptr<ReplicationFilter> f(new ReplicationFilter());
  for (const auto& n : dir.notreplicated) {
    const std::string where = "line " + std::to_string(n.line) + ": ";
    if (!n.path.empty()) {
      std::string p = n.path;
      while (!p.empty() && p.back() == '/') {
        p.pop_back();
      }
      if (p.empty() || p.front() == '/') {
        return invalidArgument(where + "notreplicated path '" + n.path + "' must be relative to " +
                               dir.dir);
      }
      f->paths_.push_back(std::move(p));
      continue;
    }
    auto r = std::make_unique<Regex>();
    if (int rc = regcomp(&r->compiled, n.regexpath.c_str(), REG_EXTENDED | REG_NOSUB); rc != 0) {
      char msg[256];
      regerror(rc, &r->compiled, msg, sizeof msg);
      return invalidArgument(where + "regexpath '" + std::string(n.only_matching ? "!" : "") +
                             n.regexpath + "': " + msg);
    }
    (n.only_matching ? f->only_ : f->regexes_).push_back(std::move(r));
  }
  return f;
}

bool ReplicationFilter::excludedItself(std::string_view rel_path) const {
  for (const auto& p : paths_) {
    if (rel_path == p) {
      return true;
    }
  }
  if (regexes_.empty()) {
    return false;
  }
  const std::string text(rel_path);
  for (const auto& r : regexes_) {
    if (regexec(&r->compiled, text.c_str(), 0, nullptr, 0) == 0) {
      return true;
    }
  }
  return false;
}

bool ReplicationFilter::replicated(std::string_view rel_path, bool is_dir) const {
  if (excludesNothing() || rel_path.empty()) {
    return true;  // the replicated directory itself always is
  }
  // The path and each ancestor ("a", "a/b", "a/b/c"): one excluded excludes what is below.
  for (size_t end = rel_path.find('/');; end = rel_path.find('/', end + 1)) {
    if (excludedItself(rel_path.substr(0, end))) {
      return false;
    }
    if (end == std::string_view::npos) {
      break;
    }
  }
  // "!regex": of what is not excluded, only matching files; every directory, which may hold some.
  if (only_.empty() || is_dir) {
    return true;
  }
  const std::string text(rel_path);
  for (const auto& r : only_) {
    if (regexec(&r->compiled, text.c_str(), 0, nullptr, 0) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace halo::rfs
