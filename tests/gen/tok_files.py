"""Tokenizer files in the layouts of the real InternVL 1.5 repos (spec section 9).

A small SentencePiece BPE model is trained on tests/gen/corpus/ and then edited through
the protobuf (python3-sentencepiece's sentencepiece_model_pb2) into the real layout:

internlm2 (26B, 2B):  0 <unk>, 1 <s>, 2 </s>, 3..258 bytes, BPE pieces, then the LAST six
    pieces are placeholders [UNUSED_TOKEN_141..146] that tokenizer_config.json remaps to
    <|plugin|> <|interpreter|> <|action_end|> <|action_start|> <|im_end|> <|im_start|>;
    the 9 InternVL tokens follow as added tokens. add_dummy_prefix false.
internlm2-real:       the same, padded with unused pieces to the real 92544 pieces, so the
    ids are the real ones: 92538..92543 remapped, 92544 <img> .. 92552 </box>.
phi3 (4B):            llama layout (0 <unk>, 1 <s>, 2 </s>, 3..258 bytes, add_dummy_prefix
    true), then the 11 Phi-3 added tokens and the 9 InternVL tokens.
"""
import glob
import json
import os
import tempfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = sorted(glob.glob(os.path.join(HERE, "corpus", "*.txt")))

INTERNVL_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>",
                   "</ref>", "<box>", "</box>"]
# In id order: the last six .model pieces of InternLM2 (spec 9.1).
INTERNLM2_REMAPPED = ["<|plugin|>", "<|interpreter|>", "<|action_end|>", "<|action_start|>",
                      "<|im_end|>", "<|im_start|>"]
# Phi-3 added tokens in id order, with the rstrip flag and the special flag the Apr-2024
# Phi-3-mini tokenizer_config.json gives them (<|end|> is not flagged special there).
PHI3_ADDED = [("<|endoftext|>", False, True), ("<|assistant|>", True, True),
              ("<|placeholder1|>", True, True), ("<|placeholder2|>", True, True),
              ("<|placeholder3|>", True, True), ("<|placeholder4|>", True, True),
              ("<|system|>", True, True), ("<|end|>", True, False),
              ("<|placeholder5|>", True, True), ("<|placeholder6|>", True, True),
              ("<|user|>", True, True)]

LAYOUTS = {
    # trained pieces (incl. <unk> <s> </s> and the 256 bytes); total pieces in the .model
    "internlm2": dict(train_vocab=1494, pieces=1500, dummy_prefix=False),
    "internlm2-real": dict(train_vocab=1494, pieces=92544, dummy_prefix=False),
    "phi3": dict(train_vocab=1200, pieces=1200, dummy_prefix=True),
}


def train_spm(train_vocab, dummy_prefix):
    """Trains the BPE model and returns its ModelProto. One thread: deterministic."""
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "tok")
        spm.SentencePieceTrainer.train(
            input=",".join(CORPUS), model_prefix=prefix, vocab_size=train_vocab,
            model_type="bpe", byte_fallback=True, character_coverage=0.9995,
            normalization_rule_name="identity", add_dummy_prefix=dummy_prefix,
            remove_extra_whitespaces=False, split_digits=True,
            allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
            num_threads=1, minloglevel=2)
        m = pb.ModelProto()
        with open(prefix + ".model", "rb") as f:
            m.ParseFromString(f.read())
    # The trainer records absolute temp paths; keep the file independent of where it ran.
    del m.trainer_spec.input[:]
    m.trainer_spec.input.append("corpus.txt")
    m.trainer_spec.model_prefix = "tokenizer"
    return m


def build_model(layout):
    """Returns (serialized tokenizer.model bytes, number of pieces)."""
    spec = LAYOUTS[layout]
    m = train_spm(spec["train_vocab"], spec["dummy_prefix"])
    P = pb.ModelProto.SentencePiece
    if layout.startswith("internlm2"):
        # Padding up to the real size: pieces no BPE merge can produce (no piece is a
        # prefix of another), scored below every trained piece, decoding as "[PAD_n]".
        low = min(p.score for p in m.pieces) - 1.0
        n_pad = spec["pieces"] - 6 - len(m.pieces)
        for i in range(n_pad):
            p = m.pieces.add()
            p.piece, p.score, p.type = f"[PAD_{i:05d}]", low - i * 1e-3, P.NORMAL
        for k in range(141, 147):
            p = m.pieces.add()
            p.piece, p.score, p.type = f"[UNUSED_TOKEN_{k}]", 0.0, P.USER_DEFINED
    if len(m.pieces) != spec["pieces"]:
        raise RuntimeError(f"{layout}: built {len(m.pieces)} pieces, expected {spec['pieces']}")
    m.trainer_spec.vocab_size = len(m.pieces)
    return m.SerializeToString(deterministic=True), len(m.pieces)


def _entry(content, special=True, rstrip=False):
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": rstrip,
            "single_word": False, "special": special}


def _dump(obj):
    # transformers writes these files with indent 2, sorted keys, UTF-8, final newline.
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def hf_files(layout, n_pieces):
    """Returns ({filename: text}, ids) for the HF tokenizer json files; ids maps every
    special/added token to its id plus 'vocab' (embedding rows), 'bos', 'eos', 'pad'."""
    decoder, ids = {}, {"<unk>": 0, "<s>": 1, "</s>": 2}
    if layout.startswith("internlm2"):
        for i, t in enumerate(("<unk>", "<s>", "</s>")):
            decoder[str(i)] = _entry(t)
        for k, t in enumerate(INTERNLM2_REMAPPED):
            ids[t] = n_pieces - 6 + k
            decoder[str(ids[t])] = _entry(t)
        nxt = n_pieces
        extra = ["<|im_start|>", "<|im_end|>", "<|action_start|>", "<|action_end|>",
                 "<|interpreter|>", "<|plugin|>"]
    else:
        decoder["0"] = _entry("<unk>")
        decoder["1"] = _entry("<s>")
        decoder["2"] = _entry("</s>", special=False, rstrip=True)
        nxt = n_pieces
        for t, rstrip, special in PHI3_ADDED:
            ids[t] = nxt
            decoder[str(nxt)] = _entry(t, special=special, rstrip=rstrip)
            nxt += 1
        extra = []
    for t in INTERNVL_TOKENS:
        ids[t] = nxt
        decoder[str(nxt)] = _entry(t)
        nxt += 1
    # added_tokens.json lists the tokens past the .model's pieces (transformers saves
    # only ids >= the sentencepiece vocab size there).
    added = {t: i for t, i in ids.items() if i >= n_pieces}
    ids["vocab"] = nxt

    if layout.startswith("internlm2"):
        ids.update(bos=1, eos=2, pad=2)
        config = {
            "add_bos_token": True, "add_eos_token": False,
            "added_tokens_decoder": decoder,
            "additional_special_tokens": extra,
            "auto_map": {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer",
                                           "tokenization_internlm2_fast.InternLM2TokenizerFast"]},
            "bos_token": "<s>", "clean_up_tokenization_spaces": False,
            "decode_with_prefix_space": False, "eos_token": "</s>",
            "model_max_length": 1000000000000000019884624838656, "pad_token": "</s>",
            "tokenizer_class": "InternLM2Tokenizer",
            "unk_token": "<unk>",
        }
        smap = {"additional_special_tokens": extra, "bos_token": _strip(_entry("<s>")),
                "eos_token": _strip(_entry("</s>")), "pad_token": _strip(_entry("</s>")),
                "unk_token": _strip(_entry("<unk>"))}
    else:
        eot = ids["<|endoftext|>"]
        ids.update(bos=1, eos=eot, pad=eot)
        config = {
            "add_bos_token": True, "add_eos_token": False,
            "added_tokens_decoder": decoder,
            "bos_token": "<s>", "clean_up_tokenization_spaces": False,
            "eos_token": "<|endoftext|>", "legacy": False, "model_max_length": 131072,
            "pad_token": "<|endoftext|>", "padding_side": "left", "sp_model_kwargs": {},
            "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>",
            "use_default_system_prompt": False,
        }
        smap = {"bos_token": _strip(_entry("<s>")), "eos_token": _strip(_entry("<|endoftext|>")),
                "pad_token": _strip(_entry("<|endoftext|>")), "unk_token": _strip(_entry("<unk>"))}
    files = {"tokenizer_config.json": _dump(config), "special_tokens_map.json": _dump(smap),
             "added_tokens.json": _dump(added)}
    return files, ids


def _strip(entry):
    # special_tokens_map.json entries carry no "special" flag.
    return {k: v for k, v in entry.items() if k != "special"}
