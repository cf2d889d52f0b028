#!/bin/bash
# gpu_product.sh - the `internvl` executable itself on a GPU machine without the Debian
# packages (the lent H100/H200 box): from the relocatable bundle, on real-size random-weight
# model files, one rank and 2-4 NCCL ranks on the one GPU. One call, at most 7.5 minutes
# (IVL_GPU_BUDGET_S, default 450): every step has a timeout, later steps shrink or are skipped
# when the budget runs out, and a failed step does not stop the others.
#
#   here (Debian, after scripts/install-deps.sh):   bench/gpu_product.sh --prepare
#       builds the kit the GPU box needs into build/gpu-kit/ (about 30 MiB): the bundle
#       (scripts/bundle.sh) and the InternLM2 tokenizer files (real vocabulary, 92553 tokens,
#       from tests/gen). Carry build/gpu-kit with the working tree.
#   on the GPU box, from the repo root:             bench/gpu_product.sh [--out DIR] [--no-26b]
#       [--device cpu] (the same flow on the CPU with the demo preset: a dry run of the script)
#
# What it runs there, with the bundle's `internvl` and `mpirun`, in this order (the 26B last,
# so a short budget loses only it):
#   1. real-size random-weight model files (`internvl convert --random-weights`): Mini-2B
#      (4.4 GB) and, at the end, InternVL-Chat-V1-5 (52 GB, skipped with --no-26b or when the
#      disk is short; one rank and --tp 2 --vit-tp 2);
#   2. one rank: `chat --device cuda` and `caption --device cuda` of docs/samples;
#   3. 2 and 4 ranks on the one GPU as separate nodes: each rank its own NCCL_HOSTID, NCCL's
#      socket transport over loopback (NCCL refuses two ranks on one GPU of one host), and
#      --gpu-share; layouts --tp 2, --pp 2, --tp 2 --pp 2, --vit-tp 2 with tp 2 and with tp 2 x pp 2
#      (Mini-2B), --tp 2 --vit-tp 2 (26B);
#      the captions are compared with one rank's (bench/gpu_product_compare.py): equal, or the
#      first differing token of each caption is listed;
#   4. `internvl bench --device cuda` on 1 and 2 ranks (JSON records with "comm" and the card).
# Output: DIR (default bench/results/gpu_product_<date>): the log, the captions, compare.txt,
# bench.jsonl; with $OUT set (the device tool) a copy goes there too.
set -u -o pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=$ROOT/build/gpu-kit
OUTDIR="" DEVICE=cuda WITH_26B=1 PREPARE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare) PREPARE=1 ;;
    --out) OUTDIR=$2; shift ;;
    --no-26b) WITH_26B=0 ;;
    --device) DEVICE=$2; shift ;;
    --kit) KIT=$2; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "gpu_product: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$PREPARE" = 1 ]; then
  set -e
  mkdir -p "$KIT/tok-internlm2"
  "$ROOT/scripts/bundle.sh" "$KIT/internvl-bundle.tar.xz"
  # the real InternLM2 vocabulary (Mini-2B, the 26B), and a small one for the CPU dry run
  mkdir -p "$KIT/tok-small"
  for fam in mini2b-realvocab:tok-internlm2 mini2b-tiny:tok-small; do
    gen=$ROOT/build/testdata/hf/${fam%%:*}
    if [ ! -f "$gen/tokenizer.model" ]; then
      /usr/bin/python3 "$ROOT/tests/gen/make_checkpoint.py" --family "${fam%%:*}" --out "$gen"
    fi
    for f in tokenizer.model tokenizer_config.json added_tokens.json special_tokens_map.json; do
      [ -f "$gen/$f" ] && cp "$gen/$f" "$KIT/${fam#*:}/"
    done
  done
  du -sh "$KIT"
  echo "gpu_product: kit ready in $KIT; carry build/gpu-kit to the GPU box and run bench/gpu_product.sh there"
  exit 0
fi

DATE=$(date -u +%Y-%m-%d)
[ -n "$OUTDIR" ] || OUTDIR=$ROOT/bench/results/gpu_product_$DATE
mkdir -p "$OUTDIR" || exit 2
rm -rf "$OUTDIR"/cap-* "$OUTDIR/bench.jsonl" "$OUTDIR/compare.txt"   # a rerun starts clean
LOG=$OUTDIR/gpu_product.log
: > "$LOG"
T0=$(date +%s)
FAILED=()
say() { echo "== [$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG"; }
BUDGET=${IVL_GPU_BUDGET_S:-450}   # the whole script, seconds: later steps shrink or are skipped
run_step() { # run_step NAME TIMEOUT CMD...
  local name=$1 to=$2 rc left; shift 2
  left=$(( BUDGET - ($(date +%s) - T0) ))
  if [ "$left" -lt 20 ]; then say "$name: SKIPPED (the ${BUDGET} s budget is spent)"; FAILED+=("$name (skipped)"); return 1; fi
  [ "$to" -le "$left" ] || to=$left
  say "$name (timeout ${to}s)"
  timeout --kill-after=10 "$to" "$@" > >(tee -a "$LOG") 2>&1
  rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then say "$name: TIMED OUT"; FAILED+=("$name (timeout)")
  elif [ $rc -ne 0 ]; then say "$name: FAILED (exit $rc)"; FAILED+=("$name (exit $rc)"); fi
  return $rc
}
finish() {
  say "done: ${#FAILED[@]} step(s) failed${FAILED[*]:+: ${FAILED[*]}}"
  if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then cp -r "$OUTDIR" "$OUT/" 2>/dev/null; fi
}
trap finish EXIT

# ---------------------------------------------------------------- 0. the bundle
WORK=${IVL_GPU_WORK:-/tmp/ivl-gpu-product}
rm -rf "$WORK"; mkdir -p "$WORK"
[ -f "$KIT/internvl-bundle.tar.xz" ] || { say "no $KIT/internvl-bundle.tar.xz: run bench/gpu_product.sh --prepare where the Debian packages are, and carry build/gpu-kit"; exit 2; }
tar -C "$WORK" -xf "$KIT/internvl-bundle.tar.xz" || exit 2
B=$WORK/internvl-bundle
IVL=$B/bin/internvl
MPI=("$B/bin/mpirun" --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS=4)
# The toolkit's libraries (cuBLAS, cudart) and NCCL, wherever this machine has them: the
# toolkit, or PyTorch's nvidia-* wheels.
libs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib; do [ -d "$d" ] && libs=$libs:$d; done
for d in $(python3 -c 'import nvidia, os; p = nvidia.__path__[0]; print(" ".join(os.path.join(p, x, "lib") for x in os.listdir(p)))' 2>/dev/null); do
  [ -d "$d" ] && libs=$libs:$d
done
export LD_LIBRARY_PATH=${libs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
say "bundle unpacked in $WORK; LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv | tee -a "$LOG"
df -h "$WORK" | tee -a "$LOG"

# ---------------------------------------------------------------- 1. Mini-2B: model file
# Mini-2B first (what the issue's evidence needs), the 26B after it, so the budget runs out on
# the optional part.
TOK=$KIT/tok-internlm2
M2=$WORK/mini-2b.h5 M26=$WORK/internvl-chat-v1-5.h5
P2=mini-2b P26=internvl-chat-v1-5
if [ "$DEVICE" = cpu ]; then P2=demo; WITH_26B=0; TOK=$KIT/tok-small; fi   # the dry run: the same flow, small
run_step "write $P2 (random weights)" 300 "$IVL" convert --random-weights $P2 --tokenizer-from "$TOK" --out "$M2" --no-progress
IMGS=$ROOT/docs/samples
CAP=(caption --input "$IMGS" --max-tiles 6 --max-new-tokens 32 --progress log --device "$DEVICE")

# Several ranks on the one GPU: each poses as its own host (NCCL_HOSTID), NCCL talks over
# loopback sockets (no P2P or shared memory between "hosts"), and the engine lets the ranks
# share the GPU (--gpu-share). as_hosts.sh NP CMD...: mpirun with one NCCL_HOSTID per rank
# (a script, so timeout can run it).
NCCL_ENV=(-x NCCL_SOCKET_IFNAME=lo -x NCCL_P2P_DISABLE=1 -x NCCL_SHM_DISABLE=1 -x NCCL_IB_DISABLE=1 -x NCCL_DEBUG=WARN -x IVL_COMM=${IVL_COMM:-auto})
AS_HOSTS=$WORK/as_hosts.sh
{
  echo '#!/bin/bash'
  echo 'np=$1; shift'
  printf 'exec'; printf ' %q' "${MPI[@]}" "${NCCL_ENV[@]}"
  echo ' -np "$np" bash -c '"'"'NCCL_HOSTID=ivl-node-$OMPI_COMM_WORLD_RANK exec "$@"'"'"' _ "$@"'
} > "$AS_HOSTS"
chmod +x "$AS_HOSTS"
compare() {
  run_step "compare captions with one rank's" 60 bash -c 'python3 "$0" "$1" --tokenizer "$2" > "$1/compare.txt"; rc=$?; cat "$1/compare.txt"; exit $rc' \
    "$ROOT/bench/gpu_product_compare.py" "$OUTDIR" "$TOK/tokenizer.model"
}

# ---------------------------------------------------------------- 2. Mini-2B: one rank
run_step "chat, 1 rank, $P2" 120 "$IVL" chat --model "$M2" --device "$DEVICE" --image "$IMGS/house.jpg" --max-tiles 6 --max-new-tokens 32 "Describe the image."
run_step "caption, 1 rank, $P2" 180 "$IVL" "${CAP[@]}" --model "$M2" --out "$OUTDIR/cap-2b-1rank"

# ---------------------------------------------------------------- 3. Mini-2B: NCCL ranks
for lay in "2:--tp 2" "2:--pp 2" "4:--tp 2 --pp 2" "2:--tp 2 --vit-tp 2" "4:--tp 2 --pp 2 --vit-tp 2"; do
  np=${lay%%:*} args=${lay#*:}
  tag=$(echo "$args" | tr -d ' -')
  # shellcheck disable=SC2086
  run_step "caption, $np ranks $args, $P2" 240 "$AS_HOSTS" "$np" "$IVL" "${CAP[@]}" --model "$M2" $args --gpu-share --out "$OUTDIR/cap-2b-$tag"
done
compare

# ---------------------------------------------------------------- 4. bench, 1 and 2 ranks
BENCH=(bench --preset "$P2" --random-weights --device "$DEVICE" --phases vit,prefill,decode --tiles 4 --prompt-lens 512 --batch-sizes 1,16,64 --context-lens 1024 --repeats 3 --json "$OUTDIR/bench.jsonl" --append)
run_step "bench, 1 rank, $P2" 240 "$IVL" "${BENCH[@]}"
run_step "bench, 2 ranks --tp 2, $P2" 240 "$AS_HOSTS" 2 "$IVL" "${BENCH[@]}" --tp 2 --gpu-share
[ -f "$OUTDIR/bench.jsonl" ] && python3 - "$OUTDIR/bench.jsonl" <<'EOF' | tee -a "$LOG"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print("%-9s world %d %-5s %-6s %s %s" % (r["phase"], r["layout"]["world"], r.get("comm"), r["backend"], r["device"], r.get("params", {})))
EOF

# ---------------------------------------------------------------- 5. the 26B, as time allows
if [ "$WITH_26B" = 1 ]; then
  # 52 GB: in RAM (/dev/shm, 128 GiB on the lent box) when it has room, else on the disk
  gb() { df -Pk "$1" 2>/dev/null | awk 'NR==2 {print int($4 / 1048576)}'; }
  if [ "$(gb /dev/shm || echo 0)" -ge 60 ]; then M26=/dev/shm/internvl-chat-v1-5.h5; fi
  free_gb=$(gb "$(dirname "$M26")")
  if [ "$free_gb" -lt 56 ]; then
    say "skipping the 26B: $free_gb GB free on $(dirname "$M26"), the file needs 52 GB"
  elif run_step "write $P26 (random weights, 52 GB)" 240 "$IVL" convert --random-weights $P26 --tokenizer-from "$TOK" --out "$M26" --no-progress; then
    run_step "caption, 1 rank, $P26" 180 "$IVL" "${CAP[@]}" --model "$M26" --out "$OUTDIR/cap-26b-1rank"
    run_step "caption, 2 ranks --tp 2 --vit-tp 2, $P26" 240 "$AS_HOSTS" 2 "$IVL" "${CAP[@]}" --model "$M26" --tp 2 --vit-tp 2 --gpu-share --out "$OUTDIR/cap-26b-tp2vittp2"
    compare
  fi
  rm -f "$M26"
fi
grep -h "collectives:" "$LOG" | sort | uniq -c | tee -a "$OUTDIR/compare.txt"
