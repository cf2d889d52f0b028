#!/bin/bash
# A real single-node Slurm (munge, slurmctld, slurmd; env.md section 5) runs
# slurm/caption.sbatch as an array job over the test's tar shards: 3 tasks of 2 ranks with
# srun --mpi=pmix (tp 2), and 1 task with mpirun inside the allocation (pp 2). Outputs must be
# complete, one line per key, equal to the single-rank run. The daemons run on their own ports,
# socket and state folder and are stopped by PID at the end, also on failure.
# usage: slurm.sh INTERNVL IVL_TEST_DATA SLURM_SCRIPTS_DIR
. "$(dirname "$0")/common.sh"
SB=$3/caption.sbatch
[ "$(id -u)" = 0 ] || { echo "SKIP: the Slurm daemons need root"; exit 77; }
for p in slurmctld slurmd munged sbatch; do
    command -v $p > /dev/null || [ -x /usr/sbin/$p ] || { echo "SKIP: $p not installed (scripts/install-deps.sh --tests)"; exit 77; }
done
[ -r /etc/munge/munge.key ] || { echo "SKIP: no /etc/munge/munge.key"; exit 77; }
T=$W/slurm; rm -rf "$T"; mkdir -p "$T"
S=$(mktemp -d /tmp/ivl-slurm.XXXXXX)      # short: the munge socket path has a length limit
mkdir -p "$S/state" "$S/spool" "$S/log" "$S/munge"
chown munge:munge "$S/munge" 2>/dev/null || chown munge "$S/munge"
chmod 755 "$S"
JOBS=""
STEPD_BEFORE=" $(pgrep -x slurmstepd | tr '\n' ' ') "   # job-step daemons not ours
cleanup() {
    for j in $JOBS; do scancel "$j" 2> /dev/null; done
    for f in slurmd slurmctld munge/munged; do
        [ -s "$S/$f.pid" ] && kill -TERM "$(cat "$S/$f.pid")" 2> /dev/null
    done
    sleep 0.5
    for f in slurmd slurmctld munge/munged; do
        [ -s "$S/$f.pid" ] && kill -KILL "$(cat "$S/$f.pid")" 2> /dev/null
    done
    # Job-step daemons of jobs that never ended (a hung or killed run) outlive slurmd.
    for p in $(pgrep -x slurmstepd); do
        case "$STEPD_BEFORE" in *" $p "*) ;; *) kill -KILL "$p" 2> /dev/null ;; esac
    done
    rm -rf "$S"
}
trap cleanup EXIT
port=$((20000 + $$ % 20000))
export SLURM_CONF=$S/slurm.conf
cat > "$SLURM_CONF" <<CONF
ClusterName=ivltest
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$S/munge/munge.sock
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
KillWait=5
MinJobAge=30
NodeName=localhost NodeAddr=127.0.0.1 CPUs=8 RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
runuser -u munge -- /usr/sbin/munged --socket="$S/munge/munge.sock" --pid-file="$S/munge/munged.pid" \
    --log-file="$S/munge/munged.log" --seed-file="$S/munge/munged.seed" || fail "munged did not start"
/usr/sbin/slurmctld -i || fail "slurmctld did not start"
/usr/sbin/slurmd -N localhost || fail "slurmd did not start"
for _ in $(seq 100); do sinfo -h -o %t 2> /dev/null | grep -qx idle && break; sleep 0.2; done
sinfo -h -o %t | grep -qx idle || { cat "$S/log/"*.log; fail "the node did not come up"; }

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
