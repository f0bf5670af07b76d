#!/usr/bin/env bash
# Failover benchmark: client-visible outage when the node holding the VIP
# loses power, keepalived vs Halo, same run, same test bed.  See README.md.
#
#   bench/failover/run.sh [--runs N] [--tuned] [--out FILE]
#                         [--only keepalived|halo] [--keep-tmp]
set -uo pipefail

RUNS=5
TUNED=0
OUT=/tmp/halo-failover-bench.json
ONLY=""
usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while (($#)); do
	case $1 in
	--runs) RUNS=${2:?}; shift 2 ;;
	--tuned) TUNED=1; shift ;;
	--out) OUT=${2:?}; shift 2 ;;
	--only) ONLY=${2:?}; shift 2 ;;
	--keep-tmp) FB_KEEP_TMP=1; shift ;;
	-h | --help) usage 0 ;;
	*) echo "unknown option: $1" >&2; usage 2 ;;
	esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "--runs must be a positive integer" >&2; exit 2; }

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=testbed.sh
source "$HERE/testbed.sh"
# shellcheck source=common.sh
source "$HERE/common.sh"

fb_require_root
command -v keepalived >/dev/null || fb_die "keepalived missing: run bench/failover/deps.sh"
fb_install_trap
fb_tmp_init
RESULTS="$FB_TMP/results.jsonl"
: >"$RESULTS"
PROBE_PID=""

# Stop the probe if we are interrupted while it runs (it is in the client
# namespace, so fb_bed_down kills it anyway; this only avoids a race).
fb_cleanup_hook() { [[ -n $PROBE_PID ]] && kill -9 "$PROBE_PID" 2>/dev/null; return 0; }

# record PRODUCT SETTING SCENARIO RUN JSON|"" [NOTE]
record() {
	"$FB_PY" - "$@" >>"$RESULTS" <<-'EOF'
		import json, sys
		product, setting, scenario, run, res = sys.argv[1:6]
		note = sys.argv[6] if len(sys.argv) > 6 else ""
		d = json.loads(res) if res.strip() else {}
		d.update(product=product, setting=setting, scenario=scenario, run=int(run))
		if note:
		    d["not_measured"] = note
		print(json.dumps(d))
	EOF
}

# measure OLD NEW FAULT_CMD... : probe the VIP, inject the fault ~1 s after
# the probe sees OLD answer, wait (bounded, 30 s) for NEW to answer, print
# the probe's JSON.
measure() {
	local old=$1 new=$2; shift 2
	local p="$FB_TMP/probe" fs fe
	rm -rf "$p" && mkdir -p "$p"
	fb_exec cl "$FB_PY" "$FB_DIR/probe.py" --target "$FB_VIP" --duration 60 \
		--stop-file "$p/stop" --fault-file "$p/fault" --state-file "$p/state" \
		--samples "$p/samples" --out "$p/result.json" >"$p/stdout" 2>"$p/stderr" </dev/null &
	PROBE_PID=$!
	if ! fb_wait 50 0.1 grep -qsx "$old" "$p/state"; then
		fb_log "probe never saw $old answer"
	fi
	sleep 1
	fs=$(fb_now)
	"$@"
	fe=$(fb_now)
	echo "$fs $fe" >"$p/fault"
	fb_wait 300 0.1 grep -qsx "$new" "$p/state" || { fb_log "no answer from $new within 30 s"; diag "$new"; }
	sleep 0.3
	touch "$p/stop"
	local i
	for ((i = 0; i < 100; i++)); do kill -0 "$PROBE_PID" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$PROBE_PID" 2>/dev/null
	wait "$PROBE_PID" 2>/dev/null
	PROBE_PID=""
	cat "$p/result.json" 2>/dev/null || echo '{"error": "probe produced no result"}'
}

# diag NODE : keep what explains a failover that did not happen.
diag() {
	local d
	d="$FB_TMP/diag-$(date +%H%M%S)-$1"
	mkdir -p "$d"
	ip -n "$(fb_ns cl)" neigh show >"$d/client-neigh" 2>&1
	ip -n "$(fb_ns "$1")" -4 addr show >"$d/$1-addr" 2>&1
	ip -n "$(fb_ns sw)" link show >"$d/sw-links" 2>&1
	local n
	for n in n1 n2; do cp "$FB_TMP/ka-$n/keepalived.log" "$d/keepalived-$n.log" 2>/dev/null; done
	cp "$FB_TMP/halo-"*.log "$d/" 2>/dev/null
	fb_log "diagnostics in $d: VIP holders $(fb_vip_holders); client neigh: $(tr '\n' ';' <"$d/client-neigh")"
}

show() { # show LABEL JSON
	"$FB_PY" - "$1" "$2" >&2 <<-'EOF'
		import json, sys
		d = json.loads(sys.argv[2])
		print("  %s: outage %s ms (%s -> %s) %s" % (sys.argv[1], d.get("outage_ms"),
		      d.get("node_before"), d.get("node_after"), d.get("error", "")))
	EOF
}

bed_fresh() {
	fb_bed_down
	fb_bed_up || { fb_log "test bed setup failed"; return 1; }
	{ fb_http_up n1 && fb_http_up n2; } || { fb_log "HTTP servers did not start"; return 1; }
}

# ------------------------------------------------------------ keepalived runs
ka_series() {
	local setting=$1 adv=$2 i res
	for ((i = 1; i <= RUNS; i++)); do
		fb_log "keepalived $setting (advert_int $adv) run $i/$RUNS"
		if ! bed_fresh || ! ka_up "$adv"; then
			record keepalived "$setting" power_off "$i" "" "VIP never answered from n1"
			continue
		fi
		res=$(measure n1 n2 fb_power_off n1)
		show "keepalived $setting" "$res"
		record keepalived "$setting" power_off "$i" "$res"
		cp "$FB_TMP/ka-n2/keepalived.log" "$FB_TMP/ka-$setting-run$i-n2.log" 2>/dev/null
	done
}

# ------------------------------------------------------------------ Halo runs
HALO_SKIP=""
halo_series() {
	local setting=$1 i res prim other halo_ok=0
	for scenario in power_off swap; do
		for ((i = 1; i <= RUNS; i++)); do
			[[ -n $HALO_SNAP_WHY ]] && HALO_SKIP=$HALO_SNAP_WHY
			if [[ -n $HALO_SKIP ]]; then
				record halo "$setting" "$scenario" "$i" "" "$HALO_SKIP"
				continue
			fi
			if [[ $scenario == swap ]] && ! halo_has_swap; then
				record halo "$setting" swap "$i" "" "this Halo build has no 'halo swap'"
				continue
			fi
			fb_log "Halo $setting $scenario run $i/$RUNS"
			if ! bed_fresh; then
				record halo "$setting" "$scenario" "$i" "" "test bed setup failed"
				continue
			fi
			if ! halo_up "$setting"; then
				local why="Halo did not reach PRIM/SECOND (limit ${HALO_WAIT} s): $HALO_WHY"
				cp "$FB_TMP/halo-setup.log" "$FB_TMP/halo-setup-failed.log" 2>/dev/null
				fb_log "Halo: not measured ($why)"
				record halo "$setting" "$scenario" "$i" "" "$why"
				# A build that never gets there: do not retry it for every run.
				((halo_ok == 0)) && HALO_SKIP=$why
				continue
			fi
			((halo_ok++))
			prim=$(halo_primary) || prim=n1
			other=n2; [[ $prim == n2 ]] && other=n1
			if [[ $scenario == power_off ]]; then
				res=$(measure "$prim" "$other" fb_power_off "$prim")
			else
				res=$(measure "$prim" "$other" halo_swap "$prim")
			fi
			show "Halo $setting $scenario" "$res"
			record halo "$setting" "$scenario" "$i" "$res"
		done
	done
	HALO_SKIP=""
}
halo_swap() { HALO_TO=60 halo_cmd "$1" swap -m "$HALO_MODULE" >>"$FB_TMP/halo-swap.log" 2>&1; }

# Measure one Halo build: a copy taken now (others may rebuild it meanwhile).
HALO_SNAP_WHY=""
if [[ -z $ONLY || $ONLY == halo ]]; then
	halo_snapshot || HALO_SNAP_WHY=$HALO_WHY
fi

settings=(default)
((TUNED)) && settings+=(tuned)
for s in "${settings[@]}"; do
	adv=1; [[ $s == tuned ]] && adv=0.1
	[[ -z $ONLY || $ONLY == keepalived ]] && ka_series "$s" "$adv"
	[[ -z $ONLY || $ONLY == halo ]] && halo_series "$s"
done
fb_bed_down

"$FB_PY" - "$FB_TMP/meta.json" "$HALO_BUILD_INFO" "$RUNS" "$TUNED" <<-'EOF'
	import json, sys
	path, build, runs, tuned = sys.argv[1:5]
	json.dump({"halo_build": build.splitlines(), "runs_per_series": int(runs),
	           "tuned": tuned == "1"}, open(path, "w"), indent=1)
EOF
"$FB_PY" "$FB_DIR/report.py" "$RESULTS" "$OUT" "$FB_TMP/meta.json"
