// attention_batch.cu - attention of many sequences in one launch (attention_batch in
// backend.h): the decode step of continuous batching, where every sequence brings 1..16 new
// queries and reads its own KV-cache slot (causal); also the ViT's tiles (bidirectional).
//
// The single-sequence decode kernel (attention.cu) cost two launches per sequence, 128 per
// layer at batch 64, each too small to fill the GPU. Here one block is (work item, kv head,
// group of <= 8 query heads), a work item being (sequence, query t, key split) read from a
// descriptor table built on the host and uploaded once per call; a second launch merges the
// splits of every query row. The kernel body follows decode_attn_kernel: one warp per key,
// each lane holding head_dim/32 contiguous elements, online softmax in f32 (log2 domain),
// K/V rows read once per kv head group (GQA).
//
// Key split: one key budget per split (kps) for the whole call, chosen so that about four
// blocks per SM exist in total (at least 64 keys per split), so batch 1 with a long context
// is split into many blocks (ctx 1024 on 132 SMs: 16 splits x 8 kv heads) and batch 64 gets
// one or two splits per sequence. Every split of a query row holds keys, so the work per
// block is even whatever the mix of lengths.
//
// Sequences with more than 16 queries (prefill chunks, ViT tiles) go to the mma.sync flash
// kernel, up to IVL_FLASH_MAXSEQ per launch (flash_mma.cu; sm_80+), else one by one through
// the single-sequence path. IVL_CUDA_BATCH_ATTN=0 sends every sequence through the
// single-sequence path (A/B and a kill switch); so do unaligned tensors (the batched kernel
// loads K/V rows with vector loads).
#include "core/cuda/cuda_common.cuh"

#include <stdlib.h>
#include <string.h>

#define BAT_LOG2E 1.4426950408889634f
#define BAT_WARPS 4
#define BAT_MAXG 8          // query heads per block (a kv head's group may need several)
#define BAT_MAX_N 16        // more queries per sequence: single-sequence (flash) path
#define BAT_MIN_KEYS 64     // keys per split at least (16 per warp)

// One work item: the block reads keys [k0, k1) of one sequence's KV rows for query row q_row
// and writes its (max, sum, output) triples to partial slot `part`.
struct bat_item {
    long long q_row, kv_row0;
    int k0, k1, part, pad;
};
// One query row for the combine: its splits are partial slots part0 .. part0 + nsplit - 1.
struct bat_row {
    long long q_row;
    int part0, nsplit;
};

// EPL contiguous elements of a K/V/q row into f32; one vector load when EPL elements are 4,
// 8 or 16 bytes (the host checked 16-byte alignment of the tensors; row and lane offsets are
// multiples of EPL elements).
template <typename T, int EPL>
__device__ __forceinline__ void bat_load(float (&x)[EPL], const T *__restrict__ p) {
    if constexpr (sizeof(T) * EPL == 16) {
        union { uint4 u; T t[EPL]; } b;
        b.u = *(const uint4 *)p;
#pragma unroll
        for (int e = 0; e < EPL; e++) x[e] = to_f32(b.t[e]);
    } else if constexpr (sizeof(T) * EPL == 8) {
        union { uint2 u; T t[EPL]; } b;
        b.u = *(const uint2 *)p;
#pragma unroll
        for (int e = 0; e < EPL; e++) x[e] = to_f32(b.t[e]);
    } else if constexpr (sizeof(T) * EPL == 4) {
        union { unsigned u; T t[EPL]; } b;
        b.u = *(const unsigned *)p;
#pragma unroll
        for (int e = 0; e < EPL; e++) x[e] = to_f32(b.t[e]);
    } else {
#pragma unroll
        for (int e = 0; e < EPL; e++) x[e] = to_f32(p[e]);
    }
}

// Online-softmax update of the nh query heads of this block with one key/value row.
template <int EPL>
__device__ __forceinline__ void bat_step(const float (&kk)[EPL], const float (&vv)[EPL],
                                         const float (&qr)[BAT_MAXG][EPL],
                                         float (&acc)[BAT_MAXG][EPL], float (&m)[BAT_MAXG],
                                         float (&l)[BAT_MAXG], int nh) {
#pragma unroll
    for (int g = 0; g < BAT_MAXG; g++) {
        if (g < nh) {
            float d = 0.0f;
#pragma unroll
            for (int e = 0; e < EPL; e++) d += qr[g][e] * kk[e];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
            float mn = fmaxf(m[g], d);
            float corr = exp2f(m[g] - mn), p = exp2f(d - mn);
            l[g] = l[g] * corr + p;
#pragma unroll
            for (int e = 0; e < EPL; e++) acc[g][e] = acc[g][e] * corr + p * vv[e];
            m[g] = mn;
        }
    }
}

template <typename T, int EPL>
__global__ void __launch_bounds__(BAT_WARPS * 32)
    batch_attn_kernel(float *__restrict__ part, const T *__restrict__ q,
                      const T *__restrict__ k, const T *__restrict__ v,
                      const bat_item *__restrict__ items, int nitems, int H, int KH, int G,
                      float sl2) {
    constexpr int HD = EPL * 32;
    __shared__ float s_m[BAT_WARPS][BAT_MAXG], s_l[BAT_WARPS][BAT_MAXG];
    __shared__ float s_o[BAT_WARPS][BAT_MAXG][HD];
    const int ngb = (G + BAT_MAXG - 1) / BAT_MAXG;
    const int kvh = (int)blockIdx.y / ngb, gb = (int)blockIdx.y % ngb;
    if ((int)blockIdx.x >= nitems || kvh >= KH) return;   // whole block: no barrier skipped
    const bat_item it = items[blockIdx.x];
    const int h0 = kvh * G + gb * BAT_MAXG, nh = min(BAT_MAXG, G - gb * BAT_MAXG);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long long kvld = (long long)KH * HD;
    const T *kb = k + it.kv_row0 * kvld + (long long)kvh * HD + lane * EPL;
    const T *vb = v + it.kv_row0 * kvld + (long long)kvh * HD + lane * EPL;

    float qr[BAT_MAXG][EPL], acc[BAT_MAXG][EPL], m[BAT_MAXG], l[BAT_MAXG];
#pragma unroll
    for (int g = 0; g < BAT_MAXG; g++) {
        if (g < nh) {
            bat_load<T, EPL>(qr[g], q + (it.q_row * H + h0 + g) * HD + lane * EPL);
#pragma unroll
            for (int e = 0; e < EPL; e++) qr[g][e] *= sl2;
        } else {
#pragma unroll
            for (int e = 0; e < EPL; e++) qr[g][e] = 0.0f;
        }
#pragma unroll
        for (int e = 0; e < EPL; e++) acc[g][e] = 0.0f;
        m[g] = -INFINITY;
        l[g] = 0.0f;
    }
    // Two keys per warp per iteration: both rows' loads are issued before either is used,
    // doubling the bytes in flight (the loop is latency-bound at one key).
    for (int j = it.k0 + warp; j < it.k1; j += 2 * BAT_WARPS) {
        const int j2 = j + BAT_WARPS;
        float k1r[EPL], v1r[EPL], k2r[EPL], v2r[EPL];
        bat_load<T, EPL>(k1r, kb + (long long)j * kvld);
        bat_load<T, EPL>(v1r, vb + (long long)j * kvld);
        if (j2 < it.k1) {
            bat_load<T, EPL>(k2r, kb + (long long)j2 * kvld);
            bat_load<T, EPL>(v2r, vb + (long long)j2 * kvld);
        }
        bat_step<EPL>(k1r, v1r, qr, acc, m, l, nh);
        if (j2 < it.k1) bat_step<EPL>(k2r, v2r, qr, acc, m, l, nh);
    }
#pragma unroll
    for (int g = 0; g < BAT_MAXG; g++) {
        if (lane == 0) {
            s_m[warp][g] = m[g];
            s_l[warp][g] = l[g];
        }
#pragma unroll
        for (int e = 0; e < EPL; e++) s_o[warp][g][lane * EPL + e] = acc[g][e];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < nh * HD; i += blockDim.x) {
        const int g = i / HD, d = i % HD;
        float M = -INFINITY;
        for (int w = 0; w < BAT_WARPS; w++) M = fmaxf(M, s_m[w][g]);
        float ls = 0.0f, o = 0.0f;
        if (M != -INFINITY)
            for (int w = 0; w < BAT_WARPS; w++) {
                float f = exp2f(s_m[w][g] - M);
                ls += s_l[w][g] * f;
                o += s_o[w][g][d] * f;
            }
        float *pp = part + ((long long)it.part * H + h0 + g) * (HD + 2);
        pp[d] = o;
        if (d == 0) {
            pp[HD] = M;
            pp[HD + 1] = ls;
        }
    }
}

template <typename T>
__global__ void batch_combine_kernel(T *__restrict__ out, const float *__restrict__ part,
                                     const bat_row *__restrict__ rows, int nrows, int H, int HD) {
    const int r = blockIdx.x, h = blockIdx.y;
    if (r >= nrows || h >= H) return;
    const bat_row rw = rows[r];
    const float *pp = part + ((long long)rw.part0 * H + h) * (HD + 2);
    const long long step = (long long)H * (HD + 2);   // next split of the same (row, head)
    float M = -INFINITY;
    for (int s = 0; s < rw.nsplit; s++) M = fmaxf(M, pp[s * step + HD]);
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float ls = 0.0f, o = 0.0f;
        if (M != -INFINITY)
            for (int s = 0; s < rw.nsplit; s++) {
                float f = exp2f(pp[s * step + HD] - M);
                ls += pp[s * step + HD + 1] * f;
                o += pp[s * step + d] * f;
            }
        out[(rw.q_row * H + h) * HD + d] = from_f32<T>(ls > 0.0f ? o / ls : 0.0f);
    }
}

// The descriptor tables of one call (host side), uploaded together.
typedef struct {
    bat_item *items;
    bat_row *rows;
    int nitems, nrows, nparts;
} bat_plan;

// Splits the batched sequences (n <= BAT_MAX_N) into work items; `use` marks them.
// Keys visible to query t of sequence s: causal, keys 0 .. len - n + t; else all len.
static long long bat_visible(const ivl_attn_seq *s, long long t, int causal) {
    return causal ? s->len - s->n + t + 1 : s->len;
}

static void bat_plan_build(cuda_ctx *c, const ivl_attn_seq *seqs, int nseq, const char *use,
                           int causal, int blocks_per_item, bat_plan *p) {
    long long keys = 0, nrows = 0;
    for (int i = 0; i < nseq; i++)
        if (use[i])
            for (long long t = 0; t < seqs[i].n; t++) keys += bat_visible(&seqs[i], t, causal);
    for (int i = 0; i < nseq; i++)
        if (use[i]) nrows += seqs[i].n;
    // About four blocks per SM over the whole call, each split at least BAT_MIN_KEYS keys.
    long long target = 4LL * c->sm_count / blocks_per_item;
    if (target < 1) target = 1;
    long long kps = (keys + target - 1) / target;
    if (kps < BAT_MIN_KEYS) kps = BAT_MIN_KEYS;
    long long nitems = 0;
    for (int i = 0; i < nseq; i++)
        if (use[i])
            for (long long t = 0; t < seqs[i].n; t++)
                nitems += (bat_visible(&seqs[i], t, causal) + kps - 1) / kps;
    IVL_CHECK(nitems < 2147483647LL && nrows < 2147483647LL,
              "cuda attention_batch: %lld work items, too many for one launch", nitems);
    p->items = (bat_item *)ivl_malloc(sizeof(bat_item) * (size_t)(nitems ? nitems : 1));
    p->rows = (bat_row *)ivl_malloc(sizeof(bat_row) * (size_t)(nrows ? nrows : 1));
    int ni = 0, nr = 0;
    for (int i = 0; i < nseq; i++) {
        if (!use[i]) continue;
        const ivl_attn_seq *s = &seqs[i];
        for (long long t = 0; t < s->n; t++) {
            const long long nvis = bat_visible(s, t, causal);
            // ns splits of at most kps keys, sized evenly (1024 keys at kps 993: 512 + 512,
            // not 993 + 31); every split holds at least one key.
            const int ns = (int)((nvis + kps - 1) / kps);
            const long long per = (nvis + ns - 1) / ns;
            p->rows[nr++] = (bat_row){s->q_row0 + t, ni, ns};
            for (int sp = 0; sp < ns; sp++) {
                long long k0 = sp * per, k1 = k0 + per < nvis ? k0 + per : nvis;
                p->items[ni] = (bat_item){s->q_row0 + t, s->kv_row0, (int)k0, (int)k1, ni, 0};
                ni++;
            }
        }
    }
    p->nitems = ni;
    p->nrows = nr;
    p->nparts = ni;   // one partial slot per item
}

template <typename T, int EPL>
static void bat_launch_epl(cuda_ctx *c, T *out, const T *q, const T *k, const T *v, int H,
                           int KH, int causal, const ivl_attn_seq *seqs, int nseq,
                           const char *use, float sl2) {
    const int hd = EPL * 32, G = H / KH, ngb = (G + BAT_MAXG - 1) / BAT_MAXG;
    IVL_CHECK((long long)KH * ngb <= 65535, "cuda attention_batch: %d kv heads is too many", KH);
    bat_plan p;
    bat_plan_build(c, seqs, nseq, use, causal, KH * ngb, &p);
    if (p.nitems == 0) {
        free(p.items);
        free(p.rows);
        return;
    }
    // Descriptors: items then rows, one upload, skipped when the previous call sent the same
    // bytes (every layer of a decode step has the same plan).
    size_t ib = sizeof(bat_item) * (size_t)p.nitems, rb = sizeof(bat_row) * (size_t)p.nrows;
    size_t ib_al = (ib + 15) / 16 * 16;
    unsigned char *hd_buf = (unsigned char *)ivl_calloc(ib_al + rb, 1);
    memcpy(hd_buf, p.items, ib);
    memcpy(hd_buf + ib_al, p.rows, rb);
    unsigned char *d =
        (unsigned char *)cuda_upload_scratch(c, IVL_SCR_ATTN_DESC, hd_buf, ib_al + rb);
    free(hd_buf);
    float *part = (float *)cuda_scratch(c, IVL_SCR_ATTN,
                                        (size_t)p.nparts * H * (hd + 2) * sizeof(float));
    dim3 grid((unsigned)p.nitems, (unsigned)(KH * ngb));
    batch_attn_kernel<T, EPL><<<grid, BAT_WARPS * 32, 0, c->stream>>>(
        part, q, k, v, (const bat_item *)d, p.nitems, H, KH, G, sl2);
    CUDA_LAUNCHED(c, "batch_attn_kernel");
    dim3 g2((unsigned)p.nrows, (unsigned)H);
    batch_combine_kernel<T><<<g2, hd, 0, c->stream>>>(out, part, (const bat_row *)(d + ib_al),
                                                      p.nrows, H, hd);
    CUDA_LAUNCHED(c, "batch_combine_kernel");
    free(p.items);
    free(p.rows);
}

// Returns 1 if the batched kernel took the marked sequences (head_dim supported).
template <typename T>
static int bat_launch(cuda_ctx *c, T *out, const T *q, const T *k, const T *v, int H, int KH,
                      int hd, int causal, const ivl_attn_seq *seqs, int nseq, const char *use,
                      float sl2) {
    switch (hd) {
    case 64: bat_launch_epl<T, 2>(c, out, q, k, v, H, KH, causal, seqs, nseq, use, sl2); return 1;
    case 96: bat_launch_epl<T, 3>(c, out, q, k, v, H, KH, causal, seqs, nseq, use, sl2); return 1;
    case 128: bat_launch_epl<T, 4>(c, out, q, k, v, H, KH, causal, seqs, nseq, use, sl2); return 1;
    case 256: bat_launch_epl<T, 8>(c, out, q, k, v, H, KH, causal, seqs, nseq, use, sl2); return 1;
    default: return 0;
    }
}

static int bat_aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

// 0 when IVL_CUDA_BATCH_ATTN is set to 0: every sequence through the single-sequence path.
static int bat_enabled(void) {
    const char *e = getenv("IVL_CUDA_BATCH_ATTN");
    return !(e && !strcmp(e, "0"));
}

void cuda_op_attention_batch(ivl_backend *be, ivl_tensor *out, const ivl_tensor *q,
                             const ivl_tensor *k, const ivl_tensor *v, int n_heads,
                             int n_kv_heads, int head_dim, int causal,
                             const ivl_attn_seq *seqs, int nseq, float scale) {
    cuda_ctx *c = cuda_ctx_of(be);
    cuda_check_tensor(be, out, "attention_batch", "out");
    cuda_check_tensor(be, q, "attention_batch", "q");
    cuda_check_tensor(be, k, "attention_batch", "k");
    cuda_check_tensor(be, v, "attention_batch", "v");
    const int H = n_heads, KH = n_kv_heads, hd = head_dim;
    char s1[96], s2[96];
    IVL_CHECK(H > 0 && KH > 0 && hd > 0 && H % KH == 0,
              "cuda attention_batch: %d query heads are not a multiple of %d kv heads (head_dim "
              "%d)", H, KH, hd);
    const int64_t T = ivl_tensor_rows(q), Lk = ivl_tensor_rows(k);
    const int64_t qc = (int64_t)H * hd, kc = (int64_t)KH * hd;
    IVL_CHECK(ivl_tensor_cols(q) == qc && ivl_tensor_cols(k) == kc,
              "cuda attention_batch: q %s / k %s do not hold %d / %d heads of %d",
              ivl_tensor_shape_str(q, s1, sizeof s1), ivl_tensor_shape_str(k, s2, sizeof s2), H,
              KH, hd);
    IVL_CHECK(ivl_tensor_rows(v) == Lk && ivl_tensor_cols(v) == kc,
              "cuda attention_batch: v %s does not match k %s",
              ivl_tensor_shape_str(v, s1, sizeof s1), ivl_tensor_shape_str(k, s2, sizeof s2));
    IVL_CHECK(ivl_tensor_rows(out) == T && ivl_tensor_cols(out) == qc,
              "cuda attention_batch: out %s does not match q %s",
              ivl_tensor_shape_str(out, s1, sizeof s1), ivl_tensor_shape_str(q, s2, sizeof s2));
    IVL_CHECK(out->data != q->data && out->data != k->data && out->data != v->data,
              "cuda attention_batch: out must not alias q, k or v");
    IVL_CHECK(nseq >= 0 && (seqs || nseq == 0),
              "cuda attention_batch: seqs are NULL (nseq %d)", nseq);
    IVL_CHECK(T < 2147483647LL && Lk < 2147483647LL, "cuda attention_batch: too many rows");
    for (int i = 0; i < nseq; i++) {
        const ivl_attn_seq *s = &seqs[i];
        IVL_CHECK(s->n >= 0 && s->q_row0 >= 0 && s->n <= T - s->q_row0,
                  "cuda attention_batch: seqs[%d] (q_row0 %lld, n %lld) has query rows outside q %s", i,
                  (long long)s->q_row0, (long long)s->n, ivl_tensor_shape_str(q, s1, sizeof s1));
        if (s->n == 0) continue;
        if (s->blocks) {
            IVL_CHECK(s->len >= 1 && (!causal || s->len >= s->n) && s->block_size >= 1,
                      "cuda attention_batch: seqs[%d] (len %lld, n %lld, block size %d) needs "
                      "1 <= len and n <= len if causal", i, (long long)s->len, (long long)s->n,
                      s->block_size);
            for (long long b = 0; b < (s->len + s->block_size - 1) / s->block_size; b++)
                IVL_CHECK(s->blocks[b] >= 0 && ((long long)s->blocks[b] + 1) * s->block_size <= Lk,
                          "cuda attention_batch: seqs[%d] block %lld = %d is outside k %s", i, b,
                          s->blocks[b], ivl_tensor_shape_str(k, s1, sizeof s1));
            continue;
        }
        IVL_CHECK(s->len >= 1 && (!causal || s->len >= s->n) && s->kv_row0 >= 0 &&
                      s->len <= Lk - s->kv_row0,
                  "cuda attention_batch: seqs[%d] (kv_row0 %lld, len %lld, n %lld) needs "
                  "1 <= len, n <= len if causal, and its KV rows inside k %s", i, (long long)s->kv_row0,
                  (long long)s->len, (long long)s->n, ivl_tensor_shape_str(k, s1, sizeof s1));
    }
    if (nseq == 0) return;

    // Paged sequences (the LLM's KV cache): their keys and values are gathered through the
    // block tables into one contiguous buffer (one gather launch each for k and v), and the
    // kernels below read that. A decode kernel that follows the block table itself saves
    // this copy; it waits for a GPU to test it on.
    long long gathered = 0;
    for (int i = 0; i < nseq; i++)
        if (seqs[i].blocks && seqs[i].n > 0) gathered += seqs[i].len;
    if (gathered > 0) {
        IVL_CHECK(gathered < 2147483647LL, "cuda attention_batch: %lld keys to gather", gathered);
        ivl_attn_seq *s2 = (ivl_attn_seq *)ivl_malloc(sizeof *s2 * (size_t)nseq);
        int32_t *rows = (int32_t *)ivl_malloc(sizeof(int32_t) * (size_t)gathered);
        long long off = 0;
        for (int i = 0; i < nseq; i++) {
            s2[i] = seqs[i];
            if (!seqs[i].blocks || seqs[i].n == 0) {
                IVL_CHECK(seqs[i].n == 0, "cuda attention_batch: paged and contiguous sequences "
                          "in one call (seqs[%d])", i);
                continue;
            }
            const long long bs = seqs[i].block_size;
            for (long long j = 0; j < seqs[i].len; j++)
                rows[off + j] = (int32_t)(seqs[i].blocks[j / bs] * bs + j % bs);
            s2[i].kv_row0 = off;
            s2[i].blocks = NULL;
            off += seqs[i].len;
        }
        const int64_t shape[2] = {gathered, kc};
        ivl_tensor gk = be->alloc(be, be->dtype, 2, shape), gv = be->alloc(be, be->dtype, 2, shape);
        be->embed(be, &gk, k, rows, gathered);
        be->embed(be, &gv, v, rows, gathered);
        cuda_op_attention_batch(be, out, q, &gk, &gv, n_heads, n_kv_heads, head_dim, causal, s2,
                                nseq, scale);
        be->free(be, &gk);
        be->free(be, &gv);
        free(rows);
        free(s2);
        return;
    }

    // Which sequences the batched kernel takes; the rest go one by one.
    char *use = (char *)ivl_calloc((size_t)nseq, 1);
    int nuse = 0;
    const int on = bat_enabled() && bat_aligned16(out->data) && bat_aligned16(q->data) &&
                   bat_aligned16(k->data) && bat_aligned16(v->data) &&
                   (hd == 64 || hd == 96 || hd == 128 || hd == 256);
    for (int i = 0; i < nseq; i++)
        if (on && seqs[i].n > 0 && seqs[i].n <= BAT_MAX_N) use[i] = 1, nuse++;
    if (nuse) {
        const float sl2 = scale * BAT_LOG2E;
        int done = 0;
        DISPATCH_T(be->dtype, {
            done = bat_launch<T>(c, (T *)out->data, (const T *)q->data, (const T *)k->data,
                                 (const T *)v->data, H, KH, hd, causal, seqs, nseq, use, sl2);
        });
        IVL_CHECK(done, "cuda attention_batch: head_dim %d is not supported", hd);
    }
    // Longer sequences (prefill chunks, ViT tiles): the mma.sync flash kernel takes up to
    // IVL_FLASH_MAXSEQ of them per launch (sm_80+, same conditions as in cuda_op_attention).
    const char *variant = getenv("IVL_CUDA_FLASH");
    const int flash_on = bat_enabled() && bat_aligned16(out->data) && bat_aligned16(q->data) &&
                         bat_aligned16(k->data) && bat_aligned16(v->data) &&
                         !getenv("IVL_CUDA_NO_FLASH") && (!variant || !strncmp(variant, "mma", 3));
    cuda_flash_seqs fs;
    fs.nseq = 0;
    const float sl2 = scale * BAT_LOG2E;
    for (int i = 0; i <= nseq; i++) {
        if (fs.nseq == IVL_FLASH_MAXSEQ || (i == nseq && fs.nseq > 0)) {
            const int br = variant && !strcmp(variant, "mma128") ? 128 : 64;
            if (!cuda_flash_mma(c, be->dtype, br, out->data, q->data, k->data, v->data, H, KH, hd,
                                causal, &fs, sl2)) {
                for (int j = 0; j < fs.nseq; j++) {   // kernel not available: one by one
                    ivl_tensor o = ivl_tensor_slice(out, fs.q_row0[j], fs.n[j]);
                    ivl_tensor qq = ivl_tensor_slice(q, fs.q_row0[j], fs.n[j]);
                    ivl_tensor kk = ivl_tensor_slice(k, fs.kv_row0[j], fs.len[j]);
                    ivl_tensor vv = ivl_tensor_slice(v, fs.kv_row0[j], fs.len[j]);
                    cuda_op_attention(be, &o, &qq, &kk, &vv, H, KH, hd, causal, fs.pos0[j], scale);
                }
            }
            fs.nseq = 0;
        }
        if (i == nseq) break;
        const ivl_attn_seq *s = &seqs[i];
        if (use[i] || s->n == 0) continue;
        const long long pos0 = causal ? s->len - s->n : 0;
        if (flash_on && s->n > BAT_MAX_N) {
            const int j = fs.nseq++;
            fs.q_row0[j] = (int)s->q_row0, fs.n[j] = (int)s->n, fs.kv_row0[j] = (int)s->kv_row0;
            fs.len[j] = (int)s->len, fs.pos0[j] = (int)pos0;
            continue;
        }
        ivl_tensor o = ivl_tensor_slice(out, s->q_row0, s->n);
        ivl_tensor qq = ivl_tensor_slice(q, s->q_row0, s->n);
        ivl_tensor kk = ivl_tensor_slice(k, s->kv_row0, s->len);
        ivl_tensor vv = ivl_tensor_slice(v, s->kv_row0, s->len);
        cuda_op_attention(be, &o, &qq, &kk, &vv, H, KH, hd, causal, pos0, scale);
    }
    free(use);
}
