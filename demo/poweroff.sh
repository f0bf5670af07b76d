#!/bin/bash
# Simulates a power loss of a demo node: every process of its namespace is SIGKILLed (by PID),
# its link goes down and its $RUN (a tmpfs on real servers) is emptied.
set -euo pipefail
DEMO_DIR=${DEMO_DIR:-/var/tmp/halo-demo}
node=${1:?usage: demo/poweroff.sh n1|n2}
ns=halo-demo-$node
for _ in 1 2 3 4 5; do
  pids=$(ip netns pids "$ns")
  [ -z "$pids" ] && break
  for pid in $pids; do [ "$pid" -gt 1 ] && kill -9 "$pid" 2>/dev/null || true; done
  sleep 0.1
done
ip -n "$ns" link set eth0 down
rm -rf "$DEMO_DIR/$node/run"
echo "$node is off"
