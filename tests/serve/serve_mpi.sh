#!/bin/bash
# serve_mpi.sh INTERNVL MODEL IMAGE: `internvl serve` under mpirun.
#  - tp 2 x pp 2 and pp 2 x vit-tp 2 answer a greedy request with an image (plain and streamed)
#    with exactly the text `internvl chat` prints on one rank, also when batched with other
#    concurrent requests, and the second turn of a conversation reuses the first's KV blocks
#    (usage.prompt_tokens_details.cached_tokens > 0) with chat's second answer;
#  - 4 ranks, one non-zero rank killed with SIGKILL while a request streams: every process is
#    gone within 30 s and the client gets an error (a cut stream), not a hang.
set -u
BIN=$1 MODEL=$2 IMG=$3
MODEL_ID=$(basename "$MODEL" .h5)
. "$(dirname "$0")/serve_lib.sh"
MPI=(${MPIRUN:-mpirun} --allow-run-as-root --oversubscribe -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1)
Q="Describe the image."
want=$(OPENBLAS_NUM_THREADS=1 "$BIN" chat --model "$MODEL" --image "$IMG" --max-tiles 2 --max-new-tokens 12 "$Q" 2>/dev/null)
[ -n "$want" ] || fail "internvl chat printed nothing"
Q2="请再详细一点。"
mapfile -t two < <(printf '%s\n%s\n' "$Q" "$Q2" | OPENBLAS_NUM_THREADS=1 "$BIN" chat --model "$MODEL" \
                   --image "$IMG" --max-tiles 2 --max-new-tokens 10 2>/dev/null)
[ "${#two[@]}" = 2 ] || fail "chat gave ${#two[@]} answer lines"
turn2_body "$WORK/turn2" "$Q" "${two[0]}" "$Q2"

stream_text() {  # stream_text SSEFILE: the concatenated deltas
  "$PY" -c '
import json, sys
t = ""
for l in open(sys.argv[1], encoding="utf-8"):
    if l.startswith("data: {"):
        for c in json.loads(l[6:])["choices"]: t += c["delta"].get("content", "")
sys.stdout.write(t)' "$1"
}

for lay in "-np 4 -- --tp 2 --pp 2" "-np 2 -- --pp 2 --vit-tp 2"; do
  # shellcheck disable=SC2086
  serve_start "${MPI[@]}" $lay
  chat_body "$WORK/req" "$Q" "$IMG" ',"max_tokens":12,"temperature":0,"max_tiles":2'
  post "$WORK/req"
  got=$(json_get "$WORK/resp" 'd["choices"][0]["message"]["content"]')
  [ "$STATUS" = 200 ] && [ "$got" = "$want" ] || fail "$lay: HTTP $STATUS '$got' vs chat '$want'"
  chat_body "$WORK/req" "$Q" "$IMG" ',"max_tokens":12,"temperature":0,"max_tiles":2,"stream":true'
  curl -sN --max-time 120 --data-binary @"$WORK/req" "$URL/v1/chat/completions" > "$WORK/sse"
  [ "$(stream_text "$WORK/sse")" = "$want" ] || fail "$lay streamed: '$(stream_text "$WORK/sse")'"
  ok "mpirun ${lay/-- /}: plain and streamed answers = internvl chat on one rank"
  # Continuous batching across ranks: concurrent requests (images and text only) in one tick's
  # message; each image request = chat; then the second turn reuses the first's KV blocks.
  chat_body "$WORK/req" "$Q" "$IMG" ',"max_tokens":12,"temperature":0,"max_tiles":2'
  chat_body "$WORK/text" "hi" "" ',"max_tokens":5'
  cpids=()
  for i in 1 2 3; do
    curl -s -o "$WORK/conc$i" --max-time 120 --data-binary @"$WORK/req" "$URL/v1/chat/completions" &
    cpids+=($!)
  done
  curl -s -o "$WORK/conc4" --max-time 120 --data-binary @"$WORK/text" "$URL/v1/chat/completions" &
  cpids+=($!)
  wait "${cpids[@]}"
  for i in 1 2 3; do
    got=$(json_get "$WORK/conc$i" 'd["choices"][0]["message"]["content"]')
    [ "$got" = "$want" ] || fail "$lay: concurrent request $i: '$got' vs chat '$want'"
  done
  [ "$(json_get "$WORK/conc4" 'd["usage"]["completion_tokens"]')" = 5 ] || fail "$lay: concurrent text request: $(cat "$WORK/conc4")"
  post "$WORK/turn2"
  got=$(json_get "$WORK/resp" 'd["choices"][0]["message"]["content"]')
  cached=$(json_get "$WORK/resp" 'd["usage"]["prompt_tokens_details"]["cached_tokens"]')
  [ "$STATUS" = 200 ] && [ "$got" = "${two[1]}" ] && [ "$cached" -gt 0 ] \
    || fail "$lay: second turn: HTTP $STATUS '$got' vs chat '${two[1]}', cached_tokens $cached"
  ok "mpirun ${lay/-- /}: 4 concurrent requests (3 = chat), second turn = chat with $cached cached prompt tokens"
  if [ "$lay" != "-np 4 -- --tp 2 --pp 2" ]; then serve_stop USR1; ok "SIGUSR1 to mpirun (forwarded to the ranks): exit 0"; continue; fi

  # Kill rank 2 mid-stream.
  chat_body "$WORK/req" "$Q" "$IMG" ',"max_tokens":30000,"max_tiles":2,"stream":true'
  curl -sN --max-time 60 --data-binary @"$WORK/req" "$URL/v1/chat/completions" > "$WORK/sse" 2>/dev/null &
  cpid=$!
  for _ in $(seq 100); do grep -q '"content":"[^"]' "$WORK/sse" && break; sleep 0.1; done
  grep -q '"content":"[^"]' "$WORK/sse" || fail "no tokens streamed before the kill"
  ranks=$(pgrep -P "$SERVE_PID")
  victim=
  for p in $ranks; do
    r=$(tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
    [ "$r" = 2 ] && victim=$p
  done
  [ -n "$victim" ] || fail "rank 2 not found among mpirun's children ($ranks)"
  kill -KILL "$victim"
  t0=$(date +%s%N)
  for _ in $(seq 300); do
    alive=0
    for p in $SERVE_PID $ranks; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  dt=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ $alive = 0 ] || fail "processes still alive 30 s after rank 2 was killed: $(ps -o pid,cmd -p "$SERVE_PID,${ranks//$'\n'/,}")"
  wait "$cpid"; crc=$?
  grep -q '^data: \[DONE\]' "$WORK/sse" && fail "the client got a complete stream despite the dead rank"
  [ $crc != 0 ] || fail "curl exited 0 on a cut stream"
  SERVE_PID=
  ok "rank 2 killed mid-stream: all 4 ranks and mpirun gone in $dt ms, the client's stream was cut (curl exit $crc)"
done
echo "all serve_mpi checks passed"
