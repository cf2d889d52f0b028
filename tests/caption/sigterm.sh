#!/bin/bash
# SIGTERM (one rank) and SIGUSR1/SIGUSR2 to mpirun (which forwards them; mpirun's own SIGTERM
# handling kills the ranks after odls_base_sigkill_timeout): the job finishes the captions in
# flight, flushes and exits 75; every line is whole, the summary's count matches the file; the
# rerun completes with every key exactly once. SIGTERM to mpirun: exit 1 (Open MPI's), output
# whole, the rerun completes.
. "$(dirname "$0")/common.sh"
T=$W/sigterm; rm -rf "$T"; mkdir -p "$T"
stop_and_check() {  # name signal command...
    local name=$1 sig=$2; shift 2
    "$@" --out "$T/$name" --max-seqs 1 --flush-interval 0 > "$T/$name.log" 2>&1 &
    local pid=$!
    for _ in $(seq 300); do   # until the first results are on disk (30 s at most)
        [ "$(cat "$T/$name"/*.jsonl 2>/dev/null | wc -l)" -ge 2 ] && break
        sleep 0.1
    done
    kill -$sig $pid
    wait $pid
    local rc=$?
    cat "$T/$name.log"
    [ $rc -eq 75 ] || fail "$name: exit $rc after SIG$sig, expected 75"
    grep -q "stopped early" "$T/$name.log" || fail "$name: no summary"
    local lines said
    lines=$(cat "$T/$name"/*.jsonl | wc -l)
    said=$(sed -n 's/.*summary: \([0-9]*\) captioned, [0-9]* skipped (done before), \([0-9]*\) failed.*/\1 \2/p' "$T/$name.log" | awk '{print $1+$2}')
    [ "$lines" = "$said" ] || fail "$name: summary says $said results, files hold $lines"
    [ "$lines" -lt 29 ] || fail "$name: the signal came too late to test anything"
    $CHECK "$T/$name" "$EXP" --partial --ref "$W/ref" || fail "$name: partial output"
    timeout 60 "$@" --out "$T/$name" > "$T/$name.rerun.log" 2>&1 || { cat "$T/$name.rerun.log"; fail "$name: rerun"; }
    $CHECK "$T/$name" "$EXP" --complete --ref "$W/ref" --count 29 || fail "$name: after the rerun"
}
stop_and_check one TERM timeout 60 "$BIN" caption $ARGS $INPUTS
stop_and_check mpi USR1 $MPI -np 2 "$BIN" caption $ARGS $INPUTS --tp 2
stop_and_check mpi-usr2 USR2 $MPI -np 2 "$BIN" caption $ARGS $INPUTS --tp 2

# The documented exception (docs/caption.md, "Signals and exit codes"): SIGTERM to mpirun itself
# makes Open MPI end the job (SIGTERM to the ranks, SIGKILL 1 s later) and exit 1, never 75.
# What was finished is still whole on disk and the rerun completes it.
$MPI -np 2 "$BIN" caption $ARGS $INPUTS --tp 2 --out "$T/mpi-term" --max-seqs 1 --flush-interval 0 \
    > "$T/mpi-term.log" 2>&1 &
pid=$!
for _ in $(seq 300); do
    [ "$(cat "$T/mpi-term"/*.jsonl 2>/dev/null | wc -l)" -ge 2 ] && break
    sleep 0.1
done
n=$(cat "$T/mpi-term"/*.jsonl 2>/dev/null | wc -l)
kill -TERM $pid
wait $pid
rc=$?
cat "$T/mpi-term.log"
[ "$n" -ge 2 ] || fail "mpi-term: no results after 30 s"
[ $rc -eq 1 ] || fail "mpi-term: mpirun exited $rc after SIGTERM; Open MPI 4.1 exits 1 (the documented contract)"
$CHECK "$T/mpi-term" "$EXP" --partial --ref "$W/ref" || fail "mpi-term: partial output"
timeout 60 $MPI -np 2 "$BIN" caption $ARGS $INPUTS --tp 2 --out "$T/mpi-term" > "$T/mpi-term.rerun.log" 2>&1 \
    || { cat "$T/mpi-term.rerun.log"; fail "mpi-term: rerun"; }
$CHECK "$T/mpi-term" "$EXP" --complete --ref "$W/ref" --count 29 || fail "mpi-term: after the rerun"
echo PASS
