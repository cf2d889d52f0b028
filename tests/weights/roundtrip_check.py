#!/usr/bin/python3
"""Checks a converted model file against its Hugging Face checkpoint, bit for bit.

  roundtrip_check.py HF_DIR FILE.h5

The expected engine tensors are derived here from the spec (sections 4.1, 5, 6) and
weights/SCHEMA.md, independently of the converter's C code: ViT qkv -> q/k/v row blocks,
InternLM2 wqkv de-interleaved per kv group, Phi-3 qkv_proj and gate_up_proj split. Every
HF tensor must be used, every HDF5 tensor expected, every byte equal; config.json and the
tokenizer files must be stored byte-identical.
"""
import glob
import json
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

NP = {"BF16": np.uint16, "F16": np.uint16, "F32": np.uint32}   # compare bit patterns


def load_hf(d):
    files = sorted(glob.glob(os.path.join(d, "*.safetensors")))
    out = {}
    for f in files:
        for name, (dt, shape, raw) in st_io.read_all(f).items():
            assert name not in out, f"{name} in two shards"
            out[name] = (dt, np.frombuffer(raw, dtype=NP[dt]).reshape(shape))
    return out


def expected(cfg, hf):
    """{engine name: (hf name, bits array)}"""
    v, l = cfg["vision_config"], cfg["llm_config"]
    exp = {}

    def put(name, src, rows=None):
        dt, a = hf[src]
        exp[name] = (src, dt, a if rows is None else a[rows])

    put("vision.class_embedding", "vision_model.embeddings.class_embedding")
    put("vision.patch_embedding.weight", "vision_model.embeddings.patch_embedding.weight")
    put("vision.patch_embedding.bias", "vision_model.embeddings.patch_embedding.bias")
    put("vision.position_embedding", "vision_model.embeddings.position_embedding")
    C = v["hidden_size"]
    for L in range(v["num_hidden_layers"]):
        s, e = f"vision_model.encoder.layers.{L}.", f"vision.layers.{L}."
        names = ["norm1.weight", "norm2.weight", "attn.proj.weight", "attn.proj.bias",
                 "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias", "ls1", "ls2"]
        if v["norm_type"] == "layer_norm":
            names += ["norm1.bias", "norm2.bias"]
        if v["qk_normalization"]:
            names += ["attn.q_norm.weight", "attn.k_norm.weight"]
        for n in names:
            put(e + n, s + n)
        for i, p in enumerate("qkv"):
            put(e + f"attn.{p}.weight", s + "attn.qkv.weight", slice(i * C, (i + 1) * C))
            if v["qkv_bias"]:
                put(e + f"attn.{p}.bias", s + "attn.qkv.bias", slice(i * C, (i + 1) * C))
    for n in ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"]:
        put("mlp1." + n, "mlp1." + n)

    D, H, K = l["hidden_size"], l["num_attention_heads"], l["num_key_value_heads"]
    hd, I = D // H, l["intermediate_size"]
    phi3 = l["architectures"][0] == "Phi3ForCausalLM"
    m = "language_model.model."
    put("llm.embed", m + ("embed_tokens.weight" if phi3 else "tok_embeddings.weight"))
    put("llm.norm", m + "norm.weight")
    put("llm.lm_head", "language_model." + ("lm_head.weight" if phi3 else "output.weight"))
    for L in range(l["num_hidden_layers"]):
        s, e = f"{m}layers.{L}.", f"llm.layers.{L}."
        if phi3:
            put(e + "attn_norm", s + "input_layernorm.weight")
            put(e + "ffn_norm", s + "post_attention_layernorm.weight")
            put(e + "o", s + "self_attn.o_proj.weight")
            put(e + "down", s + "mlp.down_proj.weight")
            q = s + "self_attn.qkv_proj.weight"
            put(e + "q", q, slice(0, H * hd))
            put(e + "k", q, slice(H * hd, (H + K) * hd))
            put(e + "v", q, slice((H + K) * hd, (H + 2 * K) * hd))
            put(e + "gate", s + "mlp.gate_up_proj.weight", slice(0, I))
            put(e + "up", s + "mlp.gate_up_proj.weight", slice(I, 2 * I))
        else:
            put(e + "attn_norm", s + "attention_norm.weight")
            put(e + "ffn_norm", s + "ffn_norm.weight")
            put(e + "o", s + "attention.wo.weight")
            put(e + "gate", s + "feed_forward.w1.weight")
            put(e + "up", s + "feed_forward.w3.weight")
            put(e + "down", s + "feed_forward.w2.weight")
            # spec 4.1: rows grouped by kv group, G query heads then k then v.
            src = s + "attention.wqkv.weight"
            dt, w = hf[src]
            G = H // K
            g4 = w.reshape(K, G + 2, hd, D)
            exp[e + "q"] = (src, dt, g4[:, :G].reshape(H * hd, D))
            exp[e + "k"] = (src, dt, g4[:, G].reshape(K * hd, D))
            exp[e + "v"] = (src, dt, g4[:, G + 1].reshape(K * hd, D))
    return exp


def raw(ds, dt):
    a = np.empty(ds.shape, dtype=NP[dt])
    ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, a, mtype=ds.id.get_type())
    return a


def main():
    hf_dir, h5 = sys.argv[1], sys.argv[2]
    cfg_bytes = open(os.path.join(hf_dir, "config.json"), "rb").read()
    cfg = json.loads(cfg_bytes)
    hf = load_hf(hf_dir)
    exp = expected(cfg, hf)
    used = {src for src, _, _ in exp.values()}
    unused = set(hf) - used
    assert not unused, f"checkpoint tensors the check does not know: {sorted(unused)[:5]}"
    errors = []
    with h5py.File(h5, "r") as f:
        assert f.attrs["format"] == b"internvl-h5", f.attrs["format"]
        assert int(f.attrs["format_version"]) == 1
        assert f["config/config.json"][()].tobytes() == cfg_bytes, "config.json bytes differ"
        for t in ["tokenizer.model", "tokenizer_config.json", "added_tokens.json",
                  "special_tokens_map.json"]:
            p = os.path.join(hf_dir, t)
            if os.path.exists(p):
                got = f["tokenizer/" + t][()].tobytes()
                assert got == open(p, "rb").read(), f"tokenizer file {t} differs"
            else:
                assert "tokenizer/" + t not in f, f"{t} stored but absent in the checkpoint"
        names = set(f["tensors"].keys())
        if names != set(exp):
            errors.append(f"tensor sets differ: missing {sorted(set(exp) - names)[:5]}, "
                          f"extra {sorted(names - set(exp))[:5]}")
        for name in sorted(set(exp) & names):
            src, dt, want = exp[name]
            ds = f["tensors/" + name]
            if ds.attrs["hf_name"].decode() != src:
                errors.append(f"{name}: hf_name {ds.attrs['hf_name']} != {src}")
            if ds.shape != want.shape:
                errors.append(f"{name}: shape {ds.shape} != {want.shape}")
                continue
            if ds.id.get_type().get_size() != np.dtype(NP[dt]).itemsize:
                errors.append(f"{name}: stored element size differs from {dt}")
                continue
            got = raw(ds, dt)
            if not np.array_equal(got, want):
                bad = np.argwhere(got != want)
                errors.append(f"{name}: {len(bad)} elements differ, first at {tuple(bad[0])}")
            if len(ds.shape) >= 2 and (ds.chunks is None or
                                       tuple(ds.chunks[1:]) != tuple(ds.shape[1:])):
                errors.append(f"{name}: not chunked by row blocks (chunks {ds.chunks})")
    if errors:
        print("\n".join(errors))
        sys.exit(1)
    print(f"{h5}: {len(exp)} tensors bit-exact vs {hf_dir}")


if __name__ == "__main__":
    main()
