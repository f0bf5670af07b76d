#pragma once
// Checks that need both files: a module refers to lans and nodes declared in cluster.xml.

#include "base/status.h"
#include "config/cluster_config.h"
#include "config/module_config.h"

namespace halo::config {

// Mirror: every heartbeat (and the legacy <flow>) names a lan of exactly the same two nodes, and
// defaultprim is "alone", "lastprim" or one of them. Farm: every <farm><lan> exists with at least
// two nodes, and every load-balancing <host> is a node of those lans. Errors point into the
// module file: "<file>:<line>: <heartbeat> attribute 'name': invalid value ... (expected ...)".
Status validateAgainstCluster(const ModuleConfig& m, const ClusterConfig& c);

}  // namespace halo::config
