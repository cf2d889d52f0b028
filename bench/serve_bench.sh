#!/bin/bash
# serve_bench.sh [BUILD] [OUT.jsonl]: the load figures of bench/RESULTS.md ("internvl serve"):
# bench/serve_load.py against `internvl serve` on the mini2b-tiny test model (BUILD/testdata,
# made by ctest's fixtures). Each server gets one client at a time, then 64 concurrent
# streaming clients, in the same run (the ratios compare those two):
#  - 1 rank, an image request (one 448px tile, 313 prompt tokens), 16 new tokens: 16 requests
#    one at a time, then 128 with 64 clients;
#  - the same with --no-prefix-cache (every prompt computed: the image's prefix is not reused);
#  - 1 rank, text only, 64 new tokens: 64 requests one at a time, then 256 with 64 clients
#    (the engine's batching without the image decoding and tiling of the HTTP threads);
#  - tp 2 x pp 2 under mpirun, the image request.
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
mkdir -p "$(dirname "$OUT")"
run() {  # run LABEL "LOAD ARGS" [launcher...] -- [serve args...]
  local label=$1 load=$2; shift 2
  local pre=(); while [ "$1" != "--" ]; do pre+=("$1"); shift; done; shift
  rm -f "$W/port"
  "${pre[@]}" "$BIN" serve --model "$MODEL" --port 0 --port-file "$W/port" --max-queue 256 "$@" 2> "$W/log" &
  local pid=$!
  for _ in $(seq 600); do [ -s "$W/port" ] && break; sleep 0.1; done
  local url=http://127.0.0.1:$(cat "$W/port") rss=()
  [ ${#pre[@]} = 0 ] && rss=(--pid "$pid")
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  local one=16 many=128
  [[ "$load" == *--text-only* ]] && one=64 many=256
  # shellcheck disable=SC2086
  "$PY" bench/serve_load.py --url "$url" --image "$IMG" $load "${rss[@]}" --clients 1 --requests $one --label "$label one-client" --json "$OUT"
  # shellcheck disable=SC2086
  "$PY" bench/serve_load.py --url "$url" --image "$IMG" $load "${rss[@]}" --clients 64 --requests $many --label "$label 64-clients" --json "$OUT"
  kill -USR1 "$pid"; wait "$pid"
}
run "1 rank image" "--max-tokens 16" --
run "1 rank image no-prefix-cache" "--max-tokens 16" -- --no-prefix-cache
run "1 rank text" "--max-tokens 64 --text-only" --
run "tp 2 x pp 2 image" "--max-tokens 16" mpirun --allow-run-as-root --oversubscribe -np 4 -x OPENBLAS_NUM_THREADS=1 -x OMP_NUM_THREADS=1 -- --tp 2 --pp 2
echo "appended to $OUT"
# The ratios of each pair (64 clients / one client), from this run's records.
"$PY" - "$OUT" <<'PYEOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
last = {}
for r in recs:
    last[r["label"]] = r
for lab, one in last.items():
    if not lab.endswith(" one-client"):
        continue
    many = last.get(lab[: -len("one-client")] + "64-clients")
    if not many:
        continue
    print(f"{lab[:-11]}: TTFT p50 {one['ttft_p50_s']} -> {many['ttft_p50_s']} s, p99 {one['ttft_p99_s']} -> "
          f"{many['ttft_p99_s']} s; throughput {one['tokens_per_s']} -> {many['tokens_per_s']} tokens/s "
          f"(x{many['tokens_per_s'] / one['tokens_per_s']:.2f}), requests/s x{many['requests_per_s'] / one['requests_per_s']:.2f}; "
          f"most running {many['peak_running']}")
PYEOF
