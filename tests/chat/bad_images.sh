#!/bin/bash
# bad_images.sh INTERNVL MODEL PHOTO: `internvl chat` refuses bad images with a clear message
# naming the file (exit 1, no crash): not an image, truncated JPEG, empty file, missing file,
# a GIF that holds no image, an unsupported layout (YCbCr TIFF), more pixels than --max-pixels, and more tiles than the context.
set -u
bin=$1 model=$2 photo=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf 'not an image' > "$tmp/text.jpg"
head -c 3000 "$photo" > "$tmp/trunc.jpg"
: > "$tmp/empty.png"
printf 'GIF89a\x01\x00\x01\x00\x00\x00\x00;' > "$tmp/anim.gif"
# 1x1 TIFF, PhotometricInterpretation 6 (YCbCr), 3 x 8 bits (tests/image/make_formats.py
# write_tiff): refused as unsupported
printf '\x49\x49\x2a\x00\x0c\x00\x00\x00\x80\x80\x80\x00\x0a\x00\x00\x01\x04\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x01\x04\x00\x01\x00\x00\x00\x01\x00\x00\x00\x02\x01\x03\x00\x03\x00\x00\x00\x8a\x00\x00\x00\x03\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00\x06\x01\x03\x00\x01\x00\x00\x00\x06\x00\x00\x00\x11\x01\x04\x00\x01\x00\x00\x00\x08\x00\x00\x00\x15\x01\x03\x00\x01\x00\x00\x00\x03\x00\x00\x00\x16\x01\x04\x00\x01\x00\x00\x00\x01\x00\x00\x00\x17\x01\x04\x00\x01\x00\x00\x00\x03\x00\x00\x00\x1c\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x08\x00\x08\x00\x08\x00' > "$tmp/ycbcr.tif"
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
expect "no image"      "anim.gif: GIF holds no image" --image "$tmp/anim.gif"
expect "unsupported"   "ycbcr.tif: TIFF with photometric 6" --image "$tmp/ycbcr.tif"
expect "pixel limit"   "above the limit of 1000"  --image "$photo" --max-pixels 1000
# 40 tiles x 256 + the prompt is far beyond a 16384-position LongRoPE model with 8000 new tokens
expect "context"       "more than the model's context" --image "$photo" --image "$photo" \
       --max-tiles 40 --max-new-tokens 8000
exit $fails
