#!/bin/sh
# h5dump_check.sh FILE.h5 - the schema of weights/SCHEMA.md as h5dump shows it: root
# attributes, /config, /tokenizer, /tensors with hf_name/hf_row0, bf16 printed as numbers.
set -e
f="$1"
hdr=$(h5dump -H "$f")
fail() { echo "FAIL: $*"; exit 1; }
for want in 'ATTRIBUTE "format"' 'ATTRIBUTE "format_version"' 'ATTRIBUTE "model_name"' \
            'ATTRIBUTE "source"' 'GROUP "config"' 'DATASET "config.json"' 'GROUP "tokenizer"' \
            'DATASET "tokenizer.model"' 'GROUP "tensors"' 'DATASET "llm.embed"' \
            'DATASET "llm.layers.0.q"' 'DATASET "llm.lm_head"' 'DATASET "vision.layers.0.attn.q.weight"' \
            'DATASET "mlp1.1.weight"' 'ATTRIBUTE "hf_name"' 'ATTRIBUTE "hf_row0"' \
            '16-bit little-endian floating-point'; do
  echo "$hdr" | grep -qF "$want" || fail "h5dump -H lacks: $want"
done
h5dump -a /format "$f" | grep -q '"internvl-h5"' || fail "format attribute"
h5dump -a /format_version "$f" | grep -q '(0): 1' || fail "format_version attribute"
# bf16 data must print as decimal numbers (h5dump converts the custom float type).
h5dump -d /tensors/llm.norm "$f" | grep -Eq '\(0\): -?[0-9]+\.[0-9]+' || fail "llm.norm does not print as numbers"
# 2-D tensors are chunked by whole rows.
h5dump -p -H -d /tensors/llm.embed "$f" | grep -A2 CHUNKED | grep -Eq 'CHUNKED \( [0-9]+, [0-9]+ \)' || fail "llm.embed not chunked"
echo "OK $f"
