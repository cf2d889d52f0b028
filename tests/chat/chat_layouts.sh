#!/bin/bash
# chat_layouts.sh INTERNVL MODEL IMAGE: a two-turn `internvl chat` conversation (questions on
# stdin, two images) gives the same streamed text under mpirun with tp 2 x pp 2 and tp 4 as
# on one rank.
set -eu
bin=$1 model=$2 img=$3
q=$(printf 'What is in these pictures?\n请再详细一点。\n')
# run LAUNCH_PREFIX... -- LAYOUT_FLAGS...
run() {
  local pre=() ; while [ "$1" != "--" ]; do pre+=("$1"); shift; done; shift
  echo "$q" | timeout 100 "${pre[@]}" "$bin" chat --model "$model" --image "$img" --image "$img" \
    --max-tiles 2 --max-new-tokens 12 "$@" 2>/dev/null
}
one=$(run --)
for lay in "2 2" "4 1"; do
  set -- $lay
  got=$(run ${MPIRUN:-mpirun} --allow-run-as-root --oversubscribe -np $(($1 * $2)) \
        -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 -- --tp $1 --pp $2)
  if [ "$got" != "$one" ]; then
    echo "FAIL tp $1 pp $2:"; echo "one rank: $one"; echo "layout:   $got"; exit 1
  fi
  echo "ok   tp $1 pp $2: same two answers as one rank ($(echo "$one" | wc -c) bytes)"
done
