#!/usr/bin/python3
"""Tiny random InternVL checkpoints in the HF layout (spec 6), for the reference's self-check
only (the engine tests use tests/gen/make_checkpoint.py). Small on purpose: the LLMs take
their max_position_embeddings / original_max_position_embeddings from the caller so that
the dynamic-NTK and su switch points can be crossed within a few dozen tokens.

    write_checkpoint(dir, kind, seed=0, max_pos=..., shards=1)
kind: "ln-internlm2"  ViT LayerNorm + qkv bias (300M style) + InternLM2 (dynamic NTK, GQA)
      "rms-internlm2" ViT RMSNorm + qk norm (6B style) + InternLM2
      "ln-phi3"       ViT LayerNorm + Phi-3 (su / LongRoPE)
"""
import json
import os
import struct

import numpy as np
import torch

BASE_VOCAB = 180  # 0 <unk>, 1 <s>, 2 </s>, the rest ordinary pieces
IVL_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]


def write_safetensors(path, tensors):
    """tensors: name -> float32 torch tensor, stored as BF16 (round to nearest even)."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        raw = t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def _vision(kind):
    rms = kind.startswith("rms")
    return {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4 if rms else 2,
            "intermediate_size": 64, "image_size": 448, "patch_size": 14, "num_channels": 3,
            "hidden_act": "gelu", "norm_type": "rms_norm" if rms else "layer_norm",
            "layer_norm_eps": 1e-6, "qkv_bias": not rms, "qk_normalization": rms,
            "initializer_factor": 0.1 if rms else 1.0}


def _llm(kind, max_pos, orig):
    if kind.endswith("internlm2"):
        heads, kv = (6, 2) if kind.startswith("rms") else (4, 2)
        return {"architectures": ["InternLM2ForCausalLM"], "model_type": "internlm2",
                "hidden_size": 8 * heads, "num_hidden_layers": 2, "num_attention_heads": heads,
                "num_key_value_heads": kv, "intermediate_size": 64,
                "vocab_size": BASE_VOCAB + len(IVL_TOKENS), "max_position_embeddings": max_pos,
                "rope_theta": 1000000.0, "rope_scaling": {"type": "dynamic", "factor": 2.0},
                "rms_norm_eps": 1e-5, "hidden_act": "silu", "bias": False,
                "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}
    hd = 12
    g = torch.Generator().manual_seed(7)
    short = (1.0 + torch.rand(hd // 2, generator=g)).tolist()
    long = (1.0 + 30 * torch.rand(hd // 2, generator=g)).tolist()
    return {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 48,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
            "intermediate_size": 64, "vocab_size": BASE_VOCAB + 11 + len(IVL_TOKENS),
            "max_position_embeddings": max_pos, "original_max_position_embeddings": orig,
            "rope_theta": 10000.0, "rope_scaling": {"type": "su", "short_factor": short, "long_factor": long},
            "rms_norm_eps": 1e-5, "hidden_act": "silu", "sliding_window": 262144,
            "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 32000, "pad_token_id": 32000}


def _tokens(kind):
    """(tokenizer_config added_tokens_decoder, added_tokens.json) like the real repos."""
    if kind.endswith("internlm2"):
        dec = {BASE_VOCAB - 2: "<|im_end|>", BASE_VOCAB - 1: "<|im_start|>"}
        added = {t: BASE_VOCAB + i for i, t in enumerate(IVL_TOKENS)}
    else:
        phi = ["<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>", "<|placeholder3|>",
               "<|placeholder4|>", "<|system|>", "<|end|>", "<|placeholder5|>", "<|placeholder6|>", "<|user|>"]
        added = {t: BASE_VOCAB + i for i, t in enumerate(phi + IVL_TOKENS)}
        dec = {i: t for t, i in added.items()}
    dec.update({0: "<unk>", 1: "<s>", 2: "</s>"})
    return dec, added


def weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    rn = lambda *s, std=1.0: torch.randn(*s, generator=g) * std
    lin = lambda o, i: rn(o, i, std=i ** -0.5)
    near1 = lambda n: 1.0 + rn(n, std=0.1)
    vc, lc = cfg["vision_config"], cfg["llm_config"]
    C, Iv, P = vc["hidden_size"], vc["intermediate_size"], vc["patch_size"]
    grid = vc["image_size"] // P
    t = {}
    v = "vision_model."
    t[v + "embeddings.class_embedding"] = rn(1, 1, C)
    t[v + "embeddings.patch_embedding.weight"] = rn(C, 3, P, P, std=(3 * P * P) ** -0.5)
    t[v + "embeddings.patch_embedding.bias"] = rn(C, std=0.1)
    t[v + "embeddings.position_embedding"] = rn(1, grid * grid + 1, C, std=0.5)
    for i in range(vc["num_hidden_layers"]):
        q = f"{v}encoder.layers.{i}."
        t[q + "norm1.weight"], t[q + "norm2.weight"] = near1(C), near1(C)
        if vc["norm_type"] == "layer_norm":
            t[q + "norm1.bias"], t[q + "norm2.bias"] = rn(C, std=0.1), rn(C, std=0.1)
        t[q + "attn.qkv.weight"] = lin(3 * C, C)
        if vc["qkv_bias"]:
            t[q + "attn.qkv.bias"] = rn(3 * C, std=0.1)
        if vc["qk_normalization"]:
            t[q + "attn.q_norm.weight"], t[q + "attn.k_norm.weight"] = near1(C), near1(C)
        t[q + "attn.proj.weight"], t[q + "attn.proj.bias"] = lin(C, C), rn(C, std=0.1)
        t[q + "mlp.fc1.weight"], t[q + "mlp.fc1.bias"] = lin(Iv, C), rn(Iv, std=0.1)
        t[q + "mlp.fc2.weight"], t[q + "mlp.fc2.bias"] = lin(C, Iv), rn(C, std=0.1)
        t[q + "ls1"], t[q + "ls2"] = 0.5 + rn(C, std=0.1), 0.5 + rn(C, std=0.1)
    D, V, I = lc["hidden_size"], lc["vocab_size"], lc["intermediate_size"]
    H, K = lc["num_attention_heads"], lc["num_key_value_heads"]
    hd = D // H
    c4 = int(C / cfg["downsample_ratio"] ** 2)
    t["mlp1.0.weight"], t["mlp1.0.bias"] = near1(c4), rn(c4, std=0.1)
    t["mlp1.1.weight"], t["mlp1.1.bias"] = lin(D, c4), rn(D, std=0.1)
    t["mlp1.3.weight"], t["mlp1.3.bias"] = lin(D, D), rn(D, std=0.1)
    p = "language_model.model."
    for i in range(lc["num_hidden_layers"]):
        q = f"{p}layers.{i}."
        if lc["model_type"] == "internlm2":
            t[q + "attention.wqkv.weight"] = lin((H + 2 * K) * hd, D)
            t[q + "attention.wo.weight"] = lin(D, H * hd)
            t[q + "attention_norm.weight"], t[q + "ffn_norm.weight"] = near1(D), near1(D)
            t[q + "feed_forward.w1.weight"], t[q + "feed_forward.w3.weight"] = lin(I, D), lin(I, D)
            t[q + "feed_forward.w2.weight"] = lin(D, I)
        else:
            t[q + "self_attn.qkv_proj.weight"] = lin((H + 2 * K) * hd, D)
            t[q + "self_attn.o_proj.weight"] = lin(D, H * hd)
            t[q + "input_layernorm.weight"], t[q + "post_attention_layernorm.weight"] = near1(D), near1(D)
            t[q + "mlp.gate_up_proj.weight"] = lin(2 * I, D)
            t[q + "mlp.down_proj.weight"] = lin(D, I)
    t[p + "norm.weight"] = near1(D)
    if lc["model_type"] == "internlm2":
        t[p + "tok_embeddings.weight"] = rn(V, D)
        t["language_model.output.weight"] = lin(V, D) * 3
    else:
        t[p + "embed_tokens.weight"] = rn(V, D)
        t["language_model.lm_head.weight"] = lin(V, D) * 3
    return t


def write_checkpoint(out_dir, kind, seed=0, max_pos=4096, orig=4096, shards=1, ps_version="v2"):
    os.makedirs(out_dir, exist_ok=True)
    cfg = {"architectures": ["InternVLChatModel"], "model_type": "internvl_chat",
           "template": "phi3-chat" if kind.endswith("phi3") else "internlm2-chat",
           "downsample_ratio": 0.5, "ps_version": ps_version, "select_layer": -1,
           "force_image_size": 448, "dynamic_image_size": True, "use_thumbnail": True,
           "min_dynamic_patch": 1, "max_dynamic_patch": 12, "torch_dtype": "bfloat16",
           "vision_config": _vision(kind), "llm_config": _llm(kind, max_pos, orig)}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    dec, added = _tokens(kind)
    with open(os.path.join(out_dir, "added_tokens.json"), "w") as f:
        json.dump(added, f)
    tc = {"added_tokens_decoder": {str(i): {"content": c, "special": True} for i, c in sorted(dec.items())},
          "bos_token": "<s>", "eos_token": "</s>",
          "pad_token": "</s>" if kind.endswith("internlm2") else "<|endoftext|>"}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tc, f)
    t = weights(cfg, seed)
    names = list(t)
    if shards == 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), t)
        return cfg
    wm = {}
    for s in range(shards):
        fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = names[s::shards]
        write_safetensors(os.path.join(out_dir, fn), {n: t[n] for n in part})
        wm.update({n: fn for n in part})
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": wm}, f)
    return cfg
