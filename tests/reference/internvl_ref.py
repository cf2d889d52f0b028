#!/usr/bin/python3
"""Independent float32 reference of the InternVL 1.5 models (InternViT + projector + InternLM2 /
Phi-3), written from docs/internvl-spec.md sections 2-5 and 8.3, not from the C engine.

    /usr/bin/python3 internvl_ref.py --hf HF_DIR --inputs IN.h5 --out OUT.h5 [--max-new-tokens N]

IN.h5 / OUT.h5 follow docs/forward-io.md. Every hyperparameter comes from HF_DIR/config.json,
the special token ids from the tokenizer files, the weights from the (possibly sharded)
safetensors, converted to float32 exactly. All compute is float32 (no bf16 rounding of
intermediates: the C CPU engine computes in float32 too). Decisions where the spec leaves room
are listed in README.md beside this file.
"""
import argparse
import json
import math
import os
import struct
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

torch.set_grad_enabled(False)


class RefError(Exception):
    """A bad input file or checkpoint; main() prints it and exits 2."""


# ---------------------------------------------------------------------------------------------
# safetensors (no python3-safetensors in Debian): 8-byte little-endian header length, a JSON
# header {name: {dtype, shape, data_offsets:[begin, end]}, "__metadata__": ...}, then raw data.

def read_safetensors_header(path):
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise RefError(f"{path}: too short for a safetensors file")
        (n,) = struct.unpack("<Q", raw)
        size = os.path.getsize(path)
        if n > size - 8:
            raise RefError(f"{path}: header length {n} exceeds the file size {size}")
        header = json.loads(f.read(n).decode("utf-8"))
    header.pop("__metadata__", None)
    return header, 8 + n


def _raw_to_f32(buf, dtype, shape, where):
    """Exact conversion of the stored bytes to a float32 tensor."""
    if dtype == "BF16":
        u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16  # bf16 = top half of f32
        a = u.view(np.float32)
    elif dtype == "F16":
        a = np.frombuffer(buf, dtype="<f2").astype(np.float32)
    elif dtype == "F32":
        a = np.frombuffer(buf, dtype="<f4").astype(np.float32)
    else:
        raise RefError(f"{where}: unsupported safetensors dtype {dtype} (BF16, F16, F32 expected)")
    n = int(np.prod(shape)) if shape else 1
    if a.size != n:
        raise RefError(f"{where}: {a.size} elements stored, shape {shape} needs {n}")
    return torch.from_numpy(a.reshape(shape).copy())


class WeightStore:
    """Tensors of an HF directory: model.safetensors or model.safetensors.index.json shards."""

    def __init__(self, hf_dir):
        self.hf_dir = hf_dir
        self.where = {}  # name -> (file, data_start, entry)
        index = os.path.join(hf_dir, "model.safetensors.index.json")
        single = os.path.join(hf_dir, "model.safetensors")
        if os.path.exists(index):
            with open(index) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        elif os.path.exists(single):
            files = ["model.safetensors"]
        else:
            raise RefError(f"{hf_dir}: neither model.safetensors nor model.safetensors.index.json")
        for fn in files:
            path = os.path.join(hf_dir, fn)
            header, start = read_safetensors_header(path)
            for name, entry in header.items():
                self.where[name] = (path, start, entry)
        self.used = set()

    def has(self, name):
        return name in self.where

    def get(self, name, shape=None):
        if name not in self.where:
            raise RefError(f"{self.hf_dir}: tensor {name} is missing from the safetensors files")
        path, start, e = self.where[name]
        b, end = e["data_offsets"]
        with open(path, "rb") as f:
            f.seek(start + b)
            buf = f.read(end - b)
        t = _raw_to_f32(buf, e["dtype"], e["shape"], f"{path}:{name}")
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise RefError(f"{path}: tensor {name} has shape {list(t.shape)}, config implies {list(shape)}")
        self.used.add(name)
        return t


# ---------------------------------------------------------------------------------------------
# config.json and tokenizer files

TEMPLATE_STOP = {"internlm2-chat": "<|im_end|>", "phi3-chat": "<|end|>"}
IMG_CONTEXT = "<IMG_CONTEXT>"


def load_config(hf_dir):
    path = os.path.join(hf_dir, "config.json")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise RefError(f"{path}: cannot read config: {e}")
    for k in ("vision_config", "llm_config", "template", "downsample_ratio"):
        if k not in cfg:
            raise RefError(f"{path}: key '{k}' missing")
    return cfg


def read_token_map(hf_dir):
    """content -> id from added_tokens.json and tokenizer_config.json's added_tokens_decoder;
    falls back to tokenizer.model pieces for anything else (looked up lazily)."""
    m = {}
    p = os.path.join(hf_dir, "tokenizer_config.json")
    if os.path.exists(p):
        with open(p) as f:
            tc = json.load(f)
        for k, v in (tc.get("added_tokens_decoder") or {}).items():
            m[v["content"]] = int(k)
    p = os.path.join(hf_dir, "added_tokens.json")
    if os.path.exists(p):
        with open(p) as f:
            for k, v in json.load(f).items():
                m[k] = int(v)
    return m


def token_id(hf_dir, tmap, content):
    if content in tmap:
        return tmap[content]
    p = os.path.join(hf_dir, "tokenizer.model")
    if os.path.exists(p):
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=p)
        i = sp.piece_to_id(content)
        if i != sp.unk_id() or content == sp.id_to_piece(sp.unk_id()):
            return i
    raise RefError(f"{hf_dir}: token {content} not found in added_tokens.json, "
                   "tokenizer_config.json (added_tokens_decoder) or tokenizer.model")


def stop_token_of(cfg, hf_dir, tmap):
    t = cfg["template"]
    if t not in TEMPLATE_STOP:
        raise RefError(f"{hf_dir}/config.json: template '{t}' unknown (expected one of {sorted(TEMPLATE_STOP)})")
    return token_id(hf_dir, tmap, TEMPLATE_STOP[t])


# ---------------------------------------------------------------------------------------------
# primitives (torch 1.13 has no rms_norm and no scaled_dot_product_attention)

def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def attention(q, k, v, mask=None):
    """q [H,Sq,hd], k/v [H,Sk,hd]; mask [Sq,Sk] bool (True = may attend) or None."""
    s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return torch.matmul(torch.softmax(s, dim=-1), v)


def causal_mask(n_new, n_past):
    """query i (absolute position n_past+i) sees keys 0..n_past+i."""
    qi = torch.arange(n_new)[:, None] + n_past
    kj = torch.arange(n_past + n_new)[None, :]
    return kj <= qi


def rotate_half_apply(x, cos, sin):
    """x [H,S,hd]; cos/sin [S,hd] with duplicated halves (rotate-half RoPE, spec 4.2)."""
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rot * sin


# ---------------------------------------------------------------------------------------------
# InternViT (spec 2)

class InternViT:
    def __init__(self, ws, vc):
        self.C = vc["hidden_size"]
        self.heads = vc["num_attention_heads"]
        self.layers = vc["num_hidden_layers"]
        self.I = vc["intermediate_size"]
        self.patch = vc["patch_size"]
        self.image = vc["image_size"]
        self.eps = vc.get("layer_norm_eps", 1e-6)
        self.norm_type = vc.get("norm_type", "rms_norm")
        self.qkv_bias = bool(vc.get("qkv_bias", False))
        self.qk_norm = bool(vc.get("qk_normalization", False))
        if self.norm_type not in ("rms_norm", "layer_norm"):
            raise RefError(f"vision_config.norm_type '{self.norm_type}' unknown")
        if vc.get("hidden_act", "gelu") != "gelu":
            raise RefError(f"vision_config.hidden_act '{vc.get('hidden_act')}' unsupported (gelu expected)")
        if self.C % self.heads:
            raise RefError("vision_config: hidden_size not divisible by num_attention_heads")
        C, I, p = self.C, self.I, "vision_model."
        self.grid = self.image // self.patch
        self.cls = ws.get(p + "embeddings.class_embedding", (1, 1, C))
        self.pw = ws.get(p + "embeddings.patch_embedding.weight", (C, 3, self.patch, self.patch))
        self.pb = ws.get(p + "embeddings.patch_embedding.bias", (C,))
        self.pos = ws.get(p + "embeddings.position_embedding", (1, self.grid * self.grid + 1, C))
        self.L = []
        for i in range(self.layers):
            q = f"{p}encoder.layers.{i}."
            d = {
                "n1w": ws.get(q + "norm1.weight", (C,)), "n2w": ws.get(q + "norm2.weight", (C,)),
                "qkvw": ws.get(q + "attn.qkv.weight", (3 * C, C)),
                "projw": ws.get(q + "attn.proj.weight", (C, C)), "projb": ws.get(q + "attn.proj.bias", (C,)),
                "fc1w": ws.get(q + "mlp.fc1.weight", (I, C)), "fc1b": ws.get(q + "mlp.fc1.bias", (I,)),
                "fc2w": ws.get(q + "mlp.fc2.weight", (C, I)), "fc2b": ws.get(q + "mlp.fc2.bias", (C,)),
                "ls1": ws.get(q + "ls1", (C,)), "ls2": ws.get(q + "ls2", (C,)),
            }
            if self.norm_type == "layer_norm":
                d["n1b"] = ws.get(q + "norm1.bias", (C,))
                d["n2b"] = ws.get(q + "norm2.bias", (C,))
            d["qkvb"] = ws.get(q + "attn.qkv.bias", (3 * C,)) if self.qkv_bias else None
            if self.qk_norm:
                d["qn"] = ws.get(q + "attn.q_norm.weight", (C,))
                d["kn"] = ws.get(q + "attn.k_norm.weight", (C,))
            self.L.append(d)

    def _norm(self, x, w, b):
        if self.norm_type == "rms_norm":
            return rms_norm(x, w, self.eps)
        return F.layer_norm(x, (self.C,), w, b, self.eps)

    def embed(self, px):
        """px [3,H,W] -> [1025,C]: patch conv (with bias), CLS first, position embedding."""
        if px.shape[1] != self.image or px.shape[2] != self.image:
            raise RefError(f"pixel_values tile is {px.shape[1]}x{px.shape[2]}, the ViT expects "
                           f"{self.image}x{self.image} (position embedding is used as is)")
        x = F.conv2d(px[None], self.pw, self.pb, stride=self.patch)  # [1,C,g,g]
        x = x.flatten(2).transpose(1, 2)[0]  # token r*g+c
        x = torch.cat([self.cls[0], x], dim=0)
        return x + self.pos[0]

    def layer(self, x, d):
        C, H = self.C, self.heads
        hd = C // H
        h = self._norm(x, d["n1w"], d.get("n1b"))
        qkv = F.linear(h, d["qkvw"], d["qkvb"])
        q, k, v = qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]
        if self.qk_norm:  # over the full width, all heads jointly
            q = rms_norm(q, d["qn"], self.eps)
            k = rms_norm(k, d["kn"], self.eps)
        n = x.shape[0]
        split = lambda t: t.reshape(n, H, hd).transpose(0, 1)
        o = attention(split(q), split(k), split(v))  # bidirectional
        o = o.transpose(0, 1).reshape(n, C)
        x = x + F.linear(o, d["projw"], d["projb"]) * d["ls1"]
        h2 = self._norm(x, d["n2w"], d.get("n2b"))
        m = F.linear(F.gelu(F.linear(h2, d["fc1w"], d["fc1b"])), d["fc2w"], d["fc2b"])
        return x + m * d["ls2"]

    def forward(self, pixel_values):
        """-> (embeddings [T,1025,C], [per-layer [T,1025,C]]); tiles run one at a time."""
        embs, per_layer = [], [[] for _ in range(self.layers)]
        for t in range(pixel_values.shape[0]):
            x = self.embed(pixel_values[t])
            embs.append(x)
            for i, d in enumerate(self.L):
                x = self.layer(x, d)
                per_layer[i].append(x)
        return torch.stack(embs), [torch.stack(l) for l in per_layer]


def pixel_shuffle(x, ratio, version):
    """x [T,N,C] (CLS dropped) -> [T,N*r^2,C/r^2]; spec 3, done as view/permute on the grid."""
    T, N, C = x.shape
    g = int(round(math.sqrt(N)))
    if g * g != N:
        raise RefError(f"pixel shuffle: {N} tokens are not a square grid")
    x = x.reshape(T, g, g, C)  # [T, rows, cols, C]
    t, w, h, c = x.shape
    x = x.reshape(t, w, int(h * ratio), int(c / ratio))
    x = x.permute(0, 2, 1, 3).contiguous()
    x = x.reshape(t, int(h * ratio), int(w * ratio), int(c / (ratio * ratio)))
    if version == "v2":
        x = x.permute(0, 2, 1, 3).contiguous()
    elif version != "v1":
        raise RefError(f"ps_version '{version}' unknown (v1 or v2)")
    return x.reshape(T, -1, x.shape[-1])


class Projector:
    """mlp1: LayerNorm(4C, eps 1e-5) -> Linear -> GELU(erf) -> Linear."""

    def __init__(self, ws, c4, D):
        self.c4 = c4
        self.lw, self.lb = ws.get("mlp1.0.weight", (c4,)), ws.get("mlp1.0.bias", (c4,))
        self.w1, self.b1 = ws.get("mlp1.1.weight", (D, c4)), ws.get("mlp1.1.bias", (D,))
        self.w3, self.b3 = ws.get("mlp1.3.weight", (D, D)), ws.get("mlp1.3.bias", (D,))

    def forward(self, x):
        x = F.layer_norm(x, (self.c4,), self.lw, self.lb, 1e-5)
        return F.linear(F.gelu(F.linear(x, self.w1, self.b1)), self.w3, self.b3)


# ---------------------------------------------------------------------------------------------
# RoPE variants. Both return (cos, sin) [S,hd] for the positions of one forward call.

def _inv_freq(base, hd):
    return 1.0 / (base ** (torch.arange(0, hd, 2).float() / hd))


def _cos_sin(positions, inv_freq, scale=1.0):
    ang = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat([ang, ang], dim=-1)
    return emb.cos() * scale, emb.sin() * scale


class InternLM2Rope:
    """Plain / linear / dynamic-NTK rotary embedding of InternLM2 (spec 4.2).

    Dynamic NTK is stateful like the reference's cached table: `cached` starts at
    max_position_embeddings; a call whose KV length L (past + new tokens) exceeds it rebuilds
    the table with base' = theta*((f*L/max) - (f-1))^(hd/(hd-2)) and sets cached = L. It never
    shrinks. The new tokens' q and k are rotated with the current table; keys already in the
    cache keep the rotation they were given. One instance per sequence (fresh state)."""

    def __init__(self, lc, hd):
        self.hd = hd
        self.theta = float(lc.get("rope_theta", 10000.0))
        self.max_pos = int(lc["max_position_embeddings"])
        rs = lc.get("rope_scaling")
        self.kind = (rs or {}).get("type", "none") if rs else "none"
        if self.kind not in ("none", "dynamic", "linear"):
            raise RefError(f"llm_config.rope_scaling.type '{self.kind}' unsupported for InternLM2")
        self.factor = float(rs["factor"]) if rs else 1.0
        self.cached = self.max_pos
        self.base = self.theta

    def __call__(self, positions, kv_len):
        if self.kind == "dynamic" and kv_len > self.cached:
            f, hd = self.factor, self.hd
            self.base = self.theta * ((f * kv_len / self.max_pos) - (f - 1)) ** (hd / (hd - 2))
            self.cached = kv_len
        pos = positions.float() / self.factor if self.kind == "linear" else positions
        return _cos_sin(pos, _inv_freq(self.base, self.hd))


class Phi3Rope:
    """Phi-3 rotary embedding: plain, or su/LongRoPE (spec 5). su picks the factor list per
    forward call from S = max(positions in the call) + 1: short if S <= original max position,
    else long; cos/sin are multiplied by m = sqrt(1 + ln(max/orig)/ln(orig)) (1 if max <= orig).
    In a decode step only the new token's position is in the call (the spec's quirk)."""

    def __init__(self, lc, hd):
        self.hd = hd
        self.theta = float(lc.get("rope_theta", 10000.0))
        rs = lc.get("rope_scaling")
        self.kind = rs.get("type", "none") if rs else "none"
        if self.kind not in ("none", "su"):
            raise RefError(f"llm_config.rope_scaling.type '{self.kind}' unsupported for Phi-3 "
                           "(the 1.5 series uses 'su')")
        if self.kind == "su":
            self.orig = int(lc["original_max_position_embeddings"])
            mx = int(lc["max_position_embeddings"])
            self.short = torch.tensor(rs["short_factor"], dtype=torch.float32)
            self.long = torch.tensor(rs["long_factor"], dtype=torch.float32)
            for nm, v in (("short_factor", self.short), ("long_factor", self.long)):
                if v.numel() != hd // 2:
                    raise RefError(f"llm_config.rope_scaling.{nm} has {v.numel()} values, head_dim/2 = {hd // 2}")
            s = mx / self.orig
            self.m = 1.0 if s <= 1.0 else math.sqrt(1 + math.log(s) / math.log(self.orig))
        self.last_long = None  # which list the last call used (for the self-check)

    def __call__(self, positions, kv_len):
        if self.kind == "none":
            return _cos_sin(positions, _inv_freq(self.theta, self.hd))
        S = int(positions.max()) + 1
        self.last_long = S > self.orig
        fac = self.long if self.last_long else self.short
        inv = 1.0 / (fac * self.theta ** (torch.arange(0, self.hd, 2).float() / self.hd))
        return _cos_sin(positions, inv, self.m)


def rope_switch_point(lc):
    """The KV length past which the RoPE changes (dynamic NTK: max_position_embeddings; su:
    original_max_position_embeddings), or None when the rotation never changes."""
    rs = lc.get("rope_scaling") or {}
    if rs.get("type") == "dynamic":
        return int(lc["max_position_embeddings"])
    if rs.get("type") == "su":
        return int(lc["original_max_position_embeddings"])
    return None


# ---------------------------------------------------------------------------------------------
# Language models

def split_internlm2_wqkv(w, H, K, hd):
    """wqkv [(H+2K)hd, D], grouped per kv head g as G query heads, then k, then v (spec 4.1).
    Returns wq [H*hd,D] (query head n = g*G+s), wk [K*hd,D], wv [K*hd,D]."""
    G = H // K
    D = w.shape[1]
    w = w.reshape(K, G + 2, hd, D)
    return (w[:, :G].reshape(H * hd, D), w[:, G].reshape(K * hd, D), w[:, G + 1].reshape(K * hd, D))


class LLM:
    def __init__(self, ws, lc):
        arch = (lc.get("architectures") or [""])[0]
        mt = lc.get("model_type", "")
        if arch.startswith("InternLM2") or mt == "internlm2":
            self.family = "internlm2"
        elif arch.startswith("Phi3") or mt == "phi3":
            self.family = "phi3"
        else:
            raise RefError(f"llm_config: architecture '{arch}' / model_type '{mt}' unsupported")
        self.lc = lc
        D = self.D = lc["hidden_size"]
        H = self.H = lc["num_attention_heads"]
        K = self.K = lc.get("num_key_value_heads") or H
        self.layers = lc["num_hidden_layers"]
        I = lc["intermediate_size"]
        if D % H or H % K:
            raise RefError("llm_config: hidden_size % heads or heads % kv_heads is not 0")
        hd = self.hd = D // H
        self.eps = lc.get("rms_norm_eps", 1e-6)
        act = lc.get("hidden_act", "silu")
        if act != "silu":
            raise RefError(f"llm_config.hidden_act '{act}' unsupported (silu expected)")
        p = "language_model."
        self.L = []
        if self.family == "internlm2":
            self.emb = ws.get(p + "model.tok_embeddings.weight")
            self.V = self.emb.shape[0]
            if self.emb.shape[1] != D:
                raise RefError(f"tok_embeddings is {list(self.emb.shape)}, hidden_size {D}")
            for i in range(self.layers):
                q = f"{p}model.layers.{i}."
                wq, wk, wv = split_internlm2_wqkv(ws.get(q + "attention.wqkv.weight", ((H + 2 * K) * hd, D)), H, K, hd)
                self.L.append({
                    "an": ws.get(q + "attention_norm.weight", (D,)), "fn": ws.get(q + "ffn_norm.weight", (D,)),
                    "wq": wq, "wk": wk, "wv": wv, "wo": ws.get(q + "attention.wo.weight", (D, H * hd)),
                    "gate": ws.get(q + "feed_forward.w1.weight", (I, D)),
                    "up": ws.get(q + "feed_forward.w3.weight", (I, D)),
                    "down": ws.get(q + "feed_forward.w2.weight", (D, I)),
                })
            self.norm = ws.get(p + "model.norm.weight", (D,))
            self.head = ws.get(p + "output.weight", (self.V, D))
        else:
            self.emb = ws.get(p + "model.embed_tokens.weight")
            self.V = self.emb.shape[0]
            if self.emb.shape[1] != D:
                raise RefError(f"embed_tokens is {list(self.emb.shape)}, hidden_size {D}")
            for i in range(self.layers):
                q = f"{p}model.layers.{i}."
                qkv = ws.get(q + "self_attn.qkv_proj.weight", ((H + 2 * K) * hd, D))
                gu = ws.get(q + "mlp.gate_up_proj.weight", (2 * I, D))
                self.L.append({
                    "an": ws.get(q + "input_layernorm.weight", (D,)),
                    "fn": ws.get(q + "post_attention_layernorm.weight", (D,)),
                    "wq": qkv[:H * hd], "wk": qkv[H * hd:(H + K) * hd], "wv": qkv[(H + K) * hd:],
                    "wo": ws.get(q + "self_attn.o_proj.weight", (D, H * hd)),
                    "gate": gu[:I], "up": gu[I:],
                    "down": ws.get(q + "mlp.down_proj.weight", (D, I)),
                })
            self.norm = ws.get(p + "model.norm.weight", (D,))
            self.head = ws.get(p + "lm_head.weight", (self.V, D))

    def new_rope(self):
        return InternLM2Rope(self.lc, self.hd) if self.family == "internlm2" else Phi3Rope(self.lc, self.hd)

    def embed(self, ids):
        ids = torch.as_tensor(ids, dtype=torch.int64)
        if int(ids.min()) < 0 or int(ids.max()) >= self.V:
            raise RefError(f"input id out of range [0, {self.V})")
        return self.emb[ids]

    def forward(self, x, positions, cache, rope, keep_layers=False):
        """x [S,D] new tokens at `positions`; cache: list of per-layer (k, v) [K,L,hd] or
        None (grown in place). Returns (logits [S,V], layer outputs, final norm output)."""
        S, H, K, hd = x.shape[0], self.H, self.K, self.hd
        past = cache[0][0].shape[1] if cache[0] is not None else 0
        cos, sin = rope(positions, past + S)
        mask = causal_mask(S, past)
        outs = []
        for i, d in enumerate(self.L):
            h = rms_norm(x, d["an"], self.eps)
            q = F.linear(h, d["wq"]).reshape(S, H, hd).transpose(0, 1)
            k = F.linear(h, d["wk"]).reshape(S, K, hd).transpose(0, 1)
            v = F.linear(h, d["wv"]).reshape(S, K, hd).transpose(0, 1)
            q = rotate_half_apply(q, cos, sin)
            k = rotate_half_apply(k, cos, sin)
            if cache[i] is not None:
                k = torch.cat([cache[i][0], k], dim=1)
                v = torch.cat([cache[i][1], v], dim=1)
            cache[i] = (k, v)
            G = H // K  # query head n uses kv head n // G
            o = attention(q, k.repeat_interleave(G, dim=0), v.repeat_interleave(G, dim=0), mask)
            x = x + F.linear(o.transpose(0, 1).reshape(S, H * hd), d["wo"])
            h = rms_norm(x, d["fn"], self.eps)
            x = x + F.linear(F.silu(F.linear(h, d["gate"])) * F.linear(h, d["up"]), d["down"])
            if keep_layers:
                outs.append(x)
        n = rms_norm(x, self.norm, self.eps)
        return F.linear(n, self.head), outs, n


def greedy(llm, prompt_embeds, max_new, stop_id, use_cache=True, step_logits=None):
    """Greedy decode of one sequence. Returns (prefill logits [V], layer outs, norm, ids).
    use_cache=False recomputes the whole sequence (fresh RoPE state) for every new token.
    step_logits, if a list, receives the logits each new token was picked from."""
    L = prompt_embeds.shape[0]
    cache = [None] * llm.layers
    rope = llm.new_rope()
    logits, outs, norm = llm.forward(prompt_embeds, torch.arange(L), cache, rope, keep_layers=True)
    prefill = logits[-1]
    ids = []
    last = prefill
    while len(ids) < max_new:
        if step_logits is not None:
            step_logits.append(last)
        tok = int(torch.argmax(last))
        ids.append(tok)
        if tok == stop_id or len(ids) == max_new:
            break
        if use_cache:
            pos = torch.tensor([L + len(ids) - 1])
            last = llm.forward(llm.embed([tok]), pos, cache, rope)[0][-1]
        else:
            x = torch.cat([prompt_embeds, llm.embed(ids)], dim=0)
            last = llm.forward(x, torch.arange(x.shape[0]), [None] * llm.layers, llm.new_rope())[0][-1]
    return prefill, outs, norm, ids


# ---------------------------------------------------------------------------------------------
# The whole model

class InternVL:
    def __init__(self, hf_dir):
        self.hf_dir = hf_dir
        self.cfg = load_config(hf_dir)
        self.ws = WeightStore(hf_dir)
        vc, lc = self.cfg["vision_config"], self.cfg["llm_config"]
        sel = self.cfg.get("select_layer", -1)
        if sel != -1:
            raise RefError(f"{hf_dir}/config.json: select_layer {sel} unsupported (the 1.5 series uses -1)")
        self.ratio = float(self.cfg["downsample_ratio"])
        self.ps_version = self.cfg.get("ps_version", "v1")  # absent = legacy V1-2 behaviour
        self.vit = InternViT(self.ws, vc)
        self.llm = LLM(self.ws, lc)
        c4 = int(self.vit.C / (self.ratio * self.ratio))
        self.proj = Projector(self.ws, c4, self.llm.D)
        self.tokens_per_tile = int(self.vit.grid * self.vit.grid * self.ratio * self.ratio)
        tmap = read_token_map(hf_dir)
        self.img_context_id = token_id(hf_dir, tmap, IMG_CONTEXT)
        self.stop_id = stop_token_of(self.cfg, hf_dir, tmap)
        unused = sorted(set(self.ws.where) - self.ws.used)
        if unused:
            print(f"internvl_ref: note: {len(unused)} tensors unused, e.g. {unused[:3]}", file=sys.stderr)

    def vision(self, pixel_values):
        emb, layers = self.vit.forward(pixel_values)
        ps = pixel_shuffle(layers[-1][:, 1:], self.ratio, self.ps_version)  # drop CLS
        ps = ps.reshape(-1, ps.shape[-1])
        return emb, layers, ps, self.proj.forward(ps)

    def run(self, input_ids, attention_mask, pixel_values, max_new, use_cache=True):
        """Returns a dict of output name -> tensor (docs/forward-io.md)."""
        if input_ids.dim() == 1:
            input_ids = input_ids[None]
            if attention_mask is not None and attention_mask.dim() == 1:
                attention_mask = attention_mask[None]
        B = input_ids.shape[0]
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if attention_mask.shape != input_ids.shape:
            raise RefError(f"attention_mask shape {list(attention_mask.shape)} != input_ids {list(input_ids.shape)}")
        seqs = []
        for b in range(B):
            m = attention_mask[b]
            n = int(m.sum())
            if n == 0 or not bool((m[-n:] == 1).all()) or bool(m[:-n].any()):
                raise RefError(f"attention_mask row {b} is not left padding (0...0 1...1)")
            seqs.append(input_ids[b, -n:])
        out = {}
        n_ctx = sum(int((s == self.img_context_id).sum()) for s in seqs)
        if pixel_values is not None:
            emb, layers, ps, vis = self.vision(pixel_values)
            out["vit.embeddings"] = emb
            for i, l in enumerate(layers):
                out[f"vit.layer.{i}"] = l
            out["pixel_shuffle"] = ps
            out["vision_embeds"] = vis
        else:
            vis = torch.zeros(0, self.llm.D)
        if n_ctx != vis.shape[0]:
            raise RefError(f"{n_ctx} <IMG_CONTEXT> tokens (id {self.img_context_id}) but "
                           f"{vis.shape[0]} image embeddings ({self.tokens_per_tile} per tile)")
        # splice in flattened batch order, then run each sequence alone
        embeds, used = [], 0
        for s in seqs:
            e = self.llm.embed(s).clone()
            pos = (s == self.img_context_id).nonzero().flatten()
            e[pos] = vis[used:used + pos.numel()]
            used += pos.numel()
            embeds.append(e)
        out["llm.embeds"] = torch.cat(embeds)
        per_layer = [[] for _ in range(self.llm.layers)]
        norms, prefill, gen = [], [], torch.full((B, max_new), -1, dtype=torch.int64)
        for b, e in enumerate(embeds):
            p, outs, n, ids = greedy(self.llm, e, max_new, self.stop_id, use_cache)
            for i, o in enumerate(outs):
                per_layer[i].append(o)
            norms.append(n)
            prefill.append(p)
            gen[b, :len(ids)] = torch.tensor(ids, dtype=torch.int64)
        for i, l in enumerate(per_layer):
            out[f"llm.layer.{i}"] = torch.cat(l)
        out["llm.norm"] = torch.cat(norms)
        out["prefill_logits"] = torch.stack(prefill)
        out["generated_ids"] = gen
        return out


def read_inputs(path):
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise RefError(f"{path}: cannot open as HDF5: {e}")
    with f:
        if "input_ids" not in f:
            raise RefError(f"{path}: dataset input_ids missing")
        ids = torch.from_numpy(f["input_ids"][()].astype(np.int64))
        mask = torch.from_numpy(f["attention_mask"][()].astype(np.int64)) if "attention_mask" in f else None
        px = torch.from_numpy(f["pixel_values"][()].astype(np.float32)) if "pixel_values" in f else None
    if px is not None and (px.dim() != 4 or px.shape[1] != 3):
        raise RefError(f"{path}: pixel_values must be [tiles,3,H,W], got {list(px.shape)}")
    return ids, mask, px


def write_outputs(path, out, max_new, stop_id):
    with h5py.File(path, "w") as f:
        for k, v in out.items():
            a = v.numpy()
            f.create_dataset(k, data=a if a.dtype == np.int64 else a.astype(np.float32))
        f.attrs["max_new_tokens"] = np.int64(max_new)
        f.attrs["stop_id"] = np.int64(stop_id)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hf", required=True, help="HF checkpoint directory")
    ap.add_argument("--inputs", required=True, help="IN.h5 (docs/forward-io.md)")
    ap.add_argument("--out", required=True, help="OUT.h5 to write")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--no-kv-cache", action="store_true", help="recompute the full sequence per token")
    a = ap.parse_args(argv)
    try:
        model = InternVL(a.hf)
        ids, mask, px = read_inputs(a.inputs)
        out = model.run(ids, mask, px, a.max_new_tokens, use_cache=not a.no_kv_cache)
        write_outputs(a.out, out, a.max_new_tokens, model.stop_id)
    except RefError as e:
        print(f"internvl_ref: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
