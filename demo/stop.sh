#!/bin/bash
# Removes everything demo/start.sh created: processes (by PID), the namespace, the demo files.
DEMO_DIR=${DEMO_DIR:-/var/tmp/halo-demo}
NS=halo-demo-n1
if [ -f "$DEMO_DIR/bridge.pids" ]; then
  while read -r pid; do kill "$pid" 2>/dev/null; done < "$DEMO_DIR/bridge.pids"
fi
if ip netns list | grep -qw "$NS"; then
  for _ in 1 2 3; do
    pids=$(ip netns pids "$NS")
    [ -z "$pids" ] && break
    kill -9 $pids 2>/dev/null
    sleep 0.2
  done
  ip netns del "$NS"
fi
rm -rf "$DEMO_DIR"
echo "Halo demo removed"
