#!/bin/bash
# serve_openai.sh INTERNVL MODEL IMAGE NODE_DIR: installs the official OpenAI Node client
# (pinned) into NODE_DIR from the npm registry, then runs serve_openai.cjs against a server.
# Fails (does not skip) when the registry cannot be reached: CI has it.
set -u
BIN=$1 MODEL=$2 IMG=$3 NODE_DIR=$4
OPENAI_VERSION=4.104.0
MODEL_ID=$(basename "$MODEL" .h5)
. "$(dirname "$0")/serve_lib.sh"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
command -v node > /dev/null && command -v npm > /dev/null || fail "node and npm are needed (Node.js 18+)"
if [ "$(cat "$NODE_DIR/node_modules/openai/package.json" 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["version"])' 2>/dev/null)" != "$OPENAI_VERSION" ]; then
  mkdir -p "$NODE_DIR"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --no-save "openai@$OPENAI_VERSION" > "$WORK/npm.log" 2>&1 \
    || { tail -20 "$WORK/npm.log"; fail "npm install openai@$OPENAI_VERSION failed: is the npm registry reachable?"; }
fi
ok "openai@$OPENAI_VERSION in $NODE_DIR"
Q="Describe the image." Q2="请再详细一点。"
WANT=$("$BIN" chat --model "$MODEL" --image "$IMG" --max-tiles 2 --max-new-tokens 12 "$Q" 2>/dev/null)
mapfile -t two < <(printf '%s\n%s\n' "$Q" "$Q2" | "$BIN" chat --model "$MODEL" --image "$IMG" \
                   --max-tiles 2 --max-new-tokens 10 2>/dev/null)
[ -n "$WANT" ] && [ "${#two[@]}" = 2 ] || fail "internvl chat"
serve_start
OPENAI_DIR=$NODE_DIR URL=$URL MODEL_ID=$MODEL_ID IMG=$IMG Q=$Q Q2=$Q2 WANT=$WANT WANT1=${two[0]} \
  WANT2=${two[1]} node "$(dirname "$0")/serve_openai.cjs" || fail "serve_openai.cjs"
serve_stop
