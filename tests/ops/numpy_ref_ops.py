#!/usr/bin/python3
"""Reference outputs for the CPU attention and pixel-shuffle kernels, from Python.

Writes an HDF5 file that test_cpu_numpy_ref (C) reads, runs through the CPU backend and
compares. Two independent oracles are computed here and must agree before anything is
written: plain numpy in float64 (einsum, triangular mask, softmax), and the project's
PyTorch reference (tests/reference/internvl_ref.py: attention, causal_mask, pixel_shuffle)
run in float64. So the C kernels are checked against code not written alongside them.

Layout: /attention/<i> {q, k, v, out; attrs H, K, hd, causal, q_pos0, scale}
        /pixel_shuffle/<i> {in [B*g*g, C], out [B*(g/2)^2, 4C]; attrs grid, version}
Usage: numpy_ref_ops.py OUT.h5
"""
import math
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
try:
    import torch
    import internvl_ref as ref
except ImportError as e:  # the numpy oracle still runs; say why the second one does not
    print(f"note: PyTorch reference unavailable ({e}); numpy oracle only")
    ref = None

# (T, L, H, K, hd, causal, q_pos0)
ATTENTION_CASES = [
    (7, 7, 4, 2, 16, 1, 0),        # causal prefill, GQA 2
    (5, 12, 6, 3, 32, 1, 7),       # KV cache: queries at 7..11
    (1, 50, 8, 2, 128, 1, 49),     # decode, InternLM2 head size
    (33, 33, 4, 4, 64, 0, 0),      # bidirectional (ViT-like)
    (65, 90, 2, 1, 24, 0, 0),      # bidirectional MQA, L > T
    (97, 97, 16, 8, 16, 1, 0),     # InternLM2-1.8B head ratio, several query blocks
    (1025, 1025, 2, 2, 64, 0, 0),  # ViT-300M token count
]
# (B, grid, C, version)
SHUFFLE_CASES = [(1, 2, 3, 2), (2, 4, 5, 1), (2, 4, 5, 2), (1, 32, 16, 1), (2, 32, 16, 2),
                 (3, 6, 7, 2)]


def attention_numpy(q, k, v, H, K, hd, causal, pos0, scale):
    T, L = q.shape[0], k.shape[0]
    qh = q.reshape(T, H, hd).transpose(1, 0, 2)                       # [H, T, hd]
    kh = np.repeat(k.reshape(L, K, hd).transpose(1, 0, 2), H // K, 0)  # [H, L, hd]
    vh = np.repeat(v.reshape(L, K, hd).transpose(1, 0, 2), H // K, 0)
    s = np.einsum("htd,hld->htl", qh, kh) * scale
    if causal:
        allowed = np.arange(L)[None, :] <= (np.arange(T)[:, None] + pos0)
        s = np.where(allowed[None], s, -np.inf)
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    return np.einsum("htl,hld->htd", p, vh).transpose(1, 0, 2).reshape(T, H * hd)


def attention_torch(q, k, v, H, K, hd, causal, pos0):
    T, L = q.shape[0], k.shape[0]
    qh = torch.from_numpy(q).reshape(T, H, hd).transpose(0, 1)
    kh = torch.from_numpy(k).reshape(L, K, hd).transpose(0, 1).repeat_interleave(H // K, dim=0)
    vh = torch.from_numpy(v).reshape(L, K, hd).transpose(0, 1).repeat_interleave(H // K, dim=0)
    mask = None
    if causal:
        mask = ref.causal_mask(T, pos0)                # [T, pos0 + T]
        if L > pos0 + T:                               # keys past the last query: masked
            mask = torch.cat([mask, torch.zeros(T, L - pos0 - T, dtype=torch.bool)], 1)
    o = ref.attention(qh, kh, vh, mask)                # scale 1/sqrt(hd)
    return o.transpose(0, 1).reshape(T, H * hd).numpy()


def shuffle_numpy(x, B, g, C, version):
    x = x.reshape(B, g, g // 2, 2 * C).transpose(0, 2, 1, 3).reshape(B, g // 2, g // 2, 4 * C)
    if version == 2:
        x = x.transpose(0, 2, 1, 3)
    return np.ascontiguousarray(x).reshape(-1, 4 * C)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rng = np.random.default_rng(20261126)
    with h5py.File(sys.argv[1], "w") as f:
        ga = f.create_group("attention")
        for i, (T, L, H, K, hd, causal, pos0) in enumerate(ATTENTION_CASES):
            q = rng.uniform(-2, 2, (T, H * hd)).astype(np.float32)
            k = rng.uniform(-2, 2, (L, K * hd)).astype(np.float32)
            v = rng.uniform(-1, 1, (L, K * hd)).astype(np.float32)
            scale = 1.0 / math.sqrt(hd)
            out = attention_numpy(q.astype(np.float64), k.astype(np.float64),
                                  v.astype(np.float64), H, K, hd, causal, pos0, scale)
            if ref is not None:
                out_t = attention_torch(q.astype(np.float64), k.astype(np.float64),
                                        v.astype(np.float64), H, K, hd, causal, pos0)
                diff = np.abs(out - out_t).max()
                if diff > 1e-10:
                    sys.exit(f"attention case {i}: numpy and PyTorch references differ by {diff}")
            g = ga.create_group(str(i))
            g["q"], g["k"], g["v"], g["out"] = q, k, v, out.astype(np.float32)
            for name, val in (("H", H), ("K", K), ("hd", hd), ("causal", causal),
                              ("q_pos0", pos0)):
                g.attrs[name] = np.int64(val)
            g.attrs["scale"] = np.float64(scale)
        gs = f.create_group("pixel_shuffle")
        for i, (B, grid, C, version) in enumerate(SHUFFLE_CASES):
            x = rng.uniform(-1, 1, (B * grid * grid, C)).astype(np.float32)
            out = shuffle_numpy(x, B, grid, C, version)
            if ref is not None:
                out_t = ref.pixel_shuffle(torch.from_numpy(x).reshape(B, grid * grid, C), 0.5,
                                          f"v{version}").reshape(-1, 4 * C).numpy()
                if not np.array_equal(out, out_t):
                    sys.exit(f"pixel_shuffle case {i}: numpy and PyTorch references differ")
            g = gs.create_group(str(i))
            g["in"], g["out"] = x, out
            g.attrs["grid"], g.attrs["version"] = np.int64(grid), np.int64(version)
    print(f"wrote {len(ATTENTION_CASES)} attention and {len(SHUFFLE_CASES)} pixel_shuffle "
          f"cases to {sys.argv[1]} (oracles: numpy{'' if ref is None else ' + PyTorch reference'})")


if __name__ == "__main__":
    main()
