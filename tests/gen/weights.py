"""Random weights under the exact Hugging Face tensor names and shapes (spec section 6).

Every tensor draws from its own generator seeded by (seed, crc32(family), crc32(name)), so
a tensor's values depend only on the seed, the family and its name, not on which other
tensors exist.
The spreads are chosen so that mistakes show in the outputs: LayerScale values far from 1
and different per channel, norm weights 1 +- 0.3, nonzero biases, attention scores of order
1 (so softmax is neither uniform nor one-hot), logits spread by a few units.
"""
import zlib

import numpy as np

from safetensors_bf16 import f32_to_bf16_bits


class Gen:
    def __init__(self, seed, family):
        # The family name is mixed in so that two families never share weights (a test
        # that loads the wrong folder must not pass by accident).
        self.seed = [seed, zlib.crc32(family.encode())]
        self.tensors = {}          # name -> uint16 bf16 bits, insertion order = module order

    def _rng(self, name):
        return np.random.default_rng(self.seed + [zlib.crc32(name.encode())])

    def normal(self, name, shape, std, mean=0.0):
        x = self._rng(name).standard_normal(shape, dtype=np.float32) * np.float32(std) + mean
        self.tensors[name] = f32_to_bf16_bits(x)

    def uniform(self, name, shape, lo, hi):
        x = self._rng(name).uniform(lo, hi, size=shape).astype(np.float32)
        self.tensors[name] = f32_to_bf16_bits(x)

    def away_from_one(self, name, shape, lo, hi):
        """1 +- uniform(lo, hi) with a random sign: every channel differs from 1 by >= lo."""
        r = self._rng(name)
        x = 1 + r.choice([-1.0, 1.0], size=shape) * r.uniform(lo, hi, size=shape)
        self.tensors[name] = f32_to_bf16_bits(x.astype(np.float32))


def vision_tensors(g, v):
    C, I, six_b = v["hidden"], v["intermediate"], v["style"] == "6b"
    p = "vision_model."
    g.normal(p + "embeddings.class_embedding", (1, 1, C), 0.5)
    g.normal(p + "embeddings.patch_embedding.weight", (C, 3, 14, 14), 0.05)
    g.normal(p + "embeddings.patch_embedding.bias", (C,), 0.1)
    g.normal(p + "embeddings.position_embedding", (1, 1025, C), 0.3)
    # Real 6B LayerScale starts at 0.1, 300M at 1.0; both are trained away from it.
    # Every channel stays >= 0.1 (6B) / 0.15 (300M) away from 1 so a skipped LayerScale
    # changes every channel.
    ls = ((lambda n: g.uniform(n, (C,), 0.1, 0.9)) if six_b
          else (lambda n: g.away_from_one(n, (C,), 0.15, 0.6)))
    for L in range(v["layers"]):
        q = f"{p}encoder.layers.{L}."
        for n in ("norm1", "norm2"):
            g.uniform(q + n + ".weight", (C,), 0.7, 1.3)
            if not six_b:
                g.normal(q + n + ".bias", (C,), 0.1)
        g.normal(q + "attn.qkv.weight", (3 * C, C), 1.2 / np.sqrt(C))
        if six_b:
            g.uniform(q + "attn.q_norm.weight", (C,), 0.7, 1.3)
            g.uniform(q + "attn.k_norm.weight", (C,), 0.7, 1.3)
        else:
            g.normal(q + "attn.qkv.bias", (3 * C,), 0.1)
        g.normal(q + "attn.proj.weight", (C, C), 1.0 / np.sqrt(C))
        g.normal(q + "attn.proj.bias", (C,), 0.1)
        g.normal(q + "mlp.fc1.weight", (I, C), 1.0 / np.sqrt(C))
        g.normal(q + "mlp.fc1.bias", (I,), 0.1)
        g.normal(q + "mlp.fc2.weight", (C, I), 1.0 / np.sqrt(I))
        g.normal(q + "mlp.fc2.bias", (C,), 0.1)
        ls(q + "ls1")
        ls(q + "ls2")


def projector_tensors(g, v, D):
    C4 = 4 * v["hidden"]
    g.uniform("mlp1.0.weight", (C4,), 0.7, 1.3)
    g.normal("mlp1.0.bias", (C4,), 0.1)
    g.normal("mlp1.1.weight", (D, C4), 1.0 / np.sqrt(C4))
    g.normal("mlp1.1.bias", (D,), 0.1)
    g.normal("mlp1.3.weight", (D, D), 1.0 / np.sqrt(D))
    g.normal("mlp1.3.bias", (D,), 0.1)


def llm_tensors(g, m, V):
    D, H, K, hd, I = m["hidden"], m["heads"], m["kv_heads"], m["head_dim"], m["intermediate"]
    p = "language_model."
    qk_std = 1.2 / np.sqrt(D)          # q.k / sqrt(hd) of order 1 after the RMSNorm
    if m["arch"] == "internlm2":
        g.normal(p + "model.tok_embeddings.weight", (V, D), 0.5)
        for L in range(m["layers"]):
            q = f"{p}model.layers.{L}."
            g.uniform(q + "attention_norm.weight", (D,), 0.7, 1.3)
            # Packed per kv group: (K, G+2, hd, D), spec 4.1. Random, so the grouping is
            # only a shape here; it matters to whoever splits it.
            g.normal(q + "attention.wqkv.weight", ((H + 2 * K) * hd, D), qk_std)
            g.normal(q + "attention.wo.weight", (D, H * hd), 1.0 / np.sqrt(H * hd))
            g.uniform(q + "ffn_norm.weight", (D,), 0.7, 1.3)
            g.normal(q + "feed_forward.w1.weight", (I, D), 1.0 / np.sqrt(D))
            g.normal(q + "feed_forward.w3.weight", (I, D), 1.0 / np.sqrt(D))
            g.normal(q + "feed_forward.w2.weight", (D, I), 1.0 / np.sqrt(I))
        g.uniform(p + "model.norm.weight", (D,), 0.7, 1.3)
        g.normal(p + "output.weight", (V, D), 2.0 / np.sqrt(D))
    else:
        g.normal(p + "model.embed_tokens.weight", (V, D), 0.5)
        for L in range(m["layers"]):
            q = f"{p}model.layers.{L}."
            g.uniform(q + "input_layernorm.weight", (D,), 0.7, 1.3)
            g.normal(q + "self_attn.qkv_proj.weight", (3 * D, D), qk_std)
            g.normal(q + "self_attn.o_proj.weight", (D, D), 1.0 / np.sqrt(D))
            g.uniform(q + "post_attention_layernorm.weight", (D,), 0.7, 1.3)
            g.normal(q + "mlp.gate_up_proj.weight", (2 * I, D), 1.0 / np.sqrt(D))
            g.normal(q + "mlp.down_proj.weight", (D, I), 1.0 / np.sqrt(I))
        g.uniform(p + "model.norm.weight", (D,), 0.7, 1.3)
        g.normal(p + "lm_head.weight", (V, D), 2.0 / np.sqrt(D))


def all_tensors(family, fam, vocab, seed):
    """All tensors of a family in HF module order (vision_model, language_model, mlp1)."""
    g = Gen(seed, family)
    vision_tensors(g, fam["vit"])
    llm_tensors(g, fam["llm"], vocab)
    projector_tensors(g, fam["vit"], fam["llm"]["hidden"])
    return g.tensors
