# shellcheck shell=bash
# Test bed for the failover benchmark: network namespaces + one Linux bridge,
# all on this machine.  Sourced by run.sh and stress.sh.
#
#   halo-fb<PID>-sw   holds the bridge br0 (no other role)
#   halo-fb<PID>-n1   server 1   198.18.1.1/24   (eth0)
#   halo-fb<PID>-n2   server 2   198.18.1.2/24   (eth0)
#   halo-fb<PID>-cl   client     198.18.1.10/24  (eth0)
#   VIP                          198.18.1.100
#
# Only 198.18.0.0/15 (RFC 2544 benchmarking range) is used.  Nothing is ever
# created in the root namespace: each veth pair is created inside the sw
# namespace and its peer is moved straight into the node namespace.

FB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FB_PREFIX="halo-fb$$"
FB_TMP=""
FB_PY=/usr/bin/python3
[[ -x $FB_PY ]] || FB_PY=$(command -v python3)
FB_VIP=198.18.1.100
FB_PORT=8080
declare -A FB_ADDR=([n1]=198.18.1.1 [n2]=198.18.1.2 [cl]=198.18.1.10)
FB_NODES=(n1 n2 cl)

fb_log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
fb_die() { fb_log "ERROR: $*"; exit 1; }

# fb_ns NODE -> namespace name
fb_ns() { printf '%s-%s' "$FB_PREFIX" "$1"; }

# fb_exec NODE CMD... : run CMD inside NODE's namespace
fb_exec() { local n=$1; shift; ip netns exec "$(fb_ns "$n")" "$@"; }

# fb_wait TRIES SLEEP CMD... : retry CMD until it succeeds (bounded)
fb_wait() {
	local tries=$1 delay=$2 i; shift 2
	for ((i = 0; i < tries; i++)); do
		"$@" && return 0
		sleep "$delay"
	done
	return 1
}

fb_tmp_init() {
	[[ -n $FB_TMP && -d $FB_TMP ]] && return 0
	FB_TMP=$(mktemp -d /tmp/halo-fb.XXXXXX) || fb_die "mktemp failed"
}

# Namespaces created by this process (only ours: exact prefix).
fb_our_ns() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${FB_PREFIX}-(sw|n1|n2|cl)\$" || true; }

# fb_kill_ns NS : SIGKILL every process of a namespace, by PID (never pid<=1).
fb_kill_ns() {
	local ns=$1 pid i
	for ((i = 0; i < 50; i++)); do
		local pids
		pids=$(ip netns pids "$ns" 2>/dev/null) || return 0
		[[ -z $pids ]] && return 0
		for pid in $pids; do
			[[ $pid =~ ^[0-9]+$ ]] && ((pid > 1 && pid != $$)) && kill -9 "$pid" 2>/dev/null
		done
		sleep 0.05
	done
	fb_log "warning: processes still alive in $ns"
	return 1
}

fb_add_ns() { ip netns add "$(fb_ns "$1")" && ip -n "$(fb_ns "$1")" link set lo up; }

# fb_join NODE : veth pair, bridge end (v-NODE) in sw, eth0 in NODE.
fb_join() {
	local n=$1 sw ns
	sw=$(fb_ns sw) ns=$(fb_ns "$n")
	ip -n "$sw" link add "v-$n" type veth peer name eth0 netns "$ns" || return 1
	ip -n "$sw" link set "v-$n" master br0 up || return 1
	ip -n "$ns" addr add "${FB_ADDR[$n]}/24" dev eth0 || return 1
	ip -n "$ns" link set eth0 up
}

# fb_bed_up : build the namespaces, the bridge and the links.
fb_bed_up() {
	fb_tmp_init
	local n sw
	sw=$(fb_ns sw)
	fb_add_ns sw || return 1
	ip -n "$sw" link add br0 type bridge forward_delay 0 stp_state 0 || return 1
	ip -n "$sw" link set br0 up || return 1
	for n in "${FB_NODES[@]}"; do
		fb_add_ns "$n" && fb_join "$n" || return 1
	done
	# The client must be able to reach both servers before anything starts.
	fb_wait 20 0.1 fb_exec cl "$FB_PY" "$FB_DIR/probe.py" --reach "${FB_ADDR[n1]}" || return 1
	fb_wait 20 0.1 fb_exec cl "$FB_PY" "$FB_DIR/probe.py" --reach "${FB_ADDR[n2]}" || return 1
}

# fb_bed_down : kill every process of our namespaces, delete them.
fb_bed_down() {
	local ns
	for ns in $(fb_our_ns); do fb_kill_ns "$ns"; done
	for ns in $(fb_our_ns); do ip netns del "$ns" 2>/dev/null; done
	fb_reap
	return 0
}

# fb_reap : collect our background jobs that are dead (no zombies left).
fb_reap() {
	local pid st
	for pid in $(jobs -p); do
		st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
		[[ -z $st || $st == Z ]] && wait "$pid" 2>/dev/null
	done
	return 0
}

# fb_power_off NODE : simulated power loss.  Every process of the node is
# frozen (SIGSTOP: none can react, e.g. to the link going down), the link goes
# down (no more packets, not even a FIN or a goodbye advertisement), then
# every process is SIGKILLed.
fb_power_off() {
	local ns pid
	ns=$(fb_ns "$1")
	for pid in $(ip netns pids "$ns" 2>/dev/null); do
		[[ $pid =~ ^[0-9]+$ ]] && ((pid > 1 && pid != $$)) && kill -STOP "$pid" 2>/dev/null
	done
	ip -n "$ns" link set eth0 down
	fb_kill_ns "$ns"
}

# fb_http_up NODE : tiny HTTP server on 0.0.0.0:8080 answering the node name.
fb_http_up() {
	local n=$1 d="$FB_TMP/www-$1"
	mkdir -p "$d" && printf '%s\n' "$n" >"$d/node.txt"
	fb_exec "$n" "$FB_PY" -m http.server --bind 0.0.0.0 --directory "$d" "$FB_PORT" \
		>"$FB_TMP/http-$n.log" 2>&1 </dev/null &
	fb_wait 50 0.1 fb_exec "$n" "$FB_PY" "$FB_DIR/probe.py" --once "${FB_ADDR[$n]}" >/dev/null 2>&1
}

# fb_vip_node : which server answers on the VIP now (n1, n2 or empty).
fb_vip_node() { fb_exec cl "$FB_PY" "$FB_DIR/probe.py" --once "$FB_VIP" 2>/dev/null; }

# fb_vip_holders : which servers hold the VIP address ("n1", "n2", "n1+n2", "none").
fb_vip_holders() {
	local n a out=()
	for n in n1 n2; do
		a=$(ip -n "$FB_PREFIX-$n" -4 -o addr show 2>/dev/null)
		[[ $a == *" $FB_VIP/"* ]] && out+=("$n")
	done
	local IFS=+
	[[ ${#out[@]} -gt 0 ]] && echo "${out[*]}" || echo none
}

# fb_now : CLOCK_MONOTONIC in seconds (same clock as probe.py).
fb_now() { "$FB_PY" -c 'import time; print(f"{time.monotonic():.6f}")'; }

fb_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[[ $(type -t fb_cleanup_hook) == function ]] && fb_cleanup_hook
	fb_bed_down
	if [[ -n $FB_TMP && -d $FB_TMP && -z ${FB_KEEP_TMP:-} ]]; then rm -rf "$FB_TMP"; fi
	exit "$rc"
}

fb_install_trap() {
	trap fb_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

fb_require_root() { [[ $(id -u) -eq 0 ]] || fb_die "must run as root (network namespaces)"; }
