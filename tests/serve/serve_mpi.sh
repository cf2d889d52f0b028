#!/bin/bash
# serve_mpi.sh INTERNVL MODEL IMAGE: `internvl serve` under mpirun.
#  - tp 2 x pp 2 and pp 2 x vit-tp 2 answer a greedy request with an image (plain and streamed)
#    with exactly the text `internvl chat` prints on one rank;
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
