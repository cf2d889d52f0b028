# serve_lib.sh - sourced by the serve tests: start `internvl serve` on a free port, wait
# for it, stop it; JSON requests with an image; checks.
#   serve_start LOG [launcher args... --] serve args...   sets SERVE_PID (the launcher's) and PORT
IMG_DEFAULT=/usr/share/doc/imagemagick-6-common/html/images/examples.jpg
WORK=$(mktemp -d /tmp/ivl-serve-test.XXXXXX)
SERVE_PID=
cleanup() {
  if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then
    kill -TERM "$SERVE_PID" 2>/dev/null; sleep 1; kill -KILL "$SERVE_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$WORK/serve.log" ] && tail -20 "$WORK/serve.log"; exit 1; }
ok() { echo "ok   $*"; }

serve_start() {
  local pre=()
  if [[ " $* " == *" -- "* ]]; then
    while [ "$1" != "--" ]; do pre+=("$1"); shift; done; shift
  fi
  rm -f "$WORK/port"
  "${pre[@]}" "$BIN" serve --model "$MODEL" --port 0 --port-file "$WORK/port" "$@" \
      > "$WORK/serve.log" 2>&1 &
  SERVE_PID=$!
  for _ in $(seq 600); do
    [ -s "$WORK/port" ] && break
    kill -0 "$SERVE_PID" 2>/dev/null || fail "the server exited at start"
    sleep 0.1
  done
  [ -s "$WORK/port" ] || fail "the server did not start within 60 s"
  PORT=$(cat "$WORK/port")
  URL=http://127.0.0.1:$PORT
}

# serve_stop [SIG]: SIGTERM (or SIG: mpirun ends the job itself on SIGTERM and forwards
# SIGUSR1), expect exit 0 within 30 s.
serve_stop() {
  kill "-${1:-TERM}" "$SERVE_PID"
  local t=0
  while kill -0 "$SERVE_PID" 2>/dev/null; do
    sleep 0.2; t=$((t + 1)); [ $t -gt 150 ] && fail "the server did not exit within 30 s of SIGTERM"
  done
  wait "$SERVE_PID"; local rc=$?
  [ $rc = 0 ] || fail "the server exited $rc after SIG${1:-TERM} (want 0)"
  SERVE_PID=
}

# chat_body FILE QUESTION [IMAGE] [extra JSON fields]: a request with the image as a data: URL.
chat_body() {
  local out=$1 q=$2 img=${3:-} extra=${4:-}
  {
    printf '{"model":"%s","messages":[{"role":"user","content":[' "$MODEL_ID"
    if [ -n "$img" ]; then
      printf '{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,'
      base64 -w0 "$img"
      printf '"}},'
    fi
    printf '{"type":"text","text":"%s"}]}]%s}' "$q" "$extra"
  } > "$out"
}

# post FILE -> body in $WORK/resp, status in $STATUS
# turn2_body FILE Q A1 Q2: a request body: the image and Q, A1 as the assistant's answer,
# then Q2 (greedy, 10 tokens, max_tiles 2), as `internvl chat`'s second turn sees it.
turn2_body() {
  "$PY" - "$1" "$IMG" "$MODEL_ID" "$2" "$3" "$4" <<'PYEOF'
import base64, json, sys
out, img, model, q1, a1, q2 = sys.argv[1:]
url = "data:image/jpeg;base64," + base64.b64encode(open(img, "rb").read()).decode()
json.dump({"model": model, "temperature": 0, "max_tokens": 10, "max_tiles": 2, "messages": [
    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                 {"type": "text", "text": q1}]},
    {"role": "assistant", "content": a1},
    {"role": "user", "content": q2}]}, open(out, "w"), ensure_ascii=False)
PYEOF
}

post() {
  STATUS=$(curl -s -o "$WORK/resp" -w '%{http_code}' -H 'Content-Type: application/json' \
                --max-time 120 --data-binary @"$1" "$URL/v1/chat/completions")
}
# json_get FILE EXPR: a field of a JSON file (Python expression on `d`)
json_get() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
# wait_metric NAME VALUE: until /metrics shows it (30 s at most).
wait_metric() {
  for _ in $(seq 300); do
    curl -s --max-time 5 "$URL/metrics" | grep -q "^$1 $2\$" && return 0
    sleep 0.1
  done
  fail "/metrics never showed $1 $2"
}
healthy() { [ "$(curl -s --max-time 10 "$URL/health")" = '{"status":"ok"}' ] || fail "not serving after: $1"; }
PY=${IVL_PYTHON:-python3}
