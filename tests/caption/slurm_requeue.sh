#!/bin/bash
# Preemption and the stop signal under a real single-node Slurm (slurm_lib.sh), running
# slurm/caption.sbatch over the test's 3 tar shards (16 keys) on 2 ranks, slowed down
# (--max-seqs 1, every result flushed) so that the job is caught in the middle:
#   1. preemption: `scontrol requeue` of the running job (srun, tp 2). Slurm kills it and starts
#      it again; the second run resumes.
#   2. the time-limit warning (--signal=B:TERM@120), sent now with `scancel -b -s TERM`, for
#      both launchers (srun, and mpirun inside the allocation): the script passes the stop on to
#      the ranks, `internvl caption` exits 75, the script requeues the job, and the next run
#      completes.
# Each time the output ends complete, with every key exactly once and the captions of the
# single-rank run. Bounded: each job has 150 s to end.
# usage: slurm_requeue.sh INTERNVL IVL_TEST_DATA SLURM_SCRIPTS_DIR
. "$(dirname "$0")/common.sh"
SB=$3/caption.sbatch
T=$W/slurm_requeue; rm -rf "$T"; mkdir -p "$T"
. "$HERE/slurm_lib.sh"

common="ALL,INTERNVL=$BIN,MODEL=$MODEL,SHARD_DIR=$W/data/shards,SHARD_LAST=2,SHARDS_PER_TASK=3,DEVICE=cpu,MAX_TILES=2,MAX_NEW_TOKENS=8,EXTRA=--threads 1 --max-seqs 1 --flush-interval 0"
state() { scontrol show job "$1" 2> /dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -1; }
restarts() { scontrol show job "$1" 2> /dev/null | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p' | head -1; }

# submit NAME LAUNCH TP PP: prints the job id once the job has written 3 results.
submit() {
    local name=$1 j
    j=$(sbatch --parsable --ntasks=2 --output="$T/$name.out" \
        --export="$common,OUT=$T/$name,TP=$3,PP=$4,LAUNCH=$2" "$SB") || fail "$name: sbatch"
    JOBS="$JOBS $j"
    for _ in $(seq 600); do   # 120 s at most
        [ "$(cat "$T/$name"/*.jsonl 2> /dev/null | wc -l)" -ge 3 ] && break
        case "$(state "$j")" in PENDING|RUNNING|CONFIGURING|"") ;; *) break ;; esac
        sleep 0.2
    done
    [ "$(cat "$T/$name"/*.jsonl 2> /dev/null | wc -l)" -ge 3 ] || { cat "$T/$name.out"; fail "$name: job $j ($(state "$j")) wrote no 3 results in 120 s"; }
    [ "$(state "$j")" = RUNNING ] || { cat "$T/$name.out"; fail "$name: job $j is $(state "$j"), not running, with 3 results"; }
    echo "$j"
}

# finish NAME JOB: waits until the requeued job has run to completion and checks the output.
finish() {
    local name=$1 j=$2 s="" ended=0 pend=0
    for _ in $(seq 750); do   # 150 s at most
        s=$(state "$j")
        [ "$s" = COMPLETED ] && break
        # A job that requeues itself shows FAILED (exit 75) until its step is cleaned up (some
        # seconds on a loaded machine), then PENDING.
        case "$s" in FAILED|CANCELLED|TIMEOUT) ended=$((ended + 1)) ;; *) ended=0 ;; esac
        [ $ended -ge 100 ] && break
        # A requeued job waits 121 s for its begin time (Slurm's guard: slurmd refuses a launch
        # whose credential is not newer than the old run's revoked one, to the second). Once
        # it has been pending for 3 s, let it start.
        [ "$s" = PENDING ] && pend=$((pend + 1)) || pend=0
        [ $pend = 15 ] && scontrol update jobid="$j" starttime=now
        sleep 0.2
    done
    cat "$T/$name.out"
    [ "$s" = COMPLETED ] || { scontrol show job "$j"; grep -i "JobId=$j\b" "$S/log/slurmctld.log" | tail -20
        fail "$name: job $j ended $s (or still running after 150 s)"; }
    [ "$(restarts "$j")" -ge 1 ] || fail "$name: job $j was not restarted"
    grep -q "restart 1)" "$T/$name.out" || fail "$name: no second run in the log"
    [ "$(grep -c "internvl caption exited 0" "$T/$name.out")" = 1 ] || fail "$name: the last run did not exit 0"
    $CHECK "$T/$name" "$EXP" --complete --ref "$W/ref" --units 00000,00001,00002 || fail "$name: outputs"
    [ "$(ls "$T/$name"/*.done | wc -l)" = 3 ] || fail "$name: not 3 complete shards"
}

# 1. preemption
j=$(submit preempt srun 2 1) || exit 1
n=$(cat "$T"/preempt/*.jsonl | wc -l)
scontrol requeue "$j" || fail "scontrol requeue $j"
echo "job $j requeued by scontrol with $n of 16 results written"
finish preempt "$j"
echo "ok: preempted with $n results, the requeued job completed every key exactly once"

# 2. the stop signal of --signal=B:TERM, both launchers
for l in srun mpirun; do
    [ $l = srun ] && tp=2 pp=1 || tp=1 pp=2
    j=$(submit "term-$l" $l $tp $pp) || exit 1
    scancel -b -s TERM "$j" || fail "scancel -b -s TERM $j"
    finish "term-$l" "$j"
    grep -q "internvl caption exited 75" "$T/term-$l.out" || fail "term-$l: the first run did not exit 75"
    grep -q "task 0: requeued" "$T/term-$l.out" || fail "term-$l: the script did not requeue the job"
    echo "ok: $l: SIGTERM to the batch script gave exit 75, a requeue, and a complete output"
done
echo PASS
