#!/bin/bash
# A real single-node Slurm (munge, slurmctld, slurmd; env.md section 5) runs
# slurm/caption.sbatch as an array job over the test's tar shards: 3 tasks of 2 ranks with
# srun --mpi=pmix (tp 2), and 1 task with mpirun inside the allocation (pp 2). Outputs must be
# complete, one line per key, equal to the single-rank run. The daemons run on their own ports,
# socket and state folder and are stopped by PID at the end, also on failure.
# usage: slurm.sh INTERNVL IVL_TEST_DATA SLURM_SCRIPTS_DIR
. "$(dirname "$0")/common.sh"
SB=$3/caption.sbatch
T=$W/slurm; rm -rf "$T"; mkdir -p "$T"
. "$HERE/slurm_lib.sh"

common="ALL,INTERNVL=$BIN,MODEL=$MODEL,SHARD_DIR=$W/data/shards,SHARD_LAST=2,DEVICE=cpu,MAX_TILES=2,MAX_NEW_TOKENS=8,EXTRA=--threads 1"
# srun --mpi=pmix: 3 array tasks, one shard each, tp 2.
j1=$(sbatch --parsable --array=0-2 --ntasks=2 --output="$T/srun-%A_%a.out" \
     --export="$common,SHARDS_PER_TASK=1,OUT=$T/srun,TP=2,PP=1,LAUNCH=srun" "$SB") || fail "sbatch"
# mpirun inside the allocation: one task with all 3 shards, pp 2.
j2=$(sbatch --parsable --array=0-0 --ntasks=2 --output="$T/mpirun-%A_%a.out" \
     --export="$common,SHARDS_PER_TASK=3,OUT=$T/mpirun,TP=1,PP=2,LAUNCH=mpirun" "$SB") || fail "sbatch"
JOBS="$j1 $j2"
for _ in $(seq 600); do   # until both arrays have left the queue (120 s at most)
    [ -z "$(squeue -h -j "$j1,$j2" -o %i 2> /dev/null)" ] && break
    sleep 0.2
done
cat "$T"/*.out
[ -z "$(squeue -h -j "$j1,$j2" -o %i 2> /dev/null)" ] || fail "jobs still queued or running"
[ "$(grep -l "internvl caption exited 0" "$T"/srun-*.out | wc -l)" = 3 ] || fail "not every srun task exited 0"
grep -q "internvl caption exited 0" "$T"/mpirun-*.out || fail "the mpirun task did not exit 0"
for o in srun mpirun; do
    $CHECK "$T/$o" "$EXP" --complete --ref "$W/ref" --units 00000,00001,00002 || fail "$o outputs"
    [ "$(ls "$T/$o"/*.done | wc -l)" = 3 ] || fail "$o: not 3 shard outputs"
done
echo PASS
