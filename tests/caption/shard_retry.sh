#!/bin/bash
# Issue 18, class 2: a failure of the container is not an image's result. A tar shard cut in
# the middle of a member's bytes (a copy interrupted, a file system hiccup) must not leave an
# error line for the member that was cut: the unit stays incomplete (no .done, exit 1) and,
# once the shard is whole again, the rerun captions that member like any other.
. "$(dirname "$0")/common.sh"
T=$W/shard_retry; rm -rf "$T"; mkdir -p "$T/in"
cp "$W/data/shards/00000.tar" "$T/whole.tar"
# Cut the copy half way into the bytes of the third image (s0_002).
cut=$($PY - "$T/whole.tar" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1]) as tf:
    for m in tf.getmembers():
        if m.name == "s0_002.png":
            print(m.offset_data + m.size // 2)
PY
)
[ -n "$cut" ] || fail "member s0_002.png not found"
head -c "$cut" "$T/whole.tar" > "$T/in/00000.tar"
timeout 60 "$BIN" caption $ARGS --input "$T/in/00000.tar" --out "$T/out" > "$T/cut.log" 2>&1
rc=$?
cat "$T/cut.log"
[ $rc -eq 1 ] || fail "truncated shard: exit $rc, expected 1"
[ ! -e "$T/out/00000.done" ] || fail "a truncated shard was marked done"
grep -q '"key":"s0_002"' "$T/out/00000.jsonl" && fail "the member cut by the truncation got a result line: $(grep s0_002 "$T/out/00000.jsonl")"
grep -q "s0_002.*retried by the next run\|retried by the next run.*s0_002" "$T/cut.log" || fail "no message saying the cut member is retried"
# The shard is repaired: the rerun captions what is left, s0_002 included, and completes.
cp "$T/whole.tar" "$T/in/00000.tar"
timeout 60 "$BIN" caption $ARGS --input "$T/in/00000.tar" --out "$T/out" > "$T/rerun.log" 2>&1 || { cat "$T/rerun.log"; fail "rerun on the repaired shard"; }
cat "$T/rerun.log"
$CHECK "$T/out" "$EXP" --ref "$W/ref" --units 00000 --complete --count 4 || fail "after the repair"
[ "$(cat "$T/out/00000.done")" = 4 ] || fail ".done count $(cat "$T/out/00000.done"), expected 4"
echo PASS
