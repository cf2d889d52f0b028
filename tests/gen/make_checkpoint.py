#!/usr/bin/python3
"""Writes a small random-weight InternVL 1.5 checkpoint folder in the Hugging Face layout.

  make_checkpoint.py --family mini2b-tiny --out DIR [--seed N]
  make_checkpoint.py --family all --out ROOT [--seed N]     # ROOT/<family> for each test family

Families: see families.py and README.md. Output: config.json, generation_config.json,
model.safetensors (or model-0000k-of-0000n.safetensors + model.safetensors.index.json),
tokenizer.model, tokenizer_config.json, special_tokens_map.json, added_tokens.json.
The same seed gives byte-identical files. A folder whose stamp matches (same generator
sources, family and seed, files unchanged since) is left as it is, so re-running is cheap.
"""
import argparse
import glob
import hashlib
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import families  # noqa: E402
import tok_files  # noqa: E402
import weights  # noqa: E402
from safetensors_bf16 import write_safetensors  # noqa: E402

TEST_FAMILIES = ["mini2b-tiny", "mini4b-tiny", "v15-tiny", "mini2b-realvocab"]
STAMP = ".ivl_testgen_stamp"


def stamp_text(family, seed):
    h = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(HERE, "*.py")) + tok_files.CORPUS):
        with open(path, "rb") as f:
            h.update(os.path.basename(path).encode() + b"\0" + f.read())
    return f"family={family} seed={seed} sources={h.hexdigest()}\n"


def folder_digest(d):
    """One line per file of d (except the stamp) with its sha256: a stamp only matches when
    nobody has edited, added or removed a file since it was written."""
    lines = []
    for name in sorted(os.listdir(d)):
        if name != STAMP:
            with open(os.path.join(d, name), "rb") as f:
                lines.append(f"{hashlib.sha256(f.read()).hexdigest()}  {name}\n")
    return "".join(lines)


def dump_json(path, obj):
    # transformers' save_pretrained style: indent 2, sorted keys, final newline.
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_weights(out, tensors, n_shards):
    names = list(tensors)                      # HF module order
    if n_shards == 1:
        write_safetensors(os.path.join(out, "model.safetensors"), tensors)
        return
    # Fill shards in module order like save_pretrained(max_shard_size=...): a shard is
    # closed once it holds its share of the bytes, even in the middle of a layer.
    total = sum(t.size * 2 for t in tensors.values())
    shards, cur, size = [], [], 0
    for n in names:
        cur.append(n)
        size += tensors[n].size * 2
        if size >= total * (len(shards) + 1) / n_shards and len(shards) < n_shards - 1:
            shards.append(cur)
            cur = []
    shards.append(cur)
    weight_map = {}
    for k, part in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{n_shards:05d}.safetensors"
        write_safetensors(os.path.join(out, fname), {n: tensors[n] for n in part})
        weight_map.update({n: fname for n in part})
    dump_json(os.path.join(out, "model.safetensors.index.json"),
              {"metadata": {"total_size": total}, "weight_map": weight_map})


def make(family, out, seed):
    fam = families.FAMILIES[family]
    stamp = stamp_text(family, seed)
    stamp_path = os.path.join(out, STAMP)
    if os.path.isfile(stamp_path) and open(stamp_path).read() == stamp + folder_digest(out):
        print(f"{out}: up to date ({family}, seed {seed})")
        return
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(stamp_path):
        sys.exit(f"make_checkpoint: {out} exists, is not empty and was not written by this "
                 f"generator; choose another --out or remove it")
    tmp = out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)

    layout = fam["tokenizer"]
    model_bytes, n_pieces = tok_files.build_model(layout)
    tok_json, ids = tok_files.hf_files(layout, n_pieces)
    with open(os.path.join(tmp, "tokenizer.model"), "wb") as f:
        f.write(model_bytes)
    for name, text in tok_json.items():
        with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
            f.write(text)

    vocab = ids["vocab"]
    dump_json(os.path.join(tmp, "config.json"), families.chat_config(family, fam, vocab, ids))
    dump_json(os.path.join(tmp, "generation_config.json"),
              {"_from_model_config": True, "transformers_version": "4.37.2"})
    write_weights(tmp, weights.all_tensors(family, fam, vocab, seed), fam["shards"])
    with open(os.path.join(tmp, STAMP), "w") as f:
        f.write(stamp + folder_digest(tmp))

    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    print(f"{out}: wrote {family} (seed {seed}, vocab {vocab}, {n_pieces} .model pieces)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", required=True,
                    choices=sorted(families.FAMILIES) + ["all"])
    ap.add_argument("--out", required=True, help="output folder (ROOT for --family all)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.family == "all":
        for fam in TEST_FAMILIES:
            make(fam, os.path.join(a.out, fam), a.seed)
    else:
        make(a.family, a.out, a.seed)


if __name__ == "__main__":
    main()
