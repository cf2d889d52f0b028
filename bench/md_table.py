#!/usr/bin/python3
"""Markdown tables for bench/RESULTS.md from `internvl bench --json` files: one row per
measurement (engine and PyTorch records), then the engine/PyTorch ratios.

usage: /usr/bin/python3 bench/md_table.py FILE.jsonl [FILE.jsonl ...]
"""
import json
import sys


def params(p):
    return " ".join("%s=%s" % (k, v) for k, v in sorted(p.items()) if k != "note")


def main():
    recs = [json.loads(l) for f in sys.argv[1:] for l in open(f) if l.strip()]
    print("| phase | params | backend | layout | threads | median ms | min .. max ms | throughput | TFLOP/s | MFU | BW | comm % (max rank) | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in recs:
        if r.get("phase") == "compare" or r.get("skipped") or "time_s" not in r:
            continue
        t, lay = r["time_s"], r["layout"]
        ranks = r.get("ranks", [])
        comm = max([x["comm_s"] for x in ranks] or [0]) / t["mean"] * 100 if ranks else 0
        rss = max([x["peak_rss_mib"] for x in ranks] or [0])
        print("| %s | %s | %s | tp%d pp%d (%d) | %d | %.1f | %.1f .. %.1f | %.3g %s | %s | %s | %s | %s | %s |" % (
            r["phase"], params(r["params"]), r["backend"], lay["tp"], lay["pp"], lay["world"], r["threads"],
            1e3 * t["median"], 1e3 * t["min"], 1e3 * t["max"], r["throughput"], r["unit"],
            "%.3f" % r["tflops"] if "tflops" in r else "", "%.0f%%" % (100 * r["mfu"]) if "mfu" in r else "",
            "%.0f%%" % (100 * r["bw_fraction"]) if "bw_fraction" in r else "",
            "%.0f" % comm if ranks else "", "%.0f" % rss if rss else ""))
    cmp_ = [r for r in recs if r.get("phase") == "compare"]
    if cmp_:
        print("\n| phase | params | engine | PyTorch | unit | engine / PyTorch |")
        print("|---|---|---|---|---|---|")
        for c in cmp_:
            print("| %s | %s | %.3g | %.3g | %s | **%.2f** |" % (c["of"], params(c["params"]), c["engine_throughput"],
                                                               c["torch_throughput"], c["unit"], c["ratio"]))


main()
