#!/bin/bash
# Captions under mpirun with tensor and pipeline parallelism; the token budget and --max-seqs
# are small so sequences join and leave the batch all the time. Captions must equal the
# single-rank greedy ones, one line per key, error lines for the bad inputs (also with --vit-tp
# and with more vision groups than a batch has tiles per group).
. "$(dirname "$0")/common.sh"
T=$W/layouts; rm -rf "$T"; mkdir -p "$T"
run() {  # name np args...
    local name=$1 np=$2; shift 2
    timeout 90 $MPI -np $np "$BIN" caption $ARGS $INPUTS --out "$T/$name" "$@" > "$T/$name.log" 2>&1 \
        || { cat "$T/$name.log"; fail "$name: exit $?"; }
    $CHECK "$T/$name" "$EXP" --complete --ref "$W/ref" || { cat "$T/$name.log"; fail "$name"; }
}
run tp2_pp2 4 --tp 2 --pp 2 --max-seqs 3 --batch-tokens 600
run pp2 2 --pp 2 --max-seqs 2
# Rank 0 sends each rank only the tiles it encodes: two --vit-tp groups of 2 ranks (both ranks
# of a group get the same share), and 3 vision groups (shares of 1 tile or none in a batch).
run tp2_pp2_vittp2 4 --tp 2 --pp 2 --vit-tp 2 --max-seqs 3 --batch-tokens 600
run pp3 3 --pp 3 --max-seqs 2
echo PASS
