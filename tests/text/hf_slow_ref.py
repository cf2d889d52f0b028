"""Python reference for core/text: Hugging Face's slow tokenizer rules, written down from
transformers' PreTrainedTokenizer (tokenization_utils.py: Trie.split, tokenize, the AddedToken
lstrip/rstrip/single_word handling) and LlamaTokenizer (legacy=False: dummy prefix off in the
.model, one "▁" in front of the text, the unk trick for chunks starting with a space), on top
of the sentencepiece Python module. It is independent of the C code on purpose.

Decoding follows the engine's documented semantics (core/text/README.md): skipped specials are
removed, runs between added tokens are decoded by sentencepiece, added tokens are written as
their text, then HF's clean_up_tokenization if the config asks.
"""
import json
import os

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

SPIECE = "\u2581"
NAMED = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
         "mask_token"]


class Trie:
    """transformers.tokenization_utils.Trie: splits on the added tokens, earliest match first
    and, from there, the longest one (the lookahead)."""

    def __init__(self):
        self.data = {}

    def add(self, word):
        ref = self.data
        for ch in word:
            ref = ref.setdefault(ch, {})
        ref[""] = 1

    def split(self, text):
        states = {}
        offsets = [0]
        skip = 0
        for current, current_char in enumerate(text):
            if skip and current < skip:
                continue
            to_remove = set()
            reset = False
            for start, trie_pointer in states.items():
                if "" in trie_pointer:
                    for lookstart, looktrie_pointer in states.items():
                        if lookstart > start:
                            break
                        elif lookstart < start:
                            lookahead_index = current + 1
                            end = current + 1
                        else:
                            lookahead_index = current
                            end = current
                        next_char = text[lookahead_index] if lookahead_index < len(text) else None
                        if "" in looktrie_pointer:
                            start = lookstart
                            end = lookahead_index
                            skip = lookahead_index
                        while next_char in looktrie_pointer:
                            looktrie_pointer = looktrie_pointer[next_char]
                            lookahead_index += 1
                            if "" in looktrie_pointer:
                                start = lookstart
                                end = lookahead_index
                                skip = lookahead_index
                            if lookahead_index == len(text):
                                break
                            next_char = text[lookahead_index]
                    offsets.append(start)
                    offsets.append(end)
                    reset = True
                    break
                elif current_char in trie_pointer:
                    states[start] = trie_pointer[current_char]
                else:
                    to_remove.add(start)
            if reset:
                states = {}
            else:
                for start in to_remove:
                    del states[start]
            if current >= skip and current_char in self.data:
                states[current] = self.data[current_char]
        for start, trie_pointer in states.items():
            if "" in trie_pointer:
                offsets.append(start)
                offsets.append(len(text))
                break
        offsets.append(len(text))
        tokens, start = [], 0
        for end in offsets:
            if start > end or start == end:
                continue
            tokens.append(text[start:end])
            start = end
        return tokens


def _load(d, name):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return None
    with open(p, encoding="utf-8") as f:
        return json.load(f)


def _content(v):
    return v if isinstance(v, str) else (v or {}).get("content")


class SlowTokenizer:
    def __init__(self, d):
        cfg = _load(d, "tokenizer_config.json") or {}
        smap = _load(d, "special_tokens_map.json") or {}
        added_json = _load(d, "added_tokens.json") or {}
        with open(os.path.join(d, "tokenizer.model"), "rb") as f:
            model = f.read()
        is_llama = str(cfg.get("tokenizer_class", "")).startswith("LlamaTokenizer")
        self.legacy = cfg.get("legacy", True) if is_llama else True
        self.add_prefix_space = cfg.get("add_prefix_space", True)
        self.add_bos = cfg.get("add_bos_token", True)
        self.add_eos = cfg.get("add_eos_token", False)
        self.clean_up = cfg.get("clean_up_tokenization_spaces", True)
        m = pb.ModelProto()
        m.ParseFromString(model)
        self.model_dummy_prefix = m.normalizer_spec.add_dummy_prefix
        self.lossy_whitespace = m.normalizer_spec.remove_extra_whitespaces
        if not self.legacy:   # LlamaTokenizer.get_spm_processor
            m.normalizer_spec.add_dummy_prefix = False
        self.sp = spm.SentencePieceProcessor()
        self.sp.LoadFromSerializedProto(m.SerializeToString())

        self.added = {}       # content -> dict(id, lstrip, rstrip, single_word)
        self.by_id = {}

        def add(content, i, flags):
            e = dict(id=int(i), lstrip=bool(flags.get("lstrip", False)),
                     rstrip=bool(flags.get("rstrip", False)),
                     single_word=bool(flags.get("single_word", False)))
            self.added[content] = e
            self.by_id[int(i)] = content

        for i, e in (cfg.get("added_tokens_decoder") or {}).items():
            if int(i) not in self.by_id:
                add(e["content"], i, e)
        for content, i in added_json.items():
            if i not in self.by_id and content not in self.added:
                add(content, i, {})
        self.special = {}     # named special tokens: content -> id
        extra = smap.get("additional_special_tokens", cfg.get("additional_special_tokens")) or []
        entries = [(k, smap.get(k) if smap.get(k) is not None else cfg.get(k)) for k in NAMED]
        entries += [("additional", e) for e in extra]
        self.named = {}
        for key, v in entries:
            c = _content(v)
            if c is None:
                continue
            if c not in self.added:
                i = self.sp.piece_to_id(c)
                if self.sp.id_to_piece(i) != c:
                    continue
                add(c, i, v if isinstance(v, dict) else {})
            self.special[c] = self.added[c]["id"]
            self.named[key] = self.added[c]["id"]
        self.unk_token = _content(smap.get("unk_token") or cfg.get("unk_token")) or "<unk>"
        self.unk_len = len(self.sp.encode(self.unk_token, out_type=str))
        self.trie = Trie()
        for c in self.added:
            self.trie.add(c)

    # ---- PreTrainedTokenizer.tokenize
    def _base_tokenize(self, text):
        tokens = self.trie.split(text)
        for i, token in enumerate(tokens):
            if token in self.added:
                tok = self.added[token]
                left = tokens[i - 1] if i > 0 else None
                right = tokens[i + 1] if i < len(tokens) - 1 else None
                if tok["rstrip"] and right:
                    tokens[i + 1] = right.lstrip()
                if tok["lstrip"] and left:
                    tokens[i - 1] = left.rstrip()
                if tok["single_word"] and left and left[-1] != " ":
                    tokens[i - 1] += token
                    tokens[i] = ""
                elif tok["single_word"] and right and right[0] != " ":
                    tokens[i] += right
                    tokens[i + 1] = ""
        out = []
        for token in tokens:
            if not token:
                continue
            if token in self.added:
                out.append(token)
            else:
                out.extend(self._tokenize(token))
        return out

    def _tokenize(self, text):   # LlamaTokenizer._tokenize (InternLM2: the first branch)
        if self.legacy or not text.startswith((SPIECE, " ")):
            return self.sp.encode(text, out_type=str)
        toks = self.sp.encode(self.unk_token + text, out_type=str)
        return toks[self.unk_len:] if len(toks) >= self.unk_len else toks

    def tokenize(self, text):   # LlamaTokenizer.tokenize for legacy=False
        if self.legacy or len(text) == 0:
            return self._base_tokenize(text)
        text = text.replace(SPIECE, " ")
        if self.add_prefix_space:
            text = SPIECE + text
        toks = self._base_tokenize(text)
        if len(toks) > 1 and toks[0] == SPIECE and toks[1] in self.special:
            toks = toks[1:]
        return toks

    def token_to_id(self, tok):
        if tok in self.added:
            return self.added[tok]["id"]
        return self.sp.piece_to_id(tok)

    def encode(self, text, add_special=True):
        ids = [self.token_to_id(t) for t in self.tokenize(text)]
        if add_special:
            if self.add_bos and "bos_token" in self.named:
                ids = [self.named["bos_token"]] + ids
            if self.add_eos and "eos_token" in self.named:
                ids = ids + [self.named["eos_token"]]
        return ids

    # ---- decoding (engine semantics, see the module docstring)
    def decode(self, ids, skip_special=False):
        special_ids = set(self.special.values())
        ids = [i for i in ids if not (skip_special and i in special_ids)]
        out, run, run_at_start = [], [], True

        def flush(at_start):
            if not run:
                return
            text = self.sp.decode(run)
            if (not self.legacy and self.add_prefix_space and at_start and text.startswith(" ")
                    and self.sp.id_to_piece(run[0]).startswith(SPIECE)):
                text = text[1:]
            out.append(text)

        for k, i in enumerate(ids):
            if i in self.by_id:
                flush(run_at_start)
                run = []
                run_at_start = False
                out.append(self.by_id[i])
            else:
                run.append(i)
        flush(run_at_start)
        text = "".join(out)
        if self.clean_up:   # PreTrainedTokenizerBase.clean_up_tokenization
            for a, b in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
                         (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"),
                         (" 're", "'re")]:
                text = text.replace(a, b)
        return text

    def vocab_size(self):
        return max([self.sp.get_piece_size()] + [i + 1 for i in self.by_id])
