#!/usr/bin/env python3
"""Table and targets for bench/rfs/fastresync.sh, from halo-rfs-fastbench's lines.

Input lines: `result label=L metric=M value=V run=N`, `note label=L ... run=N`,
`skip label=run run=N why=TEXT`. Labels: change (the rewrite), first (the untimed first
reintegration), crash (--primary-crash: the simulated crash of the primary), halo, rsync.
Targets (the issue): Halo's fast reintegration at least 10x faster than
`rsync -a --inplace --no-whole-file` of the same change, and bytes copied at most 1.2x the
rewritten bytes (counted in whole 4 KiB blocks). After a crash of the primary (runs with
`crash` lines): bytes copied at most the rewritten blocks plus the activity log's zones (each
zone the rewrite touched, 4 MiB clipped to its file's size); the time is for information. A
figure is the median over the valid runs; a ratio divides two medians, and the per-run ratios
follow.
"""
import statistics
import sys

NAMES = {"rsync": "rsync --inplace", "halo": "Halo fast reint."}
# The reference, measured on a machine like CI's.
CI_RSYNC_S, CI_RSYNC_SENT_X = 5.0, 3.8


def load(path):
    runs = {}  # run -> label -> metric -> value
    skips, firsts = {}, {}
    with open(path) as f:
        for line in f:
            kind, _, rest = line.rstrip("\n").partition(" ")
            fields = dict(kv.split("=", 1) for kv in rest.split(" ") if "=" in kv)
            run = int(fields.get("run", "0"))
            label = fields.get("label", "?")
            if kind == "result":
                runs.setdefault(run, {}).setdefault(label, {})[fields["metric"]] = float(
                    fields["value"])
            elif kind == "skip":
                skips[run] = rest.split("why=", 1)[1] if "why=" in rest else "?"
            elif kind == "note" and label == "run":
                firsts[run] = fields.get("first", "?")
    return runs, skips, firsts


def valid(m):
    """Both copies measured and equal to the primary; Halo's reintegration a fast one."""
    h, r = m.get("halo", {}), m.get("rsync", {})
    return ("seconds" in h and "seconds" in r and h.get("mode_changes") == 1
            and h.get("verify_differences") == 0 and r.get("verify_differences") == 0)


def med(rows, label, metric):
    vals = [m[label][metric] for m in rows.values() if metric in m.get(label, {})]
    return statistics.median(vals) if vals else None


def mb(v):
    return "-" if v is None else f"{v / 1e6:.2f}"


def main():
    runs, skips, firsts = load(sys.argv[1])
    print("raw runs (s = to rsync's exit / to both services' synced events; +sync adds a sync(2);"
          " copied = Halo's bytes_copied / rsync's literal data; sent = on the link / rsync's"
          " total bytes sent; x = over the rewritten bytes in 4 KiB blocks)")
    head = (f"{'run':>4} {'first':>6}  {'mode':<17}{'s':>7}{'+sync s':>9}{'copied MB':>11}{'x':>6}"
            f"{'sent MB':>9}{'x':>6}{'CPU s':>7}  equal")
    print(head)
    for run in sorted(r for r in runs if r > 0):
        m = runs[run]
        rw = m.get("change", {}).get("rewritten_block_bytes")
        for label in ("rsync", "halo"):
            x = m.get(label, {})
            if "seconds" not in x:
                continue
            copied = x.get("bytes_copied" if label == "halo" else "literal_bytes")
            sent = x.get("bytes_sent")
            eq = ("yes" if x.get("verify_differences") == 0 else
                  "NO" if "verify_differences" in x else "not checked")
            name = NAMES[label]
            if label == "halo" and x.get("mode_changes") != 1:
                name += " (FULL)"
            print(f"{run:>4} {firsts.get(run, '?'):>6}  {name:<17}{x['seconds']:>7.2f}"
                  f"{x.get('sync_seconds', 0):>9.2f}{mb(copied):>11}"
                  f"{(copied / rw if copied is not None and rw else 0):>6.2f}{mb(sent):>9}"
                  f"{(sent / rw if sent is not None and rw else 0):>6.2f}"
                  f"{x.get('cpu_user_s', 0) + x.get('cpu_sys_s', 0):>7.2f}  {eq}")
    for run, why in sorted(skips.items()):
        print(f"{run:>4}  run failed or incomplete: {why}")
    print()

    good = {r: m for r, m in runs.items() if r > 0 and valid(m)}
    if not good:
        print("fast reintegration vs rsync: not measured (no valid run)")
        return
    rw = med(good, "change", "rewritten_block_bytes")
    tree = med(good, "change", "tree_bytes")
    print(f"median of {len(good)} valid run(s) of {len([r for r in runs if r > 0])}")
    print(f"rewritten per run: {med(good, 'change', 'rewritten_blocks'):.0f} blocks of 4 KiB = "
          f"{rw / 1e6:.2f} MB ({100 * rw / tree:.2f} % of the tree's {tree / 1e6:.0f} MB in "
          f"{med(good, 'change', 'tree_files'):.0f} files; {mb(med(good, 'change', 'rewritten_bytes'))}"
          f" MB written, files' last blocks being short), in "
          f"{med(good, 'change', 'files_changed'):.0f} files: "
          f"{med(good, 'change', 'big_file_blocks'):.0f} blocks in "
          f"{med(good, 'change', 'big_files_changed'):.0f} big files, the others in the source tree")
    print(f"{'mode':<20}{'s':>8}{'+sync s':>9}{'copied MB':>11}{'sent MB':>9}{'user s':>8}"
          f"{'sys s':>7}")
    print("-" * 72)
    for label in ("rsync", "halo"):
        copied = med(good, label, "bytes_copied" if label == "halo" else "literal_bytes")
        print(f"{NAMES[label]:<20}{med(good, label, 'seconds'):>8.2f}"
              f"{med(good, label, 'sync_seconds'):>9.2f}{mb(copied):>11}"
              f"{mb(med(good, label, 'bytes_sent')):>9}{med(good, label, 'cpu_user_s'):>8.2f}"
              f"{med(good, label, 'cpu_sys_s'):>7.2f}")
    parts = []
    for what, k in [("connected", "connected_s"), ("reintegration begins", "begins_s"),
                    ("primary synced", "primary_synced_s"),
                    ("secondary synced", "secondary_synced_s")]:
        if med(good, "halo", k) is not None:
            parts.append(f"{what} {med(good, 'halo', k):.3f} s")
    print("Halo, from the secondary's start (medians): " + ", ".join(parts) +
          f"; the reintegration's own seconds {med(good, 'halo', 'reintegration_s'):.3f}")
    crash = all("bound_bytes" in m.get("crash", {}) for m in good.values())
    when = "after the rewrite, before the crash" if crash else "at the restart"
    print(f"Halo's change log {when}: {med(good, 'change', 'log_paths'):.0f} paths, "
          f"{mb(med(good, 'change', 'log_dirty_bytes'))} MB of changed blocks; first (full) "
          f"reintegration from a cp -a copy, untimed: {med(good, 'first', 'seconds'):.1f} s, "
          f"{mb(med(good, 'first', 'bytes_hashed'))} MB hashed")
    if crash:
        print(f"after the simulated crash of the primary (journal unclean, no change rows): its "
              f"activity log named {med(good, 'crash', 'al_places'):.0f} places "
              f"({med(good, 'crash', 'al_zones_named'):.0f} zones of the rewrite, "
              f"{med(good, 'crash', 'al_other_entries'):.0f} other entries; "
              f"{med(good, 'crash', 'al_epochs'):.0f} epoch(s), the oldest "
              f"{med(good, 'crash', 'al_epoch_age_s'):.1f} s old); change log rebuilt: "
              f"{med(good, 'crash', 'log_paths'):.0f} paths, "
              f"{mb(med(good, 'crash', 'log_dirty_bytes'))} MB of ranges; stop + restart "
              f"{med(good, 'crash', 'restart_s'):.2f} s")
    print()

    hs, rs = med(good, "halo", "seconds"), med(good, "rsync", "seconds")
    x = rs / hs
    if crash:
        print(f"Halo fast reintegration after the primary's crash: {hs:.3f} s vs rsync {rs:.2f} s:"
              f" rsync's time / Halo's = {x:.1f}x (for information: the 10x target is the clean"
              f" stop's)")
    else:
        print(f"Halo fast reintegration: {hs:.3f} s vs rsync {rs:.2f} s: {x:.1f}x faster "
              f"(target >= 10) {'MET' if x >= 10 else 'NOT MET'}")
    per = [m["rsync"]["seconds"] / m["halo"]["seconds"] for _, m in sorted(good.items())]
    print(f"  per run: {', '.join(f'{v:.1f}x' for v in per)} "
          f"({sum(1 for v in per if v >= 10)} of {len(per)} at or over 10x)")
    xs = med(good, "rsync", "sync_seconds") / med(good, "halo", "sync_seconds")
    print(f"  with sync(2) at the end: {med(good, 'halo', 'sync_seconds'):.3f} s vs "
          f"{med(good, 'rsync', 'sync_seconds'):.2f} s = {xs:.1f}x (for information)")
    copied = med(good, "halo", "bytes_copied")
    y = copied / rw
    per = [m["halo"]["bytes_copied"] / m["change"]["rewritten_block_bytes"]
           for _, m in sorted(good.items())]
    link = (f"Halo's bytes on the link {mb(med(good, 'halo', 'bytes_sent'))} MB = "
            f"{med(good, 'halo', 'bytes_sent') / rw:.2f}x")
    if crash:
        # Each run against its own bound (its zones): met when every run is within it.
        pairs = [(m["halo"]["bytes_copied"], m["crash"]["bound_bytes"])
                 for _, m in sorted(good.items())]
        bound = med(good, "crash", "bound_bytes")
        print(f"bytes copied: {copied / 1e6:.2f} MB vs bound {bound / 1e6:.2f} MB (rewritten "
              f"{rw / 1e6:.2f} MB + {med(good, 'crash', 'zones'):.0f} zones of 4 MiB clipped to "
              f"their files, {mb(med(good, 'crash', 'zone_bytes'))} MB) (target <= bound) "
              f"{'MET' if all(c <= b for c, b in pairs) else 'NOT MET'}")
        print("  per run (MB): " + ", ".join(f"{c / 1e6:.2f} <= {b / 1e6:.2f} "
                                            f"{'yes' if c <= b else 'NO'}" for c, b in pairs))
        print(f"  for information: copied = {y:.2f}x the rewritten bytes (per run "
              f"{', '.join(f'{v:.2f}x' for v in per)}); bytes hashed "
              f"{mb(med(good, 'halo', 'bytes_hashed'))} MB; {link}")
    else:
        print(f"bytes copied: {copied / 1e6:.2f} MB = {y:.3f}x the rewritten bytes "
              f"({rw / 1e6:.2f} MB) (target <= 1.2) {'MET' if y <= 1.2 else 'NOT MET'}")
        print(f"  per run: {', '.join(f'{v:.3f}x' for v in per)}; {link}")
    lit, sent = med(good, "rsync", "literal_bytes"), med(good, "rsync", "bytes_sent")
    print(f"rsync: literal data {lit / 1e6:.2f} MB = {lit / rw:.2f}x, total bytes sent "
          f"{sent / 1e6:.2f} MB = {sent / rw:.2f}x the rewritten bytes; "
          f"{med(good, 'rsync', 'files_transferred'):.0f} files transferred "
          f"(the issue's CI figures: {CI_RSYNC_S} s, {CI_RSYNC_SENT_X}x)")


if __name__ == "__main__":
    main()
