#!/usr/bin/env bash
# No false failover under stress: start the product on the test bed, saturate
# CPU and I/O in BOTH server namespaces with stress-ng, and count role changes
# while nothing has failed.  See README.md.
#
#   bench/failover/stress.sh [--minutes M] [--product halo|keepalived] [--tuned]
set -uo pipefail

MINUTES=10
PRODUCT=halo
TUNED=0
usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while (($#)); do
	case $1 in
	--minutes) MINUTES=${2:?}; shift 2 ;;
	--product) PRODUCT=${2:?}; shift 2 ;;
	--tuned) TUNED=1; shift ;;
	--keep-tmp) FB_KEEP_TMP=1; shift ;;
	-h | --help) usage 0 ;;
	*) echo "unknown option: $1" >&2; usage 2 ;;
	esac
done
[[ $MINUTES =~ ^[1-9][0-9]*$ ]] || { echo "--minutes must be a positive integer" >&2; exit 2; }
[[ $PRODUCT == halo || $PRODUCT == keepalived ]] || usage 2

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=testbed.sh
source "$HERE/testbed.sh"
# shellcheck source=common.sh
source "$HERE/common.sh"

fb_require_root
command -v stress-ng >/dev/null || fb_die "stress-ng missing: run bench/failover/deps.sh"
[[ $PRODUCT == keepalived ]] && ! command -v keepalived >/dev/null &&
	fb_die "keepalived missing: run bench/failover/deps.sh"
fb_install_trap
fb_tmp_init

setting=default adv=1
((TUNED)) && setting=tuned adv=0.1

fb_log "test bed"
fb_bed_up || fb_die "test bed setup failed"
{ fb_http_up n1 && fb_http_up n2; } || fb_die "HTTP servers did not start"

fb_log "starting $PRODUCT ($setting)"
if [[ $PRODUCT == keepalived ]]; then
	ka_up "$adv" || fb_die "keepalived: the VIP never answered from n1"
else
	if ! halo_snapshot || ! halo_up "$setting"; then
		echo "Halo: not measured ($HALO_WHY)"
		echo "false failovers: not measured"
		exit 3
	fi
fi

secs=$((MINUTES * 60))
for n in n1 n2; do
	mkdir -p "$FB_TMP/stress-$n"
	fb_exec "$n" stress-ng --cpu 0 --io 2 --hdd 1 --hdd-bytes 64M \
		--temp-path "$FB_TMP/stress-$n" --timeout "${secs}s" --quiet \
		>"$FB_TMP/stress-$n.log" 2>&1 </dev/null &
done
fb_log "stress-ng (CPU: all cores, I/O) in n1 and n2 for $MINUTES min; polling the VIP every 100 ms"

owner=$(fb_vip_holders)
initial=$owner
moves=0 none=0 both=0 samples=0 role_changes=0
declare -A st=([n1]="" [n2]="")
roles() { st[n1]=$(halo_state n1); st[n2]=$(halo_state n2); echo "${st[n1]:-?}/${st[n2]:-?}"; }
[[ $PRODUCT == halo ]] && role=$(roles) && initial_role=$role
t_end=$((SECONDS + secs))
next_state=$SECONDS
max_polls=$((secs * 10 + 100))
while ((SECONDS < t_end && samples < max_polls)); do
	h=$(fb_vip_holders)
	((samples++))
	case $h in
	none) ((none++)) ;;
	*+*) ((both++)) ;;
	*) if [[ $h != "$owner" ]]; then
		((moves++))
		fb_log "VIP moved: $owner -> $h"
		owner=$h
	fi ;;
	esac
	if [[ $PRODUCT == halo ]] && ((SECONDS >= next_state)); then
		r=$(roles)
		if [[ $r != "$role" ]]; then
			((role_changes++))
			fb_log "Halo states changed: $role -> $r"
			role=$r
		fi
		next_state=$((SECONDS + 1))
	fi
	sleep 0.1
done

echo "product: $PRODUCT ($setting), stress: $MINUTES min, VIP polls: $samples"
[[ $PRODUCT == halo ]] && printf 'Halo build (copied at start): %s\n' "${HALO_BUILD_INFO%%$'\n'*}"
echo "VIP holder at start: $initial, at end: $(fb_vip_holders)"
echo "VIP moves: $moves, polls with no holder: $none, polls with both holding it: $both"
false_fo=$moves
if [[ $PRODUCT == halo ]]; then
	echo "Halo states (n1/n2) at start: $initial_role, at end: $(roles), changes: $role_changes"
	((role_changes > false_fo)) && false_fo=$role_changes
fi
echo "false failovers: $false_fo"
