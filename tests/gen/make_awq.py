#!/usr/bin/python3
"""AWQ-layout test checkpoints, written from weights/SCHEMA.md "The AWQ release".

  make_awq.py --hf TINY_HF_DIR --out AWQ_DIR [--group 32]

AWQ_DIR = TINY_HF_DIR with each decoder-layer linear of the language model (InternLM2 wqkv,
wo, w1, w2, w3; Phi-3 qkv_proj, o_proj, gate_up_proj, down_proj; not the LM head, the vision
model or the projector) replaced by <prefix>.qweight / .qzeros / .scales in AutoAWQ's
"gemm" layout, and config.json's llm_config given LMDeploy's quantization_config
{quant_method: awq, version: gemm, bits: 4, group_size: G, zero_point: true}.

Quantization (per output, groups of G inputs, asymmetric; the scale is rounded to fp16 first
and q computed with it): s = fp16(max(max w - min w, 1e-5) / 15), z = clip(-rint(min w / s),
0, 15), q = clip(rint(w / s) + z, 0, 15). Packing: W^T is [K, N]; qweight int32 [K, N/8]
where nibble i (bits 4i..4i+3) of word j holds column 8j + ORDER[i], ORDER = [0, 2, 4, 6, 1,
3, 5, 7]; qzeros int32 [K/G, N/8] the same way; scales fp16 [K/G, N].
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_bf16 import bf16_bits_to_f32, read_safetensors_header  # noqa: E402

ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
LAYER_LINEARS = ("attention.wqkv.weight", "attention.wo.weight", "feed_forward.w1.weight",
                 "feed_forward.w2.weight", "feed_forward.w3.weight",
                 "self_attn.qkv_proj.weight", "self_attn.o_proj.weight",
                 "mlp.gate_up_proj.weight", "mlp.down_proj.weight")


def pack(cols):
    """uint [R, C] (values 0..15) -> int32 [R, C/8] in the AWQ order."""
    R, C = cols.shape
    out = np.zeros((R, C // 8), dtype=np.uint32)
    for i, c in enumerate(ORDER):
        out |= cols[:, c::8].astype(np.uint32) << np.uint32(4 * i)
    return out.view(np.int32)


def awq_quantize(w, G):
    """w float32 [N, K] -> qweight, qzeros (int32), scales (float16)."""
    N, K = w.shape
    g = w.reshape(N, K // G, G)
    mx, mn = g.max(axis=2), g.min(axis=2)
    s = (np.maximum(mx - mn, np.float32(1e-5)) / np.float32(15)).astype(np.float16)
    sf = s.astype(np.float32)
    z = np.clip(-np.rint(mn / sf), 0, 15)
    q = np.clip(np.rint(g / sf[:, :, None]) + z[:, :, None], 0, 15).astype(np.uint8)
    q = q.reshape(N, K)
    return pack(q.T.copy()), pack(z.astype(np.uint8).T.copy()), s.T.copy()


def read_all(hf):
    index = os.path.join(hf, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for fn in files:
        path = os.path.join(hf, fn)
        header, _, start, _ = read_safetensors_header(path)
        with open(path, "rb") as f:
            for name, e in header.items():
                b, end = e["data_offsets"]
                f.seek(start + b)
                out[name] = (e["dtype"], f.read(end - b), tuple(e["shape"]))
    return out


def write(path, tensors):
    names = sorted(tensors)
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for n in names:
        dt, raw, shape = tensors[n]
        header[n] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for n in names:
            f.write(tensors[n][1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--hf", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--group", type=int, default=32)
    a = p.parse_args()
    src = read_all(a.hf)
    out = {}
    for name, (dt, raw, shape) in src.items():
        if name.startswith("language_model.model.layers.") and name.endswith(LAYER_LINEARS):
            if dt != "BF16":
                raise SystemExit(f"{name}: expected BF16, got {dt}")
            w = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2")).reshape(shape)
            qw, qz, sc = awq_quantize(w, a.group)
            base = name[: -len(".weight")]
            out[base + ".qweight"] = ("I32", qw.astype("<i4").tobytes(), qw.shape)
            out[base + ".qzeros"] = ("I32", qz.astype("<i4").tobytes(), qz.shape)
            out[base + ".scales"] = ("F16", sc.astype("<f2").tobytes(), sc.shape)
        else:
            out[name] = (dt, raw, shape)
    os.makedirs(a.out, exist_ok=True)
    for fn in os.listdir(a.hf):
        if fn.endswith(".safetensors") or fn == "model.safetensors.index.json":
            continue
        if os.path.isfile(os.path.join(a.hf, fn)):
            shutil.copy(os.path.join(a.hf, fn), os.path.join(a.out, fn))
    with open(os.path.join(a.out, "config.json")) as f:
        cfg = json.load(f)
    cfg["llm_config"]["quantization_config"] = {"quant_method": "awq", "version": "gemm",
                                                "bits": 4, "group_size": a.group,
                                                "zero_point": True}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write(os.path.join(a.out, "model.safetensors"), out)


if __name__ == "__main__":
    main()
