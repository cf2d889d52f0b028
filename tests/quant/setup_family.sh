#!/bin/sh
# setup_family.sh INTERNVL DATA FAMILY: the quantized test models of one tiny family.
#   DATA/quant/hf/FAMILY-{int8,int4,awq}      HF folders for the reference: round-to-nearest
#       fake-quantized (tests/reference/quant_ref.py fakequant) and the AWQ-layout checkpoint
#       (tests/gen/make_awq.py) dequantized by quant_ref.py awq-dequant
#   DATA/quant/ref/FAMILY-KIND/CASE.{in,out}.h5   reference outputs (make_refs.py)
#   DATA/quant/h5/FAMILY-KIND.h5              engine files: convert --quantize int8 (per row),
#       --quantize int4 --group-size 32, and convert of the AWQ checkpoint (group 32)
#   DATA/quant/h5/FAMILY-{int4g16,awqg16}.h5  int4 / AWQ group 16 (tensor-parallel 2 shares
#       of the tiny widths are multiples of 16, not of 32)
set -eu
bin=$1 data=$2 f=$3
src=$(cd "$(dirname "$0")/../.." && pwd)
py=${IVL_PYTHON:-/usr/bin/python3}
q=$data/quant
mkdir -p "$q/hf" "$q/ref" "$q/h5"
hf=$data/hf/$f
cases=one_image,text_only
"$py" "$src/tests/reference/quant_ref.py" fakequant --hf "$hf" --bits 8 --out "$q/hf/$f-int8"
"$py" "$src/tests/reference/quant_ref.py" fakequant --hf "$hf" --bits 4 --group 32 --out "$q/hf/$f-int4"
"$py" "$src/tests/gen/make_awq.py" --hf "$hf" --out "$q/hf/$f-awq-src" --group 32
"$py" "$src/tests/reference/quant_ref.py" awq-dequant --hf "$q/hf/$f-awq-src" --out "$q/hf/$f-awq"
if [ "$f" = mini2b-tiny ]; then   # --quantize-vision (ViT widths 64/128, projector 256/64)
  "$py" "$src/tests/reference/quant_ref.py" fakequant --hf "$hf" --bits 4 --group 32 --vision \
    --out "$q/hf/$f-int4v"
  "$bin" convert --hf "$hf" --out "$q/h5/$f-int4v.h5" --quantize int4 --group-size 32 \
    --quantize-vision --no-progress
  kinds="int8 int4 awq int4v"
else
  kinds="int8 int4 awq"
fi
for k in $kinds; do
  "$py" "$src/tests/reference/make_refs.py" --hf "$q/hf/$f-$k" --out-dir "$q/ref/$f-$k" \
    --max-new-tokens 32 --cases $cases
done
"$bin" convert --hf "$hf" --out "$q/h5/$f-int8.h5" --quantize int8 --no-progress
"$bin" convert --hf "$hf" --out "$q/h5/$f-int4.h5" --quantize int4 --group-size 32 --no-progress
"$bin" convert --hf "$hf" --out "$q/h5/$f-int4g16.h5" --quantize int4 --group-size 16 --no-progress
"$bin" convert --hf "$q/hf/$f-awq-src" --out "$q/h5/$f-awq.h5" --no-progress
"$py" "$src/tests/gen/make_awq.py" --hf "$hf" --out "$q/hf/$f-awqg16-src" --group 16
"$bin" convert --hf "$q/hf/$f-awqg16-src" --out "$q/h5/$f-awqg16.h5" --no-progress
