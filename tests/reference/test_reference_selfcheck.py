#!/usr/bin/python3
"""Self-check of the Python reference (internvl_ref.py) without any C code: properties that
a correct implementation of the spec has and a buggy one would likely break.

Runs on tiny checkpoints written here (tiny_checkpoint.py; small max positions so the
dynamic-NTK and su switch points are crossed) and, when present, on the ctest fixture
checkpoints in $IVL_TEST_DATA/hf/<family> (tests/gen).

    /usr/bin/python3 test_reference_selfcheck.py [-v]
"""
import math
import os
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import internvl_ref as ref  # noqa: E402
import make_inputs  # noqa: E402
import tiny_checkpoint  # noqa: E402

FIXTURE_FAMILIES = ("mini2b-tiny", "mini4b-tiny", "v15-tiny", "mini2b-realvocab")
SWITCH = 48  # max_position_embeddings (InternLM2) / original_max_position_embeddings (Phi-3)
_TMP = tempfile.TemporaryDirectory(prefix="ivl_ref_selfcheck_")
_MODELS = {}
torch.manual_seed(0)


def tiny(kind, **kw):
    """A cached InternVL model on a tiny checkpoint written once per test run."""
    key = (kind, tuple(sorted(kw.items())))
    if key not in _MODELS:
        d = os.path.join(_TMP.name, f"{kind}-{len(_MODELS)}")
        tiny_checkpoint.write_checkpoint(d, kind, **kw)
        _MODELS[key] = ref.InternVL(d)
    return _MODELS[key]


def fixture_dirs():
    base = os.environ.get("IVL_TEST_DATA")
    if not base:
        return []
    return [(f, os.path.join(base, "hf", f)) for f in FIXTURE_FAMILIES
            if os.path.exists(os.path.join(base, "hf", f, "config.json"))]


def run_case(model, case, max_new=8, use_cache=True, seed=0):
    data = make_inputs.build(model.hf_dir, case, seed)
    px = torch.from_numpy(data["pixel_values"]) if "pixel_values" in data else None
    mask = torch.from_numpy(data["attention_mask"]) if "attention_mask" in data else None
    return data, model.run(torch.from_numpy(data["input_ids"]), mask, px, max_new, use_cache)


class Primitives(unittest.TestCase):
    def test_safetensors_bf16_exact_and_sharded(self):
        d = os.path.join(_TMP.name, "st")
        os.makedirs(d, exist_ok=True)
        g = torch.Generator().manual_seed(1)
        t = {"a": torch.randn(5, 7, generator=g) * 100, "b.c": torch.randn(3, generator=g)}
        tiny_checkpoint.write_safetensors(os.path.join(d, "model.safetensors"), t)
        ws = ref.WeightStore(d)
        for k, v in t.items():
            want = v.to(torch.bfloat16).float()  # exact widening
            self.assertTrue(torch.equal(ws.get(k), want), k)
        with self.assertRaises(ref.RefError):
            ws.get("a", (7, 5))
        # sharded form: every tensor found through the index
        m = tiny("ln-internlm2", shards=3)
        self.assertEqual(len({w[0] for w in m.ws.where.values()}), 3)
        self.assertEqual(m.ws.used, set(m.ws.where))

    def test_wqkv_deinterleave_matches_row_formula(self):
        H, K, hd, D = 6, 2, 4, 5
        G = H // K
        w = torch.arange((H + 2 * K) * hd * D, dtype=torch.float32).reshape(-1, D)
        wq, wk, wv = ref.split_internlm2_wqkv(w, H, K, hd)
        for n in range(H):
            g, s = divmod(n, G)
            for d in range(hd):
                self.assertTrue(torch.equal(wq[n * hd + d], w[(g * (G + 2) + s) * hd + d]))
        for g in range(K):
            for d in range(hd):
                self.assertTrue(torch.equal(wk[g * hd + d], w[(g * (G + 2) + G) * hd + d]))
                self.assertTrue(torch.equal(wv[g * hd + d], w[(g * (G + 2) + G + 1) * hd + d]))

    def test_gqa_head_mapping(self):
        # the LLM expands kv heads with repeat_interleave: query head n must see kv head n // G
        k = torch.arange(3, dtype=torch.float32)[:, None, None].expand(3, 2, 4)
        e = k.repeat_interleave(4, dim=0)
        for n in range(12):
            self.assertEqual(float(e[n, 0, 0]), n // 4)

    def test_pixel_shuffle_matches_index_formula(self):
        T, g, C = 2, 32, 3
        x = torch.randn(T, g * g, C)
        X = x.reshape(T, g, g, C)
        for version in ("v1", "v2"):
            y = ref.pixel_shuffle(x, 0.5, version)
            self.assertEqual(tuple(y.shape), (T, 256, 4 * C))
            for i in range(16):
                for j in range(16):
                    t = i * 16 + j if version == "v2" else j * 16 + i
                    want = torch.cat([X[:, 2 * i, 2 * j], X[:, 2 * i, 2 * j + 1],
                                      X[:, 2 * i + 1, 2 * j], X[:, 2 * i + 1, 2 * j + 1]], dim=-1)
                    self.assertTrue(torch.equal(y[:, t], want), (version, i, j))

    def test_attention_properties(self):
        q, k, v = torch.randn(3, 5, 8), torch.randn(3, 1, 8), torch.randn(3, 1, 8)
        self.assertTrue(torch.allclose(ref.attention(q, k, v), v.expand(3, 5, 8)))
        # identical keys -> uniform weights -> mean of v
        k = torch.randn(3, 1, 8).expand(3, 6, 8)
        v = torch.randn(3, 6, 8)
        self.assertTrue(torch.allclose(ref.attention(q, k, v), v.mean(1, keepdim=True).expand(3, 5, 8), atol=1e-6))
        # causal: first query attends only key 0
        k, v = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
        o = ref.attention(torch.randn(2, 4, 8), k, v, ref.causal_mask(4, 0))
        self.assertTrue(torch.allclose(o[:, 0], v[:, 0]))
        m = ref.causal_mask(2, 3)  # two new queries at positions 3, 4 over 5 keys
        self.assertEqual(m.tolist(), [[True] * 4 + [False], [True] * 5])

    def test_rope_rotate_half_elementwise_and_relative(self):
        hd, half = 8, 4
        u = torch.randn(1, 3, hd)
        pos = torch.tensor([0, 5, 17])
        inv = ref._inv_freq(10000.0, hd)
        cos, sin = ref._cos_sin(pos, inv)
        r = ref.rotate_half_apply(u, cos, sin)
        for si, p in enumerate(pos.tolist()):
            for kk in range(half):
                a = p * float(inv[kk])
                x0, x1 = float(u[0, si, kk]), float(u[0, si, kk + half])
                self.assertAlmostEqual(float(r[0, si, kk]), x0 * math.cos(a) - x1 * math.sin(a), places=4)
                self.assertAlmostEqual(float(r[0, si, kk + half]), x1 * math.cos(a) + x0 * math.sin(a), places=4)
        # q.k after rotation depends on the position difference only
        q, k = torch.randn(1, 1, hd), torch.randn(1, 1, hd)
        dots = []
        for p in (0, 7, 30):
            cq, sq = ref._cos_sin(torch.tensor([p + 3]), inv)
            ck, sk = ref._cos_sin(torch.tensor([p]), inv)
            dots.append(float((ref.rotate_half_apply(q, cq, sq) * ref.rotate_half_apply(k, ck, sk)).sum()))
        self.assertAlmostEqual(dots[0], dots[1], places=4)
        self.assertAlmostEqual(dots[0], dots[2], places=4)

    def test_dynamic_ntk_state(self):
        lc = {"rope_theta": 1e6, "max_position_embeddings": 100, "rope_scaling": {"type": "dynamic", "factor": 3.0}}
        r = ref.InternLM2Rope(lc, 16)
        r(torch.arange(100), 100)
        self.assertEqual(r.base, 1e6)  # at the limit: plain theta
        r(torch.arange(130), 130)
        want = 1e6 * ((3.0 * 130 / 100) - 2.0) ** (16 / 14)
        self.assertAlmostEqual(r.base, want, delta=want * 1e-12)
        r(torch.tensor([130]), 131)  # decode step: grows again
        self.assertAlmostEqual(r.base, 1e6 * ((3.0 * 131 / 100) - 2.0) ** (16 / 14), delta=want * 1e-12)
        b = r.base
        r(torch.arange(10), 10)  # never shrinks back
        self.assertEqual(r.base, b)

    def test_su_factor_choice_and_scale(self):
        lc = {"rope_theta": 10000.0, "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
              "rope_scaling": {"type": "su", "short_factor": [1.0] * 48, "long_factor": [2.0] * 48}}
        r = ref.Phi3Rope(lc, 96)
        self.assertAlmostEqual(r.m, 1.1902380714238083, places=14)  # spec 5
        cos, sin = r(torch.arange(4096), 4096)
        self.assertFalse(r.last_long)
        self.assertTrue(torch.allclose(cos[0], torch.full((96,), r.m)))
        r(torch.tensor([4096]), 4097)  # a decode step at position 4096 uses the long list
        self.assertTrue(r.last_long)
        r(torch.tensor([10]), 11)  # evaluated per call, not stateful
        self.assertFalse(r.last_long)


class Model(unittest.TestCase):
    KINDS = ("ln-internlm2", "rms-internlm2", "ln-phi3")

    def test_outputs_follow_forward_io(self):
        for kind in self.KINDS:
            m = tiny(kind)
            data, out = run_case(m, "batch3", max_new=5)
            T = data["pixel_values"].shape[0]
            C, D, V = m.vit.C, m.llm.D, m.llm.V
            ntok = int(data["attention_mask"].sum())
            self.assertEqual(tuple(out["vit.embeddings"].shape), (T, 1025, C))
            self.assertEqual(tuple(out[f"vit.layer.{m.vit.layers - 1}"].shape), (T, 1025, C))
            self.assertEqual(tuple(out["pixel_shuffle"].shape), (T * 256, 4 * C))
            self.assertEqual(tuple(out["vision_embeds"].shape), (T * 256, D))
            for n in ["llm.embeds", "llm.norm"] + [f"llm.layer.{i}" for i in range(m.llm.layers)]:
                self.assertEqual(tuple(out[n].shape), (ntok, D), n)
            self.assertEqual(tuple(out["prefill_logits"].shape), (3, V))
            g = out["generated_ids"]
            self.assertEqual((g.dtype, tuple(g.shape)), (torch.int64, (3, 5)))
            for row in g.tolist():  # stop included, -1 only after it
                n = sum(1 for t in row if t >= 0)
                self.assertTrue(all(t >= 0 for t in row[:n]) and all(t == -1 for t in row[n:]))
                self.assertTrue(n == 5 or row[n - 1] == m.stop_id)
                self.assertNotIn(m.stop_id, row[:n - 1])
            _, out = run_case(m, "text_only", max_new=2)
            self.assertFalse(any(k.startswith("vit.") or k in ("pixel_shuffle", "vision_embeds") for k in out))

    def test_embedding_splice(self):
        m = tiny("ln-internlm2")
        data, out = run_case(m, "two_images", max_new=1)
        ids = torch.from_numpy(data["input_ids"])
        img = (ids == m.img_context_id).nonzero().flatten()
        self.assertEqual(img.numel(), 3 * 256)
        self.assertTrue(torch.equal(out["llm.embeds"][img], out["vision_embeds"]))
        txt = (ids != m.img_context_id).nonzero().flatten()
        self.assertTrue(torch.equal(out["llm.embeds"][txt], m.llm.emb[ids[txt]]))

    def test_vit_embeddings_cls_patch_position(self):
        m = tiny("rms-internlm2")
        px = torch.from_numpy(make_inputs.build(m.hf_dir, "one_image", 0)["pixel_values"])[:1]
        emb, layers = m.vit.forward(px)
        self.assertTrue(torch.allclose(emb[0, 0], m.vit.cls[0, 0] + m.vit.pos[0, 0]))
        for r, c in ((0, 0), (3, 17), (31, 31)):  # token 1 + r*32 + c = patch at row r, col c
            patch = px[0, :, 14 * r:14 * r + 14, 14 * c:14 * c + 14]
            want = (m.vit.pw * patch).sum((1, 2, 3)) + m.vit.pb + m.vit.pos[0, 1 + 32 * r + c]
            self.assertTrue(torch.allclose(emb[0, 1 + 32 * r + c], want, atol=1e-4))

    def test_vit_layer_bidirectional(self):
        # no mask in the ViT: permuting the tokens permutes the output of a layer
        for kind in ("ln-internlm2", "rms-internlm2"):
            m = tiny(kind)
            x = torch.randn(9, m.vit.C)  # a layer takes any token count; few make the test sharp
            perm = torch.randperm(9)
            y = m.vit.layer(x, m.vit.L[0])
            self.assertTrue(torch.allclose(m.vit.layer(x[perm], m.vit.L[0]), y[perm], atol=1e-5))
            # and the first token's output depends on the last token (not causal)
            x2 = x.clone()
            x2[-1] += torch.randn(m.vit.C)  # not a constant shift: LayerNorm would remove it
            self.assertFalse(torch.allclose(m.vit.layer(x2, m.vit.L[0])[0], y[0]))

    def test_llm_causal(self):
        for kind in self.KINDS:
            m = tiny(kind)
            x = torch.randn(12, m.llm.D)
            a = m.llm.forward(x, torch.arange(12), [None] * m.llm.layers, m.llm.new_rope(), True)
            x[-1] += torch.randn(m.llm.D)
            b = m.llm.forward(x, torch.arange(12), [None] * m.llm.layers, m.llm.new_rope(), True)
            self.assertTrue(torch.equal(a[2][:-1], b[2][:-1]))
            self.assertFalse(torch.allclose(a[2][-1], b[2][-1]))

    def test_batch_equals_each_sequence_alone(self):
        for kind in self.KINDS:
            check_batch_vs_alone(self, tiny(kind))

    def test_kv_cache_equals_recompute_below_switch(self):
        for kind in self.KINDS:
            m = tiny(kind, max_pos=4096)  # far from any switch
            check_cache_vs_recompute(self, m, "text_only", 12)

    def test_switch_quirk_in_decode(self):
        for kind, kw in (("ln-internlm2", {"max_pos": SWITCH}), ("ln-phi3", {"orig": SWITCH, "max_pos": 4 * SWITCH})):
            m = tiny(kind, **kw)
            data = make_inputs.build(m.hf_dir, "text_only", 0)
            check_switch_quirk(self, m, m.llm.embed(torch.from_numpy(data["input_ids"])))

    def test_cli_end_to_end(self):
        m = tiny("ln-phi3")
        inp, out = os.path.join(_TMP.name, "cli.in.h5"), os.path.join(_TMP.name, "cli.out.h5")
        self.assertEqual(make_inputs.main(["--hf", m.hf_dir, "--case", "one_image", "--out", inp]), 0)
        self.assertEqual(ref.main(["--hf", m.hf_dir, "--inputs", inp, "--out", out, "--max-new-tokens", "4"]), 0)
        with h5py.File(out, "r") as f:
            self.assertEqual(int(f.attrs["max_new_tokens"]), 4)
            self.assertEqual(int(f.attrs["stop_id"]), m.stop_id)
            self.assertEqual(f["generated_ids"].dtype, np.int64)
            self.assertEqual(f["prefill_logits"].dtype, np.float32)
        # a mismatch of image tokens and tiles is an error naming both counts
        with h5py.File(inp, "r") as f:
            ids, px = f["input_ids"][()], f["pixel_values"][()]
        with h5py.File(inp, "w") as f:
            f["input_ids"], f["pixel_values"] = ids, px[:2]
        r = subprocess.run([sys.executable, os.path.join(HERE, "internvl_ref.py"), "--hf", m.hf_dir,
                            "--inputs", inp, "--out", out], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("768 <IMG_CONTEXT> tokens", r.stderr)


def check_batch_vs_alone(tc, m):
    data, out = run_case(m, "batch3", max_new=6)
    mask, ids = data["attention_mask"], data["input_ids"]
    tiles, rows, used = [], 0, 0
    for b in range(3):
        s = ids[b][mask[b] == 1]
        t = int((s == m.img_context_id).sum()) // m.tokens_per_tile
        px = torch.from_numpy(data["pixel_values"][used:used + t]) if t else None
        used += t
        one = m.run(torch.from_numpy(s), None, px, 6)
        n = len(s)
        for k in ["llm.embeds", "llm.norm"] + [f"llm.layer.{i}" for i in range(m.llm.layers)]:
            tc.assertTrue(torch.allclose(out[k][rows:rows + n], one[k], atol=1e-5), (m.hf_dir, b, k))
        tc.assertTrue(torch.allclose(out["prefill_logits"][b], one["prefill_logits"][0], atol=1e-5))
        tc.assertEqual(out["generated_ids"][b].tolist(), one["generated_ids"][0].tolist())
        if t:
            tiles.append(one["vision_embeds"])
        rows += n
    tc.assertTrue(torch.allclose(out["vision_embeds"], torch.cat(tiles), atol=1e-5))


def check_cache_vs_recompute(tc, m, case, n):
    data = make_inputs.build(m.hf_dir, case, 0)
    px = torch.from_numpy(data["pixel_values"]) if "pixel_values" in data else None
    e = m.run(torch.from_numpy(data["input_ids"]), None, px, 0)["llm.embeds"]
    la, lb = [], []
    ia = ref.greedy(m.llm, e, n, -1, True, la)[3]
    ib = ref.greedy(m.llm, e, n, -1, False, lb)[3]
    tc.assertEqual(ia, ib, m.hf_dir)
    for j in range(n):
        tc.assertTrue(torch.allclose(la[j], lb[j], atol=1e-4), (m.hf_dir, j))


def check_switch_quirk(tc, m, e):
    """Past the dynamic-NTK / su switch, cached keys keep their old rotation: cached and
    recomputed logits agree up to the switch and differ at the first step past it.
    e: prompt embeddings, shorter than the switch point."""
    switch = ref.rope_switch_point(m.llm.lc)
    L = e.shape[0]
    tc.assertLess(L, switch)
    first = switch - L + 1  # step j sees L + j keys: the first with more than `switch`
    la, lb = [], []
    ia = ref.greedy(m.llm, e, first + 3, -1, True, la)[3]
    ib = ref.greedy(m.llm, e, first + 3, -1, False, lb)[3]
    tc.assertEqual(ia[:first], ib[:first])
    for j in range(first):
        tc.assertTrue(torch.allclose(la[j], lb[j], atol=1e-4), (m.hf_dir, j))
    tc.assertGreater(float((la[first] - lb[first]).abs().max()), 1e-3, m.hf_dir)


class Fixtures(unittest.TestCase):
    """The ctest fixture checkpoints (tests/gen), when they exist."""

    def test_fixture_families(self):
        dirs = fixture_dirs()
        if not dirs:
            self.skipTest("no fixture checkpoints in $IVL_TEST_DATA/hf")
        for fam, d in dirs:
            m = ref.InternVL(d)
            self.assertEqual(m.ws.used, set(m.ws.where), f"{fam}: tensors the reference does not use")
            check_batch_vs_alone(self, m)
            check_cache_vs_recompute(self, m, "text_only", 8)
            if "decode_switch" in make_inputs.applicable_cases(d):
                data = make_inputs.build(d, "decode_switch", 0)
                e = m.run(torch.from_numpy(data["input_ids"]), None,
                          torch.from_numpy(data["pixel_values"]), 0)["llm.embeds"]
                check_switch_quirk(self, m, e)
            if fam == "mini2b-realvocab":  # the real InternLM2 + InternVL ids (spec 9.1)
                self.assertEqual((m.stop_id, m.img_context_id), (92542, 92546))


if __name__ == "__main__":
    unittest.main()
