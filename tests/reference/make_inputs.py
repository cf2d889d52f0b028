#!/usr/bin/python3
"""Build an IN.h5 (docs/forward-io.md) for one reference test case.

    /usr/bin/python3 make_inputs.py --hf HF_DIR --case CASE --out IN.h5 [--seed S]

Cases: one_image (one image of 3 tiles), two_images (2 tiles + 1 tile, two <img> blocks),
text_only (no pixel_values), batch3 (three left-padded sequences of different lengths,
images in two of them), decode_switch (one 1-tile image, prompt length = the RoPE switch
point - 10, so greedy decoding crosses the dynamic-NTK / su switch after 10 tokens; only for
checkpoints whose switch point is at most 4096, see SWITCH_CASE_LIMIT). Prompts look like the config's chat template (bos, role tokens,
separators, <img> IMG_CONTEXT x tokens-per-tile x tiles </img>) with random ordinary ids in
place of text; every special id is looked up in the tokenizer files. pixel_values are smooth
random RGB images with noise, ToTensor + ImageNet-normalized (values about -2.1 .. 2.6).
"""
import argparse
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import internvl_ref as ref  # noqa: E402

CASES = ("one_image", "two_images", "text_only", "batch3", "decode_switch")
SWITCH_CASE_LIMIT = 4096  # a longer prompt would make the reference run too slow for ctest
ROLE_TOKENS = {  # template -> (system, user, assistant) opening tokens
    "internlm2-chat": ("<|im_start|>", "<|im_start|>", "<|im_start|>"),
    "phi3-chat": ("<|system|>", "<|user|>", "<|assistant|>"),
}
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class PromptBuilder:
    def __init__(self, hf_dir, rng):
        self.rng = rng
        cfg = ref.load_config(hf_dir)
        lc, vc = cfg["llm_config"], cfg["vision_config"]
        tmap = ref.read_token_map(hf_dir)
        tid = lambda s: ref.token_id(hf_dir, tmap, s)
        if cfg["template"] not in ROLE_TOKENS:
            raise ref.RefError(f"template '{cfg['template']}' unknown")
        self.roles = [tid(s) for s in ROLE_TOKENS[cfg["template"]]]
        self.stop = ref.stop_token_of(cfg, hf_dir, tmap)
        self.img, self.img_end, self.ctx = tid("<img>"), tid("</img>"), tid(ref.IMG_CONTEXT)
        self.bos = int(lc.get("bos_token_id", 1))
        self.pad = int(lc.get("pad_token_id", lc.get("eos_token_id", 2)))
        self.image = vc["image_size"]
        self.switch = ref.rope_switch_point(lc)
        grid = vc["image_size"] // vc["patch_size"]
        self.per_tile = int(grid * grid * cfg["downsample_ratio"] ** 2)
        # vocabulary = rows of the embedding table; random text avoids every special id
        ws = ref.WeightStore(hf_dir)
        vocab = None
        for n in ("language_model.model.tok_embeddings.weight", "language_model.model.embed_tokens.weight"):
            if ws.has(n):
                vocab = ws.where[n][2]["shape"][0]
        if vocab is None:
            raise ref.RefError(f"{hf_dir}: no language_model token embedding tensor in the safetensors")
        special = set(tmap.values()) | {0, 1, 2, self.bos, self.pad, self.stop}
        normal = [i for i in range(vocab) if i not in special]
        sp_path = os.path.join(hf_dir, "tokenizer.model")
        if os.path.exists(sp_path):
            import sentencepiece as spm
            sp = spm.SentencePieceProcessor(model_file=sp_path)
            ok = lambda i: (i < sp.get_piece_size() and not (sp.is_control(i) or sp.is_unknown(i)
                            or sp.is_unused(i) or sp.is_byte(i)))
            normal = [i for i in normal if ok(i)]
        if len(normal) < 10:
            raise ref.RefError(f"{hf_dir}: fewer than 10 ordinary token ids to draw random text from")
        self.normal = np.array(normal, dtype=np.int64)

    def text(self, n):
        return list(self.rng.choice(self.normal, size=n))

    def prompt(self, tiles_per_image, question_len):
        sys_r, user_r, asst_r = self.roles
        ids = [self.bos, sys_r] + self.text(4) + [self.stop, user_r] + self.text(1)
        for t in tiles_per_image:
            ids += [self.img] + [self.ctx] * (self.per_tile * t) + [self.img_end] + self.text(1)
        ids += self.text(question_len) + [self.stop, asst_r] + self.text(1)
        return ids

    def tiles(self, n):
        """n realistic normalized tiles [n,3,S,S]: smooth colour fields plus pixel noise."""
        low = torch.from_numpy(self.rng.uniform(0, 255, size=(n, 3, 7, 7)).astype(np.float32))
        img = F.interpolate(low, size=(self.image, self.image), mode="bilinear", align_corners=False)
        img = img + torch.from_numpy(self.rng.normal(0, 12, size=img.shape).astype(np.float32))
        img = img.clamp(0, 255).round() / 255.0
        return ((img - torch.from_numpy(MEAN)[:, None, None]) / torch.from_numpy(STD)[:, None, None]).float()


def applicable(b, case):
    """Whether a case can be built for this checkpoint (decode_switch needs a switch point)."""
    if case != "decode_switch":
        return True
    return b.switch is not None and b.switch - 10 - len(b.prompt([1], 0)) >= 1 and b.switch <= SWITCH_CASE_LIMIT


def applicable_cases(hf_dir):
    b = PromptBuilder(hf_dir, np.random.default_rng(0))
    return [c for c in CASES if applicable(b, c)]


def build(hf_dir, case, seed):
    """-> dict of dataset name -> numpy array."""
    b = PromptBuilder(hf_dir, np.random.default_rng([seed, CASES.index(case)]))
    if case == "one_image":
        seqs, tiles = [b.prompt([3], 9)], 3
    elif case == "two_images":
        seqs, tiles = [b.prompt([2, 1], 7)], 3
    elif case == "text_only":
        seqs, tiles = [b.prompt([], 23)], 0
    elif case == "batch3":
        seqs, tiles = [b.prompt([1], 5), b.prompt([], 17), b.prompt([2], 11)], 3
    elif case == "decode_switch":
        if not applicable(b, case):
            raise ref.RefError(f"{hf_dir}: case decode_switch needs a RoPE switch point <= "
                               f"{SWITCH_CASE_LIMIT} (this checkpoint: {b.switch})")
        q = b.switch - 10 - len(b.prompt([1], 0))
        seqs, tiles = [b.prompt([1], q)], 1
    else:
        raise ref.RefError(f"case '{case}' unknown (one of {', '.join(CASES)})")
    out = {}
    if len(seqs) == 1:
        out["input_ids"] = np.array(seqs[0], dtype=np.int64)
    else:
        S = max(len(s) for s in seqs)
        ids = np.full((len(seqs), S), b.pad, dtype=np.int64)
        mask = np.zeros((len(seqs), S), dtype=np.int64)
        for i, s in enumerate(seqs):
            ids[i, S - len(s):] = s
            mask[i, S - len(s):] = 1
        out["input_ids"], out["attention_mask"] = ids, mask
    if tiles:
        out["pixel_values"] = b.tiles(tiles).numpy()
    return out


def write(path, data):
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            f.create_dataset(k, data=v)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hf", required=True)
    ap.add_argument("--case", required=True, choices=CASES)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    try:
        write(a.out, build(a.hf, a.case, a.seed))
    except ref.RefError as e:
        print(f"make_inputs: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
