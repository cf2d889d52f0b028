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
# An image file that cannot be read (EACCES: run as nobody, since root reads anything) is an
# I/O failure too: no line, no .done, exit 1; once readable, the rerun captions it. A list
# entry naming a file that does not exist stays a final error line (the list's own fault).
AS=""; [ "$(id -u)" = 0 ] && AS="runuser -u nobody --"
if [ -n "$AS" ] && ! $AS sh -c "test -x '$BIN' && test -r '$MODEL' && test -x '$T'" 2>/dev/null; then
  echo "skip: unreadable file case: the build tree is not reachable by user nobody"
else
  mkdir -p "$T/files" "$T/fout" && chmod 777 "$T/fout"
  cp "$W/data/listimgs/l0.jpg" "$T/files/ok.jpg"
  cp "$W/data/listimgs/l1.jpg" "$T/files/locked.jpg"
  chmod 644 "$T/files/ok.jpg"; chmod 000 "$T/files/locked.jpg"
  printf 'kok\t%s\nklocked\t%s\nkmissing\t%s\n' "$T/files/ok.jpg" "$T/files/locked.jpg" "$T/files/nope.jpg" > "$T/files/list.txt"
  chmod 755 "$T/files"; chmod 644 "$T/files/list.txt"
  $AS timeout -k 5 60 "$BIN" caption $ARGS --input "$T/files/list.txt" --out "$T/fout" > "$T/files.log" 2>&1
  rc=$?
  cat "$T/files.log"
  [ $rc -eq 1 ] || fail "unreadable file: exit $rc, expected 1"
  grep -q '"key":"klocked"' "$T/fout/"*.jsonl && fail "the unreadable file got a result line"
  grep -q '"key":"kmissing".*"error"' "$T/fout/"*.jsonl || fail "the missing file got no error line"
  ls "$T/fout/"*.done 2>/dev/null && fail "a unit with an unreadable file was marked done"
  grep -q "key 'klocked' not recorded, it is retried by the next run: .*Permission denied" "$T/files.log" || fail "no retry message"
  chmod 644 "$T/files/locked.jpg"
  $AS timeout -k 5 60 "$BIN" caption $ARGS --input "$T/files/list.txt" --out "$T/fout" > "$T/files2.log" 2>&1 || { cat "$T/files2.log"; fail "rerun after chmod"; }
  grep -q "1 captioned, 2 skipped" "$T/files2.log" || { cat "$T/files2.log"; fail "the rerun did not caption just the retried file"; }
  grep -q '"key":"klocked".*"caption"' "$T/fout/"*.jsonl || fail "the retried file has no caption"
fi
echo PASS
