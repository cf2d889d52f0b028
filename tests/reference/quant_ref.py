#!/usr/bin/python3
"""Quantized weights for the Python reference, written from weights/SCHEMA.md ("Quantized
tensors" and "The AWQ release"), not from the engine's C code.

  quant_ref.py fakequant --hf DIR --bits 8|4 [--group G] [--vision] --out DIR2
      DIR2 = DIR with every weight that `internvl convert --quantize` quantizes replaced by
      its round-to-nearest dequantization s * (q - z), stored as F32 (other tensors and the
      config/tokenizer files copied). internvl_ref.py run on DIR2 is the reference for the
      engine run on the quantized model file.

  quant_ref.py awq-dequant --hf AWQ_DIR --out DIR2
      DIR2 = the AWQ checkpoint (qweight / qzeros / scales, GEMM layout) dequantized to a
      float checkpoint with plain `.weight` tensors ([out, in], F32) and no
      quantization_config.

Round to nearest, per output row, groups of G inputs (float32 arithmetic, ties to even):
  int8: s = max|w| / 127 (1 if 0), q = clip(rint(w / s), -127, 127), z = 0
  int4: s = max(max w - min w, 1e-5) / 15, z = clip(-rint(min w / s), 0, 15),
        q = clip(rint(w / s) + z, 0, 15)
Only rows and groups along the input matter, so quantizing the HF tensors (packed wqkv,
qkv_proj, gate_up_proj) row by row gives the same values as quantizing the engine's split
tensors.
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import internvl_ref as ref  # noqa: E402  (safetensors reader)

# HF tensors that --quantize covers (weights/SCHEMA.md table: the LLM's q/k/v/o/gate/up/down
# and lm_head; with --quantize-vision the ViT's qkv/proj/fc1/fc2 and mlp1.1/mlp1.3).
LLM_SUFFIXES = ("attention.wqkv.weight", "attention.wo.weight", "feed_forward.w1.weight",
                "feed_forward.w2.weight", "feed_forward.w3.weight",
                "self_attn.qkv_proj.weight", "self_attn.o_proj.weight",
                "mlp.gate_up_proj.weight", "mlp.down_proj.weight")
LLM_HEADS = ("language_model.output.weight", "language_model.lm_head.weight")
VIT_SUFFIXES = ("attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.weight")


def selected(name, vision):
    if name in LLM_HEADS:
        return True
    if name.startswith("language_model.model.layers."):
        return name.endswith(LLM_SUFFIXES)
    if not vision:
        return False
    if name in ("mlp1.1.weight", "mlp1.3.weight"):
        return True
    return name.startswith("vision_model.encoder.layers.") and name.endswith(VIT_SUFFIXES)


def rtn(w, bits, group):
    """w float32 [N, K] -> (q int, s float32 [N, K/G], z int [N, K/G])."""
    w = np.asarray(w, dtype=np.float32)
    N, K = w.shape
    if K % group:
        raise SystemExit(f"group {group} does not divide {K}")
    g = w.reshape(N, K // group, group)
    if bits == 8:
        amax = np.abs(g).max(axis=2)
        s = np.where(amax > 0, amax / np.float32(127), np.float32(1)).astype(np.float32)
        q = np.clip(np.rint(g / s[:, :, None]), -127, 127)
        z = np.zeros_like(s)
    else:
        mx, mn = g.max(axis=2), g.min(axis=2)
        s = (np.maximum(mx - mn, np.float32(1e-5)) / np.float32(15)).astype(np.float32)
        z = np.clip(-np.rint(mn / s), 0, 15).astype(np.float32)
        q = np.clip(np.rint(g / s[:, :, None]) + z[:, :, None], 0, 15)
    return q.astype(np.float32), s, z


def dequant(q, s, z):
    """s * (q - z) in float32, q [N, ng, G] or [N, K] with s, z [N, ng]."""
    N, ng = s.shape
    q = q.reshape(N, ng, -1).astype(np.float32)
    w = s[:, :, None] * (q - z[:, :, None].astype(np.float32))
    return w.reshape(N, -1).astype(np.float32)


def write_f32_safetensors(path, tensors):
    """tensors: name -> (dtype string, raw bytes, shape)."""
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


def raw_tensors(hf):
    """name -> (dtype, raw bytes, shape) for every tensor of an HF folder."""
    store = ref.WeightStore(hf)
    out = {}
    for name, (path, start, e) in store.where.items():
        b, end = e["data_offsets"]
        with open(path, "rb") as f:
            f.seek(start + b)
            out[name] = (e["dtype"], f.read(end - b), tuple(e["shape"]))
    return out


def as_f32(dt, raw, shape):
    return ref._raw_to_f32(raw, dt, shape, "tensor").numpy()


def copy_side_files(src, dst, drop_quant_config=False):
    os.makedirs(dst, exist_ok=True)
    for fn in os.listdir(src):
        if fn.endswith(".safetensors") or fn == "model.safetensors.index.json":
            continue
        p = os.path.join(src, fn)
        if os.path.isfile(p):
            shutil.copy(p, os.path.join(dst, fn))
    if drop_quant_config:
        cp = os.path.join(dst, "config.json")
        with open(cp) as f:
            cfg = json.load(f)
        cfg.pop("quantization_config", None)
        cfg.get("llm_config", {}).pop("quantization_config", None)
        with open(cp, "w") as f:
            json.dump(cfg, f, indent=2)


def cmd_fakequant(a):
    tensors = raw_tensors(a.hf)
    out = {}
    for name, (dt, raw, shape) in tensors.items():
        if selected(name, a.vision):
            w = as_f32(dt, raw, shape)
            G = a.group or (w.shape[1] if a.bits == 8 else 128)
            q, s, z = rtn(w, a.bits, G)
            out[name] = ("F32", dequant(q, s, z).astype("<f4").tobytes(), shape)
        else:
            out[name] = (dt, raw, shape)
    copy_side_files(a.hf, a.out)
    write_f32_safetensors(os.path.join(a.out, "model.safetensors"), out)


# ---- AWQ (GEMM layout; weights/SCHEMA.md "The AWQ release") ----
# qweight int32 [in, out/8], qzeros int32 [in/G, out/8], scales fp16 [in/G, out]. Output
# column c = 8 j + i of an int32 word j holds its nibble at bit 4 * ORDER_INV[i] where the
# packing order is ORDER = [0, 2, 4, 6, 1, 3, 5, 7] (nibble p holds column 8 j + ORDER[p]).
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def awq_unpack(packed):
    """int32 [R, C/8] -> uint8 [R, C] in column order."""
    p = np.asarray(packed).astype(np.uint32)
    R, C8 = p.shape
    out = np.zeros((R, C8 * 8), dtype=np.uint8)
    for pos, col in enumerate(AWQ_ORDER):
        out[:, col::8] = (p >> np.uint32(4 * pos)) & np.uint32(15)
    return out


def awq_dequant(qweight, qzeros, scales, group):
    """-> float32 weight [out, in] = ((q - z) * s)^T."""
    q = awq_unpack(qweight).astype(np.float32)          # [in, out]
    z = awq_unpack(qzeros).astype(np.float32)           # [in/G, out]
    s = np.asarray(scales, dtype=np.float32)            # [in/G, out]
    zi = np.repeat(z, group, axis=0)
    si = np.repeat(s, group, axis=0)
    return ((q - zi) * si).T.copy()


def cmd_awq_dequant(a):
    with open(os.path.join(a.hf, "config.json")) as f:
        cfg = json.load(f)
    qc = cfg.get("quantization_config") or cfg.get("llm_config", {}).get("quantization_config")
    group = int(qc["q_group_size"] if "q_group_size" in qc else qc["group_size"])
    tensors = raw_tensors(a.hf)
    out = {}
    for name, (dt, raw, shape) in tensors.items():
        if name.endswith((".qzeros", ".scales")):
            continue
        if name.endswith(".qweight"):
            base = name[: -len(".qweight")]
            qw = np.frombuffer(raw, dtype="<i4").reshape(shape)
            zdt, zraw, zshape = tensors[base + ".qzeros"]
            sdt, sraw, sshape = tensors[base + ".scales"]
            qz = np.frombuffer(zraw, dtype="<i4").reshape(zshape)
            sc = as_f32(sdt, sraw, sshape)
            w = awq_dequant(qw, qz, sc, group)
            out[base + ".weight"] = ("F32", w.astype("<f4").tobytes(), w.shape)
        else:
            out[name] = (dt, raw, shape)
    copy_side_files(a.hf, a.out, drop_quant_config=True)
    write_f32_safetensors(os.path.join(a.out, "model.safetensors"), out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fakequant")
    f.add_argument("--hf", required=True)
    f.add_argument("--bits", type=int, choices=(8, 4), required=True)
    f.add_argument("--group", type=int, default=0)
    f.add_argument("--vision", action="store_true")
    f.add_argument("--out", required=True)
    w = sub.add_parser("awq-dequant")
    w.add_argument("--hf", required=True)
    w.add_argument("--out", required=True)
    a = p.parse_args()
    {"fakequant": cmd_fakequant, "awq-dequant": cmd_awq_dequant}[a.cmd](a)


if __name__ == "__main__":
    main()
