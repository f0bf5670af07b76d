# shellcheck shell=bash
# Product helpers shared by run.sh and stress.sh (keepalived and Halo on the
# test bed of testbed.sh, which must be sourced first).

HALO_BIN=${HALO_BIN:-/work/main/build/bin}
HALO_BUILD_INFO=""
HALO_MODULE=vipbench
HALO_WAIT=${HALO_WAIT:-60}

# ---------------------------------------------------------------- keepalived

# ka_conf NODE ADVERT_INT : write $FB_TMP/ka-NODE/keepalived.conf
ka_conf() {
	local n=$1 adv=$2 d="$FB_TMP/ka-$1" prio=100 peer=n1 ver=""
	[[ $n == n1 ]] && prio=150 peer=n2
	# Sub-second advertisements need VRRPv3 (v2 counts whole seconds).
	[[ $adv == *.* ]] && ver="    version 3"
	# A fresh directory each time: a stale pid file whose PID was reused makes
	# keepalived exit with "daemon is already running".
	rm -rf "$d" && mkdir -p "$d"
	cat >"$d/keepalived.conf" <<-EOF
		global_defs {
		    router_id halo-fb-$n
		}
		vrrp_instance VI_FB {
		    state BACKUP
		    interface eth0
		    virtual_router_id $(((${FB_PREFIX##*fb} % 200) + 20))
		    priority $prio
		    advert_int $adv
		$ver
		    nopreempt
		    unicast_src_ip ${FB_ADDR[$n]}
		    unicast_peer {
		        ${FB_ADDR[$peer]}
		    }
		    virtual_ipaddress {
		        $FB_VIP/24 dev eth0
		    }
		}
	EOF
}

# ka_start NODE : keepalived in the foreground (-n) inside NODE's namespace.
ka_start() {
	local n=$1 d="$FB_TMP/ka-$1"
	fb_exec "$n" keepalived --vrrp -n -l -D -f "$d/keepalived.conf" \
		-p "$d/keepalived.pid" -r "$d/vrrp.pid" -c "$d/checkers.pid" \
		>"$d/keepalived.log" 2>&1 </dev/null &
}

# ka_up ADVERT_INT : configure both nodes, start n1, wait until the VIP
# answers from n1, then start n2 and wait until it is BACKUP.  (Started
# together with nopreempt, either could win the first election.)
ka_up() {
	local adv=$1 n
	for n in n1 n2; do ka_conf "$n" "$adv" || return 1; done
	ka_start n1 && fb_wait 300 0.1 ka_vip_on n1 || return 1
	ka_start n2 && fb_wait 100 0.1 grep -qs 'Entering BACKUP STATE' "$FB_TMP/ka-n2/keepalived.log" || return 1
	sleep 1
	ka_vip_on n1
}
ka_vip_on() { [[ $(fb_vip_node) == "$1" ]]; }

# ---------------------------------------------------------------------- Halo

# halo_cmd NODE ARGS... : the Halo CLI inside NODE's namespace and root
# (bounded by HALO_TO seconds, default 30).
halo_cmd() {
	local n=$1; shift
	timeout "${HALO_TO:-30}" ip netns exec "$(fb_ns "$n")" \
		env HALO_ROOT="$FB_TMP/halo-$n" "$HALO_BIN/halo" "$@"
}

# halo_state NODE : first word of "halo state" (PRIM, SECOND, ALONE...).
halo_state() {
	halo_cmd "$1" state -m "$HALO_MODULE" 2>/dev/null |
		grep -oE '\b(STOP|WAIT|ALONE|UP|PRIM|SECOND)\b' | head -1
}

# halo_package TUNED : build $FB_TMP/vipbench.safe
halo_package() {
	local d="$FB_TMP/pkg/$HALO_MODULE" heart='<heart>'
	[[ $1 == tuned ]] && heart='<heart pulse="30ms" timeout="150ms">'
	rm -rf "$FB_TMP/pkg" && mkdir -p "$d/conf" "$d/bin" || return 1
	cat >"$d/conf/userconfig.xml" <<-EOF
		<safe>
		  <service mode="mirror">
		    $heart<heartbeat name="default"/></heart>
		    <vip><interface_list><interface><real_interface>
		      <virtual_addr addr="$FB_VIP" where="one_side_alias"/>
		    </real_interface></interface></interface_list></vip>
		  </service>
		</safe>
	EOF
	(cd "$d" && zip -qr "$FB_TMP/$HALO_MODULE.safe" conf bin)
}

halo_cluster_xml() {
	cat >"$FB_TMP/cluster.xml" <<-EOF
		<cluster><lans><lan name="default">
		  <node name="n1" addr="${FB_ADDR[n1]}"/><node name="n2" addr="${FB_ADDR[n2]}"/>
		</lan></lans></cluster>
	EOF
}

# halo_daemon NODE : start halod (it daemonizes) and wait for its pid file.
halo_daemon() {
	local n=$1 root="$FB_TMP/halo-$1"
	mkdir -p "$root"
	timeout 30 ip netns exec "$(fb_ns "$n")" env HALO_ROOT="$root" "$HALO_BIN/halod" >"$FB_TMP/halod-$n.out" 2>&1 </dev/null || return 1
	fb_wait 100 0.1 test -s "$root/run/halo/halod.pid"
}

# halo_step DESC CMD... : run a setup step, keep its output, set HALO_WHY on failure.
halo_step() {
	local desc=$1 out="$FB_TMP/halo-step.out"; shift
	"$@" >"$out" 2>&1
	local rc=$?
	{ echo "== $desc (exit $rc)"; cat "$out"; } >>"$FB_TMP/halo-setup.log"
	if ((rc != 0)); then
		HALO_WHY="$desc failed (exit $rc): $(grep -v '^[[:space:]]*$' "$out" | tail -n 1 | cut -c1-300)"
		return 1
	fi
}

halo_copy_key() {
	local rel="etc/halo/modules/$HALO_MODULE/conf/modulekey.dat"
	mkdir -p "$(dirname "$FB_TMP/halo-n2/$rel")" &&
		cp "$FB_TMP/halo-n1/$rel" "$FB_TMP/halo-n2/$rel"
}

# halo_wait_pair : n1 PRIM and n2 SECOND (bounded by HALO_WAIT seconds).
halo_wait_pair() {
	local t0=$SECONDS
	HALO_TO=$((HALO_WAIT + 5)) halo_step "waitstate PRIM on n1" \
		halo_cmd n1 waitstate -m "$HALO_MODULE" PRIM -t "$HALO_WAIT" || return 1
	local left=$((HALO_WAIT - (SECONDS - t0)))
	((left < 5)) && left=5
	HALO_TO=$((left + 5)) halo_step "waitstate SECOND on n2" \
		halo_cmd n2 waitstate -m "$HALO_MODULE" SECOND -t "$left"
}

# halo_up SETTING : full Halo setup on the bed; on failure HALO_WHY says why.
halo_up() {
	local setting=$1 n
	HALO_WHY=""
	: >"$FB_TMP/halo-setup.log"
	[[ -x $HALO_BIN/halo && -x $HALO_BIN/halod ]] || { HALO_WHY="no Halo build in $HALO_BIN"; return 1; }
	# Fresh roots: nothing (pid file, state, key) survives from a previous run.
	rm -rf "$FB_TMP/halo-n1" "$FB_TMP/halo-n2"
	halo_package "$setting" || { HALO_WHY="cannot build the module package"; return 1; }
	halo_cluster_xml
	for n in n1 n2; do
		halo_step "halod start on $n" halo_daemon "$n" || return 1
	done
	for n in n1 n2; do
		halo_step "cluster config on $n" halo_cmd "$n" cluster config "$FB_TMP/cluster.xml" || return 1
		halo_step "module install on $n" halo_cmd "$n" module install "$FB_TMP/$HALO_MODULE.safe" || return 1
	done
	halo_step "module genkey on n1" halo_cmd n1 module genkey -m "$HALO_MODULE" || return 1
	halo_step "copy modulekey.dat to n2" halo_copy_key || return 1
	for n in n1 n2; do
		halo_step "config on $n" halo_cmd "$n" config -m "$HALO_MODULE" || return 1
	done
	# n1 first, and alone (ALONE), so that it is the one that becomes PRIM.
	# On a first start neither node's data is known to be up to date, so a
	# plain "start" waits in WAIT (NotReady); "halo prim" declares n1's data
	# the reference and goes ALONE at once (docs/mirror-state-machine.md).
	local first=start
	halo_has_cmd prim && first=prim
	halo_step "$first on n1" halo_cmd n1 "$first" -m "$HALO_MODULE" || return 1
	HALO_TO=25 halo_step "waitstate ALONE on n1" halo_cmd n1 waitstate -m "$HALO_MODULE" ALONE -t 20 ||
		fb_log "Halo: n1 not ALONE after 20 s ($HALO_WHY); starting n2 anyway"
	halo_step "start on n2" halo_cmd n2 start -m "$HALO_MODULE" || return 1
	halo_wait_pair || return 1
	# The VIP must answer before anything is measured.
	fb_wait 100 0.1 ka_vip_on n1 || { HALO_WHY="PRIM reached but the VIP does not answer from n1"; return 1; }
}

# halo_primary : the node whose state is PRIM (empty if none).
halo_primary() {
	local n
	for n in n1 n2; do [[ $(halo_state "$n") == PRIM ]] && { echo "$n"; return 0; }; done
	return 1
}

# halo_has_cmd CMD : does this build have "halo CMD"?  (An unknown subcommand
# followed by --help prints the main help and exits 0, so look at the list.)
halo_has_cmd() { "$HALO_BIN/halo" --help 2>/dev/null | grep -qE "^[[:space:]]+$1[[:space:]]"; }
halo_has_swap() { halo_has_cmd swap; }

# halo_snapshot : copy halo, halod and halo-module from HALO_BIN to the temp
# dir and use the copy (halod runs the halo-module next to it), so that every
# run measures the same build even if HALO_BIN is rebuilt meanwhile.  Waits
# (bounded) for a build that is complete: no empty file, none changed in the
# last 5 s.  HALO_BUILD_INFO describes what was copied.
halo_snapshot() {
	local src=$HALO_BIN dst="$FB_TMP/halo-bin" f i ok now
	for ((i = 0; i < 30; i++)); do
		ok=1 now=$(date +%s)
		for f in halo halod halo-module; do
			[[ -s $src/$f && -x $src/$f ]] && (($(stat -c %Y "$src/$f") < now - 5)) || ok=0
		done
		((ok)) && break
		sleep 2
	done
	((ok)) || { HALO_WHY="no complete Halo build in $src"; return 1; }
	rm -rf "$dst" && mkdir -p "$dst" || return 1
	for f in halo halod halo-module; do cp -p "$src/$f" "$dst/$f" || return 1; done
	# shellcheck disable=SC2034  # read by run.sh and stress.sh
	HALO_BUILD_INFO=$(for f in halod halo-module halo; do
		printf '%s %s bytes, modified %s, sha256 %.16s\n' "$src/$f" "$(stat -c %s "$dst/$f")" \
			"$(stat -c %y "$dst/$f")" "$(sha256sum "$dst/$f" | cut -d' ' -f1)"
	done)
	HALO_BIN=$dst
}
