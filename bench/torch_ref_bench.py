#!/usr/bin/python3
"""PyTorch side of `internvl bench --compare-torch`: the same InternVL blocks at the same size,
random weights, fp32, the same threads and points, timed the same way (warm-up runs thrown
away, then repeats; median, min, max). Written the way a careful PyTorch user would: the
Hugging Face module structure (packed qkv / wqkv, eager attention, rotate-half RoPE,
repeat_kv for GQA) but with a preallocated KV cache (no torch.cat per step) and the LM head
on the last position only, so the comparison is with good PyTorch, not with a strawman.

Reads the config.json the engine used (`internvl bench --dump-config`), so both build the
same shapes. Writes one JSON object per line, like the engine's records.

Run: /usr/bin/python3 bench/torch_ref_bench.py --config cfg.json --phases vit,prefill,decode
     --threads 2 --json out.jsonl
"""
import argparse
import datetime
import json
import math
import socket
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def uniform_(t, std):
    # Uniform with the given std (what the engine's random reader uses); the timing does not
    # depend on the distribution, only finite, non-subnormal values matter.
    a = std * math.sqrt(3.0)
    return t.uniform_(-a, a)


def param(*shape, std=0.02, offset=0.0):
    t = torch.empty(*shape, dtype=torch.float32)
    if std == 0:
        return t.fill_(offset)
    return uniform_(t, std).add_(offset)


# ---------------------------------------------------------------- vision: InternViT + mlp1

class VitLayer:
    def __init__(self, v):
        C, I = v["hidden_size"], v["intermediate_size"]
        self.rms = v.get("norm_type", "rms_norm") == "rms_norm"
        self.eps = v.get("layer_norm_eps", 1e-6)
        self.heads = v["num_attention_heads"]
        self.n1w, self.n2w = param(C, offset=1.0), param(C, offset=1.0)
        self.n1b = None if self.rms else param(C)
        self.n2b = None if self.rms else param(C)
        self.qkv_w = param(3 * C, C)
        self.qkv_b = param(3 * C) if v.get("qkv_bias", False) else None
        self.qk_norm = v.get("qk_normalization", False)
        if self.qk_norm:
            self.qn, self.kn = param(C, offset=1.0), param(C, offset=1.0)
        self.proj_w, self.proj_b = param(C, C), param(C)
        ls = 0.1 if self.rms else 1.0
        self.ls1, self.ls2 = param(C, std=0, offset=ls), param(C, std=0, offset=ls)
        self.fc1_w, self.fc1_b = param(I, C), param(I)
        self.fc2_w, self.fc2_b = param(C, I), param(C)

    def norm(self, x, w, b):
        if self.rms:
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w
        return F.layer_norm(x, (x.shape[-1],), w, b, self.eps)

    def __call__(self, x):
        B, N, C = x.shape
        H = self.heads
        hd = C // H
        h = self.norm(x, self.n1w, self.n1b)
        qkv = F.linear(h, self.qkv_w, self.qkv_b)
        q, k, v = qkv.split(C, dim=-1)
        if self.qk_norm:   # RMSNorm over the full width (all heads)
            q = q * torch.rsqrt(q.pow(2).mean(-1, keepdim=True) + self.eps) * self.qn
            k = k * torch.rsqrt(k.pow(2).mean(-1, keepdim=True) + self.eps) * self.kn
        q = q.view(B, N, H, hd).transpose(1, 2)
        k = k.view(B, N, H, hd).transpose(1, 2)
        v = v.view(B, N, H, hd).transpose(1, 2)
        att = torch.softmax((q * hd ** -0.5) @ k.transpose(-2, -1), dim=-1)
        o = (att @ v).transpose(1, 2).reshape(B, N, C)
        x = x + self.ls1 * F.linear(o, self.proj_w, self.proj_b)
        h = self.norm(x, self.n2w, self.n2b)
        h = F.linear(F.gelu(F.linear(h, self.fc1_w, self.fc1_b)), self.fc2_w, self.fc2_b)
        return x + self.ls2 * h


class Vision:
    def __init__(self, cfg):
        v = cfg["vision_config"]
        C, P = v["hidden_size"], v["patch_size"]
        self.size = cfg.get("force_image_size") or v["image_size"]
        G = self.size // P
        self.P, self.G, self.C = P, G, C
        self.patch_w, self.patch_b = param(C, 3, P, P), param(C)
        self.cls = param(1, 1, C)
        self.pos = param(1, G * G + 1, C)
        self.layers = [VitLayer(v) for _ in range(v["num_hidden_layers"])]
        D = cfg["llm_config"]["hidden_size"]
        r = int(round(1 / cfg.get("downsample_ratio", 0.5)))
        self.r = r
        self.ln_w, self.ln_b = param(C * r * r, offset=1.0), param(C * r * r)
        self.m1_w, self.m1_b = param(D, C * r * r), param(D)
        self.m2_w, self.m2_b = param(D, D), param(D)

    def __call__(self, pixels):
        B = pixels.shape[0]
        x = F.conv2d(pixels, self.patch_w, self.patch_b, stride=self.P)   # [B, C, G, G]
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(B, -1, -1), x], dim=1) + self.pos
        for layer in self.layers:
            x = layer(x)
        x = x[:, 1:]   # CLS dropped
        # pixel shuffle v2 (spec 3): 2x2 neighbours -> one token of 4C
        G, C, r = self.G, self.C, self.r
        x = x.reshape(B, G, G // r, C * r).permute(0, 2, 1, 3).reshape(B, G // r, G // r, C * r * r)
        x = x.permute(0, 2, 1, 3).reshape(B, -1, C * r * r)
        x = F.layer_norm(x, (x.shape[-1],), self.ln_w, self.ln_b, 1e-5)
        return F.linear(F.gelu(F.linear(x, self.m1_w, self.m1_b)), self.m2_w, self.m2_b)


# ---------------------------------------------------------------- language model

class Llm:
    def __init__(self, cfg, max_ctx):
        l = cfg["llm_config"]
        self.D, self.L = l["hidden_size"], l["num_hidden_layers"]
        self.H, self.K = l["num_attention_heads"], l["num_key_value_heads"]
        self.hd = self.D // self.H
        self.I, self.V = l["intermediate_size"], l["vocab_size"]
        self.eps = l.get("rms_norm_eps", 1e-5)
        theta = float(l.get("rope_theta", 10000.0))
        D, H, K, hd, I = self.D, self.H, self.K, self.hd, self.I
        self.embed = param(self.V, D)
        self.layers = []
        for _ in range(self.L):
            self.layers.append(dict(an=param(D, offset=1.0), wqkv=param((H + 2 * K) * hd, D),
                                    wo=param(D, H * hd), fn=param(D, offset=1.0),
                                    w1=param(I, D), w3=param(I, D), w2=param(D, I)))
        self.norm = param(D, offset=1.0)
        self.head = param(self.V, D)
        inv = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd)
        ang = torch.outer(torch.arange(max_ctx, dtype=torch.float32), inv)
        self.cos = torch.cat([ang.cos(), ang.cos()], -1)
        self.sin = torch.cat([ang.sin(), ang.sin()], -1)

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    @staticmethod
    def rot(x):
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], -1)

    def new_cache(self, B, max_ctx):
        return [(torch.zeros(B, self.K, max_ctx, self.hd), torch.zeros(B, self.K, max_ctx, self.hd))
                for _ in range(self.L)]

    def forward(self, ids, cache, pos0):
        """ids [B, T]; every sequence continues at position pos0; logits of the last token."""
        B, T = ids.shape
        H, K, hd = self.H, self.K, self.hd
        x = F.embedding(ids, self.embed)
        cos = self.cos[pos0:pos0 + T].view(1, 1, T, hd)
        sin = self.sin[pos0:pos0 + T].view(1, 1, T, hd)
        mask = None
        if T > 1:
            mask = torch.full((T, pos0 + T), float("-inf")).triu_(pos0 + 1)
        for lw, (kc, vc) in zip(self.layers, cache):
            h = self.rms(x, lw["an"])
            qkv = F.linear(h, lw["wqkv"])
            q, k, v = qkv.split([H * hd, K * hd, K * hd], dim=-1)
            q = q.view(B, T, H, hd).transpose(1, 2)
            k = k.view(B, T, K, hd).transpose(1, 2)
            v = v.view(B, T, K, hd).transpose(1, 2)
            q = q * cos + self.rot(q) * sin
            k = k * cos + self.rot(k) * sin
            kc[:, :, pos0:pos0 + T] = k
            vc[:, :, pos0:pos0 + T] = v
            keys, vals = kc[:, :, :pos0 + T], vc[:, :, :pos0 + T]
            if H != K:   # repeat_kv (GQA)
                keys = keys[:, :, None].expand(B, K, H // K, pos0 + T, hd).reshape(B, H, pos0 + T, hd)
                vals = vals[:, :, None].expand(B, K, H // K, pos0 + T, hd).reshape(B, H, pos0 + T, hd)
            s = (q @ keys.transpose(-2, -1)) * hd ** -0.5
            if mask is not None:
                s = s + mask
            o = (torch.softmax(s, dim=-1) @ vals).transpose(1, 2).reshape(B, T, H * hd)
            x = x + F.linear(o, lw["wo"])
            h = self.rms(x, lw["fn"])
            x = x + F.linear(F.silu(F.linear(h, lw["w1"])) * F.linear(h, lw["w3"]), lw["w2"])
        return F.linear(self.rms(x[:, -1], self.norm), self.head)


# ---------------------------------------------------------------- timing

def time_it(fn, warmup, repeats, setup=None):
    ts = []
    for i in range(warmup + repeats):
        if setup:
            setup()
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        if i >= warmup:
            ts.append(dt)
    s = sorted(ts)
    q = lambda p: float(torch.quantile(torch.tensor(s, dtype=torch.float64), p)) if len(s) > 1 else s[0]
    return dict(median=statistics.median(s), min=s[0], max=s[-1], q1=q(0.25), q3=q(0.75),
                mean=sum(s) / len(s), all=ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--name", default="")
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--phases", default="vit,prefill,decode")
    ap.add_argument("--tiles", type=int, default=1)
    ap.add_argument("--prompt-lens", default="128")
    ap.add_argument("--prefill-batch", type=int, default=1)
    ap.add_argument("--batch-sizes", default="1,4,16")
    ap.add_argument("--context-lens", default="128")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-kv-gib", type=float, default=4.0)
    a = ap.parse_args()
    ints = lambda s: [int(x) for x in s.split(",") if x]
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = json.load(open(a.config))
    phases = a.phases.split(",")
    base = dict(preset=a.name, model=cfg.get("_name_or_path", "").rstrip("/").split("/")[-1],
                weights="random", layout=dict(world=1, tp=1, pp=1, vit_tp=1), dtype="f32",
                backend="torch", device="torch %s cpu, %d threads" % (torch.__version__, a.threads),
                threads=a.threads, commit=a.commit,
                date=datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
                host=socket.gethostname())
    out = open(a.json, "w")

    def emit(phase, params, t, units, unit):
        rec = dict(base, phase=phase, params=params, repeats=len(t["all"]), time_s=t,
                   throughput=units / t["median"], unit=unit, units_per_repeat=units)
        out.write(json.dumps(rec) + "\n")
        out.flush()
        print("torch %-8s %-40s %10.2f ms %12.3f %s" % (phase, params, 1e3 * t["median"],
                                                       units / t["median"], unit), file=sys.stderr)

    with torch.inference_mode():
        if "vit" in phases:
            vis = Vision(cfg)
            pix = torch.empty(a.tiles, 3, vis.size, vis.size).uniform_(-2, 2)
            t = time_it(lambda: vis(pix), a.warmup, a.repeats)
            emit("vit", dict(tiles=a.tiles), t, a.tiles, "tiles/s")
            del vis
        lens, batches, ctxs = ints(a.prompt_lens), ints(a.batch_sizes), ints(a.context_lens)
        need_llm = ("prefill" in phases) or ("decode" in phases)
        if need_llm:
            llm = Llm(cfg, max(lens + [c + 1 for c in ctxs]))
            kv_bytes = lambda B, n: 2 * llm.L * B * llm.K * n * llm.hd * 4
        if "prefill" in phases:
            B = a.prefill_batch
            for S in lens:
                if kv_bytes(B, S) > a.max_kv_gib * 2 ** 30:
                    continue
                cache = llm.new_cache(B, S)
                ids = torch.randint(0, llm.V, (B, S))
                t = time_it(lambda: llm.forward(ids, cache, 0), a.warmup, a.repeats)
                emit("prefill", dict(batch=B, prompt_len=S), t, B * S, "tokens/s")
                del cache
        if "decode" in phases:
            for ctx in ctxs:
                for B in batches:
                    if kv_bytes(B, ctx + 1) > a.max_kv_gib * 2 ** 30:
                        continue
                    cache = llm.new_cache(B, ctx + 1)
                    for kc, vc in cache:   # real memory behind every cached position
                        uniform_(kc[:, :, :ctx], 0.3)
                        uniform_(vc[:, :, :ctx], 0.3)
                    ids = torch.randint(0, llm.V, (B, 1))
                    t = time_it(lambda: llm.forward(ids, cache, ctx), a.warmup, a.repeats)
                    emit("decode", dict(batch=B, context_len=ctx), t, B, "tokens/s")
                    del cache
    out.close()


if __name__ == "__main__":
    main()
