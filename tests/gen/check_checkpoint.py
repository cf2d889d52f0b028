#!/usr/bin/python3
"""Checks that an HF InternVL 1.5 checkpoint folder is well-formed (used on the generated
test checkpoints; works on any folder of this layout, real ones included).

  check_checkpoint.py DIR [DIR ...]

Checks: config.json keys and types; every safetensors header (BF16, offsets contiguous and
inside the file); the shard index (weight_map, total_size); the tensor set equals spec
section 6 for the shapes config.json implies (nothing missing, nothing extra); values are
finite and not degenerate (LayerScale != 1, norms varied, biases nonzero, logits of a few
tokens not tied); tokenizer.model piece layout and the ids of every special/added token
(spec 9.1/9.2), vocab_size = pieces + added tokens = embedding rows; exact encode/decode
round trip of English + Chinese text. Prints every problem found, exits 1 if any.
"""
import json
import os
import sys

import numpy as np
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_bf16 import read_safetensors_header, read_tensor_f32  # noqa: E402

INTERNVL_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>",
                   "</ref>", "<box>", "</box>"]
INTERNLM2_LAST6 = ["<|plugin|>", "<|interpreter|>", "<|action_end|>", "<|action_start|>",
                   "<|im_end|>", "<|im_start|>"]
PHI3_ADDED = ["<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>",
              "<|placeholder3|>", "<|placeholder4|>", "<|system|>", "<|end|>",
              "<|placeholder5|>", "<|placeholder6|>", "<|user|>"]
PHI3_RSTRIP = {"<|assistant|>", "<|placeholder1|>", "<|placeholder2|>", "<|placeholder3|>",
               "<|placeholder4|>", "<|system|>", "<|end|>", "<|placeholder5|>",
               "<|placeholder6|>", "<|user|>"}
ROUND_TRIP = ("Describe the image in detail.\n  Two  spaces, tabs\tand 12345 digits.\n"
              "请详细描述这张图片。书生·浦语 ✓ 日本語 😀")

TOP_KEYS = {"architectures": list, "model_type": str, "template": str,
            "downsample_ratio": float, "ps_version": str, "force_image_size": int,
            "select_layer": int, "dynamic_image_size": bool, "use_thumbnail": bool,
            "min_dynamic_patch": int, "max_dynamic_patch": int, "vision_config": dict,
            "llm_config": dict}
VIT_KEYS = {"hidden_size": int, "num_hidden_layers": int, "num_attention_heads": int,
            "intermediate_size": int, "image_size": int, "patch_size": int, "norm_type": str,
            "layer_norm_eps": float, "qkv_bias": bool, "qk_normalization": bool,
            "hidden_act": str, "initializer_factor": float, "num_channels": int}
LLM_KEYS = {"architectures": list, "model_type": str, "hidden_size": int,
            "num_hidden_layers": int, "num_attention_heads": int, "num_key_value_heads": int,
            "intermediate_size": int, "vocab_size": int, "rms_norm_eps": float,
            "rope_theta": (int, float), "max_position_embeddings": int, "rope_scaling": dict,
            "bos_token_id": int, "eos_token_id": int, "pad_token_id": int,
            "tie_word_embeddings": bool}


class Checker:
    def __init__(self, d):
        self.d, self.errors = d, []

    def err(self, msg):
        self.errors.append(f"{self.d}: {msg}")

    def expect(self, cond, msg):
        if not cond:
            self.err(msg)
        return cond

    def load_json(self, name):
        with open(os.path.join(self.d, name), encoding="utf-8") as f:
            return json.load(f)

    # ---- config.json -------------------------------------------------------------
    def check_keys(self, obj, keys, where):
        for k, t in keys.items():
            if k not in obj:
                self.err(f"config.json: {where}{k} missing")
            elif not isinstance(obj[k], t) or (t is int and isinstance(obj[k], bool)):
                self.err(f"config.json: {where}{k} = {obj[k]!r} is not {t}")

    def check_config(self, c):
        self.check_keys(c, TOP_KEYS, "")
        self.check_keys(c["vision_config"], VIT_KEYS, "vision_config.")
        self.check_keys(c["llm_config"], LLM_KEYS, "llm_config.")
        if self.errors:
            return False
        v, m = c["vision_config"], c["llm_config"]
        self.expect(c["architectures"] == ["InternVLChatModel"], "architectures")
        self.expect(c["model_type"] == "internvl_chat", "model_type")
        self.expect(c["ps_version"] == "v2" and c["downsample_ratio"] == 0.5
                    and c["select_layer"] == -1, "ps_version/downsample_ratio/select_layer")
        self.expect(c["force_image_size"] == v["image_size"] == 448 and v["patch_size"] == 14,
                    "image geometry must be 448 px / patch 14 (256 tokens per tile)")
        arch = m["architectures"][0]
        self.expect((arch, c["template"]) in (("InternLM2ForCausalLM", "internlm2-chat"),
                                              ("Phi3ForCausalLM", "phi3-chat")),
                    f"llm {arch} with template {c['template']}")
        six_b = v["norm_type"] == "rms_norm"
        self.expect(v["qk_normalization"] == six_b and v["qkv_bias"] == (not six_b),
                    "vision: rms_norm goes with qk_normalization and no qkv bias (6B style)")
        self.expect(m["hidden_size"] % m["num_attention_heads"] == 0
                    and m["num_attention_heads"] % m["num_key_value_heads"] == 0,
                    "llm heads do not divide hidden / kv heads")
        self.expect(v["hidden_size"] % v["num_attention_heads"] == 0, "vit heads")
        rs = m["rope_scaling"]
        if arch == "Phi3ForCausalLM":
            half = m["hidden_size"] // m["num_attention_heads"] // 2
            ok = rs.get("type") == "su" and all(
                isinstance(rs.get(k), list) and len(rs[k]) == half and len(set(rs[k])) == half
                for k in ("short_factor", "long_factor"))
            self.expect(ok, f"llm_config.rope_scaling: su with {half} distinct factors each")
            self.expect(0 < m.get("original_max_position_embeddings", 0)
                        < m["max_position_embeddings"], "original_max_position_embeddings")
        else:
            self.expect(rs.get("type") == "dynamic" and rs.get("factor", 0) > 1,
                        "llm_config.rope_scaling: dynamic with factor > 1")
        return not self.errors

    # ---- tensors -----------------------------------------------------------------
    @staticmethod
    def expected_tensors(c):
        """name -> shape, from config.json alone (spec section 6)."""
        v, m = c["vision_config"], c["llm_config"]
        C, Iv, six_b = v["hidden_size"], v["intermediate_size"], v["norm_type"] == "rms_norm"
        n_pos = (v["image_size"] // v["patch_size"]) ** 2 + 1
        e = {"vision_model.embeddings.class_embedding": [1, 1, C],
             "vision_model.embeddings.patch_embedding.weight": [C, 3, v["patch_size"],
                                                                v["patch_size"]],
             "vision_model.embeddings.patch_embedding.bias": [C],
             "vision_model.embeddings.position_embedding": [1, n_pos, C]}
        for L in range(v["num_hidden_layers"]):
            p = f"vision_model.encoder.layers.{L}."
            for n in ("norm1", "norm2"):
                e[p + n + ".weight"] = [C]
                if not six_b:
                    e[p + n + ".bias"] = [C]
            e[p + "attn.qkv.weight"] = [3 * C, C]
            if v["qkv_bias"]:
                e[p + "attn.qkv.bias"] = [3 * C]
            if v["qk_normalization"]:
                e[p + "attn.q_norm.weight"] = [C]
                e[p + "attn.k_norm.weight"] = [C]
            e.update({p + "attn.proj.weight": [C, C], p + "attn.proj.bias": [C],
                      p + "mlp.fc1.weight": [Iv, C], p + "mlp.fc1.bias": [Iv],
                      p + "mlp.fc2.weight": [C, Iv], p + "mlp.fc2.bias": [C],
                      p + "ls1": [C], p + "ls2": [C]})
        D, V, I = m["hidden_size"], m["vocab_size"], m["intermediate_size"]
        H, K = m["num_attention_heads"], m["num_key_value_heads"]
        hd = D // H
        C4 = int(C / c["downsample_ratio"] ** 2)
        e.update({"mlp1.0.weight": [C4], "mlp1.0.bias": [C4], "mlp1.1.weight": [D, C4],
                  "mlp1.1.bias": [D], "mlp1.3.weight": [D, D], "mlp1.3.bias": [D]})
        p = "language_model.model."
        if m["architectures"][0] == "InternLM2ForCausalLM":
            e[p + "tok_embeddings.weight"] = [V, D]
            for L in range(m["num_hidden_layers"]):
                q = f"{p}layers.{L}."
                e.update({q + "attention.wqkv.weight": [(H + 2 * K) * hd, D],
                          q + "attention.wo.weight": [D, H * hd],
                          q + "attention_norm.weight": [D], q + "ffn_norm.weight": [D],
                          q + "feed_forward.w1.weight": [I, D],
                          q + "feed_forward.w3.weight": [I, D],
                          q + "feed_forward.w2.weight": [D, I]})
            e["language_model.output.weight"] = [V, D]
        else:
            e[p + "embed_tokens.weight"] = [V, D]
            for L in range(m["num_hidden_layers"]):
                q = f"{p}layers.{L}."
                e.update({q + "self_attn.qkv_proj.weight": [(H + 2 * K) * hd, D],
                          q + "self_attn.o_proj.weight": [D, H * hd],
                          q + "mlp.gate_up_proj.weight": [2 * I, D],
                          q + "mlp.down_proj.weight": [D, I],
                          q + "input_layernorm.weight": [D],
                          q + "post_attention_layernorm.weight": [D]})
            e["language_model.lm_head.weight"] = [V, D]
        e[p + "norm.weight"] = [D]
        return e

    def read_headers(self):
        """name -> (file, entry, data_start) over all shards, checking each header."""
        index_path = os.path.join(self.d, "model.safetensors.index.json")
        if os.path.isfile(index_path):
            index = self.load_json("model.safetensors.index.json")
            wmap = index.get("weight_map", {})
            files = sorted(set(wmap.values()))
        else:
            wmap, files = None, ["model.safetensors"]
        found, total = {}, 0
        for fname in files:
            path = os.path.join(self.d, fname)
            if not self.expect(os.path.isfile(path), f"{fname} missing"):
                continue
            try:
                header, meta, start, size = read_safetensors_header(path)
            except (ValueError, UnicodeDecodeError, json.JSONDecodeError) as ex:
                self.err(f"{fname}: header does not parse: {ex}")
                continue
            self.expect(meta == {"format": "pt"}, f"{fname}: __metadata__ {meta}")
            self.expect(start % 8 == 0, f"{fname}: data start {start} not 8-aligned")
            spans = sorted((ent["data_offsets"], n) for n, ent in header.items())
            pos = 0
            for (b, e_), n in spans:
                self.expect(b == pos, f"{fname}: {n} starts at {b}, expected {pos} (gap/overlap)")
                pos = e_
            self.expect(start + pos == size, f"{fname}: data ends at {start + pos}, file {size}")
            for n, ent in header.items():
                nbytes = int(np.prod(ent["shape"], dtype=np.int64)) * 2
                self.expect(ent["dtype"] == "BF16", f"{fname}: {n} dtype {ent['dtype']}")
                self.expect(ent["data_offsets"][1] - ent["data_offsets"][0] == nbytes,
                            f"{fname}: {n} byte length does not match shape {ent['shape']}")
                self.expect(n not in found, f"{n} appears in two shards")
                if wmap is not None:
                    self.expect(wmap.get(n) == fname, f"index maps {n} to {wmap.get(n)}, "
                                                      f"it is in {fname}")
                found[n] = (path, ent, start)
                total += nbytes
        if wmap is not None:
            for n in wmap:
                self.expect(n in found, f"index lists {n}, no shard holds it")
            self.expect(index.get("metadata", {}).get("total_size") == total,
                        f"index total_size {index.get('metadata')} != {total}")
        return found

    def check_tensors(self, c):
        found = self.read_headers()
        want = self.expected_tensors(c)
        for n, shape in want.items():
            if n not in found:
                self.err(f"tensor {n} missing (expected shape {shape})")
            elif found[n][1]["shape"] != shape:
                self.err(f"tensor {n} has shape {found[n][1]['shape']}, config implies {shape}")
        for n in found:
            self.expect(n in want, f"unexpected tensor {n}")
        if self.errors:
            return
        get = {n: (lambda n=n: read_tensor_f32(*found[n])) for n in found}
        for n in found:
            x = get[n]()
            if not self.expect(np.isfinite(x).all(), f"{n}: non-finite values"):
                continue
            if n.endswith((".ls1", ".ls2")):
                self.expect(np.abs(x - 1).min() > 0.01 and x.std() > 0.05,
                            f"{n}: LayerScale must be far from 1 and varied")
            elif "norm" in n and n.endswith(".weight") or n == "mlp1.0.weight":
                self.expect(x.std() > 0.05, f"{n}: norm weights are not varied")
            else:
                self.expect(np.abs(x).max() > 0 and x.std() > 1e-3, f"{n}: all zero / constant")
        # Logits of a few tokens straight through the final norm and the LM head: a
        # checkpoint whose logits tie would make greedy-decoding tests meaningless.
        m = c["llm_config"]
        emb_n = ("language_model.model.tok_embeddings.weight" if "language_model.output.weight"
                 in found else "language_model.model.embed_tokens.weight")
        head_n = ("language_model.output.weight" if "language_model.output.weight" in found
                  else "language_model.lm_head.weight")
        emb, head = get[emb_n](), get[head_n]()
        norm = get["language_model.model.norm.weight"]()
        ids = np.linspace(3, m["vocab_size"] - 1, 16).astype(int)
        h = emb[ids]
        h = h / np.sqrt((h * h).mean(-1, keepdims=True) + m["rms_norm_eps"]) * norm
        logits = h @ head.T
        top2 = np.sort(logits, -1)[:, -2:]
        self.expect(logits.std() > 0.5 and (top2[:, 1] - top2[:, 0]).min() > 0
                    and len(set(logits.argmax(-1))) > 4, "LM-head logits are degenerate")

    # ---- tokenizer ---------------------------------------------------------------
    def check_tokenizer(self, c):
        m = c["llm_config"]
        internlm2 = m["architectures"][0] == "InternLM2ForCausalLM"
        with open(os.path.join(self.d, "tokenizer.model"), "rb") as f:
            raw = f.read()
        proto = pb.ModelProto()
        proto.ParseFromString(raw)
        sp = spm.SentencePieceProcessor(model_proto=raw)
        n = sp.get_piece_size()
        P = pb.ModelProto.SentencePiece
        self.expect(proto.trainer_spec.model_type == pb.TrainerSpec.BPE, "tokenizer.model: not BPE")
        self.expect(proto.trainer_spec.byte_fallback, "tokenizer.model: byte_fallback off")
        self.expect(proto.normalizer_spec.add_dummy_prefix == (not internlm2),
                    f"tokenizer.model: add_dummy_prefix must be {not internlm2}")
        self.expect([sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
                    and sp.unk_id() == 0 and sp.bos_id() == 1 and sp.eos_id() == 2,
                    "tokenizer.model: ids 0/1/2 must be <unk> <s> </s>")
        self.expect(all(sp.id_to_piece(3 + b) == f"<0x{b:02X}>" and sp.is_byte(3 + b)
                        for b in range(256)), "tokenizer.model: byte pieces not at 3..258")
        tc = self.load_json("tokenizer_config.json")
        dec = {int(k): v for k, v in tc.get("added_tokens_decoder", {}).items()}
        added = self.load_json("added_tokens.json")
        smap = self.load_json("special_tokens_map.json")

        want = {}      # content -> id, per spec 9.1 / 9.2 relative to the piece count
        if internlm2:
            for k, t in enumerate(INTERNLM2_LAST6):
                want[t] = n - 6 + k
                self.expect(proto.pieces[n - 6 + k].type in (P.USER_DEFINED, P.CONTROL),
                            f"tokenizer.model: piece {n - 6 + k} is not a placeholder")
            after = INTERNVL_TOKENS
            if n == 92544:   # the real size: the ids must be exactly the spec's
                self.expect(want["<|im_end|>"] == 92542 and want["<|im_start|>"] == 92543,
                            "real-vocab ids of <|im_end|>/<|im_start|>")
        else:
            after = PHI3_ADDED + INTERNVL_TOKENS
        for k, t in enumerate(after):
            want[t] = n + k
        vocab = n + len(after)
        for t, i in want.items():
            ent = dec.get(i)
            self.expect(ent is not None and ent["content"] == t,
                        f"tokenizer_config.json: id {i} should be {t}, is {ent and ent['content']}")
            if ent and not internlm2 and t in PHI3_ADDED:
                self.expect(ent["rstrip"] == (t in PHI3_RSTRIP), f"{t}: rstrip flag")
            if i >= n:
                self.expect(added.get(t) == i, f"added_tokens.json: {t} should be {i}")
        self.expect(set(added) == {t for t, i in want.items() if i >= n},
                    f"added_tokens.json has extra entries {set(added) - set(want)}")
        self.expect(m["vocab_size"] == vocab,
                    f"llm_config.vocab_size {m['vocab_size']} != pieces {n} + added {len(after)}")
        if n == 92544 and internlm2:
            self.expect(want["<img>"] == 92544 and want["<IMG_CONTEXT>"] == 92546
                        and want["</box>"] == 92552 and vocab == 92553, "real-vocab InternVL ids")
        eos_name = "</s>" if internlm2 else "<|endoftext|>"
        ids = dict(want, **{"<unk>": 0, "<s>": 1, "</s>": 2})
        self.expect(m["bos_token_id"] == 1 and m["eos_token_id"] == ids[eos_name]
                    and m["pad_token_id"] == ids[eos_name], "llm_config bos/eos/pad ids")
        for key, t in (("bos_token", "<s>"), ("eos_token", eos_name), ("pad_token", eos_name),
                       ("unk_token", "<unk>")):
            val = smap.get(key)
            val = val.get("content") if isinstance(val, dict) else val
            self.expect(val == t and tc.get(key) == t, f"{key} should be {t}")
        self.expect(tc.get("add_bos_token") is True and tc.get("add_eos_token") is False,
                    "tokenizer_config.json: add_bos_token true / add_eos_token false")
        got = sp.decode(sp.encode(ROUND_TRIP))
        self.expect(got == ROUND_TRIP, f"tokenizer.model round trip: {got!r}")
        self.expect(any(sp.is_byte(i) for i in sp.encode("鬣")),
                    "byte fallback unused for a rare character")

    def run(self):
        try:
            c = self.load_json("config.json")
            if self.check_config(c):
                self.check_tensors(c)
                self.check_tokenizer(c)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as ex:
            self.err(f"{type(ex).__name__}: {ex}")
        return self.errors


def main(argv):
    if not argv:
        sys.exit(__doc__)
    bad = 0
    for d in argv:
        errors = Checker(d).run()
        for e in errors:
            print("FAIL", e)
        if errors:
            bad += 1
        else:
            print("OK", d)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
