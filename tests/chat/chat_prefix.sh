#!/bin/bash
# chat_prefix.sh INTERNVL IMAGE MODEL...: a three-turn conversation with an image in the first
# turn. With the prefix cache (the default) turns 2 and 3 prefill only what the earlier turns
# did not compute (--verbose reports it: the reused positions are the earlier conversation's
# full KV blocks, image rows included), and every answer equals a run that recomputes the
# whole conversation at every turn (--no-prefix-cache), for each model given (one tile); the
# first model also with 2 tiles under mpirun with tp 2 x pp 2. Past the length where the
# model's RoPE scaling starts (the tiny Phi-3's original_max_position 512, the tiny V1.5's
# max_position 640) nothing may be reused (keys computed earlier would differ): 0 reused,
# the same answers.
set -eu
bin=$1 img=$2; shift 2
models=("$@")
q=$(printf 'What is in this picture?\nDescribe the colours.\n再详细一点。\n')
log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() {  # model extra-args...: prints the answers; the log goes to $log
  local m=$1; shift
  echo "$q" | timeout 120 "${pre[@]}" "$bin" chat --model "$m" --image "$img" \
    --max-new-tokens 12 --verbose "$@" 2> "$log"
}
check() {  # name model reuse(yes|no) args...
  local name=$1 m=$2 want=$3; shift 3
  local fresh reused line first n r p
  fresh=$(run "$m" --no-prefix-cache "$@")
  grep -q "turn 2: [0-9]* prompt positions, 0 reused" "$log" || { cat "$log"; echo "FAIL $name: --no-prefix-cache reused"; exit 1; }
  reused=$(run "$m" "$@")
  if [ "$reused" != "$fresh" ]; then
    echo "FAIL $name: answers differ"; echo "fresh:  $fresh"; echo "reused: $reused"; cat "$log"; exit 1
  fi
  first=$(grep -o "turn 1: [0-9]* prompt positions" "$log" | grep -o "[0-9]* prompt" | grep -o "[0-9]*")
  for t in 2 3; do
    line=$(grep -o "turn $t: [0-9]* prompt positions, [0-9]* reused from the KV cache, [0-9]* prefilled" "$log") \
      || { cat "$log"; echo "FAIL $name: no report for turn $t"; exit 1; }
    read -r _ _ n _ _ r _ _ _ _ _ p _ <<< "$line"
    if [ "$want" = no ]; then
      [ "$r" -eq 0 ] || { cat "$log"; echo "FAIL $name turn $t: $r positions reused past the RoPE limit"; exit 1; }
      echo "ok   $name turn $t: $n prompt positions, past the RoPE scaling limit: none reused, the same answers"
      continue
    fi
    # The earlier conversation comes from the cache but for its last partial block: at least
    # the first turn's prompt minus one block of 16.
    if [ "$r" -lt $((first - 16)) ] || [ $((r + p)) -ne "$n" ]; then
      cat "$log"; echo "FAIL $name turn $t: $n positions, $r reused, $p prefilled (turn 1: $first)"; exit 1
    fi
    echo "ok   $name turn $t: $n prompt positions, $r reused, $p prefilled; the same answers as recomputing"
  done
}
pre=()
for m in "${models[@]}"; do check "$(basename "$m" .h5) 1 tile" "$m" yes --max-tiles 1; done
[ ${#models[@]} -gt 1 ] && check "$(basename "${models[1]}" .h5) 2 tiles" "${models[1]}" no --max-tiles 2
pre=(${MPIRUN:-mpirun} --allow-run-as-root --oversubscribe -np 4 -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1)
check "$(basename "${models[0]}" .h5) tp2 pp2" "${models[0]}" yes --max-tiles 2 --tp 2 --pp 2
echo PASS
