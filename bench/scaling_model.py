#!/usr/bin/python3
"""Scaling model for InternVL 1.5 captioning on 8..256 GPUs (bench/SCALING.md).

Prints, for the layouts that make sense (TP inside a node over NVLink, PP across nodes over
InfiniBand, replicas for data parallelism over images):
  1. bytes each collective moves per layer and per token (from the engine's code paths:
     core/models/llm.c, parallel/dist.c), and
  2. predicted time and efficiency per phase and images/s for the whole machine.
Also `--check FILE.jsonl`: the byte model against the comm bytes `internvl bench` counted in
measured MPI runs (payload bytes per rank, f32 on the CPU).

Everything is an explicit assumption below; change them and rerun. Python standard library.
"""
import argparse
import json
import sys

# ---- hardware (per GPU) ----
PEAK = 989e12          # H100 SXM dense bf16 FLOP/s
GEMM_EFF = 0.5         # fraction of peak a model's GEMMs reach (prefill / ViT)
HBM = 3.35e12 * 0.8    # B/s achievable of 3.35 TB/s
NVLINK = 450e9         # B/s per GPU per direction (NVLink 4: 900 GB/s bidirectional)
IB = 50e9              # B/s per GPU (one 400 Gb/s NDR port per GPU)
ALPHA_NV = 10e-6       # s, latency of one NCCL collective inside a node
ALPHA_IB = 20e-6       # s, latency across nodes
GPUS_PER_NODE = 8

# ---- workload: one captioning request ----
TILES = 7              # average tiles per image (dynamic tiling, max 12 + thumbnail)
TEXT = 64              # template + question tokens
OUT = 64               # generated tokens
S_ACT = 2              # bytes per activation element on the GPU (bf16)

MODELS = {
    # vit flops/tile (incl. mlp1), LLM: D, L, H, K, hd, I, V, LLM params
    "internvl-chat-v1-5": dict(vit=11.945e12 + 59.6e9, D=6144, L=48, H=48, K=8, hd=128, I=16384,
                               V=92553, llm_params=19861260288, vit_params=5536496000 + 116429824),
    "mini-2b": dict(vit=0.7236e12 + 6.44e9, D=2048, L=24, H=16, K=8, hd=128, I=8192, V=92553,
                    llm_params=1889146880, vit_params=304012288 + 12595200),
}


def llm_token_flops(m, keys):
    D, L, H, K, hd, I = m["D"], m["L"], m["H"], m["K"], m["hd"], m["I"]
    return 2 * L * (D * (H + 2 * K) * hd + H * hd * D + 3 * D * I) + 4 * L * H * hd * keys


def ring_allreduce(nbytes, n, bw, alpha):
    """Ring all-reduce of nbytes over n ranks: each sends 2(n-1)/n of the buffer."""
    if n <= 1:
        return 0.0
    return alpha + 2 * (n - 1) / n * nbytes / bw


def bytes_table(m, t, elt):
    """Payload bytes per collective call, per token (or per tile / sequence)."""
    D, V = m["D"], m["V"]
    return [
        ("TP all-reduce after o", "per layer per token", D * elt, "tp group, ring 2(t-1)/t"),
        ("TP all-reduce after down", "per layer per token", D * elt, "tp group"),
        ("vocab-parallel embedding all-reduce", "per token (first stage)", D * elt, "tp group"),
        ("PP send/recv of hidden states", "per stage boundary per token", D * elt, "pp neighbours"),
        ("LM-head all-gather of logits", "per sequence per step", -(-V // t) * t * elt, "tp group (last stage)"),
        ("logits to world rank 0 (when the last stage is not rank 0)", "per sequence per step", V * 4, "point to point, f32"),
        ("chosen token ids broadcast from rank 0", "per sequence per step", 4, "world, i32"),
        ("ViT image-embedding join", "per tile and first-stage rank", 256 * D * elt, "each vision group's first rank to the first stage's t ranks"),
    ]


def predict(m, N, t, p, decode_batch):
    """Per-replica phase times and efficiencies; replica = t x p GPUs, r = N / (t p)."""
    r = N // (t * p)
    g = t * p
    L, D = m["L"], m["D"]
    cross_node = p > 1 or g > GPUS_PER_NODE
    # -- vision: tiles sharded over the replica's g GPUs, then each rank sends its rows to the
    #    t ranks of the first stage: a first-stage rank receives (g-1)/g of the embeddings,
    #    from ranks of other nodes when the replica spans several
    vis_comp = TILES * m["vit"] / (PEAK * GEMM_EFF * g)
    emb = TILES * 256 * D * S_ACT
    vis_comm = (emb * (g - 1) / g) / (IB if cross_node else NVLINK) + \
        (g - 1) * (ALPHA_IB if cross_node else ALPHA_NV) if g > 1 else 0.0
    # -- prefill of one image's prompt: pipeline of images, so a stage's time sets the rate
    S = TILES * 256 + TEXT
    pre_flops = sum(llm_token_flops(m, k + 1) for k in range(0, S, 64)) * 64
    pre_comp = pre_flops / (PEAK * GEMM_EFF * g)
    ar = ring_allreduce(S * D * S_ACT, t, NVLINK, ALPHA_NV)
    pre_comm = (2 * L / p) * ar + (S * D * S_ACT / IB + ALPHA_IB if p > 1 else 0)
    # -- decode: decode_batch sequences per replica, p micro-batches in flight
    ctx = S + OUT // 2
    mb = max(decode_batch // p, 1)
    w_bytes = m["llm_params"] * S_ACT / g
    kv = decode_batch * ctx * 2 * L * m["K"] * m["hd"] * S_ACT / g
    dec_mem = (w_bytes * p + kv) / HBM   # each stage streams its weights once per micro-batch
    dec_flops = decode_batch * llm_token_flops(m, ctx) / (PEAK * GEMM_EFF * g)
    dec_comp = max(dec_mem, dec_flops)
    ar = ring_allreduce(mb * D * S_ACT, t, NVLINK, ALPHA_NV)
    logits = decode_batch * m["V"] * 4
    dec_comm = p * (2 * L / p) * ar + (p - 1) * (mb * D * S_ACT / IB + ALPHA_IB) * p \
        + (logits / IB + ALPHA_IB if p > 1 else 0)   # last stage -> rank 0; token ids ~free
    bubble = 1.0   # decode micro-batches = stages keep every stage busy once the pipe is full
    # per image: vision + prefill once, OUT decode steps shared by decode_batch sequences
    t_img = (vis_comp + vis_comm) + (pre_comp + pre_comm) + OUT * (dec_comp + dec_comm) / decode_batch
    t_ideal = vis_comp + pre_comp + OUT * dec_comp / decode_batch
    return dict(r=r, vis=(vis_comp, vis_comm), pre=(pre_comp, pre_comm), dec=(dec_comp, dec_comm),
                img_s=r / t_img, eff=t_ideal / t_img * bubble)


def layouts(model):
    # bf16 weights + a decode batch's KV cache must fit 80 GB GPUs with room for activations:
    # the 26B needs at least 2 GPUs per replica (51 GB of weights + ~24 GB of KV at batch 64).
    min_gpus = 2 if MODELS[model]["llm_params"] > 1e10 else 1
    for N in (8,):
        for t in (1, 2, 4, 8):
            for p in (1, 2, 4):
                if t * p > N or N % (t * p) or t * p < min_gpus:
                    continue
                if model == "mini-2b" and (t > 2 or p > 1):
                    continue
                yield N, t, p


def report(model, decode_batch):
    m = MODELS[model]
    print("\n### %s: bytes per collective (bf16 activations, t = TP size)\n" % model)
    print("| collective | counted | payload bytes (t=8) | group |")
    print("|---|---|---|---|")
    for name, per, b, grp in bytes_table(m, 8, S_ACT):
        print("| %s | %s | %s | %s |" % (name, per, "{:,}".format(int(b)), grp))
    print("\n### %s: predicted (%d tiles, %d text + %d generated tokens per image, decode batch %d per replica)\n"
          % (model, TILES, TEXT, OUT, decode_batch))
    print("| GPUs | TP | PP | replicas | vision comp/comm ms | prefill comp/comm ms | decode step comp/comm ms | efficiency | images/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for N, t, p in layouts(model):
        x = predict(m, N, t, p, decode_batch)
        print("| %d | %d | %d | %d | %.1f / %.2f | %.1f / %.2f | %.2f / %.2f | %.0f%% | %.1f |" % (
            N, t, p, x["r"], 1e3 * x["vis"][0], 1e3 * x["vis"][1], 1e3 * x["pre"][0], 1e3 * x["pre"][1],
            1e3 * x["dec"][0], 1e3 * x["dec"][1], 100 * x["eff"], x["img_s"]))
    print("\nWhole machine (replicas exchange nothing but the batch plan and results, so images/s "
          "is replicas x one replica's rate):\n")
    lays = sorted(set((t, p) for _, t, p in layouts(model)))
    print("| GPUs | " + " | ".join("TP%d PP%d" % l for l in lays) + " |")
    print("|---|" + "---|" * len(lays))
    for N in (8, 16, 32, 64, 128, 256):
        print("| %d | " % N + " | ".join("%.0f img/s (%.0f%%)" % (predict(m, N, t, p, decode_batch)["img_s"],
              100 * predict(m, N, t, p, decode_batch)["eff"]) for t, p in lays) + " |")


def check(path):
    """Measured payload bytes per rank (internvl bench, MPI, f32) vs the byte model."""
    print("| preset | layout | phase | params, rank | measured bytes/rank | model bytes/rank | ratio "
          "| measured comm ms | alpha-beta comm ms | step ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for line in open(path):
        r = json.loads(line)
        if r.get("phase") not in ("prefill", "decode", "vit") or r.get("skipped") or r.get("backend") == "torch":
            continue
        lay, par = r["layout"], r["params"]
        t, p, w = lay["tp"], lay["pp"], lay["world"]
        if w == 1:
            continue
        m = CHECK_MODELS[r["preset"]]
        D, L, V = m["D"], m["L"], m["V"]
        e = 4   # f32 on the CPU backend
        rank_bytes, rank_calls = [], []
        for rank in range(w):
            stage, tr = rank // t, rank % t
            first, last = stage == 0, stage == p - 1
            layers = L // p + (1 if stage < L % p else 0)
            calls = 1
            root = (p - 1) * t   # world rank of (last stage, tp rank 0): its logits go to rank 0
            if r["phase"] == "vit":
                # the embedding join: this rank's share of the tiles (vit_tp 1: every rank is
                # its vision group's lead) to each first-stage rank (world ranks 0..t-1) but itself
                tiles = par["tiles"]
                share = tiles * (rank + 1) // w - tiles * rank // w
                dests = t - (1 if rank < t else 0)
                b = share * 256 * D * e * dests
                calls = dests if share else 0
            else:
                to0 = root != 0 and rank in (0, root)
                calls = (layers * 2 + (1 if first else 0) + (1 if last else 0)) * (t > 1) + to0 + (not last) + (not first)
                B = par["batch"]
                n = B * (par.get("prompt_len") or 1)
                b = 0
                if t > 1:
                    b += layers * 2 * n * D * e + (n * D * e if first else 0)
                    if last:
                        b += B * (-(-V // t)) * t * e   # all-gather of the logits blocks
                if not last:
                    b += n * D * e                      # send to the next stage
                if root != 0 and rank == root:
                    b += B * V * 4                      # logits of the last stage to rank 0 (sent bytes)
            rank_bytes.append(b)
            rank_calls.append(calls)
        meas = [x["comm_bytes"] for x in r["ranks"]]
        ps = " ".join("%s=%s" % (k, v) for k, v in sorted(par.items()) if k != "note")
        for rank in range(w):
            ratio = meas[rank] / rank_bytes[rank] if rank_bytes[rank] else float("nan")
            # shared-memory MPI on this box (bench_comm, np 2): ~3 us per call, ~5 GB/s
            pred = rank_calls[rank] * MPI_ALPHA + rank_bytes[rank] / MPI_BW
            print("| %s | tp%d pp%d | %s | %s | %s | %s | %.3f | %.2f | %.2f | %.2f |" % (
                r["preset"], t, p, r["phase"], ps + " r%d" % rank, "{:,}".format(int(meas[rank])),
                "{:,}".format(int(rank_bytes[rank])), ratio, 1e3 * r["ranks"][rank]["comm_s"],
                1e3 * pred, 1e3 * r["time_s"]["median"]))


MPI_ALPHA, MPI_BW = 3e-6, 5.0e9   # measured here: bench_comm allreduce, 2 ranks, 4 KB .. 4 MB
CHECK_MODELS = {   # the presets used in the measured MPI runs (bench/driver/presets.c)
    "tiny-v15": dict(D=96, L=4, V=1024),
    "tiny": dict(D=64, L=4, V=1024),
    "tiny-mini2b": dict(D=64, L=4, V=1024),
    "demo": dict(D=256, L=4, V=4096),
    "mini-2b": dict(D=2048, L=24, V=92553),
}

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--decode-batch", type=int, default=64)
    ap.add_argument("--check", metavar="FILE.jsonl", help="compare measured comm bytes with the model")
    a = ap.parse_args()
    if a.check:
        check(a.check)
        sys.exit(0)
    print("Assumptions: peak %.0f TFLOP/s x %.0f%% GEMM efficiency, HBM %.2f TB/s, NVLink %.0f GB/s, "
          "IB %.0f GB/s per GPU, latency %.0f/%.0f us (NVLink/IB), no compute/comm overlap "
          "(the engine's collectives block)." % (PEAK / 1e12, 100 * GEMM_EFF, HBM / 1e12, NVLINK / 1e9,
                                                 IB / 1e9, ALPHA_NV * 1e6, ALPHA_IB * 1e6))
    for model in ("internvl-chat-v1-5", "mini-2b"):
        report(model, a.decode_batch)
