# slurm_lib.sh - starts a real single-node Slurm for a test (sourced after common.sh): munge,
# slurmctld and slurmd with their own ports, socket and state folder (env.md section 5),
# stopped by PID at the end, also on failure (an EXIT trap; jobs in $JOBS are cancelled first).
# Exits 77 (skip) without root or the Slurm packages. Sets SLURM_CONF (exported) and S.
[ "$(id -u)" = 0 ] || { echo "SKIP: the Slurm daemons need root"; exit 77; }
for p in slurmctld slurmd munged sbatch; do
    command -v $p > /dev/null || [ -x /usr/sbin/$p ] || { echo "SKIP: $p not installed (scripts/install-deps.sh --tests)"; exit 77; }
done
[ -r /etc/munge/munge.key ] || { echo "SKIP: no /etc/munge/munge.key"; exit 77; }
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
/usr/sbin/slurmctld -i || { tail -20 "$S/log/slurmctld.log"; fail "slurmctld did not start"; }
/usr/sbin/slurmd -N localhost || { tail -20 "$S/log/slurmd.log"; fail "slurmd did not start"; }
for _ in $(seq 100); do sinfo -h -o %t 2> /dev/null | grep -qx idle && break; sleep 0.2; done
sinfo -h -o %t | grep -qx idle || { cat "$S/log/"*.log; fail "the node did not come up"; }

