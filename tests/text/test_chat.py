"""core/text chat prompts vs a Python implementation of the InternVL templates written from
the spec (8.1 templates, MPT separator style; 8.2 image blocks, placeholders, batch_chat),
tokenized by the HF slow-tokenizer transcription (hf_slow_ref.py).

Usage: test_chat.py --tool TEXT_TOOL [--own] [DIR:TEMPLATE ...]
Cases: one image, one image with the placeholder inside the question, two images (automatic
"Image-k:" lines and explicit placeholders), multi-turn (placeholder in the stored first
question, or none), custom and empty system messages, text only in Chinese, a small
tokens_per_tile with several tiles, a placeholder-count error, and a left-padded batch.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_slow_ref import SlowTokenizer  # noqa: E402
from test_tokenizer import Checker, own_tokenizers, run_tool  # noqa: E402

TEMPLATES = {
    "internlm2-chat": dict(system_template="<|im_start|>system\n{system_message}",
                           system="You are an AI assistant whose name is InternLM (书生·浦语).",
                           roles=("<|im_start|>user\n", "<|im_start|>assistant\n"),
                           sep="<|im_end|>"),
    "phi3-chat": dict(system_template="<|system|>\n{system_message}",
                      system="You are an AI assistant whose name is Phi-3.",
                      roles=("<|user|>\n", "<|assistant|>\n"), sep="<|end|>"),
}


def get_prompt(t, system, messages):
    """conversation.py SeparatorStyle.MPT."""
    ret = t["system_template"].format(system_message=system) + t["sep"]
    for role, msg in messages:
        ret += role + msg + t["sep"] if msg else role
    return ret


def build_query(tname, case):
    t = TEMPLATES[tname]
    tiles = case.get("tiles", [])
    tpt = case.get("tokens_per_tile", 256)
    history = [list(h) for h in case.get("history", [])]
    question = case["question"]
    users = [h[0] for h in history] + [question]
    if tiles and not any("<image>" in u for u in users):
        block = "<image>\n" if len(tiles) == 1 else "".join(
            f"Image-{i + 1}: <image>\n" for i in range(len(tiles)))
        if history:
            history[0][0] = block + history[0][0]
        else:
            question = block + question
    msgs = []
    for u, a in history:
        msgs += [(t["roles"][0], u), (t["roles"][1], a)]
    msgs += [(t["roles"][0], question), (t["roles"][1], None)]
    system = case.get("system", t["system"])
    query = get_prompt(t, system, msgs)
    if tiles and query.count("<image>") != len(tiles):
        return None
    for n in tiles:
        query = query.replace("<image>", "<img>" + "<IMG_CONTEXT>" * tpt * n + "</img>", 1)
    return query


CASES = [
    dict(question="Describe the image.", tiles=[7]),
    dict(question="Look: <image>\nWhat is in it?", tiles=[1]),
    dict(question="Compare the two images.", tiles=[2, 3]),
    dict(question="Image-1: <image>\nImage-2: <image>\nWhich one is larger?", tiles=[1, 2]),
    dict(question="What color is it?", tiles=[2],
         history=[["<image>\nWhat is it?", "A cat."], ["Where?", "On a window sill."]]),
    dict(question="And now?", tiles=[1], history=[["What is it?", "A dog."]]),
    dict(question="Describe.", tiles=[1], system="You are a captioning model. Be brief."),
    dict(question="Describe.", tiles=[1], system=""),
    dict(question="你好，请介绍一下你自己。"),
    dict(question="Tiles!", tiles=[3, 1], tokens_per_tile=4),
    dict(question="  spaced question  \n", tiles=[1], tokens_per_tile=2),
    dict(question="<image> one placeholder, two images", tiles=[1, 1]),
]
BATCH = [
    dict(question="Describe the image.", tiles=[1], tokens_per_tile=8),
    dict(question="What is the man on the left holding in his hand?", tiles=[3],
         tokens_per_tile=8),
    dict(question="图里有什么？", tiles=[2], tokens_per_tile=8),
]


def check(tool, d, tname, ck):
    ref = SlowTokenizer(d)
    name = f"{os.path.basename(d)}/{tname}"
    res = run_tool(tool, d, "chat", CASES, tname)
    ctx = ref.token_to_id("<IMG_CONTEXT>")
    for case, r in zip(CASES, res):
        q = build_query(tname, case)
        if q is None:
            ck.eq(f"{name} error for {case}", "error" in r, True)
            continue
        want = ref.encode(q, add_special=True)
        ck.eq(f"{name} text {case}", r.get("text"), q)
        ck.eq(f"{name} ids {case}", r.get("ids"), want)
        n_ctx = sum(case.get("tiles", [])) * case.get("tokens_per_tile", 256)
        ck.eq(f"{name} <IMG_CONTEXT> count {case}", (r.get("ids") or []).count(ctx), n_ctx)
        ck.eq(f"{name} starts with BOS {case}", (r.get("ids") or [None])[0],
              ref.named["bos_token"])
    b = run_tool(tool, d, "batch", BATCH, tname)[0]
    rows = [ref.encode(build_query(tname, c), add_special=True) for c in BATCH]
    L = max(len(x) for x in rows)
    pad = ref.named["pad_token"]
    ck.eq(f"{name} batch ids", b.get("ids"), [[pad] * (L - len(x)) + x for x in rows])
    ck.eq(f"{name} batch mask", b.get("mask"), [[0] * (L - len(x)) + [1] * len(x) for x in rows])
    ck.eq(f"{name} batch is padded", min(len(x) for x in rows) < L, True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--own", action="store_true")
    ap.add_argument("dirs", nargs="*")
    a = ap.parse_args()
    ck = Checker()
    with tempfile.TemporaryDirectory() as tmp:
        dirs = own_tokenizers(tmp) if a.own else []
        dirs += [tuple(x.rsplit(":", 1)) for x in a.dirs]
        for d, tname in dirs:
            check(a.tool, d, tname, ck)
    print(f"{ck.checks} checks on {len(dirs)} tokenizers, {ck.fails} failed")
    return 1 if ck.fails else 0


if __name__ == "__main__":
    sys.exit(main())
