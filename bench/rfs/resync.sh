#!/usr/bin/env bash
# Full-reintegration benchmark: Halo's reintegration of a ~2 GiB tree into an empty secondary
# directory vs `rsync -a SRC/ DST/` of the same tree into an empty directory on the same file
# system, in one run, with the same cache state; then a table and the ratio against the issue's
# target (Halo's time <= rsync's).  See README.md.
#
#   bench/rfs/resync.sh [--runs N] [--drop-caches] [--tree-files N] [--tree-file-mib N]
#                       [--tree-source DIR] [--prefault-mib N] [--progress-ms N] [--keep-tmp]
#
# --runs N (default 3) repeats both copies N times, alternating which goes first; the table gives
# medians.  Caches are warm by default (the tree is read once before each copy); --drop-caches
# makes both cold instead (sync, then drop_caches=3 before each: machine-wide).  --prefault-mib N
# faults in and frees N MiB of memory just before each copy (a VM that hands free memory back to
# its host makes the copy's new page-cache pages cost host faults; see README.md).  Needs root.
# HALO_BIN (default <repo>/build/bin) holds halo-rfs-bench; HALO_BENCH_TMP (default /var/tmp)
# is where the temp dir goes (it needs about twice the tree: the tree and one copy at a time).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin="${HALO_BIN:-$repo/build/bin}/halo-rfs-bench"
runs=3
drop=()
tree=()
tree_files=16
tree_file_mib=128
tree_source=/usr/include
progress=()
prefault=()
keep_tmp=0
while (($#)); do
	case "$1" in
	--runs) runs=$2; shift 2 ;;
	--drop-caches) drop=(--drop-caches); shift ;;
	--tree-files) tree_files=$2; shift 2 ;;
	--tree-file-mib) tree_file_mib=$2; shift 2 ;;
	--tree-source) tree_source=$2; shift 2 ;;
	--progress-ms) progress=(--progress-ms "$2"); shift 2 ;;
	--prefault-mib) prefault=(--prefault-mib "$2"); shift 2 ;;
	--keep-tmp) keep_tmp=1; shift ;;
	-h|--help) sed -n '2,17p' "$0"; exit 0 ;;
	*) echo "unknown argument: $1" >&2; exit 2 ;;
	esac
done
tree=(--tree-files "$tree_files" --tree-file-mib "$tree_file_mib" --tree-source "$tree_source")
[[ $(id -u) -eq 0 ]] || { echo "resync.sh needs root (namespaces, FUSE)" >&2; exit 1; }
[[ -x $bin ]] || { echo "no $bin: build it (ninja halo-rfs-bench) or set HALO_BIN" >&2; exit 1; }
if ! command -v rsync >/dev/null; then
	"$here/deps.sh" >/dev/null 2>&1 || true
	command -v rsync >/dev/null || { echo "rsync not installed and deps.sh failed" >&2; exit 1; }
fi

base=${HALO_BENCH_TMP:-/var/tmp}
source_mib=0
[[ -z $tree_source ]] || source_mib=$(du -sm "$tree_source" | cut -f1)
need_mib=$((2 * (tree_files * tree_file_mib + source_mib) + 1024))
avail_mib=$(df --output=avail -BM "$base" | tail -1 | tr -dc 0-9)
if ((avail_mib < need_mib)); then
	echo "$base has $avail_mib MiB free; the tree and its copy need about $need_mib MiB" >&2
	exit 1
fi
tmp=$(mktemp -d "$base/halo-rfs-resync.XXXXXX")
cleanup() {
	# The FUSE mount lived in halo-rfs-bench's own mount namespace: nothing is mounted here.
	if ((keep_tmp)); then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
results="$tmp/results.txt"
: >"$results"

echo "full-reintegration benchmark: $(date -u '+%F %T') UTC, $(nproc) CPUs, kernel $(uname -r), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
echo "temp dir $tmp on $(df --output=fstype "$tmp" | tail -1 | tr -d ' ') ($(df --output=source "$tmp" | tail -1))"
echo "tree: $tree_files files x $tree_file_mib MiB pseudo-random${tree_source:+ + cp -a $tree_source ($source_mib MiB)}; $runs run(s)"
if ((${#drop[@]})); then
	echo "caches: cold (sync, then drop_caches=3 before each copy: machine-wide)"
else
	echo "caches: warm (the tree read once before each copy; nothing dropped)"
fi
((${#prefault[@]})) && echo "prefault: ${prefault[1]} MiB faulted in and freed just before each copy"
echo "rsync: $(rsync --version | head -1)"
echo "halo-rfs-bench: $bin ($(stat -c '%s bytes, %y' "$bin"))"

# Runs halo-rfs-bench, shows its output, appends its result lines; a failure is recorded.
measure() {  # label, mode, extra arguments
	local label=$1 mode=$2 out rc=0 why
	shift 2
	echo "== $label ($mode)"
	out=$("$bin" --mode "$mode" --dir "$tmp" --label "$label" "${tree[@]}" "$@" 2>&1) || rc=$?
	echo "$out" | sed 's/^/   /'
	echo "$out" | grep -E '^(result|note) ' | sed "s/\$/ run=$run/" >>"$results" || true
	if ((rc != 0)); then
		why=$(echo "$out" | grep -E '^error ' | tail -1 | sed 's/^error label=[^ ]* what=//')
		echo "skip label=$label run=$run why=${why:-exit status $rc}" >>"$results"
		return 1
	fi
}

run=0
measure make-tree make-tree || exit 1
for run in $(seq "$runs"); do
	echo "=== run $run of $runs (load average $(cut -d" " -f1-3 /proc/loadavg))"
	# Alternating order: whatever the first copy leaves behind (writeback, a warmer cache) favours
	# neither side.
	if ((run % 2)); then order=(rsync halo-resync); else order=(halo-resync rsync); fi
	for mode in "${order[@]}"; do
		case $mode in
		rsync) measure rsync rsync --reuse-tree "${drop[@]}" "${prefault[@]}" || true ;;
		halo-resync)
			measure halo-resync halo-resync --reuse-tree "${drop[@]}" "${prefault[@]}" "${progress[@]}" || true
			;;
		esac
	done
done

echo
python3 "$here/resync_report.py" "$results"
