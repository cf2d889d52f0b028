#!/bin/bash
# faults.sh INTERNVL DATA: the distributed engine never leaves a rank hanging.
#  1. a layout that does not fit the job or the model: clear error, every rank exits;
#  2. the model file missing on one rank (MPMD launch: rank 1 gets another path);
#  3. rank 1 SIGKILLed at load, prefill and decode (IVL_FAULT, core/check.h).
# Each case must end within 30 s with a non-zero exit and a message naming the rank.
set -u
bin=$1 data=$2
model=$data/h5/mini2b-tiny.h5
in=$data/ref/mini2b-tiny/batch3.in.h5
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
MPI="${MPIRUN:-mpirun} --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1"
fails=0

# expect NAME PATTERN CMD...: the command fails within 30 s and its output matches PATTERN.
expect() {
  local name=$1 pat=$2; shift 2
  local t0=$(date +%s)
  timeout 60 "$@" > "$out/log" 2>&1
  local rc=$? dt=$(( $(date +%s) - t0 ))
  if [ $rc -eq 0 ] || [ $rc -eq 124 ] || [ $dt -gt 30 ] || ! grep -Eq "$pat" "$out/log"; then
    echo "FAIL $name: rc=$rc after ${dt}s, expected a failure within 30 s matching /$pat/"
    tail -15 "$out/log"
    fails=$((fails + 1))
  else
    echo "ok   $name: rc=$rc after ${dt}s: $(grep -Eo "$pat" "$out/log" | head -1)"
  fi
  if ls "$out"/o.h5 >/dev/null 2>&1; then
    echo "FAIL $name: left an output file behind"; fails=$((fails + 1)); rm -f "$out"/o.h5
  fi
}

expect "world != tp x pp" "needs 4 ranks|--tp 2 --pp 2" \
  $MPI -np 3 "$bin" forward --model "$model" --inputs "$in" --dump "$out/o.h5" --tp 2 --pp 2
expect "tp does not divide heads" "does not divide" \
  $MPI -np 3 "$bin" forward --model "$model" --inputs "$in" --dump "$out/o.h5" --tp 3 --pp 1
expect "too many stages" "pp <= 4|1 <= pp" \
  $MPI -np 8 "$bin" forward --model "$model" --inputs "$in" --dump "$out/o.h5" --tp 1 --pp 8
expect "--vit-tp larger than the job" "vit-tp 4" \
  $MPI -np 2 "$bin" forward --model "$model" --inputs "$in" --dump "$out/o.h5" --tp 2 --vit-tp 4
expect "model file missing on rank 1" "r1/2.*(no-such|cannot open|No such)" \
  $MPI -np 1 "$bin" forward --model "$model" --inputs "$in" --dump "$out/o.h5" --tp 2 : \
       -np 1 "$bin" forward --model "$out/no-such.h5" --inputs "$in" --dump "$out/o.h5" --tp 2
for point in load prefill decode; do
  expect "rank 1 killed at $point" "rank 1.*(signal 9|Killed)|r1\] IVL_FAULT" \
    $MPI -np 4 -x IVL_FAULT=$point:1 "$bin" forward --model "$model" --inputs "$in" \
         --dump "$out/o.h5" --tp 2 --pp 2
done
[ $fails -eq 0 ] && echo "all fault cases passed" || { echo "$fails fault case(s) failed"; exit 1; }
