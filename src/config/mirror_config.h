#pragma once
// Mirror-only sections: <heart> heartbeats (reference 3.2.4) and <rfs> replication (3.2.7).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/time_source.h"
#include "config/service_config.h"

namespace halo::config {

struct HeartbeatConfig {
  std::string name;   // a lan of cluster.xml
  std::string ident;  // resource heartbeat.<ident>; defaults to name; "flow" carries replication
  Millis pulse{100};  // effective value: the heartbeat's own, else <heart>'s
  Millis timeout{500};
  int line = 0;
};

struct HeartConfig {
  std::optional<int> port;  // nullopt: 8888 + module id - 1
  // Halo's defaults, not SafeKit's 700 ms / 30 s: a dead primary is detected in 0.5 s
  // (docs/configuration.md, bench/failover). The heartbeat thread runs at real-time priority, so
  // a loaded node still sends on time.
  Millis pulse{100};    // implicit unit ms
  Millis timeout{500};  // implicit unit ms
  bool permanent_arp = true;
  std::vector<HeartbeatConfig> heartbeats;  // at least one
  int line = 0;
};

struct TocheckConfig {
  std::string path;  // relative to the replicated dir
  int line = 0;
};

struct NotReplicatedConfig {
  std::string path;            // relative path, or empty when regexpath is used
  std::string regexpath;       // POSIX ERE on the relative path, without the leading '!'
  bool only_matching = false;  // regexpath started with '!': replicate only what matches
  int line = 0;
};

struct ReplicatedConfig {
  std::string dir;         // absolute, not "/"
  bool read_only = false;  // mode="read_only": read-only on the secondary
  std::vector<TocheckConfig> tocheck;
  std::vector<NotReplicatedConfig> notreplicated;
  int line = 0;
};

enum class RfsAsync { Second, None };
enum class NfsboxOptions { Cross, NoCross };

struct RfsConfig {
  bool acl = false;
  RfsAsync async = RfsAsync::Second;
  Millis iotimeout = std::chrono::seconds(300);  // implicit unit s
  int64_t roflags = 0;                           // Windows only in SafeKit; kept for compatibility
  Millis locktimeout = std::chrono::seconds(100);  // implicit unit s
  Millis sendtimeout = std::chrono::seconds(30);   // implicit unit s
  int nbrei = 6;
  int64_t ruzone_blocksize = 4194304;             // power of two, 64 KiB .. 64 MiB
  int namespacepolicy = 4;                        // 0, 1, 3 or 4
  Millis reitimeout = std::chrono::seconds(150);  // implicit unit s
  int reicommit = 0;
  bool reidetail = false;
  int allocthreshold = 0;  // GB; Windows only in SafeKit
  int nbremconn = 1;
  Millis checktime{220000};                      // implicit unit ms
  Millis checkintv = std::chrono::seconds(120);  // implicit unit s
  NfsboxOptions nfsbox_options = NfsboxOptions::Cross;
  bool scripts = false;
  int reiallowedbw = 0;  // KB/s; 0 = unlimited
  Millis syncdelta{0};   // implicit unit m
  std::string syncat;    // crontab time spec; empty = continuous
  std::string mountoversuffix = "_For_SafeKit_Replication";
  int64_t packetsize = 0;  // bytes; 0 = transport default
  int64_t reipacketsize = 8388608;
  std::vector<ReplicatedConfig> replicated;  // at least one
  std::string flow;  // legacy <flow name>; empty = heartbeat ident "flow", else the first one
  int flow_line = 0;
  int line = 0;
};

}  // namespace halo::config
