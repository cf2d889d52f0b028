#!/usr/bin/python3
"""One bad-input case of `internvl convert`: builds a tiny checkpoint with its own writer,
breaks it the way CASE says, runs the converter and checks that it fails with a message
naming the problem, exits non-zero, leaves no temporary file and no output file (or leaves
an existing output file untouched).

  bad_inputs.py INTERNVL CASE WORKDIR
  bad_inputs.py --list
"""
import copy
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

# A tiny InternVL config: 300M-style ViT (LayerNorm, qkv bias) + InternLM2 with GQA.
CONFIG = {
    "_name_or_path": "tiny-bad-input",
    "downsample_ratio": 0.5, "force_image_size": 448, "ps_version": "v2",
    "template": "internlm2-chat", "select_layer": -1, "use_thumbnail": True,
    "dynamic_image_size": True, "min_dynamic_patch": 1, "max_dynamic_patch": 12,
    "torch_dtype": "bfloat16",
    "vision_config": {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
                      "intermediate_size": 16, "image_size": 448, "patch_size": 14,
                      "norm_type": "layer_norm", "layer_norm_eps": 1e-6, "qkv_bias": True,
                      "qk_normalization": False},
    "llm_config": {"architectures": ["InternLM2ForCausalLM"], "hidden_size": 8,
                   "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                   "intermediate_size": 16, "vocab_size": 1024, "max_position_embeddings": 2048,
                   "rms_norm_eps": 1e-5, "rope_theta": 1e6, "bias": False,
                   "rope_scaling": {"type": "dynamic", "factor": 2.0}},
}


def tensors(cfg):
    v, l = cfg["vision_config"], cfg["llm_config"]
    C, Iv = v["hidden_size"], v["intermediate_size"]
    D, H, K, I, V = (l["hidden_size"], l["num_attention_heads"], l["num_key_value_heads"],
                     l["intermediate_size"], l["vocab_size"])
    hd = D // H
    rng = np.random.default_rng(0)
    t = {}

    def r(name, *shape):
        t[name] = rng.standard_normal(shape).astype(np.float32)

    e = "vision_model.embeddings."
    r(e + "class_embedding", 1, 1, C)
    r(e + "patch_embedding.weight", C, 3, 14, 14)
    r(e + "patch_embedding.bias", C)
    r(e + "position_embedding", 1, 1025, C)
    s = "vision_model.encoder.layers.0."
    for n in ["norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "ls1", "ls2",
              "attn.proj.bias", "mlp.fc2.bias"]:
        r(s + n, C)
    r(s + "attn.qkv.weight", 3 * C, C)
    r(s + "attn.qkv.bias", 3 * C)
    r(s + "attn.proj.weight", C, C)
    r(s + "mlp.fc1.weight", Iv, C)
    r(s + "mlp.fc1.bias", Iv)
    r(s + "mlp.fc2.weight", C, Iv)
    r("mlp1.0.weight", 4 * C)
    r("mlp1.0.bias", 4 * C)
    r("mlp1.1.weight", D, 4 * C)
    r("mlp1.1.bias", D)
    r("mlp1.3.weight", D, D)
    r("mlp1.3.bias", D)
    m = "language_model.model."
    r(m + "tok_embeddings.weight", V, D)
    s = m + "layers.0."
    r(s + "attention.wqkv.weight", (H + 2 * K) * hd, D)
    r(s + "attention.wo.weight", D, H * hd)
    r(s + "attention_norm.weight", D)
    r(s + "ffn_norm.weight", D)
    r(s + "feed_forward.w1.weight", I, D)
    r(s + "feed_forward.w3.weight", I, D)
    r(s + "feed_forward.w2.weight", D, I)
    r(m + "norm.weight", D)
    r("language_model.output.weight", V, D)
    return t


def write_ckpt(d, cfg=CONFIG, t=None, shards=1, **kw):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        f.write('{"add_bos_token": true}\n')
    with open(os.path.join(d, "tokenizer.model"), "wb") as f:
        f.write(bytes(range(256)))   # stored as an opaque blob: any bytes do
    t = tensors(cfg) if t is None else t
    if shards == 1:
        st_io.write(os.path.join(d, "model.safetensors"), t, **kw)
        return
    names = list(t)
    wm = {}
    for k in range(shards):
        fn = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        part = names[k::shards]
        st_io.write(os.path.join(d, fn), {n: t[n] for n in part}, **kw)
        wm.update({n: fn for n in part})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": wm}, f)


def edit_header(fn):
    return {"header_override": fn}


QKV = "vision_model.encoder.layers.0.attn.qkv.weight"
FC1 = "vision_model.encoder.layers.0.mlp.fc1.weight"


def case(hf, name):
    """Builds the broken checkpoint; returns (expected message parts, extra args, expect_ok)."""
    cfg = copy.deepcopy(CONFIG)
    if name == "ok":
        write_ckpt(hf)
        return [], [], True
    if name == "ok_sharded_mixed_dtypes":
        t = tensors(cfg)
        st = {n: ("F32" if i % 3 == 0 else "F16" if i % 3 == 1 else "BF16")
              for i, n in enumerate(t)}
        write_ckpt(hf, t=t, dtypes=st, shards=2)
        return [], [], True
    if name == "truncated":
        write_ckpt(hf, raw_override=lambda b: b[:len(b) - 100])
        return ["model.safetensors", "language_model.output.weight", "past the end"], [], False
    if name == "header_past_eof":
        write_ckpt(hf, raw_override=lambda b: (10 ** 9).to_bytes(8, "little") + b[8:])
        return ["model.safetensors", "header length 1000000000", "past the end of the file"], [], False
    if name == "offsets_out_of_range":
        def f(h):
            b, e = h[FC1]["data_offsets"]
            h[FC1]["data_offsets"] = [b + 10 ** 7, e + 10 ** 7]
        write_ckpt(hf, **edit_header(f))
        return ["model.safetensors", FC1, "past the end of the data"], [], False
    if name == "overlap":
        def f(h):
            h[FC1]["data_offsets"][0] -= 2
            h[FC1]["data_offsets"][1] -= 2
        write_ckpt(hf, **edit_header(f))
        return ["model.safetensors", FC1, "overlap"], [], False
    if name == "size_not_numel":
        def f(h):
            h[FC1]["shape"] = [15, 8]
        write_ckpt(hf, **edit_header(f))
        return ["model.safetensors", FC1, "needs"], [], False
    if name == "bad_dtype":
        def f(h):
            h[FC1]["dtype"] = "I16"
        write_ckpt(hf, **edit_header(f))
        return ["model.safetensors", FC1, "dtype I16 is not supported"], [], False
    if name == "shape_vs_config":
        t = tensors(cfg)
        t[FC1] = np.zeros((17, 8), np.float32)
        write_ckpt(hf, t=t)
        return [FC1, "[17, 8]", "[16, 8]"], [], False
    if name == "missing_tensor":
        t = tensors(cfg)
        del t["vision_model.encoder.layers.0.ls1"]
        write_ckpt(hf, t=t, shards=2)
        return ["vision_model.encoder.layers.0.ls1", "missing"], [], False
    if name == "extra_tensor":
        t = tensors(cfg)
        t["language_model.model.layers.0.attention.rotary_emb.inv_freq"] = np.ones(4, np.float32)
        write_ckpt(hf, t=t)
        return ["rotary_emb.inv_freq", "not part of the model", "--allow-unused"], [], False
    if name == "extra_tensor_allowed":
        t = tensors(cfg)
        t["language_model.model.layers.0.attention.rotary_emb.inv_freq"] = np.ones(4, np.float32)
        write_ckpt(hf, t=t)
        return [], ["--allow-unused"], True
    if name == "config_missing_key":
        del cfg["llm_config"]["num_key_value_heads"]
        write_ckpt(hf, cfg=cfg, t=tensors(CONFIG))
        return ["config.json: llm_config.num_key_value_heads missing"], [], False
    if name == "config_missing_vision_key":
        del cfg["vision_config"]["patch_size"]
        write_ckpt(hf, cfg=cfg, t=tensors(CONFIG))
        return ["config.json: vision_config.patch_size missing"], [], False
    if name == "unsupported_arch":
        cfg["llm_config"]["architectures"] = ["LlamaForCausalLM"]
        write_ckpt(hf, cfg=cfg, t=tensors(CONFIG))
        return ["unsupported architecture LlamaForCausalLM"], [], False
    # Issue 18, class 6: configs the engine cannot use are refused at conversion, naming the
    # key (they ran out of memory without a message, or converted and failed later).
    if name == "absurd_layers":
        cfg["llm_config"]["num_hidden_layers"] = 10 ** 9
        write_ckpt(hf, cfg=cfg, t=tensors(CONFIG))
        return ["config.json: llm_config.num_hidden_layers = 1000000000", "at most 1024"], [], False
    if name == "absurd_vision_hidden":
        cfg["vision_config"]["hidden_size"] = 1 << 30
        cfg["vision_config"]["num_attention_heads"] = 1
        write_ckpt(hf, cfg=cfg, t=tensors(CONFIG))
        return ["config.json: vision_config.hidden_size = 1073741824", "at most 65536"], [], False
    if name == "absurd_vocab":
        cfg["llm_config"]["vocab_size"] = 2 ** 31 - 1
        write_ckpt(hf, cfg=cfg, t=tensors(CONFIG))
        return ["config.json: llm_config.vocab_size = 2147483647", "at most 4194304"], [], False
    if name == "max_dynamic_patch_huge":
        cfg["max_dynamic_patch"] = 1000
        write_ckpt(hf, cfg=cfg)
        return ["config.json: max_dynamic_patch = 1000", "at most 40"], [], False
    if name == "no_tokenizer_model":
        write_ckpt(hf)
        os.remove(os.path.join(hf, "tokenizer.model"))
        return ["tokenizer.model", "missing", "the engine needs it"], [], False
    if name == "unknown_top_arch":
        cfg["architectures"] = ["LlavaForConditionalGeneration"]
        write_ckpt(hf, cfg=cfg)
        return ["config.json: architectures[0] 'LlavaForConditionalGeneration'",
                "InternVLChatModel"], [], False
    if name == "no_weights":
        write_ckpt(hf)
        os.remove(os.path.join(hf, "model.safetensors"))
        return ["no model.safetensors or model.safetensors.index.json"], [], False
    if name == "index_missing_shard":
        write_ckpt(hf, shards=2)
        os.remove(os.path.join(hf, "model-00002-of-00002.safetensors"))
        return ["model-00002-of-00002.safetensors", "cannot open"], [], False
    if name == "index_wrong_shard":
        write_ckpt(hf, shards=2)
        p = os.path.join(hf, "model.safetensors.index.json")
        idx = json.load(open(p))
        idx["weight_map"][FC1] = ("model-00002-of-00002.safetensors"
                                  if idx["weight_map"][FC1].startswith("model-00001")
                                  else "model-00001-of-00002.safetensors")
        json.dump(idx, open(p, "w"))
        return ["weight_map puts tensor " + FC1], [], False
    if name == "unwritable_out":
        write_ckpt(hf)
        return ["cannot create", "config.json is not a directory"], [], False
    if name == "disk_full":
        write_ckpt(hf)
        return ["File too large"], [], False
    raise SystemExit(f"unknown case {name}")


CASES = ["ok", "ok_sharded_mixed_dtypes", "truncated", "header_past_eof",
         "offsets_out_of_range", "overlap", "size_not_numel", "bad_dtype", "shape_vs_config",
         "missing_tensor", "extra_tensor", "extra_tensor_allowed", "config_missing_key",
         "config_missing_vision_key", "unsupported_arch", "absurd_layers",
         "absurd_vision_hidden", "absurd_vocab", "max_dynamic_patch_huge", "no_tokenizer_model",
         "unknown_top_arch", "no_weights", "index_missing_shard", "index_wrong_shard",
         "unwritable_out", "disk_full"]


def main():
    if sys.argv[1:] == ["--list"]:
        print(";".join(CASES))
        return
    exe, name, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    hf, outdir = os.path.join(work, "hf"), os.path.join(work, "out")
    os.makedirs(outdir)
    want, extra, expect_ok = case(hf, name)
    out = os.path.join(outdir, "model.h5")
    cmd = [exe, "convert", "--hf", hf, "--out", out] + extra
    if name == "unwritable_out":
        # Missing folders are created, so the unwritable place is one below a regular file
        # (permissions do not stop root, which CI runs as).
        out = os.path.join(hf, "config.json", "sub", "model.h5")
        cmd[5] = out
    if name == "disk_full":
        # An existing file must survive a failed conversion; the file size limit (in KiB)
        # stands in for a full disk: writes past it fail with EFBIG.
        with open(out, "w") as f:
            f.write("old")
        cmd = ["sh", "-c", 'ulimit -f 40 && exec "$@"', "sh"] + cmd
    if name.startswith("absurd_") and b"__asan_init" not in open(exe, "rb").read():
        # Without the bounds these ran the machine out of memory: cap the address space
        # (not under AddressSanitizer, whose shadow memory needs terabytes of it).
        cmd = ["sh", "-c", 'ulimit -v 4000000 && exec "$@"', "sh"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    err = p.stderr
    problems = []
    if expect_ok:
        if p.returncode != 0:
            problems.append(f"conversion failed (rc {p.returncode}): {err}")
        else:
            chk = subprocess.run([sys.executable, os.path.join(os.path.dirname(
                os.path.abspath(__file__)), "roundtrip_check.py"), hf, out],
                capture_output=True, text=True)
            if chk.returncode != 0 and name != "extra_tensor_allowed":
                problems.append("round trip check failed: " + chk.stdout + chk.stderr)
            if name == "extra_tensor_allowed" and "not used by the engine" not in err:
                problems.append("no warning about the unused tensor: " + err)
            if name == "ok_sharded_mixed_dtypes" and "as config.json torch_dtype says" not in err:
                problems.append("no warning about dtypes differing from torch_dtype: " + err)
            # The loader's whole/rows/cols reads for f32, f16 and bf16 stored tensors.
            loader = os.environ.get("IVL_WEIGHTS_LOADER_TEST")
            if loader and name != "extra_tensor_allowed":
                lt = subprocess.run([loader, out], capture_output=True, text=True, timeout=60)
                if lt.returncode != 0:
                    problems.append("loader test failed: " + lt.stdout + lt.stderr)
    else:
        if p.returncode == 0:
            problems.append("conversion succeeded but should have failed")
        if p.returncode < 0:
            problems.append(f"killed by signal {-p.returncode}")
        for w in want:
            if w not in err:
                problems.append(f"message lacks {w!r}")
        left = glob.glob(os.path.join(outdir, "*.tmp-*"))
        if left:
            problems.append(f"temporary file left behind: {left}")
        if name == "disk_full":
            if open(out).read() != "old":
                problems.append("the existing output file was changed")
        elif os.path.exists(out):
            problems.append("output file created")
    print(f"case {name}: rc {p.returncode}\n  stderr: {err.strip()}")
    if problems:
        print("FAIL:\n  " + "\n  ".join(problems))
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
