#!/usr/bin/env python3
"""Table and target ratio for bench/rfs/resync.sh, from halo-rfs-bench's lines.

Input lines: `result label=L metric=M value=V run=N`, `note label=L ... run=N`,
`skip label=L run=N why=TEXT`. Labels: rsync (the reference) and halo-resync.
Target (the issue): Halo's full reintegration takes no longer than `rsync -a` into an empty
directory. A figure is the median over the runs; a ratio of medians divides the two medians.
"""
import statistics
import sys

NAMES = {"rsync": "rsync -a", "halo-resync": "Halo reintegration"}


def load(path):
    runs = {}  # label -> run -> metric -> value
    skips = []
    caches = set()
    with open(path) as f:
        for line in f:
            kind, _, rest = line.rstrip("\n").partition(" ")
            fields = dict(kv.split("=", 1) for kv in rest.split(" ") if "=" in kv)
            label = fields.get("label", "?")
            run = int(fields.get("run", "0"))
            if kind == "result":
                runs.setdefault(label, {}).setdefault(run, {})[fields["metric"]] = float(
                    fields["value"])
            elif kind == "skip":
                skips.append((label, run, rest.split("why=", 1)[1] if "why=" in rest else "?"))
            elif kind == "note" and "caches" in fields:
                caches.add(fields["caches"])
    return runs, skips, caches


def valid(runs, label):
    """Runs whose copy was measured and found equal to the source."""
    return {r: m for r, m in runs.get(label, {}).items()
            if "resync_seconds" in m and m.get("verify_differences", 0) == 0}


def med(rows, metric):
    vals = [m[metric] for m in rows.values() if metric in m]
    return statistics.median(vals) if vals else None


def fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def main():
    runs, skips, caches = load(sys.argv[1])
    labels = [l for l in NAMES if l in runs]
    if caches:
        print("caches: " + ", ".join(sorted(caches)))
    print("raw runs (copy s = to rsync's exit / to both services' synced events; +sync adds a "
          "sync(2))")
    print(f"{'run':>4}  {'mode':<20}{'copy s':>9}{'+sync s':>9}{'MB/s':>8}{'CPU s':>8}"
          f"{'copied MB':>11}  copy equal to source")
    all_runs = sorted({r for l in labels for r in runs[l] if r > 0})
    for r in all_runs:
        for l in labels:
            m = runs[l].get(r)
            if not m or "resync_seconds" not in m:
                continue
            cpu = m.get("cpu_user_s", 0) + m.get("cpu_sys_s", 0)
            copied = m.get("bytes_copied")
            eq = ("yes" if m.get("verify_differences") == 0 else
                  "NO" if "verify_differences" in m else "not checked")
            print(f"{r:>4}  {NAMES[l]:<20}{m['resync_seconds']:>9.2f}"
                  f"{m.get('resync_sync_seconds', 0):>9.2f}{m.get('resync_mb_s', 0):>8.0f}"
                  f"{cpu:>8.2f}{fmt(copied / 1e6 if copied else None, 0):>11}  {eq}")
    for label, run, why in skips:
        print(f"{run:>4}  {NAMES.get(label, label):<20}not measured ({why})")
    print()

    good = {l: valid(runs, l) for l in labels}
    n = {l: len(good[l]) for l in labels}
    if any(n.values()):
        print("median of " + ", ".join(f"{n[l]} {NAMES[l]} run(s)" for l in labels))
    header = (f"{'mode':<20}{'copy s':>9}{'+sync s':>9}{'MB/s':>8}{'user s':>8}{'sys s':>8}"
              f"{'tree MB':>9}{'files':>7}")
    print(header)
    print("-" * len(header))
    for l in labels:
        g = good[l]
        if not g:
            print(f"{NAMES[l]:<20}  no valid run")
            continue
        tree = med(g, "tree_bytes")
        print(f"{NAMES[l]:<20}{fmt(med(g, 'resync_seconds')):>9}"
              f"{fmt(med(g, 'resync_sync_seconds')):>9}{fmt(med(g, 'resync_mb_s'), 0):>8}"
              f"{fmt(med(g, 'cpu_user_s')):>8}{fmt(med(g, 'cpu_sys_s')):>8}"
              f"{fmt(tree / 1e6 if tree else None, 0):>9}{fmt(med(g, 'tree_files'), 0):>7}")
    h = good.get("halo-resync", {})
    if h:
        parts = []
        for what, k in [("connected", "connected_s"), ("walk begins", "walk_begins_s"),
                        ("primary synced", "primary_synced_s"),
                        ("secondary synced", "secondary_synced_s")]:
            if med(h, k) is not None:
                parts.append(f"{what} {med(h, k):.3f} s")
        if parts:
            print("Halo, from the secondary's start (medians): " + ", ".join(parts))
        copied, sent = med(h, "bytes_copied"), med(h, "bytes_sent")
        if copied is not None and sent is not None:
            print(f"Halo bytes copied {copied / 1e6:.0f} MB, sent on the link {sent / 1e6:.0f} MB "
                  f"(records' overhead {100 * (sent - copied) / copied:.2f} %)")
    print()

    r = good.get("rsync", {})
    if not r or not h:
        missing = [NAMES[l] for l in NAMES if not good.get(l)]
        print(f"Halo reintegration vs rsync -a: not measured (no valid run of "
              f"{' and '.join(missing)})")
        return
    x = med(h, "resync_seconds") / med(r, "resync_seconds")
    print(f"Halo reintegration: {med(h, 'resync_seconds'):.2f} s vs rsync -a "
          f"{med(r, 'resync_seconds'):.2f} s = {x:.2f}x rsync's time (target <= 1.0) "
          f"{'MET' if x <= 1.0 else 'NOT MET'}")
    xs = med(h, "resync_sync_seconds") / med(r, "resync_sync_seconds")
    print(f"  with sync(2) at the end (the copy on the disk): {med(h, 'resync_sync_seconds'):.2f} s "
          f"vs {med(r, 'resync_sync_seconds'):.2f} s = {xs:.2f}x (for information)")
    per_run = [h[k]["resync_seconds"] / r[k]["resync_seconds"] for k in sorted(h) if k in r]
    if per_run:
        met = sum(1 for v in per_run if v <= 1.0)
        print(f"  per run: {', '.join(f'{v:.2f}x' for v in per_run)} ({met} of {len(per_run)} "
              f"at or under rsync's time)")


if __name__ == "__main__":
    main()
