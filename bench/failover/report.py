#!/usr/bin/env python3
"""Summarise the failover benchmark: report.py RESULTS.jsonl OUT.json [META.json]

RESULTS.jsonl has one JSON object per run (written by run.sh).  Prints a
table (median / min / max outage per product, setting and scenario) and the
ratio keepalived median / Halo median for the power-off failover, and writes
every raw result plus the summary to OUT.json.  Nothing here is invented: a
figure that was not measured is printed as "not measured (reason)".
"""
import json
import statistics
import sys


def main():
    src, out = sys.argv[1], sys.argv[2]
    meta = {}
    if len(sys.argv) > 3:
        with open(sys.argv[3]) as f:
            meta = json.load(f)
    runs = []
    with open(src) as f:
        for line in f:
            line = line.strip()
            if line:
                runs.append(json.loads(line))

    groups = {}
    for r in runs:
        groups.setdefault((r["product"], r["setting"], r["scenario"]), []).append(r)

    summary = []
    for (product, setting, scenario), rs in groups.items():
        vals = [r["outage_ms"] for r in rs if r.get("outage_ms") is not None]
        reasons = sorted({r.get("not_measured") or r.get("error") or ""
                          for r in rs if r.get("outage_ms") is None} - {""})
        row = {"product": product, "setting": setting, "scenario": scenario,
               "runs": len(rs), "measured": len(vals), "outages_ms": vals,
               "median_ms": round(statistics.median(vals), 1) if vals else None,
               "min_ms": min(vals) if vals else None,
               "max_ms": max(vals) if vals else None,
               "not_measured": reasons}
        summary.append(row)

    def median(product, setting, scenario):
        for s in summary:
            if (s["product"], s["setting"], s["scenario"]) == (product, setting, scenario):
                return s["median_ms"]
        return None

    ratios = []
    for setting in sorted({s["setting"] for s in summary}):
        k = median("keepalived", setting, "power_off")
        h = median("halo", setting, "power_off")
        ratios.append({"setting": setting, "keepalived_median_ms": k, "halo_median_ms": h,
                       "ratio": round(k / h, 2) if k and h else None})

    print()
    print(f"{'product':<11} {'setting':<8} {'scenario':<10} {'runs':>4} "
          f"{'median ms':>10} {'min ms':>9} {'max ms':>9}")
    print("-" * 67)
    for s in summary:
        if s["measured"]:
            print(f"{s['product']:<11} {s['setting']:<8} {s['scenario']:<10} "
                  f"{s['measured']:>2}/{s['runs']:<1} {s['median_ms']:>10.1f} "
                  f"{s['min_ms']:>9.1f} {s['max_ms']:>9.1f}")
        else:
            print(f"{s['product']:<11} {s['setting']:<8} {s['scenario']:<10} "
                  f"{0:>2}/{s['runs']:<1} {'-':>10} {'-':>9} {'-':>9}")
        for why in s["not_measured"]:
            name = "Halo" if s["product"] == "halo" else s["product"]
            print(f"    {name}: not measured ({why})")
    print()
    for r in ratios:
        if r["ratio"] is not None:
            print(f"ratio keepalived/Halo ({r['setting']}, power off): "
                  f"{r['keepalived_median_ms']:.1f} / {r['halo_median_ms']:.1f} = {r['ratio']}")
        else:
            print(f"ratio keepalived/Halo ({r['setting']}, power off): not available "
                  f"(keepalived median {r['keepalived_median_ms']}, Halo median {r['halo_median_ms']})")
    for setting in sorted({s["setting"] for s in summary}):
        sw = median("halo", setting, "swap")
        if any(s["product"] == "halo" for s in summary):
            print(f"Halo swap median ({setting}): "
                  + (f"{sw:.1f} ms" if sw is not None else "not measured"))

    for line in meta.get("halo_build", []):
        print("Halo build measured (copied at start): " + line)
    with open(out, "w") as f:
        json.dump({"meta": meta, "summary": summary, "ratios": ratios, "runs": runs},
                  f, indent=1)
    print(f"\nraw results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
