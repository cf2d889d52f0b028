#!/bin/bash
# Issue 18, class 1: two caption jobs on one --out. A job locks each output unit it writes
# (DIR/<unit>.lock, parallel/caption_lock.h); a second job on the same inputs (a double
# submit, a requeued Slurm task overlapping the one still running) must fail at once with a
# message naming the output and the holder, instead of writing every key a second time. A lock
# left by a dead job (SIGKILL) must not block, and jobs on disjoint inputs sharing one --out
# (the array tasks of slurm/caption.sbatch) must both run.
. "$(dirname "$0")/common.sh"
T=$W/lock; rm -rf "$T"; mkdir -p "$T"
child_of() { pgrep -P "$1" | head -1; }
# The job to pause is slowed down (one sequence at a time, 32 new tokens) so that its first
# output cannot complete in the moment between seeing its lock and pausing it.
SLOW="--max-seqs 1 --max-new-tokens 32"
paused_on() {  # tpid lockfile: waits until the job's rank 0 holds that lock, then pauses it
    local pid=""
    for _ in $(seq 300); do
        pid=$(child_of "$1")
        [ -n "$pid" ] && grep -q "^pid $pid on host" "$2" 2>/dev/null && { kill -STOP "$pid"; echo "$pid"; return 0; }
        sleep 0.1
    done
    return 1
}
wait_log() {  # file pattern: wait up to 30 s
    for _ in $(seq 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
# 1. Job A runs; once its model is loaded it is paused (SIGSTOP), so it is certainly alive and
#    unfinished while job B starts on the same folder.
timeout 120 "$BIN" caption $ARGS $SLOW $INPUTS --out "$T/out" > "$T/a.log" 2>&1 &
tpid=$!
apid=$(paused_on $tpid "$T/out/dir-000000.lock") || { cat "$T/a.log"; fail "job A did not lock its first output"; }
start=$(date +%s)
timeout 60 "$BIN" caption $ARGS $INPUTS --out "$T/out" > "$T/b.log" 2>&1
rc=$?
took=$(( $(date +%s) - start ))
kill -CONT "$apid"
cat "$T/b.log"
[ $rc -eq 1 ] || { kill $tpid; fail "second job on a locked --out: exit $rc, expected 1"; }
grep -q "output $T/out/.*\.jsonl is in use by another caption job (pid $apid on host" "$T/b.log" ||
    { kill $tpid; fail "no clear message naming the folder and the holder"; }
[ $took -le 20 ] || fail "the second job took ${took}s to give up (it must fail at once)"
wait $tpid
rc=$?
cat "$T/a.log"
[ $rc -eq 0 ] || fail "job A: exit $rc"
$CHECK "$T/out" "$EXP" --complete --count 29 || fail "output of job A"
for d in "$T"/out/*.done; do
    n=$(cat "$d"); l=$(wc -l < "${d%.done}.jsonl")
    [ "$n" = "$l" ] || fail "$d says $n lines, the file has $l"
done
ls "$T"/out/*.lock 2>/dev/null && fail "lock files left behind by a complete job"
# 2. A stale lock: job C is killed with SIGKILL while holding it; job D must run normally.
timeout 120 "$BIN" caption $ARGS $INPUTS --out "$T/stale" > "$T/c.log" 2>&1 &
tpid=$!
wait_log "$T/c.log" "KV cache" || { cat "$T/c.log"; fail "job C did not start"; }
kill -KILL "$(child_of $tpid)"
wait $tpid
ls -la "$T/stale"
timeout 60 "$BIN" caption $ARGS $INPUTS --out "$T/stale" > "$T/d.log" 2>&1 || { cat "$T/d.log"; fail "job D after a dead holder"; }
$CHECK "$T/stale" "$EXP" --complete --ref "$W/ref" --count 29 || fail "output of job D"
# 3. Under mpirun the lock is rank 0's: a 2-rank job on a folder held by a paused job fails too.
timeout 120 "$BIN" caption $ARGS $SLOW $INPUTS --out "$T/mpi" > "$T/e.log" 2>&1 &
tpid=$!
epid=$(paused_on $tpid "$T/mpi/dir-000000.lock") || { cat "$T/e.log"; fail "job E did not lock its first output"; }
timeout 60 $MPI -np 2 "$BIN" caption $ARGS $INPUTS --tp 2 --out "$T/mpi" > "$T/f.log" 2>&1
rc=$?
kill -CONT "$epid"
cat "$T/f.log"
[ $rc -ne 0 ] || { kill $tpid; fail "mpirun job on a locked --out: exit 0"; }
grep -q "is in use by another caption job" "$T/f.log" || { kill $tpid; fail "mpirun: no message"; }
wait $tpid || fail "job E: exit $?"
$CHECK "$T/mpi" "$EXP" --complete --count 29 || fail "output of job E"
# 4. Disjoint inputs on one --out (two array tasks): job G holds shards 0-1 (paused), job H
#    captions shard 2 into the same folder and must succeed.
SH=$W/data/shards
timeout 120 "$BIN" caption $ARGS $SLOW --input "$SH/{00000..00001}.tar" --out "$T/shared" > "$T/g.log" 2>&1 &
tpid=$!
gpid=$(paused_on $tpid "$T/shared/00000.lock") || { cat "$T/g.log"; fail "job G did not lock its first output"; }
timeout 60 "$BIN" caption $ARGS --input "$SH/00002.tar" --out "$T/shared" > "$T/h.log" 2>&1
rc=$?
kill -CONT "$gpid"
cat "$T/h.log"
[ $rc -eq 0 ] || { kill $tpid; fail "job H on other shards of a shared --out: exit $rc"; }
wait $tpid || fail "job G: exit $?"
# The keys the single-rank reference wrote for the three shards (captions differ: 32 tokens).
$PY -c 'import json,sys; e=json.load(open(sys.argv[1])); k=set(json.loads(l)["key"] for u in ("00000","00001","00002") for l in open("%s/%s.jsonl" % (sys.argv[2], u))); json.dump({x: e[x] for x in k}, open(sys.argv[3], "w"))' "$EXP" "$W/ref" "$T/shards.json"
$CHECK "$T/shared" "$T/shards.json" --complete --count 16 || fail "shared --out"
echo PASS
