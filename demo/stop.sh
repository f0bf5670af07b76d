#!/bin/bash
# Removes everything demo/start.sh created: processes (by PID), the namespaces, the demo files.
DEMO_DIR=${DEMO_DIR:-/var/tmp/halo-demo}
if [ -f "$DEMO_DIR/bridge.pids" ]; then
  while read -r pid; do [ "$pid" -gt 1 ] && kill "$pid" 2>/dev/null; done < "$DEMO_DIR/bridge.pids"
fi
for ns in halo-demo-n1 halo-demo-n2 halo-demo-sw; do
  ip netns list | grep -qw "$ns" || continue
  for _ in 1 2 3 4 5; do
    pids=$(ip netns pids "$ns")
    [ -z "$pids" ] && break
    for pid in $pids; do [ "$pid" -gt 1 ] && kill -9 "$pid" 2>/dev/null; done
    sleep 0.2
  done
  ip netns del "$ns"
done
rm -rf "$DEMO_DIR"
echo "Halo demo removed"
