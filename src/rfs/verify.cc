// Manifest sessions (rfsverify): one node walks its replicated directories with block digests
// and sends the manifests; the other compares them with its own walks.

#include <random>

#include "rfs/service.h"
#include "rfs/service_util.h"

namespace halo::rfs {

namespace {

constexpr Millis kManifestWait{600000};  // a peer walking a large tree takes its time

std::string fdRoot(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

WalkOptions walkOptions(const ReplicatedDir& d) {
  WalkOptions o;
  o.include = d.replicated;
  return o;
}

}  // namespace

void serveManifests(std::unique_ptr<Channel> channel, const std::vector<int>& roots,
                    const std::vector<ReplicatedDir>& dirs, const LinkOptions& link) {
  Answer a;
  a.accepted = true;
  a.module_id = link.module_id;
  if (!sendAnswer(*channel, a, link.connect_timeout).ok()) {
    return;
  }
  for (size_t i = 0; i < roots.size(); ++i) {
    auto walk = walkTree(fdRoot(roots[i]), walkOptions(dirs[i]));
    std::string frame;
    if (!walk.ok()) {
      appendFrame(FrameType::Error, walk.status().message(), &frame);
      (void)channel->writeAll(frame, link.send_timeout);
      return;
    }
    appendFrame(FrameType::Manifest,
                encodeRooted(static_cast<uint16_t>(i), encodeManifest(walk->manifest)), &frame);
    if (!channel->writeAll(frame, link.send_timeout).ok()) {
      return;
    }
  }
}

Result<VerifyReport> verifyWithPeer(const std::vector<int>& local_roots,
                                    const std::vector<ReplicatedDir>& dirs,
                                    const std::string& local_addr, const std::string& peer_addr,
                                    int port, const LinkOptions& link) {
  Hello hello;
  hello.kind = SessionKind::Manifest;
  hello.module_id = link.module_id;
  hello.session = std::random_device{}();
  HALO_ASSIGN_OR_RETURN(ConnectedSession s,
                        connectSession(local_addr, peer_addr, port, hello, link));
  Channel& ch = *s.channels.front();
  // Both walks at once: the peer's starts as soon as it answered.
  std::vector<Result<WalkResult>> mine;
  for (size_t i = 0; i < local_roots.size(); ++i) {
    mine.push_back(walkTree(fdRoot(local_roots[i]), walkOptions(dirs[i])));
  }
  VerifyReport report;
  std::string buffer;
  std::string chunk(256 * 1024, '\0');
  for (size_t got = 0; got < local_roots.size();) {
    auto f = decodeFrame(buffer);
    if (f.ok()) {
      buffer.erase(0, f->second);
      if (f->first.type == FrameType::Error) {
        return unavailable("the peer cannot walk its tree: " + f->first.payload);
      }
      if (f->first.type != FrameType::Manifest) {
        return invalidArgument("unexpected frame from the peer");
      }
      HALO_ASSIGN_OR_RETURN(auto rooted, decodeRooted(f->first.payload));
      if (rooted.first >= local_roots.size()) {
        return invalidArgument("the peer replicates more directories than this node");
      }
      HALO_ASSIGN_OR_RETURN(Manifest theirs, decodeManifest(rooted.second));
      const auto& local = mine[rooted.first];
      if (!local.ok()) {
        return local.status().withPrefix(dirs[rooted.first].dir);
      }
      DiffOptions o;
      HALO_ASSIGN_OR_RETURN(auto diffs, diffTrees(local->manifest, theirs, o));
      for (auto& d : diffs) {
        report.differences.emplace_back(rooted.first, std::move(d));
      }
      report.entries += local->manifest.entries.size();
      report.bytes_hashed += local->bytes_hashed;
      ++got;
      continue;
    }
    if (f.status().code() != StatusCode::Unavailable) {
      return f.status();
    }
    HALO_ASSIGN_OR_RETURN(size_t n, ch.read(chunk.data(), chunk.size(), kManifestWait));
    buffer.append(chunk.data(), n);
  }
  return report;
}

}  // namespace halo::rfs
