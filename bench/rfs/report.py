#!/usr/bin/env python3
"""Table and target ratios for bench/rfs/run.sh, from halo-rfs-bench's lines.

Input lines: `result label=L metric=M value=V`, `skip label=L why=TEXT`, `note label=L ...`.
Only what was measured in this run is printed; a missing figure is "not measured (why)".
"""
import statistics
import sys

MODES = ["native", "bindfs", "bindfs-mt", "passthrough_ll", "halo-fuse", "halo-repl"]
NAMES = {"halo-fuse": "Halo FUSE only", "halo-repl": "Halo replicated"}
BINDFS = ["bindfs", "bindfs-mt"]


def load(path):
    res, skip, notes = {}, {}, {}
    with open(path) as f:
        for line in f:
            kind, _, rest = line.rstrip("\n").partition(" ")
            fields = dict(kv.split("=", 1) for kv in rest.split(" ") if "=" in kv)
            label = fields.get("label", "?")
            if kind == "result":
                res.setdefault(label, {}).setdefault(fields["metric"], []).append(
                    float(fields["value"]))
            elif kind == "note" and "creates_files" in fields:
                notes[label] = f"creates/s measured with {fields['creates_files']} files"
            elif kind == "skip":
                skip[label] = rest.split("why=", 1)[1] if "why=" in rest else "?"
    runs = max((len(v) for r in res.values() for v in r.values()), default=0)
    med = {l: {k: statistics.median(v) for k, v in r.items()} for l, r in res.items()}
    # fsync p50 over the paired native file's, run by run (the samples alternate within a run,
    # so this difference does not carry the spread between runs), then the median.
    for l, r in res.items():
        a, b = r.get("fsync_p50_us", []), r.get("fsync_paired_native_p50_us", [])
        if a and len(a) == len(b):
            med[l]["fsync_extra_us"] = statistics.median(x - y for x, y in zip(a, b))
    return med, skip, notes, runs


def ratio(x, target):
    """x with 2 decimals, or 3 when 2 would round it onto the target (0.598 is not "0.60")."""
    return f"{x:.3f}" if abs(x - target) < 0.005 else f"{x:.2f}"


def fmt(v, digits=0):
    return "-" if v is None else f"{v:.{digits}f}"


def main():
    res, skip, notes, runs = load(sys.argv[1])
    if runs > 1:
        print(f"median of {runs} runs")
    cols = [("seq MB/s", "seq_mb_s", 0), ("fsync p50 us", "fsync_p50_us", 0),
            ("fsync p99 us", "fsync_p99_us", 0), ("creates/s", "creates_per_s", 0),
            ("untar s", "untar_s", 2), ("untar+sync s", "untar_sync_s", 2)]
    header = f"{'mode':<16}" + "".join(f"{c[0]:>14}" for c in cols)
    print(header)
    print("-" * len(header))
    for m in MODES:
        if m in res:
            print(f"{m:<16}" + "".join(f"{fmt(res[m].get(k), d):>14}" for _, k, d in cols))
        elif m in skip:
            print(f"{m:<16}  not measured ({skip[m]})")
    if "halo-repl" in res and "rtt_p50_us" in res["halo-repl"]:
        r = res["halo-repl"]
        print(f"loopback TCP round trip (in halo-repl's namespace): p50 {r['rtt_p50_us']:.0f} us, "
              f"p99 {r['rtt_p99_us']:.0f} us")
    paired = [m for m in MODES if "fsync_extra_us" in res.get(m, {})]
    if paired:
        print("fsync p50 over a native file on the same file system, samples alternating: "
              + ", ".join(f"{m} {res[m]['fsync_extra_us']:+.0f} us "
                          f"(native {res[m]['fsync_paired_native_p50_us']:.0f})" for m in paired))
    print()

    native = res.get("native", {})

    def best_bindfs(metric, higher_is_better):
        vals = [(res[b][metric], b) for b in BINDFS if b in res and metric in res[b]]
        if not vals:
            return None, None
        return max(vals) if higher_is_better else min(vals)

    for m in ["halo-repl", "halo-fuse"]:
        name = NAMES[m]
        if m not in res:
            print(f"{name}: not measured ({skip.get(m, 'not run')})")
            continue
        r = res[m]
        if "seq_mb_s" in native and "seq_mb_s" in r:
            x = r["seq_mb_s"] / native["seq_mb_s"]
            print(f"{name} sequential: {ratio(x, 0.6)}x native (target >= 0.6) "
                  f"{'MET' if x >= 0.6 else 'NOT MET'}")
        else:
            print(f"{name} sequential: not measured (native or {m} missing)")
        rtt = res.get("halo-repl", {}).get("rtt_p50_us")
        if "fsync_extra_us" in r and rtt is not None:
            extra = r["fsync_extra_us"]
            print(f"{name} fsync p50: native + {extra:.0f} us, native measured alongside on the same "
                  f"file system (target <= native + RTT {rtt:.0f} + 100 = native + {rtt + 100:.0f} "
                  f"us) {'MET' if extra <= rtt + 100 else 'NOT MET'}")
        elif "fsync_p50_us" in native and "fsync_p50_us" in r:
            if rtt is None:
                print(f"{name} fsync p50: {r['fsync_p50_us']:.0f} us vs native "
                      f"{native['fsync_p50_us']:.0f} us (no round trip measured)")
            else:
                bound = native["fsync_p50_us"] + rtt + 100
                extra = r["fsync_p50_us"] - native["fsync_p50_us"]
                print(f"{name} fsync p50: {r['fsync_p50_us']:.0f} us = native "
                      f"{native['fsync_p50_us']:.0f} us + {extra:.0f} us (target <= native + RTT "
                      f"{rtt:.0f} + 100 = {bound:.0f} us) {'MET' if r['fsync_p50_us'] <= bound else 'NOT MET'}")
        else:
            print(f"{name} fsync p50: not measured (native or {m} missing)")
        best, b = best_bindfs("creates_per_s", True)
        if best and "creates_per_s" in r:
            x = r["creates_per_s"] / best
            print(f"{name} creates: {ratio(x, 0.5)}x best bindfs ({b}, {best:.0f}/s) (target >= 0.5) "
                  f"{'MET' if x >= 0.5 else 'NOT MET'}"
                  + (f"; {r['creates_per_s'] / native['creates_per_s']:.2f}x native"
                     if "creates_per_s" in native else ""))
        else:
            print(f"{name} creates: not measured (no bindfs figure)")
        best, b = best_bindfs("untar_s", False)
        if best and "untar_s" in r:
            x = r["untar_s"] / best
            print(f"{name} untar: {ratio(x, 1.5)}x best bindfs time ({b}, {best:.2f} s) (target <= 1.5) "
                  f"{'MET' if x <= 1.5 else 'NOT MET'}"
                  + (f"; {r['untar_s'] / native['untar_s']:.2f}x native" if "untar_s" in native else ""))
        else:
            print(f"{name} untar: not measured (no bindfs figure)")
        print()

    for m in ["bindfs", "bindfs-mt", "passthrough_ll"]:
        if m not in res:
            continue
        parts = []
        for what, k in [("sequential", "seq_mb_s"), ("creates", "creates_per_s")]:
            if k in res[m] and k in native:
                parts.append(f"{what} {res[m][k] / native[k]:.2f}x native")
        if "untar_s" in res[m] and "untar_s" in native:
            parts.append(f"untar {res[m]['untar_s'] / native['untar_s']:.2f}x native time")
        print(f"reference {m}: " + (", ".join(parts) if parts else "no ratio"))
    for m, text in notes.items():
        print(f"{m}: {text} (it keeps one descriptor per inode; open-file limit)")
    for m, why in skip.items():
        if m in res:
            print(f"{m}: some measurements failed, shown as '-' ({why})")


if __name__ == "__main__":
    main()
