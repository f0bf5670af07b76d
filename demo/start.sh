#!/bin/bash
# The README's demo command: installs dependencies, builds Halo, and starts a one-node demo
# cluster on this machine. The node runs in its own network namespace (halo-demo-n1) under its
# own HALO_ROOT; a light module "web" serves HTTP there, and socat bridges it to
# 127.0.0.1:${DEMO_PORT:-8080} on this machine (no address is added outside the namespace).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
DEMO_DIR=${DEMO_DIR:-/var/tmp/halo-demo}
DEMO_PORT=${DEMO_PORT:-8080}
NS=halo-demo-n1
ROOT=$DEMO_DIR/n1

bash scripts/deps.sh
bash scripts/build.sh
bash demo/stop.sh >/dev/null 2>&1 || true

mkdir -p "$DEMO_DIR"
ip netns add "$NS"
ip -n "$NS" link set lo up
in_node() { ip netns exec "$NS" env HALO_ROOT="$ROOT" "$@"; }

in_node "$REPO/build/bin/halod"
(cd share/halo/templates/web && zip -qr "$DEMO_DIR/web.safe" conf bin)
in_node "$REPO/build/bin/halo" module install "$DEMO_DIR/web.safe"
in_node "$REPO/build/bin/halo" config -m web
in_node "$REPO/build/bin/halo" start -m web
in_node "$REPO/build/bin/halo" waitstate -m web UP -t 60

# Bridge: machine 127.0.0.1:PORT -> unix socket -> node's 127.0.0.1:8080.
ip netns exec "$NS" socat UNIX-LISTEN:"$DEMO_DIR/web.sock",fork,unlink-early TCP:127.0.0.1:8080 \
  >/dev/null 2>&1 &
echo $! > "$DEMO_DIR/bridge.pids"
for _ in $(seq 50); do [ -S "$DEMO_DIR/web.sock" ] && break; sleep 0.1; done
socat TCP-LISTEN:"$DEMO_PORT",bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:"$DEMO_DIR/web.sock" \
  >/dev/null 2>&1 &
echo $! >> "$DEMO_DIR/bridge.pids"

cat <<MSG

Halo demo running: node n1 (network namespace $NS, HALO_ROOT=$ROOT).
  curl http://127.0.0.1:$DEMO_PORT/               # the module's HTTP server
  demo/halo state -v -m web                       # halo, run inside the node
  demo/halo log -m web                            # the module log
  kill -9 \$(cat $ROOT/run/halo/modules/web.pid)   # kill the module runtime: halod restarts it,
  demo/halo waitstate -m web UP; demo/halo log -m web   # the server keeps running
  kill -9 \$(cat $ROOT/var/lib/halo/modules/web/web.pid)   # kill the server: errd restarts it
  demo/halo log -m web | tail                     # "Action restart called by errd"
  demo/halo stop -m web; demo/halo start -m web
  bash demo/stop.sh                               # remove everything the demo created
MSG
