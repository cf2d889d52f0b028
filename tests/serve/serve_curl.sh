#!/bin/bash
# serve_curl.sh INTERNVL MODEL: `internvl serve` on one rank driven by curl.
#  - a greedy request with an image returns exactly what `internvl chat` prints, plain and
#    streamed (server-sent events ending with [DONE], a usage chunk), and the second turn of a
#    conversation with the image in the first turn matches chat's second answer and reports
#    the first turn's reused KV in usage.prompt_tokens_details.cached_tokens (a fresh server
#    with --no-prefix-cache: the same answer, 0 cached); concurrent requests batched together
#    each get chat's answer;
#  - bad input gets a 4xx with an OpenAI-style error body and the server keeps serving;
#  - a client that stalls half-way through a request is cut off by the read timeout;
#  - a client that disconnects mid-stream cancels its sequence;
#  - a full queue answers 429 with Retry-After; the per-request timeout answers 504;
#  - SIGTERM: running requests finish within the grace period, exit 0;
#  - a KV cache too small for all concurrent requests: they wait or are preempted, and each
#    still gets chat's answer.
set -u
BIN=$1 MODEL=$2
IMG=${3:-/usr/share/doc/imagemagick-6-common/html/images/examples.jpg}
MODEL_ID=$(basename "$MODEL" .h5)
. "$(dirname "$0")/serve_lib.sh"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

Q="Describe the image."
want=$("$BIN" chat --model "$MODEL" --image "$IMG" --max-tiles 2 --max-new-tokens 12 "$Q" 2>/dev/null)
[ -n "$want" ] || fail "internvl chat printed nothing"
mkdir -p "$WORK/media/sub" && cp "$IMG" "$WORK/media/sub/pic.jpg" && ln -s /etc/passwd "$WORK/media/link.jpg"
serve_start --allowed-local-media "$WORK/media" --max-body 4000000 --read-timeout 2

# ---- answers equal chat's ----
chat_body "$WORK/req" "$Q" "$IMG" ',"max_tokens":12,"temperature":0,"max_tiles":2'
post "$WORK/req"
[ "$STATUS" = 200 ] || fail "plain completion: HTTP $STATUS $(cat "$WORK/resp")"
got=$(json_get "$WORK/resp" 'd["choices"][0]["message"]["content"]')
[ "$got" = "$want" ] || fail "plain completion differs from chat: '$got' vs '$want'"
[ "$(json_get "$WORK/resp" 'd["usage"]["completion_tokens"]')" = 12 ] || fail "usage: $(cat "$WORK/resp")"
ok "plain completion with an image = internvl chat ($(echo -n "$want" | wc -c) bytes)"

chat_body "$WORK/req" "$Q" "$IMG" ',"max_tokens":12,"temperature":0,"max_tiles":2,"stream":true,"stream_options":{"include_usage":true}'
curl -sN --max-time 120 --data-binary @"$WORK/req" "$URL/v1/chat/completions" > "$WORK/sse"
[ "$(tail -n 2 "$WORK/sse" | head -1)" = "data: [DONE]" ] || fail "stream does not end with [DONE]: $(tail -3 "$WORK/sse")"
got=$("$PY" - "$WORK/sse" <<'PYEOF'
import json, sys
text, usage, fin = "", None, None
for line in open(sys.argv[1], encoding="utf-8"):
    if not line.startswith("data: ") or line.strip() == "data: [DONE]": continue
    d = json.loads(line[6:])
    assert d["object"] == "chat.completion.chunk"
    if d.get("usage"): usage = d["usage"]
    for c in d["choices"]:
        text += c["delta"].get("content", "")
        fin = c["finish_reason"] or fin
assert usage and usage["completion_tokens"] == 12 and fin == "length", (usage, fin)
sys.stdout.write(text)
PYEOF
) || fail "stream chunks"
[ "$got" = "$want" ] || fail "streamed text differs from chat: '$got' vs '$want'"
ok "streamed completion = internvl chat, usage chunk, [DONE]"

# Two turns: chat reads the questions from stdin; the server gets the first answer back.
Q2="请再详细一点。"
mapfile -t two < <(printf '%s\n%s\n' "$Q" "$Q2" | "$BIN" chat --model "$MODEL" --image "$IMG" \
                   --max-tiles 2 --max-new-tokens 10 2>/dev/null)
[ "${#two[@]}" = 2 ] || fail "chat gave ${#two[@]} answer lines"
turn2_body "$WORK/req" "$Q" "${two[0]}" "$Q2"
cp "$WORK/req" "$WORK/turn2"
post "$WORK/req"
got=$(json_get "$WORK/resp" 'd["choices"][0]["message"]["content"]')
[ "$STATUS" = 200 ] && [ "$got" = "${two[1]}" ] || fail "second turn: HTTP $STATUS '$got' vs chat '${two[1]}'"
# The first turn (same image, same messages) ran before: its KV blocks serve the prefix.
cached=$(json_get "$WORK/resp" 'd["usage"]["prompt_tokens_details"]["cached_tokens"]')
ptoks=$(json_get "$WORK/resp" 'd["usage"]["prompt_tokens"]')
[ "$cached" -gt 0 ] && [ "$cached" -lt "$ptoks" ] || fail "second turn: cached_tokens $cached of $ptoks prompt tokens (want 0 < cached < prompt)"
ok "multi-turn, image in the first turn = internvl chat's second answer; prefix cache: $cached of $ptoks prompt tokens"

# Continuous batching: concurrent requests run in one batch, each gets chat's answer.
chat_body "$WORK/req" "$Q" "$IMG" ',"max_tokens":12,"temperature":0,"max_tiles":2'
cpids=()
for i in 1 2 3 4; do
  curl -s -o "$WORK/conc$i" --max-time 120 --data-binary @"$WORK/req" "$URL/v1/chat/completions" &
  cpids+=($!)
done
wait "${cpids[@]}"
for i in 1 2 3 4; do
  got=$(json_get "$WORK/conc$i" 'd["choices"][0]["message"]["content"]')
  [ "$got" = "$want" ] || fail "concurrent request $i: '$got' vs chat '$want'"
done
peak=$(curl -s "$URL/metrics" | sed -n 's/^ivl_serve_running_sequences_peak //p')
ok "4 concurrent requests = internvl chat each (most sequences in one step so far: $peak)"

# Sampling maps onto chat's sampler: temperature + top_p + seed, no top-k.
swant=$("$BIN" chat --model "$MODEL" --image "$IMG" --max-tiles 2 --max-new-tokens 12 --do-sample \
        --temperature 0.8 --top-p 0.9 --top-k 0 --seed 42 "$Q" 2>/dev/null)
chat_body "$WORK/req" "$Q" "$IMG" ',"max_tokens":12,"temperature":0.8,"top_p":0.9,"seed":42,"max_tiles":2'
post "$WORK/req"
got=$(json_get "$WORK/resp" 'd["choices"][0]["message"]["content"]')
[ "$STATUS" = 200 ] && [ "$got" = "$swant" ] || fail "sampled: '$got' vs chat '$swant'"
ok "sampled (temperature 0.8, top_p 0.9, seed 42) = internvl chat --do-sample --top-k 0"

# A stop string cuts the answer before it (streamed and not), finish_reason stop.
stop=$(printf '%s' "$want" | "$PY" -c 'import sys; t=sys.stdin.read(); print(t[len(t)//2:len(t)//2+3])')
cut=$(printf '%s' "$want" | "$PY" -c 'import sys; t=sys.stdin.read(); s=sys.argv[1]; print(t[:t.find(s)], end="")' "$stop")
sj=$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$stop")
chat_body "$WORK/req" "$Q" "$IMG" ',"max_tokens":12,"temperature":0,"max_tiles":2,"stop":['"$sj"',"never-appears"]'
post "$WORK/req"
[ "$(json_get "$WORK/resp" 'd["choices"][0]["message"]["content"]')" = "$cut" ] && \
  [ "$(json_get "$WORK/resp" 'd["choices"][0]["finish_reason"]')" = stop ] || fail "stop string $sj: $(cat "$WORK/resp")"
sed -i 's/"max_tiles":2,/"max_tiles":2,"stream":true,/' "$WORK/req"
curl -sN --max-time 120 --data-binary @"$WORK/req" "$URL/v1/chat/completions" > "$WORK/sse"
got=$("$PY" -c '
import json, sys
t = ""
for l in open(sys.argv[1], encoding="utf-8"):
    if l.startswith("data: {"):
        for c in json.loads(l[6:])["choices"]: t += c["delta"].get("content", "")
sys.stdout.write(t)' "$WORK/sse")
[ "$got" = "$cut" ] && grep -q '"finish_reason":"stop"' "$WORK/sse" || fail "streamed stop string: '$got' vs '$cut'"
ok "stop string $sj: the answer is cut before it, plain and streamed"

# file:// under the allowed root works and gives the same answer.
printf '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"file://%s"}},{"type":"text","text":"%s"}]}],"max_tokens":12,"max_tiles":2}' \
  "$WORK/media/sub/pic.jpg" "$Q" > "$WORK/req"
post "$WORK/req"
[ "$STATUS" = 200 ] && [ "$(json_get "$WORK/resp" 'd["choices"][0]["message"]["content"]')" = "$want" ] \
  || fail "file:// under the root: HTTP $STATUS $(cat "$WORK/resp")"
ok "file:// image under --allowed-local-media"

# ---- bad input: 4xx + OpenAI error body, still serving ----
# expect_error NAME STATUS BODYFILE
expect_error() {
  post "$3"
  [ "$STATUS" = "$2" ] || fail "$1: HTTP $STATUS (want $2): $(head -c 300 "$WORK/resp")"
  json_get "$WORK/resp" 'd["error"]["message"] and d["error"]["type"]' > /dev/null \
    || fail "$1: no OpenAI error body: $(head -c 300 "$WORK/resp")"
  healthy "$1"
  ok "$1 -> $2: $(json_get "$WORK/resp" 'd["error"]["message"][:110]')"
}
imgreq() {  # imgreq FILE URL [extra]
  printf '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"%s"}},{"type":"text","text":"hi"}]}]%s}' "$2" "${3:-}" > "$1"
}
printf '{"messages": [{"role": "user", "content": "hi"}' > "$WORK/b"; expect_error "malformed JSON" 400 "$WORK/b"
head -c 5000000 /dev/zero | tr '\0' 'a' > "$WORK/b"; expect_error "body over --max-body" 413 "$WORK/b"
imgreq "$WORK/b" "data:image/png;base64,iVBORw0K*GgoAAAANSUhEUg=="; expect_error "bad base64" 400 "$WORK/b"
imgreq "$WORK/b" "data:image/gif;base64,$(printf 'GIF89a\001\000\001\000\000\000\000;' | base64 -w0)"
expect_error "a GIF (not JPEG/PNG)" 400 "$WORK/b"
imgreq "$WORK/b" "data:image/png;base64,$(echo 'just some text' | base64 -w0)"; expect_error "text as an image" 400 "$WORK/b"
"$PY" - "$WORK/bomb.png" <<'PYEOF'
import struct, sys, zlib
w = h = 30000   # 900 megapixels of 1-bit gray: a few hundred KB compressed
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
row = b"\0" + b"\0" * ((w + 7) // 8)
z = zlib.compressobj(9); data = b"".join(z.compress(row) for _ in range(h)) + z.flush()
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
                              + chunk(b"IDAT", data) + chunk(b"IEND", b""))
PYEOF
imgreq "$WORK/b" "data:image/png;base64,$(base64 -w0 "$WORK/bomb.png")"; expect_error "decompression bomb ($(stat -c %s "$WORK/bomb.png") bytes, 30000x30000)" 400 "$WORK/b"
"$PY" - "$WORK/b" "$IMG" 9 <<'PYEOF'
import base64, json, sys
url = "data:image/png;base64,iVBORw0KGgo="   # refused before any decoding
parts = [{"type": "image_url", "image_url": {"url": url}}] * int(sys.argv[3])
json.dump({"messages": [{"role": "user", "content": parts + [{"type": "text", "text": "hi"}]}]}, open(sys.argv[1], "w"))
PYEOF
expect_error "too many images (9 > --max-images 8)" 400 "$WORK/b"
chat_body "$WORK/b" "hi" "$IMG" ',"max_tiles":40,"max_tokens":32700'; expect_error "tiles + max_tokens over the context" 400 "$WORK/b"
chat_body "$WORK/b" "hi" "" ',"model":"gpt-4o"'; sed -i "s/\"model\":\"$MODEL_ID\",//" "$WORK/b"; expect_error "unknown model" 404 "$WORK/b"
chat_body "$WORK/b" "hi" "" ',"n":2'; expect_error "n = 2" 400 "$WORK/b"
chat_body "$WORK/b" "hi" "" ',"max_tokens":-5'; expect_error "negative max_tokens" 400 "$WORK/b"
imgreq "$WORK/b" "file:///etc/passwd"; expect_error "file:// outside the root" 400 "$WORK/b"
imgreq "$WORK/b" "file://$WORK/media/sub/../../../../etc/passwd"; expect_error "file:// with .. out of the root" 400 "$WORK/b"
imgreq "$WORK/b" "file://$WORK/media/link.jpg"; expect_error "file:// symlink out of the root" 400 "$WORK/b"
imgreq "$WORK/b" "https://example.com/cat.jpg"; expect_error "https URL" 400 "$WORK/b"

# ---- a client that sends half a request and stalls ----
t0=$(date +%s%N)
"$PY" - "$PORT" <<'PYEOF' || fail "stalled client"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"messages\"")
s.settimeout(20)
data = s.recv(4096)   # the server closes after --read-timeout 2 (b"" = closed)
assert data == b"" or b" 408 " in data.split(b"\r\n")[0], data[:200]
PYEOF
dt=$(( ($(date +%s%N) - t0) / 1000000 ))
healthy "stalled client"
ok "half a request then a stall: closed by the server after $dt ms (--read-timeout 2)"

# ---- disconnect mid-stream cancels the sequence ----
chat_body "$WORK/req" "$Q" "$IMG" ',"max_tokens":30000,"max_tiles":2,"stream":true'
curl -sN --max-time 3 --data-binary @"$WORK/req" "$URL/v1/chat/completions" > "$WORK/sse" 2>/dev/null
grep -q '"content"' "$WORK/sse" || fail "no tokens streamed before the disconnect"
for _ in $(seq 50); do
  curl -s "$URL/metrics" > "$WORK/metrics"
  grep -q '^ivl_serve_cancelled_total 1$' "$WORK/metrics" && grep -q '^ivl_serve_running_sequences 0$' "$WORK/metrics" && break
  sleep 0.1
done
grep -q '^ivl_serve_cancelled_total 1$' "$WORK/metrics" || fail "disconnect did not cancel: $(grep -E 'cancel|running' "$WORK/metrics")"
grep -q '^ivl_serve_kv_blocks_used 0$' "$WORK/metrics" || fail "KV not freed after the cancel"
ok "client disconnect mid-stream: cancelled, no sequence running, KV freed ($(grep -c '"content"' "$WORK/sse") chunks got)"
for m in ivl_serve_requests_total ivl_serve_prompt_tokens_total ivl_serve_completion_tokens_total \
         ivl_serve_time_to_first_token_seconds_bucket ivl_serve_time_per_output_token_seconds_bucket \
         ivl_serve_queue_length ivl_serve_running_sequences; do
  grep -q "^$m" "$WORK/metrics" || fail "/metrics has no $m"
done
ok "/metrics in the Prometheus text format"
# A client that disconnects while another request streams: only its sequence ends (its KV
# blocks freed before the next step), the other one goes on in the batch.
curl -sN --max-time 120 --data-binary @"$WORK/req" "$URL/v1/chat/completions" > "$WORK/sse_keep" 2>/dev/null &
keep=$!
wait_metric ivl_serve_running_sequences 1
curl -sN --max-time 3 --data-binary @"$WORK/req" "$URL/v1/chat/completions" > "$WORK/sse" 2>/dev/null
wait_metric ivl_serve_cancelled_total 2
wait_metric ivl_serve_running_sequences 1
n1=$(grep -c '"content"' "$WORK/sse_keep")
kill "$keep"; wait "$keep" 2>/dev/null
wait_metric ivl_serve_cancelled_total 3
wait_metric ivl_serve_running_sequences 0
wait_metric ivl_serve_kv_blocks_used 0
ok "a disconnect in a batch of 2: that sequence cancelled, the other kept streaming ($n1 chunks), then cancelled too; KV freed"
serve_stop
ok "SIGTERM when idle: exit 0"

# ---- bounded queue (429 + Retry-After), per-request timeout (504), SIGTERM with work ----
# --max-seqs 1: one request runs, the next waits in the queue (continuous batching would
# otherwise take it into the running batch at once).
serve_start --max-queue 1 --max-seqs 1 --request-timeout 8 --grace 2 --read-timeout 1 --no-prefix-cache
# A fresh server without the prefix cache gives the second turn the same answer, all computed.
post "$WORK/turn2"
got=$(json_get "$WORK/resp" 'd["choices"][0]["message"]["content"]')
[ "$STATUS" = 200 ] && [ "$got" = "${two[1]}" ] || fail "second turn, fresh server: HTTP $STATUS '$got' vs '${two[1]}'"
[ "$(json_get "$WORK/resp" 'd["usage"]["prompt_tokens_details"]["cached_tokens"]')" = 0 ] \
  || fail "--no-prefix-cache: cached_tokens $(json_get "$WORK/resp" 'd["usage"]')"
ok "second turn on a fresh server with --no-prefix-cache: the same answer, cached_tokens 0"
chat_body "$WORK/long" "$Q" "$IMG" ',"max_tokens":30000,"max_tiles":2,"stream":true'
curl -sN --max-time 30 --data-binary @"$WORK/long" "$URL/v1/chat/completions" > "$WORK/sse_a" &
ca=$!
wait_metric ivl_serve_running_sequences 1
chat_body "$WORK/long2" "$Q" "$IMG" ',"max_tokens":30000,"max_tiles":2'
curl -s --max-time 30 -o "$WORK/resp_b" -w '%{http_code}' --data-binary @"$WORK/long2" "$URL/v1/chat/completions" > "$WORK/status_b" &
cb=$!
wait_metric ivl_serve_queue_length 1
chat_body "$WORK/short" "$Q" "" ',"max_tokens":4'   # text only: refused fast, while B waits
curl -s -D "$WORK/hdr_c" -o "$WORK/resp_c" --max-time 30 --data-binary @"$WORK/short" "$URL/v1/chat/completions"
grep -q '^HTTP/1.1 429' "$WORK/hdr_c" || fail "third request with --max-queue 1: $(grep ^HTTP "$WORK/hdr_c")"
grep -qi '^Retry-After: [0-9]' "$WORK/hdr_c" || fail "429 without Retry-After"
json_get "$WORK/resp_c" 'd["error"]["message"]' > /dev/null || fail "429 body"
ok "full queue -> 429 with Retry-After"
wait $ca $cb
grep -q '"type":"timeout"' "$WORK/sse_a" && [ "$(tail -n 2 "$WORK/sse_a" | head -1)" = "data: [DONE]" ] \
  || fail "streamed request past --request-timeout: $(tail -c 300 "$WORK/sse_a")"
[ "$(cat "$WORK/status_b")" = 504 ] || fail "queued request past its timeout: $(cat "$WORK/status_b") $(cat "$WORK/resp_b")"
ok "per-request timeout: the stream gets an error event + [DONE], the queued request 504"
curl -sN --max-time 30 --data-binary @"$WORK/long" "$URL/v1/chat/completions" > "$WORK/sse_d" &
cd=$!
wait_metric ivl_serve_running_sequences 1
curl -sN --max-time 30 --data-binary @"$WORK/long" "$URL/v1/chat/completions" > "$WORK/sse_e" &
ce=$!
wait_metric ivl_serve_queue_length 1
sleep 1.5
t0=$(date +%s%N)
serve_stop
dt=$(( ($(date +%s%N) - t0) / 1000000 ))
wait $cd $ce
[ "$(tail -n 2 "$WORK/sse_d" | head -1)" = "data: [DONE]" ] || fail "stream at SIGTERM did not end cleanly: $(tail -c 200 "$WORK/sse_d")"
ok "SIGTERM during a stream: the stream ends ([DONE]) after the 2 s grace, exit 0 in $dt ms"
grep -q '^data: {"error"' "$WORK/sse_e" && \
  [ "$(tail -n 2 "$WORK/sse_e" | head -1)" = "data: [DONE]" ] || fail "queued stream at SIGTERM: $(grep -c keep-alive "$WORK/sse_e") keep-alives; $(head -c 400 "$WORK/sse_e")"
ok "a stream queued for longer than --read-timeout 1 stays open ($(grep -c "^: keep-alive" "$WORK/sse_e") keep-alive comments), then gets an error event (timeout or shutdown) and [DONE]"
# ---- a KV cache for about 3 requests, 8 at once: admission waits for free blocks, a
# sequence that needs a block when none is left is preempted and recomputed; every answer is
# still chat's, and every block comes back ----
want40=$("$BIN" chat --model "$MODEL" --image "$IMG" --max-tiles 1 --max-new-tokens 40 "$Q" 2>/dev/null)
serve_start --kv-mem 1M --no-prefix-cache
chat_body "$WORK/req" "$Q" "$IMG" ',"max_tokens":40,"temperature":0,"max_tiles":1'
cpids=()
for i in 1 2 3 4 5 6 7 8; do
  curl -s -o "$WORK/small$i" --max-time 120 --data-binary @"$WORK/req" "$URL/v1/chat/completions" &
  cpids+=($!)
done
wait "${cpids[@]}"
for i in 1 2 3 4 5 6 7 8; do
  got=$(json_get "$WORK/small$i" 'd["choices"][0]["message"]["content"]')
  [ "$got" = "$want40" ] || fail "small KV cache, request $i: '$got' vs chat '$want40'"
done
wait_metric ivl_serve_kv_blocks_used 0
ok "KV cache of $(curl -s "$URL/metrics" | sed -n 's/^ivl_serve_kv_blocks_total //p') blocks, 8 concurrent requests: each = internvl chat ($(curl -s "$URL/metrics" | sed -n 's/^ivl_serve_preemptions_total //p') preemptions, at most $(curl -s "$URL/metrics" | sed -n 's/^ivl_serve_running_sequences_peak //p') running), every block back"
serve_stop
echo "all serve_curl checks passed"
