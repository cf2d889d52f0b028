"""core/text tokenizer vs the Python transcription of HF's slow tokenizer (hf_slow_ref.py).

--own: trains small tokenizers in a temp dir (InternLM2 layout; Phi-3/Llama layout with
       legacy=False and with legacy=True + clean-up + lstrip/single_word tokens), on English
       and Chinese text so that some Chinese is in the vocabulary and some falls back to bytes.
--hf DIR:TEMPLATE ...: the generated checkpoints' tokenizers.
For every tokenizer: ids of an English, Chinese and mixed corpus with special tokens inside
(with and without BOS), decode (plain and skip-special) equal to the reference, the round trip
decode(encode(s)) == s, streaming (one id at a time) equal to the full decode with no partial
UTF-8 ever emitted, random id sequences (incl. broken byte sequences) streamed, the named ids.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_slow_ref import SlowTokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS_DIR = os.path.join(HERE, "..", "gen", "corpus")

CHINESE_TRAIN = (
    "书生·浦语是一个大语言模型。它可以回答问题，也可以描述图像。\n"
    "图像中有一只猫坐在窗台上，窗外是蓝色的天空和白色的云。\n"
    "这个模型由上海人工智能实验室开发，是一个有用无害的人工智能助手。\n"
    "我们希望它能够理解中文和英文，并且能够处理多张图片。\n") * 20

ENGLISH = [
    "Hello world.",
    "The GNU General Public License is a free, copyleft license for software.",
    "  leading spaces,  double  spaces\n\nnew lines\ttabs and trailing  ",
    "Numbers 12345 and 3.14159, version 2.0.",
    "don't stop , it 's fine ! Really ?",
    "",
    " ",
    "\n",
]
CHINESE = [
    "你好，世界！",
    "书生·浦语是一个大语言模型。",
    "图像描述：一只猫坐在窗台上，鳄鱼和麒麟不在图中。",
    "龘靐齉爩",   # rare: byte fallback only
]
MIXED = [
    "<|im_start|>user\n你好 <img><IMG_CONTEXT><IMG_CONTEXT></img>\nDescribe 图像<|im_end|>"
    "<|im_start|>assistant\n",
    "<|system|>\nYou are Phi-3.<|end|><|user|>\n<img><IMG_CONTEXT></img>\n答案是什么？<|end|>"
    "<|assistant|>\n",
    "text<s>inside</s>and<unk>middle",
    "<IMG_CONTEXT<img>>partial <IMG_CONTEXT>> tokens",
    "\u2581already\u2581underlined \u2581x",
    "emoji \U0001F600 check \u2713 \u00fcn\u00efc\u00f6d\u00e9 \u00a0nbsp",
    "<|end|>   \n  spaced after end<|end|>",
    "<|user|>\n\n  Hi there<|end|>\n<|assistant|>\n答案",
    "word <mask>  x",
    "a<sw>b <sw> c<sw>",
    "[UNUSED_TOKEN_146] looks like a piece",
    "<img> spaced after img</img>  two<ref>\tx",
    "a<x>yb<x>z<x>",
    "<box><quad></quad></box><ref>ref</ref>",
]
STRIP_SENSITIVE = {MIXED[6], MIXED[7], MIXED[8], MIXED[9], MIXED[1]}
# Not round-trippable by design: "▁" in the text is SentencePiece's space, and a placeholder
# piece's text decodes as the token it is remapped to (HF does the same).
LOSSY = {MIXED[4], MIXED[10]}


def train(tmp, dummy_prefix, vocab, remove_extra_whitespaces=False):
    files = sorted(os.path.join(CORPUS_DIR, f) for f in os.listdir(CORPUS_DIR))
    zh = os.path.join(tmp, "zh.txt")
    with open(zh, "w", encoding="utf-8") as f:
        f.write(CHINESE_TRAIN)
    prefix = os.path.join(tmp, f"m{int(dummy_prefix)}{int(remove_extra_whitespaces)}")
    spm.SentencePieceTrainer.train(
        input=",".join(files + [zh]), model_prefix=prefix, vocab_size=vocab, model_type="bpe",
        byte_fallback=True, character_coverage=0.995, normalization_rule_name="identity",
        add_dummy_prefix=dummy_prefix, remove_extra_whitespaces=remove_extra_whitespaces, split_digits=True,
        allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=1, minloglevel=2)
    m = pb.ModelProto()
    with open(prefix + ".model", "rb") as f:
        m.ParseFromString(f.read())
    return m


def entry(content, special=True, rstrip=False, lstrip=False, single_word=False):
    return {"content": content, "lstrip": lstrip, "normalized": False, "rstrip": rstrip,
            "single_word": single_word, "special": special}


def write_dir(d, model, cfg, smap, added):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.model"), "wb") as f:
        f.write(model.SerializeToString())
    for name, obj in [("tokenizer_config.json", cfg), ("special_tokens_map.json", smap),
                      ("added_tokens.json", added)]:
        with open(os.path.join(d, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)


VL = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]


def own_tokenizers(tmp):
    out = []
    # InternLM2 layout: no dummy prefix; the last six pieces are placeholders remapped to the
    # chat tokens; the InternVL tokens follow.
    m = train(tmp, False, 700)
    for k in range(141, 147):
        p = m.pieces.add()
        p.piece, p.score, p.type = f"[UNUSED_TOKEN_{k}]", 0.0, pb.ModelProto.SentencePiece.USER_DEFINED
    n = len(m.pieces)
    chat = ["<|plugin|>", "<|interpreter|>", "<|action_end|>", "<|action_start|>", "<|im_end|>",
            "<|im_start|>"]
    dec = {str(i): entry(t) for i, t in enumerate(["<unk>", "<s>", "</s>"])}
    for k, t in enumerate(chat):
        dec[str(n - 6 + k)] = entry(t)
    added = {t: n + k for k, t in enumerate(VL)}
    for t, i in added.items():
        dec[str(i)] = entry(t)
    cfg = {"add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": dec,
           "bos_token": "<s>", "eos_token": "</s>", "pad_token": "</s>", "unk_token": "<unk>",
           "clean_up_tokenization_spaces": False, "tokenizer_class": "InternLM2Tokenizer"}
    smap = {"additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
            "bos_token": "<s>", "eos_token": "</s>", "pad_token": "</s>", "unk_token": "<unk>"}
    d = os.path.join(tmp, "own-internlm2")
    write_dir(d, m, cfg, smap, added)
    out.append((d, "internlm2-chat"))

    # Phi-3 (Llama) layout: dummy prefix in the .model, chat tokens rstrip.
    m = train(tmp, True, 600)
    n = len(m.pieces)
    phi = [("<|endoftext|>", False), ("<|assistant|>", True), ("<|system|>", True),
           ("<|end|>", True), ("<|user|>", True)]
    dec = {"0": entry("<unk>"), "1": entry("<s>"), "2": entry("</s>", special=False, rstrip=True)}
    added = {}
    for k, (t, r) in enumerate(phi):
        dec[str(n + k)] = entry(t, rstrip=r, special=(t != "<|end|>"))
        added[t] = n + k
    for k, t in enumerate(VL):
        dec[str(n + len(phi) + k)] = entry(t)
        added[t] = n + len(phi) + k
    base_cfg = {"add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": dec,
                "bos_token": "<s>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                "unk_token": "<unk>", "clean_up_tokenization_spaces": False,
                "tokenizer_class": "LlamaTokenizer", "legacy": False}
    # <|user|> named special here, so the "lone ▁ before a special token" rule is exercised.
    smap = {"bos_token": "<s>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
            "unk_token": "<unk>", "additional_special_tokens": ["<|user|>"]}
    d = os.path.join(tmp, "own-phi3")
    write_dir(d, m, base_cfg, smap, added)
    out.append((d, "phi3-chat"))

    # Same model, legacy (no key), clean-up on, an lstrip token and a single_word token.
    cfg = dict(base_cfg)
    del cfg["legacy"]
    cfg["clean_up_tokenization_spaces"] = True
    cfg["added_tokens_decoder"] = dict(dec)
    nxt = n + len(phi) + len(VL)
    cfg["added_tokens_decoder"][str(nxt)] = entry("<mask>", lstrip=True)
    cfg["added_tokens_decoder"][str(nxt + 1)] = entry("<sw>", single_word=True, special=False)
    # "<x>" is a prefix of "<x>y": the longest match must win.
    cfg["added_tokens_decoder"][str(nxt + 2)] = entry("<x>", special=False)
    cfg["added_tokens_decoder"][str(nxt + 3)] = entry("<x>y", special=False)
    added2 = dict(added, **{"<mask>": nxt, "<sw>": nxt + 1, "<x>": nxt + 2, "<x>y": nxt + 3})
    smap2 = dict(smap, mask_token={"content": "<mask>", "lstrip": True, "rstrip": False,
                                   "normalized": False, "single_word": False})
    d = os.path.join(tmp, "own-phi3-legacy")
    write_dir(d, m, cfg, smap2, added2)
    out.append((d, "phi3-chat"))

    # legacy=False over a model that also removes extra whitespace: a chunk after an added
    # token that starts with a space keeps it only through the unk trick.
    m = train(tmp, True, 600, remove_extra_whitespaces=True)
    d = os.path.join(tmp, "own-phi3-rew")
    write_dir(d, m, base_cfg, smap, added)
    out.append((d, "phi3-chat"))
    return out


def run_tool(tool, d, cmd, lines, template=None):
    args = [tool, d, cmd] + ([template] if template else [])
    inp = "".join(json.dumps(x) + "\n" for x in lines)
    r = subprocess.run(args, input=inp.encode(), capture_output=True, timeout=60)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.decode()}")
    return [json.loads(x) for x in r.stdout.decode().splitlines()]


class Checker:
    def __init__(self):
        self.fails = 0
        self.checks = 0

    def eq(self, what, got, want):
        self.checks += 1
        if got != want:
            self.fails += 1
            if self.fails <= 25:
                print(f"FAIL {what}\n   got  {got!r}\n   want {want!r}")


def check_tokenizer(tool, d, template, ck):
    ref = SlowTokenizer(d)
    name = os.path.basename(d)
    info = run_tool(tool, d, "info", [], template)[0]
    ck.eq(f"{name} vocab", info["vocab"], ref.vocab_size())
    ck.eq(f"{name} bos", info["bos"], ref.named.get("bos_token", -1))
    ck.eq(f"{name} eos", info["eos"], ref.named.get("eos_token", -1))
    ck.eq(f"{name} pad", info["pad"], ref.named.get("pad_token", -1))
    ck.eq(f"{name} dummy prefix (read from the .model)", bool(info["dummy_prefix"]),
          ref.model_dummy_prefix)
    sep = {"internlm2-chat": "<|im_end|>", "phi3-chat": "<|end|>"}[template]
    ck.eq(f"{name} stop id", info["stop"], ref.token_to_id(sep))
    ck.eq(f"{name} <IMG_CONTEXT>", info["img_context"], ref.token_to_id("<IMG_CONTEXT>"))
    ck.eq(f"{name} added tokens", info["added"], {c: e["id"] for c, e in ref.added.items()})
    ck.eq(f"{name} special ids", sorted(info["special"]), sorted(set(ref.special.values())))
    ck.eq(f"{name} token<->id lookups", info["lookup_mismatches"], 0)

    texts = ENGLISH + CHINESE + MIXED
    lines = [{"text": t, "special": s} for t in texts for s in (0, 1)]
    res = run_tool(tool, d, "encode", lines)
    for ln, r in zip(lines, res):
        t, s = ln["text"], ln["special"]
        want = ref.encode(t, add_special=bool(s))
        ck.eq(f"{name} ids special={s} {t!r}", r["ids"], want)
        ck.eq(f"{name} decode {t!r}", r["decode"], ref.decode(want, False))
        ck.eq(f"{name} decode skip {t!r}", r["decode_skip"], ref.decode(want, True))
        ck.eq(f"{name} stream {t!r}", r["stream"], r["decode"])
        ck.eq(f"{name} stream skip {t!r}", r["stream_skip"], r["decode_skip"])
        ck.eq(f"{name} stream whole utf-8 {t!r}", r["chunks_ok"], True)
        # Round trip: identity-normalized models give the text back, unless a strip flag
        # removed whitespace, clean-up rewrote it, or skip dropped a named special token.
        named_inside = any(c in t for c in ref.special)
        if not ref.clean_up and not ref.lossy_whitespace and t not in STRIP_SENSITIVE | LOSSY:
            if s == 0:
                ck.eq(f"{name} round trip {t!r}", r["decode"], t)
            elif not named_inside:
                ck.eq(f"{name} round trip (BOS, skip) {t!r}", r["decode_skip"], t)

    # Streaming of arbitrary id sequences: byte pieces in any order (broken UTF-8 included),
    # Chinese split over byte pieces, added tokens in between.
    rng = random.Random(1234)
    V = ref.vocab_size()
    byte_ids = [i for i in range(ref.sp.get_piece_size()) if ref.sp.is_byte(i)]
    zh = [i for t in CHINESE for i in ref.encode(t, False)]
    seqs = [zh, zh[::-1]]
    for _ in range(20):
        pool = [rng.randrange(V) for _ in range(10)] + byte_ids[0xE4:0xF0] + byte_ids[0x80:0xC0]
        seqs.append([rng.choice(pool) for _ in range(rng.randrange(1, 40))])
    valid = set(range(ref.sp.get_piece_size())) | set(ref.by_id)
    seqs = [[i for i in s if i in valid] for s in seqs]
    res = run_tool(tool, d, "decode", [{"ids": s} for s in seqs])
    for s, r in zip(seqs, res):
        ck.eq(f"{name} decode random {s}", r["decode"], ref.decode(s, False))
        ck.eq(f"{name} decode skip random {s}", r["decode_skip"], ref.decode(s, True))
        ck.eq(f"{name} stream random {s}", r["stream"], r["decode"])
        ck.eq(f"{name} stream skip random {s}", r["stream_skip"], r["decode_skip"])
        ck.eq(f"{name} stream whole utf-8 random {s}", r["chunks_ok"], True)
    # Chinese really went through byte fallback somewhere (else the UTF-8 checks are idle).
    ck.eq(f"{name} Chinese uses byte pieces", any(ref.sp.is_byte(i) for i in zh if i < ref.sp.get_piece_size()), True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--own", action="store_true")
    ap.add_argument("--hf", nargs="*", default=[])
    a = ap.parse_args()
    ck = Checker()
    with tempfile.TemporaryDirectory() as tmp:
        dirs = own_tokenizers(tmp) if a.own else []
        dirs += [tuple(x.rsplit(":", 1)) for x in a.hf]
        for d, template in dirs:
            check_tokenizer(a.tool, d, template, ck)
    print(f"{ck.checks} checks on {len(dirs)} tokenizers, {ck.fails} failed")
    return 1 if ck.fails else 0


if __name__ == "__main__":
    sys.exit(main())
