#!/bin/bash
# A rank is SIGKILLed in the middle of the job (IVL_FAULT, tick 20): the job dies, what was
# flushed stays. A crash mid-write is simulated with a torn last line. The rerun must drop
# the torn line, skip the finished keys and caption the rest: every key exactly once, the
# same captions as the single-rank run.
. "$(dirname "$0")/common.sh"
T=$W/kill; rm -rf "$T"; mkdir -p "$T"
timeout 60 $MPI -np 2 -x IVL_FAULT=caption:1 -x IVL_FAULT_CAPTION_TICK=20 "$BIN" caption $ARGS $INPUTS \
    --out "$T/out" --tp 2 --max-seqs 2 --flush-interval 0 > "$T/run1.log" 2>&1
rc=$?
cat "$T/run1.log"
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "the killed job exited $rc"
grep -q "IVL_FAULT: killing this rank" "$T/run1.log" || fail "the fault was not injected"
n1=$(cat "$T"/out/*.jsonl 2>/dev/null | wc -l)
[ "$n1" -gt 0 ] && [ "$n1" -lt 29 ] || fail "expected a partial output, got $n1 lines"
$CHECK "$T/out" "$EXP" --partial --ref "$W/ref" || fail "partial output"
# A torn line, as a crash during write(2) leaves it.
f=$(ls "$T"/out/*.jsonl | head -1)
printf '{"key":"torn","caption":"half a li' >> "$f"
timeout 60 $MPI -np 2 "$BIN" caption $ARGS $INPUTS --out "$T/out" --tp 2 > "$T/run2.log" 2>&1 \
    || { cat "$T/run2.log"; fail "rerun exit $?"; }
cat "$T/run2.log"
grep -q "dropping .* bytes after the last whole result line" "$T/run2.log" || fail "torn tail not reported"
grep -q "$n1 skipped" "$T/run2.log" || fail "rerun did not skip the $n1 finished keys"
$CHECK "$T/out" "$EXP" --complete --ref "$W/ref" --count 29 || fail "after the rerun"
echo PASS
