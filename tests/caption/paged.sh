#!/bin/bash
# The paged KV cache and the scheduler under `caption` (issue 14), on small one-tile images with
# --max-tiles 40 (a worst-case slot would be 41 tiles of positions):
#   roomy:   one image at a time (--max-seqs 1), the default cache: the reference captions;
#   budget:  --kv-mem of two worst-case sequences (what the old fixed slots would have held: 2
#            in flight) and --max-seqs 16: many sequences in flight, the same captions;
#   preempt: 2-position blocks, no prefix sharing, and room for three prompts and 6 more
#            positions: sequences run out of blocks while decoding, are paused and recomputed;
#            the same captions;
#   tp2pp2:  the preempting run under mpirun with tp 2 x pp 2: the same captions;
#   small:   a cache that cannot hold even a one-tile image: a clear error with the numbers;
#   memory:  64 and then 256 images: the peak resident memory stays flat (no growth per image;
#            the KV pool is fixed, and a leak of one image's pixels, 2.4 MB a tile, would show).
. "$(dirname "$0")/common.sh"
T=$W/paged; rm -rf "$T"; mkdir -p "$T/imgs"
$PY - "$T/imgs" <<'PYEOF' || fail "making the images"
import random, sys
from PIL import Image
rng = random.Random(14)
for i in range(16):
    w = h = rng.choice([64, 96, 128, 160])   # square and small: one tile, no thumbnail
    im = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    px = im.load()
    for _ in range(400):
        px[rng.randrange(w), rng.randrange(h)] = tuple(rng.randrange(256) for _ in range(3))
    im.save("%s/img%02d.png" % (sys.argv[1], i))
PYEOF
A="--model $MODEL --input $T/imgs --max-tiles 40 --max-new-tokens 8 --threads 2 --log-interval 5"
run() {  # name args...
    local name=$1; shift
    timeout 100 "$BIN" caption $A --out "$T/$name" "$@" > "$T/$name.log" 2>&1 \
        || { cat "$T/$name.log"; fail "$name: exit $?"; }
}
same() {  # name: captions equal the roomy run's, every key
    $PY - "$T/roomy" "$T/$1" <<'PYEOF' || { cat "$T/$1.log"; fail "$1: captions differ from the roomy run"; }
import glob, json, sys
def load(d):
    out = {}
    for p in glob.glob(d + "/*.jsonl"):
        for line in open(p):
            j = json.loads(line)
            out[j["key"]] = j.get("caption", j.get("error"))
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
assert len(a) == 16 and a == b, (len(a), len(b), [k for k in a if a.get(k) != b.get(k)][:3])
PYEOF
}
peak() { grep -o "peak in flight: [0-9]*" "$T/$1.log" | grep -o "[0-9]*$"; }

run roomy --max-seqs 1
grep -q "peak in flight: 1 sequences" "$T/roomy.log" || { cat "$T/roomy.log"; fail "roomy: not one at a time"; }
bpp=$(grep -o "positions, [0-9]* bytes each" "$T/roomy.log" | grep -o "[0-9]* bytes" | grep -o "[0-9]*")
need=$(grep -o "one image needs at most [0-9]*" "$T/roomy.log" | grep -o "[0-9]*$")
need1=$(grep -o '"prompt_tokens":[0-9]*' "$T"/roomy/*.jsonl | head -1 | grep -o "[0-9]*$")
need1=$(( need1 + 8 ))   # a one-tile image: its prompt + 8 new tokens
[ -n "$bpp" ] && [ -n "$need" ] || { cat "$T/roomy.log"; fail "no KV description in the log"; }
echo "one position: $bpp bytes a rank; worst case per image (41 tiles): $need positions"

run budget --max-seqs 16 --kv-mem $(( 2 * need * bpp ))
p=$(peak budget)
[ "${p:-0}" -ge 8 ] || { cat "$T/budget.log"; fail "budget: peak in flight ${p:-?}, expected >= 8 where fixed slots held 2"; }
same budget
echo "budget of 2 worst-case slots: peak in flight $p sequences, same captions"

tight=$(( (3 * (need1 - 8) + 6) * bpp ))
run preempt --max-seqs 16 --kv-block 2 --no-prefix-cache --kv-mem $tight
grep -Eq "[1-9][0-9]* preemptions" "$T/preempt.log" || { cat "$T/preempt.log"; fail "preempt: no preemption"; }
same preempt
echo "preempt: $(grep -o "[0-9]* preemptions" "$T/preempt.log"), same captions"

timeout 120 $MPI -np 4 "$BIN" caption $A --out "$T/tp2pp2" --tp 2 --pp 2 --max-seqs 16 --kv-block 2 \
    --no-prefix-cache --kv-mem $tight > "$T/tp2pp2.log" 2>&1 || { cat "$T/tp2pp2.log"; fail "tp2pp2: exit $?"; }
grep -Eq "[1-9][0-9]* preemptions" "$T/tp2pp2.log" || { cat "$T/tp2pp2.log"; fail "tp2pp2: no preemption"; }
same tp2pp2
echo "tp 2 x pp 2: $(grep -o "[0-9]* preemptions" "$T/tp2pp2.log"), same captions"

if timeout 60 "$BIN" caption $A --out "$T/small" --kv-mem 16K > "$T/small.log" 2>&1; then
    cat "$T/small.log"; fail "small: a cache too small for one image was accepted"
fi
grep -q "the KV cache is too small: --kv-mem .* holds [0-9]* positions .* one request needs $need1 positions; give --kv-mem [0-9]*M or more" "$T/small.log" \
    || { cat "$T/small.log"; fail "small: no clear error"; }
echo "small: $(grep -o "the KV cache is too small.*" "$T/small.log" | head -1)"
# Memory: 64 and then 256 images (copies), the same cache and queue: the peak stays flat (the
# decoded-image queue and the KV pool are bounded; a leak of the pixels would add 2.4 MB an
# image, 460 MB here). Run to run the peak varies by some 30 MB (malloc arenas of the decode
# threads), hence the margin.
if [ -n "${ASAN_OPTIONS:-}" ]; then
    echo "memory check skipped under AddressSanitizer (its quarantine holds freed memory)"
    echo PASS
    exit 0
fi
mkdir -p "$T/many64" "$T/many256"
for i in $(seq 0 15); do for c in a b c d; do
    cp "$T/imgs/img$(printf %02d $i).png" "$T/many64/img$(printf %02d $i)$c.png"
    for e in 1 2 3 4; do cp "$T/imgs/img$(printf %02d $i).png" "$T/many256/img$(printf %02d $i)$c$e.png"; done
done; done
for n in 64 256; do
    MALLOC_ARENA_MAX=2 timeout 150 "$BIN" caption --model "$MODEL" --input "$T/many$n" --max-tiles 40 \
        --max-new-tokens 8 --threads 2 --max-seqs 16 --queue 8 --kv-mem $(( 2 * need * bpp )) \
        --out "$T/out$n" > "$T/many$n.log" 2>&1 || { cat "$T/many$n.log"; fail "many$n: exit $?"; }
done
$PY - "$T/many64.log" "$T/many256.log" <<'PYEOF' || fail "memory grew with the number of images"
import re, sys
rss = [float(re.search(r"peak resident memory ([0-9.]+) MiB", open(p).read()).group(1)) for p in sys.argv[1:]]
assert rss[1] <= rss[0] + 64, rss
print("peak RSS: 64 images %.1f MiB, 256 images %.1f MiB" % tuple(rss))
PYEOF
echo PASS
