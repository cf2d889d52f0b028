"""The test checkpoint families: tiny widths, real layouts, real config.json shape.

Each family mirrors one released InternVL 1.5 model (spec sections 1-6): same vision
encoder style, same LLM architecture, same tokenizer layout, same image geometry (448 px,
patch 14, 256 tokens per tile, ps_version v2). Only the widths, depths and vocabulary are
small so a CPU converts and runs them in seconds.
"""
import copy

# Vision encoders. "300m" = InternViT-300M-448px (LayerNorm, qkv bias, no qk norm);
# "6b" = InternViT-6B-448px-V1-5 (RMSNorm, q/k RMSNorm over the full width, no qkv bias).
VIT_300M = dict(style="300m", hidden=64, heads=4, layers=2, intermediate=128)
# 5 heads (an odd count, like the real 25) so code that assumes even head counts fails.
VIT_6B = dict(style="6b", hidden=80, heads=5, layers=2, intermediate=160)

FAMILIES = {
    # Mini-InternVL-Chat-2B-V1-5: InternViT-300M + InternLM2-chat-1.8B.
    "mini2b-tiny": dict(
        vit=VIT_300M, template="internlm2-chat", tokenizer="internlm2",
        llm=dict(arch="internlm2", hidden=64, heads=4, kv_heads=2, head_dim=16, layers=4,
                 intermediate=160, rope_theta=1000000,
                 rope_scaling={"factor": 2.0, "type": "dynamic"},
                 max_position=32768),
        shards=1),
    # Mini-InternVL-Chat-4B-V1-5: InternViT-300M + Phi-3-mini-128k (LongRoPE "su").
    # original_max_position 512 so prompts of a few hundred tokens cross the short->long
    # factor switch; the su scale is sqrt(1 + ln(16384/512)/ln(512)).
    "mini4b-tiny": dict(
        vit=VIT_300M, template="phi3-chat", tokenizer="phi3",
        llm=dict(arch="phi3", hidden=64, heads=4, kv_heads=4, head_dim=16, layers=4,
                 intermediate=160, rope_theta=10000.0, rope_scaling="su",
                 max_position=16384, original_max_position=512),
        shards=2),
    # InternVL-Chat-V1-5 (26B): InternViT-6B + InternLM2-chat-20B (dynamic NTK 3.0).
    # 12 query heads over 4 kv heads (G = 3, like the real G = 6 not a power of two; every
    # tp in 1, 2, 4 divides them), 4 layers (every pp in 1, 2, 4 fits) and
    # max_position 640 so a prompt with 3+ tiles (768+ image tokens) triggers dynamic NTK.
    "v15-tiny": dict(
        vit=VIT_6B, template="internlm2-chat", tokenizer="internlm2",
        llm=dict(arch="internlm2", hidden=96, heads=12, kv_heads=4, head_dim=8, layers=4,
                 intermediate=192, rope_theta=1000000,
                 rope_scaling={"factor": 3.0, "type": "dynamic"},
                 max_position=640),
        shards=1),
    # mini2b-tiny with the real InternLM2 vocabulary: 92544 .model pieces (placeholders
    # padded in), added tokens at 92544..92552, vocab 92553 (catches hard-coded ids).
    "mini2b-realvocab": dict(
        vit=VIT_300M, template="internlm2-chat", tokenizer="internlm2-real",
        llm=dict(arch="internlm2", hidden=64, heads=4, kv_heads=2, head_dim=16, layers=4,
                 intermediate=160, rope_theta=1000000,
                 rope_scaling={"factor": 2.0, "type": "dynamic"},
                 max_position=32768),
        shards=1),
}

# The README demo: mini2b-tiny layout, a bit wider and deeper, still seconds on a CPU.
FAMILIES["demo"] = copy.deepcopy(FAMILIES["mini2b-tiny"])
FAMILIES["demo"]["vit"] = dict(style="300m", hidden=128, heads=4, layers=4, intermediate=384)
FAMILIES["demo"]["llm"].update(hidden=256, heads=8, kv_heads=4, head_dim=32, layers=4,
                               intermediate=640)

# Keys every transformers PretrainedConfig.to_dict() writes into nested configs; the real
# config.json files carry them (many as null), so parsers must skip what they don't need.
_PRETRAINED_DEFAULTS = {
    "add_cross_attention": False, "bad_words_ids": None, "begin_suppress_tokens": None,
    "chunk_size_feed_forward": 0, "cross_attention_hidden_size": None,
    "decoder_start_token_id": None, "diversity_penalty": 0.0, "do_sample": False,
    "early_stopping": False, "encoder_no_repeat_ngram_size": 0,
    "exponential_decay_length_penalty": None, "finetuning_task": None,
    "forced_bos_token_id": None, "forced_eos_token_id": None,
    "id2label": {"0": "LABEL_0", "1": "LABEL_1"}, "is_decoder": False,
    "is_encoder_decoder": False, "label2id": {"LABEL_0": 0, "LABEL_1": 1},
    "length_penalty": 1.0, "max_length": 20, "min_length": 0, "no_repeat_ngram_size": 0,
    "num_beam_groups": 1, "num_beams": 1, "num_return_sequences": 1,
    "output_attentions": False, "output_hidden_states": False, "output_scores": False,
    "prefix": None, "problem_type": None, "pruned_heads": {}, "remove_invalid_values": False,
    "repetition_penalty": 1.0, "return_dict": True, "return_dict_in_generate": False,
    "sep_token_id": None, "suppress_tokens": None, "task_specific_params": None,
    "temperature": 1.0, "tf_legacy_loss": False, "tie_encoder_decoder": False,
    "tie_word_embeddings": False, "tokenizer_class": None, "top_k": 50, "top_p": 1.0,
    "torch_dtype": "bfloat16", "torchscript": False, "transformers_version": "4.37.2",
    "typical_p": 1.0, "use_bfloat16": True,
    "bos_token_id": None, "eos_token_id": None, "pad_token_id": None,
}


def su_factors(n):
    """Distinct LongRoPE factor lists of n values each, shaped like Phi-3's (short ~1..3,
    long ~1..64, both increasing with the frequency index)."""
    short = [round(1.05 + 2.0 * k / max(n - 1, 1) + 0.003 * k, 6) for k in range(n)]
    long = [round(1.0 + 63.0 * (k / max(n - 1, 1)) ** 1.5 + 0.01 * k, 6) for k in range(n)]
    return short, long


def vision_config(v):
    c = dict(_PRETRAINED_DEFAULTS)
    six_b = v["style"] == "6b"
    c.update({
        "_name_or_path": "OpenGVLab/InternViT-6B-448px-V1-5" if six_b
        else "OpenGVLab/InternViT-300M-448px",
        "architectures": ["InternVisionModel"],
        "attention_dropout": 0.0,
        "auto_map": {"AutoConfig": "configuration_intern_vit.InternVisionConfig",
                     "AutoModel": "modeling_intern_vit.InternVisionModel"},
        "drop_path_rate": 0.0, "dropout": 0.0,
        "hidden_act": "gelu",
        "hidden_size": v["hidden"],
        "image_size": 448,
        "initializer_factor": 0.1 if six_b else 1.0,
        "initializer_range": 1e-10 if six_b else 0.02,
        "intermediate_size": v["intermediate"],
        "layer_norm_eps": 1e-06,
        "model_type": "intern_vit_6b",
        "norm_type": "rms_norm" if six_b else "layer_norm",
        "num_attention_heads": v["heads"],
        "num_channels": 3,
        "num_hidden_layers": v["layers"],
        "patch_size": 14,
        "qk_normalization": six_b,
        "qkv_bias": not six_b,
        "use_flash_attn": False,
    })
    return c


def llm_config(m, vocab, special):
    """special: dict with bos/eos/pad ids of the tokenizer layout."""
    c = dict(_PRETRAINED_DEFAULTS)
    common = {
        "hidden_act": "silu", "hidden_size": m["hidden"], "initializer_range": 0.02,
        "intermediate_size": m["intermediate"], "max_position_embeddings": m["max_position"],
        "num_attention_heads": m["heads"], "num_hidden_layers": m["layers"],
        "num_key_value_heads": m["kv_heads"], "rms_norm_eps": 1e-05,
        "rope_theta": m["rope_theta"], "tie_word_embeddings": False, "use_cache": True,
        "vocab_size": vocab, "bos_token_id": special["bos"], "eos_token_id": special["eos"],
        "pad_token_id": special["pad"],
    }
    if m["arch"] == "internlm2":
        c.update(common)
        c.update({
            "_name_or_path": "internlm/internlm2-chat-1_8b",
            "architectures": ["InternLM2ForCausalLM"],
            "attn_implementation": "eager",
            "auto_map": {"AutoConfig": "configuration_internlm2.InternLM2Config",
                         "AutoModel": "modeling_internlm2.InternLM2ForCausalLM",
                         "AutoModelForCausalLM": "modeling_internlm2.InternLM2ForCausalLM"},
            "bias": False,
            "model_type": "internlm2",
            "rope_scaling": dict(m["rope_scaling"]),
        })
    else:
        short, long = su_factors(m["head_dim"] // 2)
        c.update(common)
        c.update({
            "_name_or_path": "microsoft/Phi-3-mini-128k-instruct",
            "architectures": ["Phi3ForCausalLM"],
            "attention_dropout": 0.0,
            "auto_map": {"AutoConfig": "configuration_phi3.Phi3Config",
                         "AutoModelForCausalLM": "modeling_phi3.Phi3ForCausalLM"},
            "embd_pdrop": 0.0,
            "model_type": "phi3",
            "original_max_position_embeddings": m["original_max_position"],
            "resid_pdrop": 0.0,
            "rope_scaling": {"long_factor": long, "short_factor": short, "type": "su"},
            "sliding_window": 262144,
        })
    if m["hidden"] != m["heads"] * m["head_dim"]:
        raise ValueError("hidden must equal heads * head_dim (head_dim is not a config key)")
    return c


def chat_config(name, fam, vocab, special):
    """The top-level InternVLChatConfig dict."""
    return {
        "_commit_hash": None,
        "_name_or_path": "ivl-test/" + name,
        "architectures": ["InternVLChatModel"],
        "auto_map": {"AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
                     "AutoModel": "modeling_internvl_chat.InternVLChatModel",
                     "AutoModelForCausalLM": "modeling_internvl_chat.InternVLChatModel"},
        "downsample_ratio": 0.5,
        "dynamic_image_size": True,
        "force_image_size": 448,
        "llm_config": llm_config(fam["llm"], vocab, special),
        "max_dynamic_patch": 12,
        "min_dynamic_patch": 1,
        "model_type": "internvl_chat",
        "pad2square": False,
        "ps_version": "v2",
        "select_layer": -1,
        "template": fam["template"],
        "torch_dtype": "bfloat16",
        "transformers_version": None,
        "use_backbone_lora": 0,
        "use_llm_lora": 0,
        "use_thumbnail": True,
        "vision_config": vision_config(fam["vit"]),
    }
