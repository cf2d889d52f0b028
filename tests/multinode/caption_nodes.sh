#!/bin/bash
# caption_nodes.sh INTERNVL IVL_TEST_DATA - captioning across two "hosts" (tests/multinode/
# cluster.sh: network namespaces with their own hostnames and private /tmp, TCP between them,
# shared memory only inside a node), 2 ranks per node:
#   1. --tp 2 --pp 2 laid out as TP inside a node and PP across the nodes gives the captions
#      of one rank (the caption tests' data and reference, tests/caption/ref.sh);
#   2. every process of the second node killed mid-run: the whole job ends within 30 s, and
#      the rerun completes every key exactly once.
. "$(dirname "$0")/../caption/common.sh"
CHECK="$PY $(cd "$(dirname "$0")/../caption" && pwd)/check_jsonl.py"
C=$(dirname "$0")/cluster.sh
T=$W/multinode; rm -rf "$T"; mkdir -p "$T"
P=mn$$
cleanup() { "$C" down "$P" >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$C" up 2 "$P" || fail "cannot make the namespaces (needs root and iproute2)"
MPIX=(-x OPENBLAS_NUM_THREADS=1 -x OMP_NUM_THREADS=1 --mca mpi_yield_when_idle 1)

# 1. the layout across nodes
timeout 120 "$C" mpirun "$P" -np 4 "${MPIX[@]}" -x IVL_LOG_LEVEL=debug "$BIN" caption $ARGS $INPUTS --out "$T/tp2pp2" \
    --tp 2 --pp 2 --max-seqs 3 --batch-tokens 600 > "$T/tp2pp2.log" 2>&1 \
    || { cat "$T/tp2pp2.log"; fail "tp2 pp2 across 2 nodes: exit $?"; }
# the log names each rank's host: stage 0 on node a, stage 1 on node b
grep -q "r0/4 $P-a.*stage 0" "$T/tp2pp2.log" && grep -q "r1/4 $P-a.*stage 0" "$T/tp2pp2.log" &&
    grep -q "r2/4 $P-b.*stage 1" "$T/tp2pp2.log" && grep -q "r3/4 $P-b.*stage 1" "$T/tp2pp2.log" ||
    { head -20 "$T/tp2pp2.log"; fail "ranks did not run on the two nodes"; }
$CHECK "$T/tp2pp2" "$EXP" --complete --ref "$W/ref" || fail "captions across nodes differ from one rank's"
echo "ok: --tp 2 --pp 2 across 2 nodes gives one rank's captions"

# 2. a node dies
"$C" mpirun "$P" -np 4 "${MPIX[@]}" "$BIN" caption $ARGS $INPUTS --out "$T/kill" --tp 2 --pp 2 \
    --max-seqs 1 --flush-interval 0 > "$T/kill1.log" 2>&1 &
job=$!
for _ in $(seq 600); do
  n=$(cat "$T"/kill/*.jsonl 2>/dev/null | wc -l)
  [ "$n" -ge 3 ] && break
  kill -0 $job 2>/dev/null || break
  sleep 0.1
done
kill -0 $job 2>/dev/null || { cat "$T/kill1.log"; fail "the job ended before the node could be killed"; }
t0=$(date +%s.%N)
"$C" kill "$P-b"
for _ in $(seq 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
if kill -0 $job 2>/dev/null; then
  kill -9 $job; fail "the job was still running 30 s after node $P-b died"
fi
wait $job; rc=$?
dt=$(echo "$(date +%s.%N) - $t0" | bc)
left=$(ip netns pids "$P-a" | wc -l)
echo "node $P-b killed: mpirun exited $rc after ${dt} s; $left process(es) left on $P-a"
[ "$rc" -ne 0 ] || fail "the job exited 0 after losing a node"
[ "$left" -eq 0 ] || { ip netns pids "$P-a" | xargs -r ps -o pid,args -p; fail "processes left on $P-a"; }
n1=$(cat "$T"/kill/*.jsonl 2>/dev/null | wc -l)
$CHECK "$T/kill" "$EXP" --partial --ref "$W/ref" || fail "partial output after the node died"
timeout 120 "$C" mpirun "$P" -np 4 "${MPIX[@]}" "$BIN" caption $ARGS $INPUTS --out "$T/kill" \
    --tp 2 --pp 2 > "$T/kill2.log" 2>&1 || { cat "$T/kill2.log"; fail "rerun exit $?"; }
$CHECK "$T/kill" "$EXP" --complete --ref "$W/ref" --count 29 || fail "after the rerun"
echo "ok: $n1 keys before the node died, every key exactly once after the rerun"
echo PASS
