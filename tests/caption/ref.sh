#!/bin/bash
# Makes the test inputs and the single-rank greedy reference that the other tests compare with.
. "$(dirname "$0")/common.sh"
rm -rf "$W" && mkdir -p "$W" || fail "cannot make $W"
$PY "$HERE/make_data.py" "$W/data" || fail "make_data.py"
timeout 60 "$BIN" caption $ARGS $INPUTS --out "$W/ref" > "$W/ref.log" 2>&1 || { cat "$W/ref.log"; fail "single-rank run"; }
cat "$W/ref.log"
$CHECK "$W/ref" "$EXP" --complete || fail "reference output"
# Rerun: everything is done, nothing is captioned twice, exit 0.
timeout 30 "$BIN" caption $ARGS $INPUTS --out "$W/ref" > "$W/ref2.log" 2>&1 || { cat "$W/ref2.log"; fail "rerun of a finished job"; }
grep -q "0 captioned, 29 skipped" "$W/ref2.log" || { cat "$W/ref2.log"; fail "rerun did not skip everything"; }
$CHECK "$W/ref" "$EXP" --complete || fail "reference output after the rerun"
echo PASS
