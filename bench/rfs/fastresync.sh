#!/usr/bin/env bash
# Fast-reintegration benchmark: a secondary stopped cleanly comes back after 1 % of a ~2 GiB
# tree's bytes were rewritten in random 4 KiB blocks; Halo's reintegration of that change vs
# `rsync -a --inplace --no-whole-file` of the same change, in the same run; then a table and the
# issue's targets (Halo >= 10x faster; bytes copied <= 1.2x the rewritten bytes).  See README.md.
#
#   bench/rfs/fastresync.sh [--runs N] [--percent P] [--seed S] [--drop-caches] [--primary-crash]
#                           [--tree-files N] [--tree-file-mib N] [--tree-source DIR] [--keep-tmp]
#
# --runs N (default 3): each run copies the tree twice (the secondary's and rsync's old state),
# lets Halo's first reintegration finish, stops the secondary, rewrites --percent (1) of the
# bytes (blocks drawn from seed S + run - 1), then times both; they alternate which goes first.
# Caches are warm by default (what each copy reads is read once just before it); --drop-caches
# makes both cold (sync, then drop_caches=3 before each: machine-wide).  --primary-crash: after
# the rewrite the primary "crashes" (its journal left unclean, without the change) and restarts,
# so Halo's change log comes from its activity log; target: bytes copied <= the rewritten
# blocks plus the activity log's 4 MiB zones.  Needs root.
# HALO_BIN (default <repo>/build/bin) holds halo-rfs-bench (the tree) and halo-rfs-fastbench;
# HALO_BENCH_TMP (default /var/tmp) is where the temp dir goes (about three times the tree).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bindir="${HALO_BIN:-$repo/build/bin}"
runs=3
percent=1
seed=20261206
drop=()
crash=()
tree_files=16
tree_file_mib=128
tree_source=/usr/include
keep_tmp=0
while (($#)); do
	case "$1" in
	--runs) runs=$2; shift 2 ;;
	--percent) percent=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--drop-caches) drop=(--drop-caches); shift ;;
	--primary-crash) crash=(--primary-crash); shift ;;
	--tree-files) tree_files=$2; shift 2 ;;
	--tree-file-mib) tree_file_mib=$2; shift 2 ;;
	--tree-source) tree_source=$2; shift 2 ;;
	--keep-tmp) keep_tmp=1; shift ;;
	-h|--help) sed -n '2,19p' "$0"; exit 0 ;;
	*) echo "unknown argument: $1" >&2; exit 2 ;;
	esac
done
[[ $(id -u) -eq 0 ]] || { echo "fastresync.sh needs root (namespaces, FUSE)" >&2; exit 1; }
for b in halo-rfs-bench halo-rfs-fastbench; do
	[[ -x $bindir/$b ]] || { echo "no $bindir/$b: build it (ninja $b) or set HALO_BIN" >&2; exit 1; }
done
if ! command -v rsync >/dev/null; then
	"$here/deps.sh" >/dev/null 2>&1 || true
	command -v rsync >/dev/null || { echo "rsync not installed and deps.sh failed" >&2; exit 1; }
fi

base=${HALO_BENCH_TMP:-/var/tmp}
source_mib=0
[[ -z $tree_source ]] || source_mib=$(du -sm "$tree_source" | cut -f1)
need_mib=$((3 * (tree_files * tree_file_mib + source_mib) + 1024))
avail_mib=$(df --output=avail -BM "$base" | tail -1 | tr -dc 0-9)
if ((avail_mib < need_mib)); then
	echo "$base has $avail_mib MiB free; the tree and its two copies need about $need_mib MiB" >&2
	exit 1
fi
tmp=$(mktemp -d "$base/halo-rfs-fastresync.XXXXXX")
cleanup() {
	# Mounts (FUSE, the bind mount rsync reads) lived in halo-rfs-fastbench's own mount
	# namespace, gone with it: nothing is mounted here.
	if ((keep_tmp)); then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
results="$tmp/results.txt"
: >"$results"

echo "fast-reintegration benchmark: $(date -u '+%F %T') UTC, $(nproc) CPUs, kernel $(uname -r), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
echo "commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD -- src 2>/dev/null || echo ' (src/ modified)')"
echo "temp dir $tmp on $(df --output=fstype "$tmp" | tail -1 | tr -d ' ') ($(df --output=source "$tmp" | tail -1))"
echo "tree: $tree_files files x $tree_file_mib MiB pseudo-random${tree_source:+ + cp -a $tree_source ($source_mib MiB)}; $percent % of its bytes rewritten per run; $runs run(s)"
if ((${#drop[@]})); then
	echo "caches: cold (sync, then drop_caches=3 before each timed copy: machine-wide)"
else
	echo "caches: warm (what each copy reads is read once just before it; nothing dropped)"
fi
if ((${#crash[@]})); then
	echo "primary: crash simulated after the rewrite (journal unclean, no change rows; restarted on its activity log)"
else
	echo "primary: runs throughout (only the secondary stops, cleanly)"
fi
echo "rsync: $(rsync --version | head -1)"
echo "halo-rfs-fastbench: $bindir/halo-rfs-fastbench ($(stat -c '%s bytes, %y' "$bindir/halo-rfs-fastbench"))"

run=0
echo "== make-tree"
out=$("$bindir/halo-rfs-bench" --mode make-tree --dir "$tmp" --tree-files "$tree_files" \
	--tree-file-mib "$tree_file_mib" --tree-source "$tree_source" 2>&1) || {
	echo "$out" | sed 's/^/   /'
	echo "building the tree failed" >&2
	exit 1
}
echo "$out" | sed 's/^/   /'
for run in $(seq "$runs"); do
	# Alternating order: whatever the first copy leaves behind favours neither side.
	if ((run % 2)); then first=rsync; else first=halo; fi
	echo "=== run $run of $runs (load average $(cut -d" " -f1-3 /proc/loadavg)), $first first, seed $((seed + run - 1))"
	rc=0
	out=$("$bindir/halo-rfs-fastbench" --dir "$tmp" --percent "$percent" --seed $((seed + run - 1)) \
		--first "$first" "${drop[@]}" "${crash[@]}" 2>&1) || rc=$?
	echo "$out" | sed 's/^/   /'
	echo "$out" | grep -E '^(result|note) ' | sed "s/\$/ run=$run/" >>"$results" || true
	echo "note label=run first=$first run=$run" >>"$results"
	if ((rc != 0)); then
		why=$(echo "$out" | grep -E '^error ' | tail -1 | sed 's/^error label=[^ ]* what=//')
		echo "skip label=run run=$run why=${why:-exit status $rc}" >>"$results"
	fi
done

echo
python3 "$here/fastresync_report.py" "$results"
