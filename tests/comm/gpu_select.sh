#!/bin/sh
# gpu_select.sh BIN MPIRUN... - the GPU each of 4 ranks on one node takes, for the layouts
# clusters give (comm/gpu_select.c): one shared set of GPUs, a set per pair of ranks, and one
# GPU bound to each task (Slurm --gpus-per-task=1 / --gpu-bind: CUDA_VISIBLE_DEVICES=<its GPU>
# and one visible device, where the old device = local rank asked for device 1 of 1).
bin=$1; shift
fail() { echo "gpu_select: FAIL: $*"; exit 1; }
# run VISIBLE SHARE VISMODE: VISMODE unset|pairs|bound sets each rank's CUDA_VISIBLE_DEVICES
run() {
  vis=$1 share=$2 mode=$3; shift 3
  "$@" -np 4 sh -c '
    r=$OMPI_COMM_WORLD_RANK
    case '"$mode"' in
      unset) unset CUDA_VISIBLE_DEVICES ;;
      pairs) if [ $r -lt 2 ]; then export CUDA_VISIBLE_DEVICES=0,1; else export CUDA_VISIBLE_DEVICES=2,3; fi ;;
      bound) export CUDA_VISIBLE_DEVICES=$r ;;
    esac
    exec '"$bin $vis $share"'' 2>&1 | sort
}
check() { # check OUT EXPECTED-LINES
  printf '%s\n' "$1" | grep '^rank' | sed 's/^rank \([0-9]*\) \(.*\)/\1 \2/' > /tmp/gs.$$.got
  printf '%s\n' "$2" > /tmp/gs.$$.want
  if ! diff /tmp/gs.$$.want /tmp/gs.$$.got; then rm -f /tmp/gs.$$.*; fail "$3"; fi
  rm -f /tmp/gs.$$.*
}
mpi=$*
out=$(run 4 0 unset $mpi); echo "$out"
check "$out" "0 device 0 index 0 nranks 4 shared 0
1 device 1 index 1 nranks 4 shared 0
2 device 2 index 2 nranks 4 shared 0
3 device 3 index 3 nranks 4 shared 0" "4 ranks, 4 GPUs"
out=$(run 1 0 bound $mpi); echo "$out"
check "$out" "0 device 0 index 0 nranks 1 shared 0
1 device 0 index 0 nranks 1 shared 0
2 device 0 index 0 nranks 1 shared 0
3 device 0 index 0 nranks 1 shared 0" "one GPU bound to each task"
out=$(run 2 0 pairs $mpi); echo "$out"
check "$out" "0 device 0 index 0 nranks 2 shared 0
1 device 1 index 1 nranks 2 shared 0
2 device 0 index 0 nranks 2 shared 0
3 device 1 index 1 nranks 2 shared 0" "two GPUs per pair of ranks"
out=$(run 2 1 unset $mpi); echo "$out"
check "$out" "0 device 0 index 0 nranks 4 shared 1
1 device 1 index 1 nranks 4 shared 1
2 device 0 index 2 nranks 4 shared 1
3 device 1 index 3 nranks 4 shared 1" "--gpu-share: 4 ranks on 2 GPUs"
out=$(run 2 0 unset $mpi); echo "$out"
n=$(printf '%s\n' "$out" | grep -c 'refused: 4 ranks on this node see the same 2 GPUs.*--gpu-share')
[ "$n" = 4 ] || fail "4 ranks on 2 GPUs without --gpu-share must be refused on every rank with the message"
echo "gpu_select: ok"
