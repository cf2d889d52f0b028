#!/bin/bash
# SIGTERM (one rank) and SIGUSR1 to mpirun (which forwards it; mpirun's own SIGTERM handling
# kills the ranks after odls_base_sigkill_timeout): the job finishes the captions in flight,
# flushes and exits 75; every line is whole, the summary's count matches the file; the rerun
# completes with every key exactly once.
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
echo PASS
