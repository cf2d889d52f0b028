#!/bin/bash
# caption_kv_bench.sh - `internvl caption` images/s with the paged KV cache and the scheduler
# against the fixed-slot cache it replaced (issue 14), the real pipeline on both sides, in one
# run on this machine (CPU).
#
#   bench/caption_kv_bench.sh [--baseline REV] [--images N] [--new-tokens N] [--max-tiles N]
#                             [--rounds R] [--out FILE.jsonl]
#
# The model: Mini-2B's shapes with random weights and the InternLM2 tokenizer of the test
# fixtures (`internvl convert --random-weights mini-2b --tokenizer-from`), so the compute is a
# real Mini-2B's. The inputs: N synthetic one-tile photos (noise, 448 x 448 JPEG). The budget:
# the old engine with --max-seqs 8 (8 slots of the longest prompt at --max-tiles + the new
# tokens, the issue's "KV budget where the old slabs held 8 sequences"); the new one with
# --kv-mem of the same bytes and --max-seqs 64, so its batch is bounded by what the images
# really use. The baseline is REV (default bde8f05, the last commit with the slot cache) built
# in build-baseline/ (CPU only). Runs alternate old, new, old, new... (--rounds, default 1)
# so a load change on the machine hits both; images/s = images / the run's own wall time
# (its summary line). CPU time (user + sys), peak RSS, the 5-minute load average after each
# run and the new engine's decode batch are recorded too.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REV=bde8f05 N=16 NEW=64 TILES=12 ROUNDS=1 OUT=bench/results/caption-kv-cpu.jsonl
while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) REV=$2; shift 2 ;;
    --images) N=$2; shift 2 ;;
    --new-tokens) NEW=$2; shift 2 ;;
    --max-tiles) TILES=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "caption_kv_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
NEWBIN=$ROOT/build/launcher/internvl
TOK=$ROOT/build/testdata/hf/mini2b-realvocab
[ -x "$NEWBIN" ] || { echo "build the engine first (build/launcher/internvl)" >&2; exit 1; }
[ -f "$TOK/tokenizer.model" ] || { echo "no $TOK: run the tests once (ctest -R gen_hf) to make it" >&2; exit 1; }
W=${IVL_BENCH_WORK:-/tmp/ivl-caption-kv-bench}
mkdir -p "$W"

# The baseline binary.
BASE=$ROOT/build-baseline
if [ ! -x "$BASE/bin/internvl" ] || [ "$(cat "$BASE/rev" 2>/dev/null)" != "$REV" ]; then
  rm -rf "$BASE/src"; mkdir -p "$BASE"
  git worktree add --detach "$BASE/src" "$REV" >/dev/null 2>&1 || git -C "$BASE/src" checkout -q "$REV"
  cmake -S "$BASE/src" -B "$BASE/build" -DIVL_CUDA=OFF -DCMAKE_BUILD_TYPE=Release -DIVL_TESTS=OFF >/dev/null
  cmake --build "$BASE/build" -j2 --target internvl >/dev/null
  mkdir -p "$BASE/bin"; cp "$BASE/build/launcher/internvl" "$BASE/bin/internvl"
  echo "$REV" > "$BASE/rev"
  git worktree remove --force "$BASE/src" >/dev/null 2>&1 || true
fi
OLDBIN=$BASE/bin/internvl

M=$W/mini-2b.h5
[ -f "$M" ] || "$NEWBIN" convert --random-weights mini-2b --tokenizer-from "$TOK" --out "$M" --no-progress
rm -rf "$W/imgs"; mkdir -p "$W/imgs"
/usr/bin/python3 - "$W/imgs" "$N" <<'PYEOF'
import random, sys
from PIL import Image
rng = random.Random(1)
for i in range(int(sys.argv[2])):
    im = Image.effect_noise((448, 448), 40 + i).convert("RGB")
    im.save("%s/img%03d.jpg" % (sys.argv[1], i), quality=90)
PYEOF

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$(nproc)}
ARGS=(caption --model "$M" --input "$W/imgs" --max-tiles "$TILES" --max-new-tokens "$NEW" --progress log --log-interval 60)
# The old engine's 8 slots, in bytes: from its own log line.
run() {  # label bin args...
  local label=$1 bin=$2; shift 2
  rm -rf "$W/out-$label"
  /usr/bin/time -f "%M %U %S" -o "$W/rss-$label" "$bin" "${ARGS[@]}" --out "$W/out-$label" "$@" > "$W/$label.log" 2>&1 \
    || { cat "$W/$label.log"; echo "run $label failed" >&2; exit 1; }
  local secs ips rss cpu load
  secs=$(grep -o "outputs complete; [0-9.]* s" "$W/$label.log" | tail -1 | grep -o "[0-9.]* s" | cut -d' ' -f1)
  ips=$(awk -v n="$N" -v s="$secs" 'BEGIN { printf "%.4f", n / s }')
  read -r rss u sy < "$W/rss-$label"
  rss=$(( rss / 1024 ))
  cpu=$(awk -v u="$u" -v s="$sy" 'BEGIN { printf "%.1f", u + s }')
  load=$(cut -d' ' -f2 /proc/loadavg)
  echo "$label $ips images/s ($secs s, CPU $cpu s), peak RSS $rss MiB, load average $load"
  printf '%s %s %s %s %s\n' "$label" "$ips" "$rss" "$cpu" "$load" >> "$W/runs"
}
rm -f "$W/runs"
for r in $(seq 1 "$ROUNDS"); do
  run "old$r" "$OLDBIN" --max-seqs 8
  slots_mib=$(grep -o "KV cache: 8 slots x [0-9]* tokens, [0-9.]* MiB" "$W/old$r.log" | grep -o "[0-9.]* MiB" | cut -d' ' -f1)
  run "new$r" "$NEWBIN" --max-seqs 64 --kv-mem "${slots_mib}M"
done
peak=$(grep -o "peak in flight: [0-9]*" "$W/new1.log" | grep -o "[0-9]*$")
/usr/bin/python3 - "$W/runs" "$OUT" "$N" "$NEW" "$TILES" "$REV" "$slots_mib" "$peak" <<'PYEOF'
import json, platform, statistics, subprocess, sys, time
runs = [l.split() for l in open(sys.argv[1])]
old = [float(r[1]) for r in runs if r[0].startswith("old")]
new = [float(r[1]) for r in runs if r[0].startswith("new")]
rss = {r[0]: int(r[2]) for r in runs}
cpu_s = {r[0]: float(r[3]) for r in runs}
load5 = {r[0]: float(r[4]) for r in runs}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rec = {"bench": "caption_kv", "date": time.strftime("%Y-%m-%d"), "device": cpu,
       "nproc": int(subprocess.check_output(["nproc"]).decode()), "backend": "cpu",
       "model": "mini-2b (random weights)", "images": int(sys.argv[3]), "new_tokens": int(sys.argv[4]),
       "max_tiles": int(sys.argv[5]), "baseline": sys.argv[6], "kv_mib": float(sys.argv[7]),
       "old_images_s": old, "new_images_s": new, "ratio": statistics.median(new) / statistics.median(old),
       "new_peak_in_flight": int(sys.argv[8] or 0), "peak_rss_mib": rss,
       "cpu_s": cpu_s, "loadavg_5min_after": load5}
open(sys.argv[2], "a").write(json.dumps(rec) + "\n")
print(json.dumps(rec))
PYEOF
