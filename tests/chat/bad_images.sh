#!/bin/bash
# bad_images.sh INTERNVL MODEL PHOTO: `internvl chat` refuses bad images with a clear message
# naming the file (exit 1, no crash): not an image, truncated JPEG, empty file, missing file,
# an unsupported format (GIF), more pixels than --max-pixels, and more tiles than the context.
set -u
bin=$1 model=$2 photo=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf 'not an image' > "$tmp/text.jpg"
head -c 3000 "$photo" > "$tmp/trunc.jpg"
: > "$tmp/empty.png"
printf 'GIF89a\x01\x00\x01\x00\x00\x00\x00;' > "$tmp/anim.gif"
fails=0
expect() {   # NAME PATTERN ARGS...
  local name=$1 pat=$2; shift 2
  out=$(timeout 60 "$bin" chat --model "$model" --max-new-tokens 4 "$@" "hi" 2>&1); rc=$?
  if [ $rc -eq 1 ] && echo "$out" | grep -q -- "$pat"; then
    echo "ok   $name: $(echo "$out" | tail -1 | cut -c1-160)"
  else
    echo "FAIL $name: rc $rc, wanted /$pat/:"; echo "$out" | tail -3; fails=$((fails + 1))
  fi
}
expect "not an image"  "text.jpg: not an image"   --image "$tmp/text.jpg"
expect "truncated"     "trunc.jpg: JPEG file is truncated" --image "$tmp/trunc.jpg"
expect "empty"         "empty.png"                --image "$tmp/empty.png"
expect "missing"       "no-such.png: cannot open" --image "$tmp/no-such.png"
expect "unsupported"   "anim.gif"                 --image "$tmp/anim.gif"
expect "pixel limit"   "above the limit of 1000"  --image "$photo" --max-pixels 1000
# 40 tiles x 256 + the prompt is far beyond a 16384-position LongRoPE model with 8000 new tokens
expect "context"       "more than the model's context" --image "$photo" --image "$photo" \
       --max-tiles 40 --max-new-tokens 8000
exit $fails
