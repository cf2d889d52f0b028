#!/usr/bin/python3
"""Tests of the generator and of the checker itself.

  test_generator.py HF_ROOT    (HF_ROOT holds the generated families, e.g. testdata/hf)

1. Determinism: regenerating mini2b-tiny with the same seed gives byte-identical files;
   another seed changes the weights but not the tokenizer.
2. The checker is not blind: each of a list of corruptions of a good checkpoint (missing
   tensor, wrong shape, LayerScale = 1, shifted added-token id, flipped add_dummy_prefix,
   truncated shard, index pointing at the wrong shard, ...) must be reported.
"""
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from sentencepiece import sentencepiece_model_pb2 as pb

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from check_checkpoint import Checker  # noqa: E402
from safetensors_bf16 import (f32_to_bf16_bits, read_safetensors_header,  # noqa: E402
                              read_tensor_f32, write_safetensors)

failures = []


def fail(msg):
    print("FAIL", msg)
    failures.append(msg)


def gen(family, out, seed):
    subprocess.run([sys.executable, os.path.join(HERE, "make_checkpoint.py"), "--family",
                    family, "--out", out, "--seed", str(seed)], check=True,
                   stdout=subprocess.DEVNULL)


def test_determinism(tmp):
    a, b, c = (os.path.join(tmp, n) for n in ("a", "b", "c"))
    gen("mini2b-tiny", a, 7)
    gen("mini2b-tiny", b, 7)
    gen("mini2b-tiny", c, 8)
    files = sorted(os.listdir(a))
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    if mismatch or errors:
        fail(f"same seed, different files: {mismatch + errors}")
    _, mismatch, _ = filecmp.cmpfiles(a, c, files, shallow=False)
    if "model.safetensors" not in mismatch or "tokenizer.model" in mismatch:
        fail(f"seed 7 vs 8: differing files {mismatch} (want the weights only)")
    print("determinism: ok")


def rewrite_tensors(d, fname, edit):
    """Rewrites one safetensors file after edit(dict name -> float32 array)."""
    path = os.path.join(d, fname)
    header, _, start, _ = read_safetensors_header(path)
    ts = {n: read_tensor_f32(path, e, start) for n, e in header.items()}
    edit(ts)
    write_safetensors(path, {n: f32_to_bf16_bits(x) for n, x in ts.items()})


def edit_json(d, fname, edit):
    path = os.path.join(d, fname)
    with open(path) as f:
        obj = json.load(f)
    edit(obj)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)


def flip_dummy_prefix(d):
    path = os.path.join(d, "tokenizer.model")
    m = pb.ModelProto()
    with open(path, "rb") as f:
        m.ParseFromString(f.read())
    m.normalizer_spec.add_dummy_prefix = not m.normalizer_spec.add_dummy_prefix
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def truncate(d, fname, nbytes):
    path = os.path.join(d, fname)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - nbytes)


def set_json(fname, keys, value):
    """Corruption: sets obj[k0][k1]... = value in a json file (value None: delete)."""
    def edit(obj):
        for k in keys[:-1]:
            obj = obj[k]
        if value is None:
            del obj[keys[-1]]
        else:
            obj[keys[-1]] = value
    return lambda d: edit_json(d, fname, edit)


def set_tensor(name, value, fname="model.safetensors"):
    """Corruption: replaces a tensor (value None: removes it)."""
    def edit(ts):
        if value is None:
            ts.pop(name)
        else:
            ts[name] = value(ts.get(name))
    return lambda d: rewrite_tensors(d, fname, edit)


def with_nan(x):
    x = x.copy()
    x[0, 0] = np.nan
    return x


def move_im_end(c):
    dec = c["added_tokens_decoder"]
    dec["92541"] = dec.pop("92542")


L0 = "vision_model.encoder.layers.0."
CORRUPTIONS = [
    ("mini2b-tiny", "missing tensor",
     set_tensor("language_model.model.layers.1.ffn_norm.weight", None)),
    ("mini2b-tiny", "extra tensor",
     set_tensor(L0 + "attn.q_norm.weight", lambda _: np.ones(64, np.float32))),
    ("mini2b-tiny", "LayerScale all ones",
     set_tensor(L0 + "ls2", lambda x: np.ones_like(x))),
    ("mini2b-tiny", "NaN in a weight", set_tensor("mlp1.1.weight", with_nan)),
    ("mini2b-tiny", "vocab_size off by one",
     set_json("config.json", ["llm_config", "vocab_size"], 1510)),
    ("mini2b-tiny", "kv heads wrong",
     set_json("config.json", ["llm_config", "num_key_value_heads"], 4)),
    ("mini2b-tiny", "key missing", set_json("config.json", ["vision_config", "qkv_bias"], None)),
    ("mini2b-tiny", "added token id shifted",
     set_json("added_tokens.json", ["<IMG_CONTEXT>"], 1503)),
    ("mini2b-tiny", "remapped token renamed",
     set_json("tokenizer_config.json", ["added_tokens_decoder", "1498", "content"],
              "<|im_start|>")),
    ("mini2b-tiny", "add_dummy_prefix flipped", flip_dummy_prefix),
    ("mini2b-tiny", "truncated safetensors", lambda d: truncate(d, "model.safetensors", 2)),
    ("mini4b-tiny", "rstrip flag of <|end|>",
     set_json("tokenizer_config.json", ["added_tokens_decoder", "1207", "rstrip"], False)),
    ("mini4b-tiny", "su factor list too short",
     set_json("config.json", ["llm_config", "rope_scaling", "long_factor"], [1.0] * 7)),
    ("mini4b-tiny", "index maps a tensor to the wrong shard",
     set_json("model.safetensors.index.json", ["weight_map", "mlp1.1.bias"],
              "model-00001-of-00002.safetensors")),
    ("mini4b-tiny", "index total_size wrong",
     set_json("model.safetensors.index.json", ["metadata", "total_size"], 1)),
    ("v15-tiny", "qk norm dropped", set_tensor(L0 + "attn.k_norm.weight", None)),
    ("mini2b-realvocab", "real <|im_end|> id moved",
     lambda d: edit_json(d, "tokenizer_config.json", move_im_end)),
]


def test_checker(root, tmp):
    for family, what, corrupt in CORRUPTIONS:
        src = os.path.join(root, family)
        if Checker(src).run():
            fail(f"{family}: the good checkpoint does not pass the checker")
            continue
        d = os.path.join(tmp, "bad")
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(src, d)
        corrupt(d)
        errors = Checker(d).run()
        if errors:
            print(f"detected ({family}: {what}): {errors[0].split(': ', 1)[1]}")
        else:
            fail(f"{family}: corruption '{what}' not detected")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        test_determinism(tmp)
        test_checker(sys.argv[1], tmp)
    if failures:
        sys.exit(f"{len(failures)} failure(s)")
    print("all ok")


if __name__ == "__main__":
    main()
