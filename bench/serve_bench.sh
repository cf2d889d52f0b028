#!/bin/bash
# serve_bench.sh [BUILD] [OUT.jsonl]: the load figures of bench/RESULTS.md ("internvl serve"):
# bench/serve_load.py against `internvl serve` on the mini2b-tiny test model (BUILD/testdata,
# made by ctest's fixtures), one rank and tp 2 x pp 2 under mpirun: one client at a time
# (16 requests), then 64 concurrent streaming clients (128 requests); 16 new tokens each,
# one 448px tile + the prompt (313 prompt tokens).
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-bench/results/serve-load-$(date -u +%F).jsonl}
BIN=$BUILD/launcher/internvl MODEL=$BUILD/testdata/h5/mini2b-tiny.h5
IMG=/usr/share/doc/imagemagick-6-common/html/images/examples.jpg
PY=${IVL_PYTHON:-python3}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
run() {  # run LABEL [launcher...] --
  local label=$1; shift
  local pre=(); while [ "$1" != "--" ]; do pre+=("$1"); shift; done; shift
  rm -f "$W/port"
  "${pre[@]}" "$BIN" serve --model "$MODEL" --port 0 --port-file "$W/port" --max-queue 128 "$@" 2> "$W/log" &
  local pid=$!
  for _ in $(seq 600); do [ -s "$W/port" ] && break; sleep 0.1; done
  local url=http://127.0.0.1:$(cat "$W/port") rss=()
  [ ${#pre[@]} = 0 ] && rss=(--pid "$pid")
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$PY" bench/serve_load.py --url "$url" --image "$IMG" "${rss[@]}" --clients 1 --requests 16 --label "$label one-client" --json "$OUT"
  "$PY" bench/serve_load.py --url "$url" --image "$IMG" "${rss[@]}" --clients 64 --requests 128 --label "$label 64-clients" --json "$OUT"
  kill -USR1 "$pid"; wait "$pid"
}
run "1 rank" --
run "tp 2 x pp 2" mpirun --allow-run-as-root --oversubscribe -np 4 -x OPENBLAS_NUM_THREADS=1 -x OMP_NUM_THREADS=1 -- --tp 2 --pp 2
echo "appended to $OUT"
