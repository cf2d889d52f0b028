#!/bin/sh
# make_demo.sh OUTDIR [SEED] - writes the README's demo model: a random-weight checkpoint in
# the Mini-InternVL-Chat-2B-V1-5 layout (InternViT-300M style + InternLM2, internlm2-chat
# template), a bit wider than the test families, that converts and runs in seconds on a CPU.
# Its answers are gibberish (random weights); it demonstrates the commands, not the model.
set -eu
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 OUTDIR [SEED]" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
/usr/bin/python3 "$here/make_checkpoint.py" --family demo --out "$1" --seed "${2:-0}"
/usr/bin/python3 "$here/check_checkpoint.py" "$1"
