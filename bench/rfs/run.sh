#!/usr/bin/env bash
# rfs benchmark: the same measurements (halo-rfs-bench) on the native directory, on FUSE
# references (bindfs, libfuse's passthrough_ll) and on Halo (FUSE only, then replicated over
# loopback), then a table and the ratios against the issue's targets.  See README.md.
#
#   bench/rfs/run.sh [--seq-mib N] [--fsync-samples N] [--creates N] [--only MODE[,MODE...]]
#                    [--runs N] [--peer-sync] [--fs fresh|host] [--keep-tmp]
#
# --runs N repeats the whole sequence of modes N times; the table gives each figure's median.
# --fs fresh (default): every mode writes to a new ext4 file system of its own (a loop device
# over a sparse file in the temp dir, direct I/O, mkfs.ext4 defaults), halo-repl's primary and
# secondary each to one, as two servers would; so no mode inherits what the one before it left
# (deleted inodes, fragmentation, dirty pages).  --fs host: the temp dir's own file system.
#
# Modes: native bindfs bindfs-mt passthrough_ll halo-fuse halo-repl.  Needs root.  HALO_BIN
# (default <repo>/build/bin) holds halo-rfs-bench.  Every FUSE mount is made inside a private
# mount namespace (unshare -m): nothing reaches the machine's mount table.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin="${HALO_BIN:-$repo/build/bin}/halo-rfs-bench"
seq_mib=512
fsync_samples=2000
creates=20000
only="native,bindfs,bindfs-mt,passthrough_ll,halo-fuse,halo-repl"
peer_sync=""
keep_tmp=0
runs=1
fs=fresh
fs_size=4G
while (($#)); do
	case "$1" in
	--seq-mib) seq_mib=$2; shift 2 ;;
	--fsync-samples) fsync_samples=$2; shift 2 ;;
	--creates) creates=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--peer-sync) peer_sync=--peer-sync; shift ;;
	--fs) fs=$2; shift 2 ;;
	--keep-tmp) keep_tmp=1; shift ;;
	-h|--help) sed -n '2,18p' "$0"; exit 0 ;;
	*) echo "unknown argument: $1" >&2; exit 2 ;;
	esac
done
[[ $(id -u) -eq 0 ]] || { echo "run.sh needs root (namespaces, FUSE mounts)" >&2; exit 1; }
[[ -x $bin ]] || { echo "no $bin: build it (ninja halo-rfs-bench) or set HALO_BIN" >&2; exit 1; }
[[ $fs == fresh || $fs == host ]] || { echo "--fs: fresh or host, not $fs" >&2; exit 2; }

tmp=$(mktemp -d /var/tmp/halo-rfs-bench.XXXXXX)
loops=()  # loop devices this run attached (fresh file systems)
drop_fs() {
	local dev
	for dev in "${loops[@]}"; do losetup -d "$dev" 2>/dev/null || true; done
	loops=()
	rm -f "$tmp"/fs*.img
}
cleanup() {
	# The mounts live in namespaces that end with their processes; nothing is mounted here.
	drop_fs
	if ((keep_tmp)); then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A new ext4 file system on a loop device: its device in $REPLY (empty with --fs host).
new_fs() {
	REPLY=""
	[[ $fs == fresh ]] || return 0
	local img="$tmp/fs${#loops[@]}.img" dev
	truncate -s "$fs_size" "$img"
	dev=$(losetup --find --show --direct-io=on "$img") || {
		echo "cannot attach a loop device for a fresh file system; run with --fs host" >&2
		exit 1
	}
	loops+=("$dev")
	mkfs.ext4 -q -F "$dev" || { echo "mkfs.ext4 $dev failed" >&2; exit 1; }
	REPLY=$dev
}

# Runs a command in a private mount namespace where each DEV:DIR pair is mounted (empty DEV:
# nothing to mount, --fs host).
in_fs() {  # DEV:DIR ... -- command
	unshare -m --propagation private bash -c '
		while [[ $1 != -- ]]; do
			dev=${1%%:*} dir=${1#*:}
			mkdir -p "$dir"
			if [[ -n $dev ]]; then mount "$dev" "$dir" || exit 1; fi
			shift
		done
		shift
		exec "$@"' bash "$@"
}
results="$tmp/results.txt"
: >"$results"

echo "rfs benchmark: $(date -u '+%F %T') UTC, $(nproc) CPUs, kernel $(uname -r)"
echo "temp dir $tmp on $(df --output=fstype "$tmp" | tail -1 | tr -d ' ') ($(df --output=source "$tmp" | tail -1))"
if [[ $fs == fresh ]]; then
	echo "file systems: a new ext4 ($fs_size, mkfs.ext4 defaults, loop device with direct I/O over a file in the temp dir) for each mode, two for halo-repl"
else
	echo "file systems: the temp dir's own (--fs host)"
fi
echo "sizes: sequential $seq_mib MiB, $fsync_samples fsync samples, $creates creates; $runs run(s)"
echo "halo-rfs-bench: $bin ($(stat -c '%s bytes, %y' "$bin"))"
tar -C /usr -cf "$tmp/include.tar" include
echo "untar: /usr/include as $tmp/include.tar ($(du -m "$tmp/include.tar" | cut -f1) MiB, $(tar -tf "$tmp/include.tar" | wc -l) entries)"

common=(--tar "$tmp/include.tar" --seq-mib "$seq_mib" --fsync-samples "$fsync_samples" --creates "$creates")

not_measured() {  # mode, reason
	echo "skip label=$1 why=$2" >>"$results"
	echo "$1: not measured ($2)"
}

# Runs halo-rfs-bench, appends its lines to the results; a failure becomes "not measured".
measure() {  # label, DEV:DIR mounts, --, then halo-rfs-bench arguments
	local label=$1 out rc=0 mounts=()
	shift
	while [[ $1 != -- ]]; do mounts+=("$1"); shift; done
	shift
	echo "== $label"
	out=$(in_fs "${mounts[@]}" -- "$@" --label "$label" "${common[@]}" 2>&1) || rc=$?
	echo "$out" | sed 's/^/   /'
	echo "$out" | grep -E '^(result|note) ' >>"$results" || true
	if ((rc != 0)); then
		not_measured "$label" "$(reason_of "$rc" "$out")"
	fi
}

# A reference FUSE file system, mounted in the foreground (its pid known) inside a private mount
# namespace; halo-rfs-bench measures through the mount point, then it is unmounted.
measure_fuse() {  # label, then the file system's command with SRC and MNT as placeholders
	local label=$1
	shift
	# SRC and the fsync measurement's native directory on the mode's one file system.
	local fsdir="$tmp/$label-fs" mnt="$tmp/$label-mnt"
	local src="$fsdir/src"
	mkdir -p "$fsdir" "$mnt"
	local cmd=("${@//SRC/$src}")
	cmd=("${cmd[@]//MNT/$mnt}")
	echo "== $label: ${cmd[*]}"
	local out rc=0
	new_fs
	out=$(in_fs "$REPLY:$fsdir" -- bash -c '
		bin=$1 mnt=$2 label=$3 src=$4 paired=$5; shift 5
		mkdir -p "$src"
		fs=(); while [[ $1 != -- ]]; do fs+=("$1"); shift; done; shift
		# passthrough_ll keeps one descriptor per known inode: a limit of 20000 or less ends the
		# creates measurement with EMFILE. Root may raise it; the same limit for every reference.
		ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
		"${fs[@]}" >"$mnt.log" 2>&1 &
		pid=$!
		stop() {
			umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		}
		trap stop EXIT
		for _ in $(seq 100); do mountpoint -q "$mnt" && break; sleep 0.05; done
		if ! mountpoint -q "$mnt"; then
			echo "error label=$label what=not mounted: $(tail -1 "$mnt.log")"; exit 1
		fi
		"$bin" --mode plain --dir "$mnt" --paired-dir "$paired" --label "$label" "$@"
	' bash "$bin" "$mnt" "$label" "$src" "$fsdir/native" "${cmd[@]}" -- "${common[@]}" 2>&1) || rc=$?
	echo "$out" | sed 's/^/   /'
	echo "$out" | grep -E '^(result|note) ' >>"$results" || true
	if ((rc != 0)); then
		not_measured "$label" "$(reason_of "$rc" "$out")"
	fi
	rm -rf "$fsdir" "$mnt" "$mnt.log"
	drop_fs
}

reason_of() {  # exit status, output: the last "error" line's text, else the status and last line
	local why
	why=$(echo "$2" | grep -E '^error ' | tail -1 | sed 's/^error label=[^ ]* what=//')
	echo "${why:-exit status $1: $(echo "$2" | tail -1)}"
}

wanted() { [[ ",$only," == *",$1,"* ]]; }

for run in $(seq "$runs"); do
	((runs == 1)) || echo "=== run $run of $runs"
	if wanted native; then
		new_fs
		measure native "$REPLY:$tmp/native" -- "$bin" --mode plain --dir "$tmp/native"
		rm -rf "$tmp/native"
		drop_fs
	fi

	if wanted bindfs || wanted bindfs-mt; then
		"$here/deps.sh" >/dev/null 2>&1 || true
		if ! command -v bindfs >/dev/null; then
			wanted bindfs && not_measured bindfs "bindfs not installed and deps.sh failed"
			wanted bindfs-mt && not_measured bindfs-mt "bindfs not installed and deps.sh failed"
		else
			echo "bindfs: $(bindfs --version 2>&1 | head -1)"
			wanted bindfs && measure_fuse bindfs bindfs -f -o big_writes SRC MNT
			wanted bindfs-mt && measure_fuse bindfs-mt bindfs -f --multithreaded -o big_writes SRC MNT
		fi
	fi

	if wanted passthrough_ll; then
		ex=/usr/share/doc/libfuse3-dev/examples
		pt="$tmp/passthrough_ll"
		mkdir -p "$pt.build"
		for f in passthrough_ll.c passthrough_helpers.h; do
			if [[ -f $ex/$f ]]; then cp "$ex/$f" "$pt.build/"; elif [[ -f $ex/$f.gz ]]; then zcat "$ex/$f.gz" >"$pt.build/$f"; fi
		done
		if [[ ! -f $pt.build/passthrough_ll.c || ! -f $pt.build/passthrough_helpers.h ]]; then
			not_measured passthrough_ll "no example sources in libfuse3-dev"
		elif ! cc -O2 -o "$pt" "$pt.build/passthrough_ll.c" $(pkg-config --cflags --libs fuse3) >"$pt.build/cc.log" 2>&1; then
			not_measured passthrough_ll "compiling the example failed: $(tail -1 "$pt.build/cc.log")"
		else
			echo "passthrough_ll: libfuse $(pkg-config --modversion fuse3) example, compiled with cc -O2"
			# It keeps one descriptor per inode the kernel knows: with an open-file limit it cannot
			# raise (root without CAP_SYS_RESOURCE), the creates measurement makes fewer files.
			limit=$(bash -c 'ulimit -n 1048576 2>/dev/null; ulimit -n')
			saved=$creates
			if [[ $limit != unlimited ]] && ((creates + 1000 > limit)); then
				creates=$((limit - 1000))
				common=(--tar "$tmp/include.tar" --seq-mib "$seq_mib" --fsync-samples "$fsync_samples" --creates "$creates")
				echo "passthrough_ll: creates measured with $creates files, not $saved (open-file hard limit $limit)"
				echo "note label=passthrough_ll creates_files=$creates" >>"$results"
			fi
			measure_fuse passthrough_ll "$pt" -f -o writeback -o source=SRC MNT
			creates=$saved
			common=(--tar "$tmp/include.tar" --seq-mib "$seq_mib" --fsync-samples "$fsync_samples" --creates "$creates")
		fi
		rm -rf "$pt" "$pt.build"
	fi

	# halo-rfs-bench uses DIR/primary (and DIR/secondary for the replica); the primary's file
	# system is mounted at DIR, so DIR/native (fsync's paired native file) shares it.
	if wanted halo-fuse; then
		new_fs
		measure halo-fuse "$REPLY:$tmp/halo-fuse" -- "$bin" --mode halo-fuse --dir "$tmp/halo-fuse" \
			--paired-dir "$tmp/halo-fuse/native"
		rm -rf "$tmp/halo-fuse"
		drop_fs
	fi
	if wanted halo-repl; then
		new_fs
		primary=$REPLY
		new_fs
		measure halo-repl "$primary:$tmp/halo-repl" "$REPLY:$tmp/halo-repl/secondary" -- \
			"$bin" --mode halo-repl --dir "$tmp/halo-repl" --paired-dir "$tmp/halo-repl/native" $peer_sync
		rm -rf "$tmp/halo-repl"
		drop_fs
	fi
done

echo
python3 "$here/report.py" "$results"
