#!/bin/bash
# caption_formats: a folder, a list file and a WebDataset shard holding every decoded image
# kind (make_formats_data.py) caption without error lines; each line's width/height is
# Pillow's and its tile count is dynamic_preprocess's for that size (the pixels themselves
# are compared with Pillow's, bit for bit, by image_pil_parity on the same generated files).
# With --keep-meta every line carries "meta" (KEY.json fields + KEY.txt as source_text for
# the shard, the third column for the list); without it no line has "meta". The --keep-meta
# run also has --exif-transpose: the images with EXIF orientation 6 come out upright there
# and sideways in the other run (as the official pipeline sees them).
. "$(dirname "$0")/common.sh"
FW=$DATA/caption_formats
rm -rf "$FW" && mkdir -p "$FW" || fail "cannot make $FW"
$PY "$HERE/make_formats_data.py" "$FW/data" || fail "make_formats_data.py"
IN="--input $FW/data/dir --input $FW/data/list.txt --input $FW/data/shard.tar"
timeout 300 "$BIN" caption $ARGS --chunk 100 $IN --keep-meta --max-meta-kb 1 --exif-transpose --out "$FW/meta" > "$FW/meta.log" 2>&1 \
  || { cat "$FW/meta.log"; fail "caption --keep-meta"; }
$PY "$HERE/check_formats.py" "$FW/meta" "$FW/data/expected.json" --meta --exif || fail "--keep-meta output"
timeout 300 "$BIN" caption $ARGS --chunk 100 $IN --out "$FW/plain" > "$FW/plain.log" 2>&1 \
  || { cat "$FW/plain.log"; fail "caption without --keep-meta"; }
$PY "$HERE/check_formats.py" "$FW/plain" "$FW/data/expected.json" || fail "plain output"
echo PASS
