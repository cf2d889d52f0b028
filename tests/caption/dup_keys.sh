#!/bin/bash
# Issue 18, class 5: duplicate keys. Within one output a key is captioned once (the first
# image) with a warning; a key that is also in another output (two shards with the same
# WebDataset key) is captioned in each output, with a warning naming both outputs, and both
# kinds are counted in the summary (docs/caption.md, "Duplicate keys").
. "$(dirname "$0")/common.sh"
T=$W/dups; rm -rf "$T"; mkdir -p "$T/a" "$T/b"
cp "$W/data/shards/00000.tar" "$T/a/00000.tar"                  # s0_000 .. s0_003
$PY - "$T/b/00001.tar" "$W/data/listimgs" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.GNU_FORMAT) as tf:
    tf.add(sys.argv[2] + "/l1.jpg", arcname="s0_001.jpg")   # the key of a member of 00000.tar
    tf.add(sys.argv[2] + "/l2.jpg", arcname="b_000.jpg")
    tf.add(sys.argv[2] + "/lbare.png", arcname="b_000.png")  # same key twice in this shard
PY
timeout -k 5 60 "$BIN" caption $ARGS --input "$T/a/00000.tar" --input "$T/b/00001.tar" --out "$T/out" > "$T/run.log" 2>&1 || { cat "$T/run.log"; fail "run"; }
cat "$T/run.log"
$PY - "$T/out" <<'PY' || fail "outputs"
import json, sys
d = sys.argv[1]
keys = lambda u: [json.loads(l)["key"] for l in open("%s/%s.jsonl" % (d, u))]
a, b = keys("00000"), keys("00001")
if sorted(a) != ["s0_000", "s0_001", "s0_002", "s0_003"]: sys.exit("00000 holds %r" % a)
if sorted(b) != ["b_000", "s0_001"]: sys.exit("00001 holds %r (each key once, s0_001 too)" % b)
for u, n in (("00000", 4), ("00001", 2)):
    if open("%s/%s.done" % (d, u)).read().split()[0] != str(n): sys.exit("%s.done is not %d" % (u, n))
PY
grep -q "00001: key 'b_000' appears twice in the input; only the first image is captioned" "$T/run.log" || fail "no warning for the key twice in one shard"
grep -q "00001: key 's0_001' is also in output 00000; it is captioned in both" "$T/run.log" || fail "no warning for the key in two shards"
grep -q "summary: .*2 duplicate keys (1 within an output, captioned once; 1 also in another output, captioned in each)" "$T/run.log" || fail "duplicates not counted in the summary"
echo PASS
