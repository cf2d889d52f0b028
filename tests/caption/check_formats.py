"""Checks caption_formats.sh's output against make_formats_data.py's expected.json.
usage: check_formats.py OUTDIR EXPECTED.json [--meta] [--exif]
  every expected key has exactly one line, none is an error line; width x height equal
  Pillow's; tiles equal dynamic_preprocess's count (max 2 tiles + thumbnail, as common.sh's
  ARGS); with --meta, "meta" equals the expected object (a meta_error of None: any message
  naming the sample), without it no line has "meta"."""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "image"))
import preprocess_ref as ref  # noqa: E402

out, exp_path = sys.argv[1], sys.argv[2]
want_meta = "--meta" in sys.argv[3:]
want_exif = "--exif" in sys.argv[3:]      # the run had --exif-transpose: sizes are upright
exp = json.load(open(exp_path, encoding="utf-8"))
prefix = {"dir": "dir", "list": "list", "shard": "shard"}
got = {}
for p in sorted(glob.glob(os.path.join(out, "*.jsonl"))):
    unit = os.path.basename(p)
    kind = "shard" if unit.startswith("shard") else "list" if unit.startswith("list") else "dir"
    for line in open(p, "rb").read().decode("utf-8").splitlines():   # strict UTF-8
        j = json.loads(line)
        k = "%s/%s" % (kind, j["key"])
        if k in got:
            sys.exit("key %s twice" % k)
        got[k] = j
fails = []
for k, e in exp.items():
    j = got.get(k)
    if j is None:
        fails.append("%s: no line" % k)
        continue
    if "error" in j:
        fails.append("%s: error line: %s" % (k, j["error"]))
        continue
    size = e["size_exif"] if want_exif else e["size"]
    if [j["width"], j["height"]] != size:
        fails.append("%s: %dx%d, Pillow %s" % (k, j["width"], j["height"], size))
    w, h = size
    cols, rows = ref.grid_for(w, h, 1, 2, 448)
    tiles = cols * rows + (1 if cols * rows != 1 else 0)
    if j["tiles"] != tiles:
        fails.append("%s: %d tiles, dynamic_preprocess gives %d" % (k, j["tiles"], tiles))
    if want_meta:
        m, em = j.get("meta"), e.get("meta", {})
        if m is None:
            fails.append("%s: no meta" % k)
        elif "meta_error" in em and em["meta_error"] is None:
            rest = {a: b for a, b in em.items() if a != "meta_error"}
            if not isinstance(m.get("meta_error"), str) or k.split("/")[1] not in m["meta_error"] or \
                    {a: b for a, b in m.items() if a != "meta_error"} != rest:
                fails.append("%s: meta %r, wanted %r with a meta_error naming the sample" % (k, m, rest))
        elif m != em:
            fails.append("%s: meta %r, wanted %r" % (k, m, em))
    elif "meta" in j:
        fails.append("%s: meta without --keep-meta" % k)
extra = set(got) - set(exp)
if extra:
    fails.append("unexpected keys %s" % sorted(extra))
for f in fails:
    print("FAIL:", f)
print("%d lines checked, %d failures" % (len(got), len(fails)))
sys.exit(1 if fails else 0)
