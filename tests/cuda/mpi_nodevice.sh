#!/bin/sh
# mpi_nodevice.sh INTERNVL MODEL MPIRUN... - on a machine without a GPU, a 2-rank job that asks
# for --device cuda ends within 10 s on every rank with the "no CUDA device" message (not an
# internal check or a hang), and --device auto runs on the CPU and says so. Skipped (77) where
# a GPU is usable.
bin=$1 model=$2; shift 2
fail() { echo "mpi_nodevice: FAIL: $*"; exit 1; }
t0=$(date +%s)
out=$(timeout 10 "$@" -np 2 "$bin" chat --model "$model" --device cuda --tp 2 \
      --max-new-tokens 4 "hi" 2>&1); rc=$?
printf '%s\n' "$out" | grep -v '^\s*$' | head -20
if [ $rc -eq 0 ] && ! printf '%s\n' "$out" | grep -q "no CUDA device"; then
  echo "mpi_nodevice: a GPU is usable here; skipped"; exit 77
fi
[ $rc -ne 124 ] || fail "the job did not end within 10 s"
[ $rc -ne 0 ] || fail "--device cuda without a GPU exited 0"
for r in 0 1; do
  printf '%s\n' "$out" | grep -q "r$r/2.*--device cuda: no CUDA device.*--device cpu" ||
    fail "rank $r did not say 'no CUDA device' with the remedy"
done
printf '%s\n' "$out" | grep -q "FATAL" && fail "an internal check fired instead of the message"
out=$(timeout 60 "$@" -np 2 "$bin" chat --model "$model" --device auto --tp 2 \
      --max-new-tokens 4 "hi" 2>&1); rc=$?
printf '%s\n' "$out" | tail -5
[ $rc -eq 0 ] || fail "--device auto exited $rc"
printf '%s\n' "$out" | grep -q -e "--device auto: no CUDA device.*using the CPU backend" ||
  fail "--device auto did not say it fell back to the CPU"
echo "mpi_nodevice: ok ($(( $(date +%s) - t0 )) s)"
