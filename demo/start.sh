#!/bin/bash
# The README's demo command: installs dependencies, builds Halo, and starts a two-node mirror
# cluster on this machine. Nodes n1 (198.18.1.1) and n2 (198.18.1.2) run in their own network
# namespaces (halo-demo-n1, halo-demo-n2) under their own HALO_ROOT, joined by a bridge in a
# third namespace (halo-demo-sw, 198.18.1.254). The mirror module "web" runs python3's
# http.server on the primary behind the virtual IP 198.18.1.100; socat bridges the VIP to
# 127.0.0.1:${DEMO_PORT:-8080} on this machine. Nothing is added to the root namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
DEMO_DIR=${DEMO_DIR:-/var/tmp/halo-demo}
DEMO_PORT=${DEMO_PORT:-8080}
SW=halo-demo-sw
VIP=198.18.1.100

bash scripts/deps.sh
bash scripts/build.sh
bash demo/stop.sh >/dev/null 2>&1 || true

mkdir -p "$DEMO_DIR"
ip netns add "$SW"
ip -n "$SW" link set lo up
ip -n "$SW" link add br0 type bridge
ip -n "$SW" addr add 198.18.1.254/24 dev br0
ip -n "$SW" link set br0 up
cat > "$DEMO_DIR/cluster.xml" <<XML
<cluster>
  <lans>
    <lan name="default">
      <node name="n1" addr="198.18.1.1"/>
      <node name="n2" addr="198.18.1.2"/>
    </lan>
  </lans>
</cluster>
XML
(cd share/halo/templates/mirror && zip -qr "$DEMO_DIR/web.safe" conf bin)
port=0
for n in n1 n2; do
  port=$((port + 1))
  ip netns add "halo-demo-$n"
  ip -n "halo-demo-$n" link set lo up
  ip -n "halo-demo-$n" link add eth0 type veth peer name "p$port" netns "$SW"
  ip -n "$SW" link set "p$port" master br0 up
  ip -n "halo-demo-$n" addr add "198.18.1.$port/24" dev eth0
  ip -n "halo-demo-$n" link set eth0 up
  demo/halo "$n" --daemon
  demo/halo "$n" cluster config "$DEMO_DIR/cluster.xml"
  demo/halo "$n" module install "$DEMO_DIR/web.safe"
done
demo/halo n1 module genkey -m web
cp "$DEMO_DIR/n1/etc/halo/modules/web/conf/modulekey.dat" "$DEMO_DIR/n2/etc/halo/modules/web/conf/"
for n in n1 n2; do demo/halo "$n" config -m web; done
# First start: n1's (empty) data is the reference, n2 joins as secondary.
demo/halo n1 prim -m web
demo/halo n1 waitstate -m web ALONE -t 60
demo/halo n2 start -m web
demo/halo n2 waitstate -m web SECOND -t 60
demo/halo n1 waitstate -m web PRIM -t 60

# Bridge: machine 127.0.0.1:PORT -> unix socket -> switch namespace -> VIP:8080.
ip netns exec "$SW" socat UNIX-LISTEN:"$DEMO_DIR/web.sock",fork,unlink-early TCP:$VIP:8080 \
  >/dev/null 2>&1 &
echo $! > "$DEMO_DIR/bridge.pids"
for _ in $(seq 50); do [ -S "$DEMO_DIR/web.sock" ] && break; sleep 0.1; done
socat TCP-LISTEN:"$DEMO_PORT",bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:"$DEMO_DIR/web.sock" \
  >/dev/null 2>&1 &
echo $! >> "$DEMO_DIR/bridge.pids"

cat <<MSG

Halo demo running: mirror module "web", n1 PRIM and n2 SECOND, virtual IP $VIP
(namespaces halo-demo-n1, halo-demo-n2, switch halo-demo-sw; roots $DEMO_DIR/n1, n2).
  curl http://127.0.0.1:$DEMO_PORT/         # answered through the VIP: names the primary
                                            # and lists the starts (a replicated file)
  demo/halo n1 state -v -m web              # halo, run inside node n1 (or n2)
  demo/halo n2 log -m web                   # the module log of n2

Watch a failover (in a second terminal: demo/watch.sh prints who answers every 100 ms):
  demo/poweroff.sh n1                       # n1 "loses power": every process killed, link down
  demo/halo n2 state -m web                 # ALONE (Ready) about half a second later
  demo/halo n2 rfsdiff -m web               # what n1 will get back: only the changes
  demo/poweron.sh n1                        # n1 boots again, reintegrates, joins as SECOND
  demo/halo n1 rfsverify -m web             # both copies of the served directory compared
  demo/halo n2 swap -m web                  # planned switch back: n1 PRIM, n2 SECOND
  bash demo/stop.sh                         # remove everything the demo created
MSG
