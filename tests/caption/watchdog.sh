#!/bin/bash
# A frozen rank (issue 18, item 9): rank 1 of an mpirun job (tp 2) is stopped with SIGSTOP
# in the middle of the job. Without a watchdog rank 0 waits in MPI forever. With
# --step-timeout 10 the job must end non-zero within 10 s + 20 s of margin, rank 0 must print
# the watchdog's message (naming itself as alive and the step it waits in), no process of the
# job may be left (the stopped one included), and the rerun completes every key exactly once.
. "$(dirname "$0")/common.sh"
T=$W/watchdog; rm -rf "$T"; mkdir -p "$T"
TO=10
$MPI -np 2 "$BIN" caption $ARGS $INPUTS --tp 2 --out "$T/out" --max-seqs 1 --flush-interval 0 \
    --step-timeout $TO > "$T/run1.log" 2>&1 &
job=$!
for _ in $(seq 600); do   # until 2 results are on disk (60 s at most)
    [ "$(cat "$T"/out/*.jsonl 2>/dev/null | wc -l)" -ge 2 ] && break
    kill -0 $job 2>/dev/null || break
    sleep 0.1
done
kill -0 $job 2>/dev/null || { cat "$T/run1.log"; fail "the job ended before a rank could be frozen"; }
r1=""
for p in $(pgrep -P $job); do
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && r1=$p
done
[ -n "$r1" ] || { kill -9 $job; fail "rank 1's process not found among mpirun's children"; }
kill -STOP "$r1"
t0=$(date +%s.%N)
echo "rank 1 (pid $r1) stopped with $(cat "$T"/out/*.jsonl | wc -l) results on disk"
for _ in $(seq $(((TO + 20) * 10))); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
if kill -0 $job 2>/dev/null; then
    cat "$T/run1.log"
    kids=$(pgrep -P $job)
    kill -CONT "$r1" 2>/dev/null; kill -9 $kids $job 2>/dev/null
    fail "the job was still running $((TO + 20)) s after rank 1 froze (--step-timeout $TO)"
fi
wait $job
rc=$?
dt=$(echo "$(date +%s.%N) - $t0" | bc)
cat "$T/run1.log"
echo "mpirun exited $rc, ${dt} s after rank 1 froze"
[ $rc -ne 0 ] || fail "the job exited 0 with a frozen rank"
grep -q "\[watchdog\] rank 0/2 .*no step finished for [0-9]* s (--step-timeout $TO): step [0-9]*, waiting in " "$T/run1.log" \
    || fail "no watchdog message from rank 0"
grep -q "\[watchdog\] rank 1/2" "$T/run1.log" && fail "the frozen rank printed a watchdog line"
for _ in $(seq 50); do kill -0 "$r1" 2>/dev/null || break; sleep 0.1; done   # a zombie until reaped
kill -0 "$r1" 2>/dev/null && { kill -CONT "$r1"; kill -9 "$r1"; fail "the frozen rank was left behind"; }
$CHECK "$T/out" "$EXP" --partial --ref "$W/ref" || fail "partial output"
timeout 60 $MPI -np 2 "$BIN" caption $ARGS $INPUTS --tp 2 --out "$T/out" > "$T/run2.log" 2>&1 \
    || { cat "$T/run2.log"; fail "rerun exit $?"; }
$CHECK "$T/out" "$EXP" --complete --ref "$W/ref" --count 29 || fail "after the rerun"
echo PASS
