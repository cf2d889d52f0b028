"""Checks the JSON Lines of `internvl caption` against expected.json (make_data.py).

usage: /usr/bin/python3 check_jsonl.py OUTDIR EXPECTED.json [--ref REFDIR] [--complete]
                                       [--partial] [--count N]
  every line is a whole JSON object with a key; no key appears twice (in all files);
  --complete: every key of EXPECTED is there with the right status, every output has .done;
  --partial:  the keys there are a subset (an interrupted run), no .done for incomplete files;
  --ref:      captions equal REFDIR's for every key both have (the single-rank greedy run);
  --count N:  exactly N result lines;
  --units A,B: only the keys of the --ref run's outputs A and B are expected.
"""
import argparse
import glob
import json
import os
import sys


def load(d):
    res, files = {}, {}
    for p in sorted(glob.glob(os.path.join(d, "*.jsonl"))):
        raw = open(p, "rb").read()
        if raw and not raw.endswith(b"\n"):
            sys.exit("%s: ends in a torn line" % p)
        for n, line in enumerate(raw.decode("utf-8").splitlines(), 1):
            try:
                j = json.loads(line)
            except ValueError as e:
                sys.exit("%s:%d: not JSON (%s): %r" % (p, n, e, line[:80]))
            k = j.get("key")
            if not isinstance(k, str):
                sys.exit("%s:%d: no key" % (p, n))
            if k in res:
                sys.exit("key %r appears twice (%s and %s)" % (k, files[k], p))
            res[k], files[k] = j, p
    return res, files


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("expected")
    ap.add_argument("--ref")
    ap.add_argument("--complete", action="store_true")
    ap.add_argument("--partial", action="store_true")
    ap.add_argument("--count", type=int)
    ap.add_argument("--units", help="comma list of output names: expect only the keys that "
                    "the --ref run wrote to these outputs (e.g. the tar shards 00000,00001)")
    a = ap.parse_args()
    exp = json.load(open(a.expected))
    if a.units:
        keep = set()
        for u in a.units.split(","):
            for line in open(os.path.join(a.ref, u + ".jsonl")):
                keep.add(json.loads(line)["key"])
        exp = {k: v for k, v in exp.items() if k in keep}
    res, files = load(a.out)
    for k, j in res.items():
        if k not in exp:
            sys.exit("unexpected key %r in %s" % (k, files[k]))
        st = "error" if "error" in j else "ok"
        if st != exp[k]:
            sys.exit("key %r: expected %s, got %s (%s)" % (k, exp[k], st, j.get("error", "")))
        if st == "ok":
            for f in ("caption", "tiles", "prompt_tokens", "generated_tokens", "timings", "model"):
                if f not in j:
                    sys.exit("key %r: field %s missing" % (k, f))
    if a.complete:
        missing = sorted(set(exp) - set(res))
        if missing:
            sys.exit("keys missing: %s" % missing[:10])
        for p in glob.glob(os.path.join(a.out, "*.jsonl")):
            if not os.path.exists(p[: -len(".jsonl")] + ".done"):
                sys.exit("%s: complete but no .done marker" % p)
    if a.partial:
        for p in glob.glob(os.path.join(a.out, "*.done")):
            n = int(open(p).read().split()[0])
            lines = sum(1 for _ in open(p[: -len(".done")] + ".jsonl"))
            if n != lines:
                sys.exit("%s says %d lines, file has %d" % (p, n, lines))
    if a.count is not None and len(res) != a.count:
        sys.exit("%d result lines, expected %d" % (len(res), a.count))
    if a.ref:
        ref, _ = load(a.ref)
        diff = [k for k in res if k in ref and res[k].get("caption") != ref[k].get("caption")]
        if diff:
            k = diff[0]
            sys.exit("%d captions differ from the single-rank run, e.g. %r: %r vs %r"
                     % (len(diff), k, res[k].get("caption"), ref[k].get("caption")))
    errs = sum(1 for j in res.values() if "error" in j)
    print("ok: %d results (%d errors) in %s" % (len(res), errs, a.out))


if __name__ == "__main__":
    main()
