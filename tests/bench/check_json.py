"""Validates `internvl bench --json` output: well-formed JSON Lines, the fields every record
must carry, one record per expected phase, sane values. Exit 1 with the reason otherwise.

usage: check_json.py FILE --world N --phases vit,prefill,decode,e2e [--torch]
"""
import argparse
import json
import sys

COMMON = ["phase", "preset", "model", "weights", "layout", "dtype", "backend", "device",
          "threads", "blas", "commit", "date", "host", "params", "ranks"]


def fail(msg):
    print("check_json: FAIL: " + msg)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--world", type=int, required=True)
    ap.add_argument("--phases", required=True)
    ap.add_argument("--torch", action="store_true", help="expect torch and compare records")
    a = ap.parse_args()
    recs = []
    with open(a.file) as f:
        for n, line in enumerate(f, 1):
            try:
                recs.append(json.loads(line))
            except ValueError as e:
                fail("%s line %d is not JSON: %s" % (a.file, n, e))
    engine = [r for r in recs if r.get("backend") not in ("torch", None) and r.get("phase") != "compare"]
    seen = set()
    for r in engine:
        for k in COMMON:
            if k not in r:
                fail("record %s lacks '%s'" % (r.get("phase"), k))
        if r["layout"]["world"] != a.world or len(r["ranks"]) != a.world:
            fail("%s: world %s, %d rank entries, expected %d" % (r["phase"], r["layout"]["world"], len(r["ranks"]), a.world))
        if r["commit"] in ("", None) or r["dtype"] not in ("f32", "bf16", "f16"):
            fail("%s: commit %r dtype %r" % (r["phase"], r["commit"], r["dtype"]))
        if r.get("skipped"):
            continue
        t = r["time_s"]
        if not (0 < t["min"] <= t["q1"] <= t["median"] <= t["q3"] <= t["max"]):
            fail("%s: time statistics out of order: %s" % (r["phase"], t))
        if len(t["all"]) != r["repeats"] or not r["throughput"] > 0:
            fail("%s: repeats %d vs %d times, throughput %r" % (r["phase"], r["repeats"], len(t["all"]), r["throughput"]))
        for rk in r["ranks"]:
            if not (rk["peak_rss_mib"] > 0 and rk["comm_s"] >= 0 and rk["compute_s"] >= 0):
                fail("%s: bad rank entry %s" % (r["phase"], rk))
        if r["phase"] in ("vit", "prefill", "decode", "e2e") and not (0 < r.get("mfu", 0) < 3):
            fail("%s: MFU %r not in (0, 3)" % (r["phase"], r.get("mfu")))
        if a.world > 1 and r["phase"] in ("prefill", "decode", "e2e") and \
                not any(rk["comm_bytes"] > 0 for rk in r["ranks"]):
            fail("%s: %d ranks but no communication counted" % (r["phase"], a.world))
        seen.add(r["phase"])
    for p in a.phases.split(",") + ["peak_gemm", "mem_copy"]:
        if p not in seen:
            fail("no %s record (saw %s)" % (p, sorted(seen)))
    if a.torch:
        tor = [r for r in recs if r.get("backend") == "torch"]
        cmp_ = [r for r in recs if r.get("phase") == "compare"]
        if not tor or not cmp_ or any(not c["ratio"] > 0 for c in cmp_):
            fail("missing torch/compare records (%d torch, %d compare)" % (len(tor), len(cmp_)))
    print("check_json: %d records OK (%s)" % (len(recs), ", ".join(sorted(seen))))


main()
