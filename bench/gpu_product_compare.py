#!/usr/bin/env python3
"""gpu_product_compare.py DIR [--tokenizer tokenizer.model] - the captions of every multi-rank
run in DIR (cap-2b-*, cap-26b-*) against the one-rank run of the same model (cap-2b-1rank,
cap-26b-1rank): how many keys have exactly the same caption, and for each one that differs
the first differing token (sentencepiece ids when the tokenizer and the module are there,
else characters). Greedy decoding in bf16 may flip a near-tie when the summation order
changes (TP all-reduces), after which the texts part ways; the report shows where."""
import argparse
import glob
import json
import os
import sys


def load(d):
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "*.jsonl"))):
        for line in open(f, encoding="utf-8"):
            r = json.loads(line)
            out[r["key"]] = r.get("caption", "ERROR: " + str(r.get("error")))
    return out


def first_diff(a, b, sp):
    if sp is not None:
        a, b = sp.encode(a), sp.encode(b)
        unit = "token"
    else:
        unit = "char"
    n = min(len(a), len(b))
    i = next((k for k in range(n) if a[k] != b[k]), n)
    return "%s %d of %d/%d" % (unit, i, len(a), len(b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--tokenizer")
    a = ap.parse_args()
    sp = None
    if a.tokenizer:
        try:
            import sentencepiece
            sp = sentencepiece.SentencePieceProcessor(model_file=a.tokenizer)
        except Exception as e:  # the report still works on characters
            print("(no sentencepiece: %s; differences in characters)" % e)
    bad = 0
    for model in ("2b", "26b"):
        ref_dir = os.path.join(a.dir, "cap-%s-1rank" % model)
        if not os.path.isdir(ref_dir):
            continue
        ref = load(ref_dir)
        if not ref:
            print("%s: no captions from one rank to compare with" % os.path.basename(ref_dir))
            bad += 1
            continue
        for d in sorted(glob.glob(os.path.join(a.dir, "cap-%s-*" % model))):
            if d == ref_dir:
                continue
            got = load(d)
            same = sum(1 for k in ref if got.get(k) == ref[k])
            missing = [k for k in ref if k not in got]
            print("%-28s %d/%d captions equal to one rank's%s" % (
                os.path.basename(d), same, len(ref), ", missing: %s" % missing if missing else ""))
            for k in sorted(ref):
                if k in got and got[k] != ref[k]:
                    print("    %-20s differs at %s" % (k, first_diff(ref[k], got[k], sp)))
            bad += len(missing)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
