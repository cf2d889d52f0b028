// backend_cpu.c - the CPU backend table: memory in host RAM (tensors still say IVL_DEVICE so
// model code treats them like any backend's memory), f32 compute, shape checks, and calls
// into the kernels of cpu_ops.h.
#include "core/backend.h"
#include "core/check.h"
#include "core/cpu/cpu_ops.h"
#include "core/log.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#define ALIGN 64   // cache line; also what AVX-512 loads like

// ---- checks ----

static const char *shape_of(const ivl_tensor *t, char *buf) {
    return ivl_tensor_shape_str(t, buf, 96);
}

// A tensor argument of an op: on this backend, f32, with memory.
static void check_arg(const char *op, const char *name, const ivl_tensor *t) {
    char s[96];
    IVL_CHECK(t, "cpu %s: %s is NULL", op, name);
    IVL_CHECK(t->loc == IVL_DEVICE && t->data,
              "cpu %s: %s %s is not backend memory (allocate or upload it through the backend)",
              op, name, shape_of(t, s));
    IVL_CHECK(t->dtype == IVL_F32, "cpu %s: %s %s must be f32", op, name, shape_of(t, s));
}

static void check_numel(const char *op, const char *name, const ivl_tensor *t, int64_t want) {
    char s[96];
    IVL_CHECK(ivl_tensor_numel(t) == want, "cpu %s: %s %s should have %lld elements", op, name,
              shape_of(t, s), (long long)want);
}

static void check_same(const char *op, const ivl_tensor *a, const ivl_tensor *b) {
    char s1[96], s2[96];
    IVL_CHECK(ivl_tensor_rows(a) == ivl_tensor_rows(b) && ivl_tensor_cols(a) == ivl_tensor_cols(b),
              "cpu %s: shapes differ: %s vs %s", op, shape_of(a, s1), shape_of(b, s2));
}

static float *F(const ivl_tensor *t) { return (float *)t->data; }

// ---- memory ----

// Large tensors (the paged KV pool, weights) are anonymous mappings: zero pages the kernel
// gives on first touch, so a KV pool costs memory only for the blocks sequences have used.
// cpu_free tells them apart by the same size rule (owners are freed with their own shape).
#define MAP_MIN ((size_t)64 << 20)

static size_t alloc_bytes(const ivl_tensor *t) {
    size_t n = ivl_tensor_nbytes(t);
    size_t padded = (n + ALIGN - 1) / ALIGN * ALIGN;
    return padded ? padded : ALIGN;
}

static ivl_tensor cpu_alloc(ivl_backend *be, ivl_dtype dt, int ndim, const int64_t *shape) {
    ivl_tensor t = ivl_tensor_desc(dt, ndim, shape);
    const size_t padded = alloc_bytes(&t);
    char s[96];
    if (padded >= MAP_MIN) {
        void *p = mmap(NULL, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        IVL_CHECK(p != MAP_FAILED, "cpu alloc: out of memory for %s (%zu bytes)", shape_of(&t, s),
                  padded);
        t.data = p;
    } else {
        t.data = aligned_alloc(ALIGN, padded);
        IVL_CHECK(t.data, "cpu alloc: out of memory for %s (%zu bytes)", shape_of(&t, s), padded);
        memset(t.data, 0, padded);
    }
    t.loc = IVL_DEVICE;
    return t;
}

static void cpu_free(ivl_backend *be, ivl_tensor *t) {
    if (!t) return;
    if (t->data && t->dtype != IVL_Q8 && t->dtype != IVL_Q4 && alloc_bytes(t) >= MAP_MIN)
        munmap(t->data, alloc_bytes(t));
    else
        free(t->data);
    t->data = NULL;
}

static int is_float(ivl_dtype dt) { return dt == IVL_F32 || dt == IVL_BF16 || dt == IVL_F16; }

// Element conversion (or copy) in parallel chunks: weight upload converts GBs of bf16.
static void convert_par(void *dst, ivl_dtype ddt, const void *src, ivl_dtype sdt, int64_t n) {
    const int64_t chunk = 1 << 20;
    const size_t ds = ivl_dtype_size(ddt), ss = ivl_dtype_size(sdt);
#pragma omp parallel for schedule(static) if (n > chunk)
    for (int64_t i = 0; i < n; i += chunk) {
        int64_t m = i + chunk <= n ? chunk : n - i;
        ivl_convert((char *)dst + i * ds, ddt, (const char *)src + i * ss, sdt, (size_t)m);
    }
}

static void move_data(const char *op, ivl_tensor *dst, const ivl_tensor *src) {
    char s1[96], s2[96];
    IVL_CHECK(src->data && dst->data, "cpu %s: tensor without memory", op);
    IVL_CHECK(ivl_tensor_numel(dst) == ivl_tensor_numel(src),
              "cpu %s: element counts differ: %s vs %s", op, shape_of(dst, s1), shape_of(src, s2));
    IVL_CHECK(dst->dtype == src->dtype || (is_float(dst->dtype) && is_float(src->dtype)),
              "cpu %s: cannot convert %s to %s (integer tensors pass through unchanged only)", op,
              shape_of(src, s2), shape_of(dst, s1));
    convert_par(dst->data, dst->dtype, src->data, src->dtype, ivl_tensor_numel(src));
}

static void cpu_upload(ivl_backend *be, ivl_tensor *dst, const ivl_tensor *src_host) {
    IVL_CHECK(dst->loc == IVL_DEVICE, "cpu upload: destination is not backend memory");
    move_data("upload", dst, src_host);
}

static void cpu_download(ivl_backend *be, ivl_tensor *dst_host, const ivl_tensor *src) {
    IVL_CHECK(src->loc == IVL_DEVICE, "cpu download: source is not backend memory");
    move_data("download", dst_host, src);
}

static void cpu_copy(ivl_backend *be, ivl_tensor *dst, const ivl_tensor *src) {
    char s1[96], s2[96];
    IVL_CHECK(dst->dtype == src->dtype, "cpu copy: dtypes differ: %s vs %s", shape_of(dst, s1),
              shape_of(src, s2));
    move_data("copy", dst, src);
}

static void cpu_zero(ivl_backend *be, ivl_tensor *t) {
    if (t->data) memset(t->data, 0, ivl_tensor_nbytes(t));
}

static void cpu_synchronize(ivl_backend *be) {}

// ---- ops ----

static int is_quant(const ivl_tensor *t) { return t && (t->dtype == IVL_Q8 || t->dtype == IVL_Q4); }

static int cpu_upload_quant(ivl_backend *be, ivl_tensor *dst, const ivl_qweight *src) {
    (void)be;
    ivl_qweight *w = ivl_cpu_qweight_pack(src);
    if (!w) return -1;
    *dst = ivl_tensor_desc(w->bits == 8 ? IVL_Q8 : IVL_Q4, 2, (int64_t[]){w->rows, w->cols});
    dst->data = w;
    dst->loc = IVL_DEVICE;
    return 0;
}

static void cpu_matmul(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x, const ivl_tensor *w,
                       const ivl_tensor *bias) {
    check_arg("matmul", "y", y);
    check_arg("matmul", "x", x);
    char s1[96], s2[96], s3[96];
    if (is_quant(w)) {
        const ivl_qweight *q = w->data;
        IVL_CHECK(w->loc == IVL_DEVICE && q && q->rows == w->shape[0] && q->cols == w->shape[1],
                  "cpu matmul: quantized w %s was not made by upload_quant", shape_of(w, s3));
        int64_t M = ivl_tensor_rows(x), N = q->rows;
        IVL_CHECK(ivl_tensor_cols(x) == q->cols && ivl_tensor_rows(y) == M &&
                      ivl_tensor_cols(y) == N,
                  "cpu matmul: y %s = x %s . w^T %s: shapes do not fit", shape_of(y, s1),
                  shape_of(x, s2), shape_of(w, s3));
        IVL_CHECK(y->data != x->data, "cpu matmul: y must not alias x");
        if (bias) {
            check_arg("matmul", "bias", bias);
            check_numel("matmul", "bias", bias, N);
        }
        ivl_cpu_matmul_q(F(y), F(x), q, bias ? F(bias) : NULL, M);
        return;
    }
    check_arg("matmul", "w", w);
    int64_t M = ivl_tensor_rows(x), K = ivl_tensor_cols(x), N = ivl_tensor_rows(w);
    IVL_CHECK(ivl_tensor_cols(w) == K && ivl_tensor_rows(y) == M && ivl_tensor_cols(y) == N,
              "cpu matmul: y %s = x %s . w^T %s: shapes do not fit", shape_of(y, s1),
              shape_of(x, s2), shape_of(w, s3));
    IVL_CHECK(y->data != x->data && y->data != w->data, "cpu matmul: y must not alias x or w");
    if (bias) {
        check_arg("matmul", "bias", bias);
        check_numel("matmul", "bias", bias, N);
    }
    ivl_cpu_matmul(F(y), F(x), F(w), bias ? F(bias) : NULL, M, N, K);
}

static void cpu_rmsnorm(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x, const ivl_tensor *w,
                        float eps) {
    check_arg("rmsnorm", "y", y);
    check_arg("rmsnorm", "x", x);
    check_arg("rmsnorm", "w", w);
    check_same("rmsnorm", y, x);
    check_numel("rmsnorm", "w", w, ivl_tensor_cols(x));
    ivl_cpu_rmsnorm(F(y), F(x), F(w), ivl_tensor_rows(x), ivl_tensor_cols(x), eps);
}

static void cpu_sumsq_rows(ivl_backend *be, ivl_tensor *ss, const ivl_tensor *x) {
    check_arg("sumsq_rows", "x", x);
    IVL_CHECK(ss->dtype == IVL_F32 && ss->data, "cpu sumsq_rows: ss must be an F32 tensor");
    check_numel("sumsq_rows", "ss", ss, ivl_tensor_rows(x));
    ivl_cpu_sumsq_rows(F(ss), F(x), ivl_tensor_rows(x), ivl_tensor_cols(x));
}

static void cpu_rmsnorm_ss(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x,
                           const ivl_tensor *ss, const ivl_tensor *w, int64_t n, float eps) {
    check_arg("rmsnorm_ss", "y", y);
    check_arg("rmsnorm_ss", "x", x);
    check_arg("rmsnorm_ss", "w", w);
    check_same("rmsnorm_ss", y, x);
    check_numel("rmsnorm_ss", "w", w, ivl_tensor_cols(x));
    IVL_CHECK(ss->dtype == IVL_F32 && ss->data, "cpu rmsnorm_ss: ss must be an F32 tensor");
    check_numel("rmsnorm_ss", "ss", ss, ivl_tensor_rows(x));
    IVL_CHECK(n >= ivl_tensor_cols(x), "cpu rmsnorm_ss: n %lld < row width", (long long)n);
    ivl_cpu_rmsnorm_ss(F(y), F(x), F(ss), F(w), ivl_tensor_rows(x), ivl_tensor_cols(x), n, eps);
}

static void cpu_layernorm(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x,
                          const ivl_tensor *w, const ivl_tensor *b, float eps) {
    check_arg("layernorm", "y", y);
    check_arg("layernorm", "x", x);
    check_arg("layernorm", "w", w);
    check_same("layernorm", y, x);
    check_numel("layernorm", "w", w, ivl_tensor_cols(x));
    if (b) {
        check_arg("layernorm", "b", b);
        check_numel("layernorm", "b", b, ivl_tensor_cols(x));
    }
    ivl_cpu_layernorm(F(y), F(x), F(w), b ? F(b) : NULL, ivl_tensor_rows(x), ivl_tensor_cols(x),
                      eps);
}

static void cpu_gelu(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x) {
    check_arg("gelu", "y", y);
    check_arg("gelu", "x", x);
    check_numel("gelu", "y", y, ivl_tensor_numel(x));
    ivl_cpu_gelu(F(y), F(x), ivl_tensor_numel(x));
}

static void cpu_silu_mul(ivl_backend *be, ivl_tensor *y, const ivl_tensor *gate,
                         const ivl_tensor *up) {
    check_arg("silu_mul", "y", y);
    check_arg("silu_mul", "gate", gate);
    check_arg("silu_mul", "up", up);
    check_same("silu_mul", y, gate);
    check_same("silu_mul", y, up);
    ivl_cpu_silu_mul(F(y), F(gate), F(up), ivl_tensor_numel(y));
}

static void cpu_add(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x) {
    check_arg("add", "y", y);
    check_arg("add", "x", x);
    check_numel("add", "x", x, ivl_tensor_numel(y));
    ivl_cpu_add(F(y), F(x), ivl_tensor_numel(y));
}

static void cpu_add_scaled(ivl_backend *be, ivl_tensor *y, const ivl_tensor *x,
                           const ivl_tensor *scale) {
    check_arg("add_scaled", "y", y);
    check_arg("add_scaled", "x", x);
    check_arg("add_scaled", "scale", scale);
    check_same("add_scaled", y, x);
    check_numel("add_scaled", "scale", scale, ivl_tensor_cols(y));
    ivl_cpu_add_scaled(F(y), F(x), F(scale), ivl_tensor_rows(y), ivl_tensor_cols(y));
}

static void cpu_scale(ivl_backend *be, ivl_tensor *y, float s) {
    check_arg("scale", "y", y);
    ivl_cpu_scale(F(y), s, ivl_tensor_numel(y));
}

static void cpu_rope(ivl_backend *be, ivl_tensor *x, int n_heads, int head_dim,
                     const float *cos_host, const float *sin_host) {
    check_arg("rope", "x", x);
    char s[96];
    IVL_CHECK(head_dim > 0 && head_dim % 2 == 0 && n_heads > 0 &&
                  ivl_tensor_cols(x) == (int64_t)n_heads * head_dim,
              "cpu rope: x %s is not [T, %d heads x %d]", shape_of(x, s), n_heads, head_dim);
    IVL_CHECK(cos_host && sin_host, "cpu rope: cos/sin tables are NULL");
    ivl_cpu_rope(F(x), ivl_tensor_rows(x), n_heads, head_dim, cos_host, sin_host);
}

static void cpu_attention(ivl_backend *be, ivl_tensor *out, const ivl_tensor *q,
                          const ivl_tensor *k, const ivl_tensor *v, int n_heads, int n_kv_heads,
                          int head_dim, int causal, int64_t q_pos0, float scale) {
    check_arg("attention", "out", out);
    check_arg("attention", "q", q);
    check_arg("attention", "k", k);
    check_arg("attention", "v", v);
    char s1[96], s2[96], s3[96];
    int64_t T = ivl_tensor_rows(q), L = ivl_tensor_rows(k);
    IVL_CHECK(ivl_tensor_cols(q) == (int64_t)n_heads * head_dim &&
                  ivl_tensor_cols(k) == (int64_t)n_kv_heads * head_dim,
              "cpu attention: q %s / k %s do not hold %d / %d heads of %d", shape_of(q, s1),
              shape_of(k, s2), n_heads, n_kv_heads, head_dim);
    IVL_CHECK(ivl_tensor_rows(v) == L && ivl_tensor_cols(v) == ivl_tensor_cols(k),
              "cpu attention: v %s does not match k %s", shape_of(v, s1), shape_of(k, s2));
    IVL_CHECK(ivl_tensor_rows(out) == T && ivl_tensor_cols(out) == ivl_tensor_cols(q),
              "cpu attention: out %s does not match q %s", shape_of(out, s3), shape_of(q, s1));
    IVL_CHECK(out->data != q->data && out->data != k->data && out->data != v->data,
              "cpu attention: out must not alias q, k or v");
    ivl_cpu_attention(F(out), F(q), F(k), F(v), T, L, n_heads, n_kv_heads, head_dim, causal,
                      q_pos0, scale);
}


static void cpu_scatter_rows(ivl_backend *be, ivl_tensor *dst, const ivl_tensor *src,
                             const int64_t *dst_rows_host, int64_t n) {
    check_arg("scatter_rows", "dst", dst);
    check_arg("scatter_rows", "src", src);
    char s1[96], s2[96];
    const int64_t R = ivl_tensor_rows(dst), C = ivl_tensor_cols(dst);
    IVL_CHECK(n >= 0 && ivl_tensor_rows(src) == n && ivl_tensor_cols(src) == C,
              "cpu scatter_rows: src %s is not [n = %lld, %lld] (the row width of dst %s)",
              shape_of(src, s1), (long long)n, (long long)C, shape_of(dst, s2));
    IVL_CHECK(dst_rows_host || n == 0, "cpu scatter_rows: dst_rows are NULL");
    const char *d0 = dst->data, *s0 = src->data;
    IVL_CHECK(d0 + ivl_tensor_nbytes(dst) <= s0 || s0 + ivl_tensor_nbytes(src) <= d0 || n == 0,
              "cpu scatter_rows: dst and src overlap");
    for (int64_t i = 0; i < n; i++)
        IVL_CHECK(dst_rows_host[i] >= 0 && dst_rows_host[i] < R,
                  "cpu scatter_rows: dst_rows[%lld] = %lld is outside dst %s", (long long)i,
                  (long long)dst_rows_host[i], shape_of(dst, s2));
    IVL_CHECK(ivl_rows_distinct(dst_rows_host, n), "cpu scatter_rows: dst_rows repeat a row");
    for (int64_t i = 0; i < n; i++)
        memcpy(F(dst) + dst_rows_host[i] * C, F(src) + i * C, sizeof(float) * (size_t)C);
}

// One sequence at a time through the single-sequence kernel: bit-identical to calling
// attention per sequence (the contract in backend.h).
static void cpu_attention_batch(ivl_backend *be, ivl_tensor *out, const ivl_tensor *q,
                                const ivl_tensor *k, const ivl_tensor *v, int n_heads,
                                int n_kv_heads, int head_dim, int causal,
                                const ivl_attn_seq *seqs, int nseq, float scale) {
    check_arg("attention_batch", "out", out);
    check_arg("attention_batch", "q", q);
    check_arg("attention_batch", "k", k);
    check_arg("attention_batch", "v", v);
    char s1[96], s2[96];
    IVL_CHECK(n_heads > 0 && n_kv_heads > 0 && head_dim > 0 && n_heads % n_kv_heads == 0,
              "cpu attention_batch: %d query heads are not a multiple of %d kv heads (head_dim "
              "%d)", n_heads, n_kv_heads, head_dim);
    const int64_t T = ivl_tensor_rows(q), Lk = ivl_tensor_rows(k);
    const int64_t qc = (int64_t)n_heads * head_dim, kc = (int64_t)n_kv_heads * head_dim;
    IVL_CHECK(ivl_tensor_cols(q) == qc && ivl_tensor_cols(k) == kc,
              "cpu attention_batch: q %s / k %s do not hold %d / %d heads of %d",
              shape_of(q, s1), shape_of(k, s2), n_heads, n_kv_heads, head_dim);
    IVL_CHECK(ivl_tensor_rows(v) == Lk && ivl_tensor_cols(v) == kc,
              "cpu attention_batch: v %s does not match k %s", shape_of(v, s1), shape_of(k, s2));
    IVL_CHECK(ivl_tensor_rows(out) == T && ivl_tensor_cols(out) == qc,
              "cpu attention_batch: out %s does not match q %s", shape_of(out, s1),
              shape_of(q, s2));
    IVL_CHECK(out->data != q->data && out->data != k->data && out->data != v->data,
              "cpu attention_batch: out must not alias q, k or v");
    IVL_CHECK(nseq >= 0 && (seqs || nseq == 0), "cpu attention_batch: seqs are NULL (nseq %d)",
              nseq);
    for (int i = 0; i < nseq; i++) {
        const ivl_attn_seq *s = &seqs[i];
        IVL_CHECK(s->n >= 0 && s->q_row0 >= 0 && s->n <= T - s->q_row0,
                  "cpu attention_batch: seqs[%d] (q_row0 %lld, n %lld) has query rows outside q %s", i,
                  (long long)s->q_row0, (long long)s->n, shape_of(q, s1));
        if (s->n == 0) continue;
        IVL_CHECK(s->len >= 1 && (!causal || s->len >= s->n),
                  "cpu attention_batch: seqs[%d] (len %lld, n %lld) needs 1 <= len and, if "
                  "causal, n <= len", i, (long long)s->len, (long long)s->n);
        if (s->blocks) {
            IVL_CHECK(s->block_size >= 1, "cpu attention_batch: seqs[%d] block size %d", i,
                      s->block_size);
            for (int64_t b = 0; b < (s->len + s->block_size - 1) / s->block_size; b++)
                IVL_CHECK(s->blocks[b] >= 0 &&
                              ((int64_t)s->blocks[b] + 1) * s->block_size <= Lk,
                          "cpu attention_batch: seqs[%d] block %lld = %d is outside k %s", i,
                          (long long)b, s->blocks[b], shape_of(k, s1));
        } else {
            IVL_CHECK(s->kv_row0 >= 0 && s->len <= Lk - s->kv_row0,
                      "cpu attention_batch: seqs[%d] (kv_row0 %lld, len %lld) has KV rows "
                      "outside k %s", i, (long long)s->kv_row0, (long long)s->len,
                      shape_of(k, s1));
        }
    }
    // A paged sequence's keys and values are gathered through its block table into one
    // contiguous buffer (unless its blocks are consecutive in the pool), then the same kernel
    // runs: the same bits as a contiguous cache.
    float *gk = NULL, *gv = NULL;
    int64_t gcap = 0;
    for (int i = 0; i < nseq; i++) {
        const ivl_attn_seq *s = &seqs[i];
        if (s->n == 0) continue;
        const float *kk = F(k) + s->kv_row0 * kc, *vv = F(v) + s->kv_row0 * kc;
        // Blocks that follow each other in the pool are already one contiguous range.
        int64_t nb = s->blocks ? (s->len + s->block_size - 1) / s->block_size : 0, run = 1;
        while (run < nb && s->blocks[run] == s->blocks[0] + run) run++;
        if (s->blocks && run == nb) {
            kk = F(k) + (int64_t)s->blocks[0] * s->block_size * kc;
            vv = F(v) + (int64_t)s->blocks[0] * s->block_size * kc;
        } else if (s->blocks) {
            if (s->len > gcap) {
                gcap = s->len;
                gk = ivl_realloc(gk, sizeof(float) * (size_t)(gcap * kc));
                gv = ivl_realloc(gv, sizeof(float) * (size_t)(gcap * kc));
            }
            const int64_t bs = s->block_size;
            for (int64_t j0 = 0; j0 < s->len; j0 += bs) {
                const int64_t nr = j0 + bs <= s->len ? bs : s->len - j0;
                const int64_t row = (int64_t)s->blocks[j0 / bs] * bs;
                memcpy(gk + j0 * kc, F(k) + row * kc, sizeof(float) * (size_t)(nr * kc));
                memcpy(gv + j0 * kc, F(v) + row * kc, sizeof(float) * (size_t)(nr * kc));
            }
            kk = gk;
            vv = gv;
        }
        ivl_cpu_attention(F(out) + s->q_row0 * qc, F(q) + s->q_row0 * qc, kk, vv, s->n, s->len,
                          n_heads, n_kv_heads, head_dim, causal, causal ? s->len - s->n : 0,
                          scale);
    }
    free(gk);
    free(gv);
}

static void cpu_matmul_n(ivl_backend *be, int n, ivl_tensor *const *y, const ivl_tensor *x,
                         const ivl_tensor *const *w) {
    IVL_CHECK(n >= 1 && n <= 3 && y && w, "cpu matmul_n: n = %d (1..3) or NULL arrays", n);
    for (int i = 0; i < n; i++) be->matmul(be, y[i], x, w[i], NULL);
}

static void cpu_matmul_glu(ivl_backend *be, ivl_tensor *y, ivl_tensor *up, const ivl_tensor *x,
                           const ivl_tensor *wg, const ivl_tensor *wu) {
    be->matmul(be, y, x, wg, NULL);
    be->matmul(be, up, x, wu, NULL);
    be->silu_mul(be, y, y, up);
}

static void cpu_embed(ivl_backend *be, ivl_tensor *out, const ivl_tensor *table,
                      const int32_t *ids_host, int64_t n) {
    check_arg("embed", "out", out);
    check_arg("embed", "table", table);
    char s1[96], s2[96];
    int64_t D = ivl_tensor_cols(table);
    IVL_CHECK(ivl_tensor_rows(out) == n && ivl_tensor_cols(out) == D,
              "cpu embed: out %s is not [%lld, %lld] for table %s", shape_of(out, s1),
              (long long)n, (long long)D, shape_of(table, s2));
    IVL_CHECK(ids_host || n == 0, "cpu embed: ids are NULL");
    ivl_cpu_embed(F(out), F(table), ivl_tensor_rows(table), D, ids_host, n);
}

static void cpu_patch_embed(ivl_backend *be, ivl_tensor *out, const ivl_tensor *pixels,
                            const ivl_tensor *w, const ivl_tensor *bias, int patch) {
    check_arg("patch_embed", "out", out);
    check_arg("patch_embed", "pixels", pixels);
    check_arg("patch_embed", "w", w);
    char s1[96], s2[96], s3[96];
    IVL_CHECK(pixels->ndim == 4 && pixels->shape[1] == 3 && pixels->shape[2] == pixels->shape[3],
              "cpu patch_embed: pixels %s are not [B, 3, S, S]", shape_of(pixels, s1));
    int64_t B = pixels->shape[0], S = pixels->shape[2];
    IVL_CHECK(patch > 0 && S % patch == 0, "cpu patch_embed: image size %lld is not a multiple "
              "of patch %d", (long long)S, patch);
    int64_t g = S / patch, C = ivl_tensor_rows(w);
    IVL_CHECK(ivl_tensor_numel(w) == C * 3 * patch * patch,
              "cpu patch_embed: w %s is not [C, 3, %d, %d]", shape_of(w, s2), patch, patch);
    IVL_CHECK(ivl_tensor_rows(out) == B * g * g && ivl_tensor_cols(out) == C,
              "cpu patch_embed: out %s is not [%lld, %lld] for pixels %s and w %s",
              shape_of(out, s3), (long long)(B * g * g), (long long)C, shape_of(pixels, s1),
              shape_of(w, s2));
    if (bias) {
        check_arg("patch_embed", "bias", bias);
        check_numel("patch_embed", "bias", bias, C);
    }
    ivl_cpu_patch_embed(F(out), F(pixels), F(w), bias ? F(bias) : NULL, B, S, C, patch);
}

static void cpu_pixel_shuffle(ivl_backend *be, ivl_tensor *out, const ivl_tensor *in, int grid,
                              int version) {
    check_arg("pixel_shuffle", "out", out);
    check_arg("pixel_shuffle", "in", in);
    char s1[96], s2[96];
    IVL_CHECK(grid > 0 && grid % 2 == 0, "cpu pixel_shuffle: grid %d is not even", grid);
    int64_t C = ivl_tensor_cols(in), per = (int64_t)grid * grid;
    IVL_CHECK(ivl_tensor_rows(in) % per == 0,
              "cpu pixel_shuffle: in %s is not [B * %d * %d, C]", shape_of(in, s1), grid, grid);
    int64_t B = ivl_tensor_rows(in) / per;
    IVL_CHECK(ivl_tensor_rows(out) == B * per / 4 && ivl_tensor_cols(out) == 4 * C,
              "cpu pixel_shuffle: out %s is not [%lld, %lld] for in %s", shape_of(out, s2),
              (long long)(B * per / 4), (long long)(4 * C), shape_of(in, s1));
    ivl_cpu_pixel_shuffle(F(out), F(in), B, grid, C, version);
}

static void cpu_argmax(ivl_backend *be, const ivl_tensor *logits, int32_t *ids_host) {
    check_arg("argmax", "logits", logits);
    IVL_CHECK(ids_host, "cpu argmax: ids are NULL");
    ivl_cpu_argmax(F(logits), ivl_tensor_rows(logits), ivl_tensor_cols(logits), ids_host);
}

static void cpu_destroy(ivl_backend *be) { free(be); }

// OpenBLAS (DYNAMIC_ARCH) falls back to its generic SSE3 "Prescott" kernels when it does not
// recognise the CPU model, as on some VMs: sgemm then runs 2-4x slower (measured: 9.5 vs 22
// (Haswell) vs 42 (SkylakeX) GFLOP/s on one core of the dev box). The kernel set is chosen
// when the library loads, so all we can do is say how to fix it.
static void warn_generic_blas(void) {
    static int warned;
    const char *core = openblas_get_corename();
    if (warned || !core) return;
    warned = 1;
    int generic = !strcasecmp(core, "Prescott") || !strcasecmp(core, "Core2") ||
                  !strcasecmp(core, "Nehalem") || !strcasecmp(core, "Katmai");
    __builtin_cpu_init();
    if (!generic || !__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;
    LOG_WARN("OpenBLAS uses its generic '%s' kernels on this AVX2 CPU (matmul 2-4x slower); "
             "set OPENBLAS_CORETYPE=%s in the environment before starting", core,
             __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell");
}

ivl_backend *ivl_backend_cpu_create(void) {
    ivl_cpu_blas_init();
    warn_generic_blas();
    ivl_backend *be = ivl_calloc(1, sizeof *be);
    *be = (ivl_backend){
        .name = "cpu",
        .dtype = IVL_F32,
        .destroy = cpu_destroy,
        .alloc = cpu_alloc,
        .free = cpu_free,
        .upload = cpu_upload,
        .download = cpu_download,
        .copy = cpu_copy,
        .zero = cpu_zero,
        .synchronize = cpu_synchronize,
        .matmul = cpu_matmul,
        .rmsnorm = cpu_rmsnorm,
        .layernorm = cpu_layernorm,
        .gelu = cpu_gelu,
        .silu_mul = cpu_silu_mul,
        .add = cpu_add,
        .add_scaled = cpu_add_scaled,
        .scale = cpu_scale,
        .rope = cpu_rope,
        .attention = cpu_attention,
        .embed = cpu_embed,
        .patch_embed = cpu_patch_embed,
        .pixel_shuffle = cpu_pixel_shuffle,
        .argmax = cpu_argmax,
        .sumsq_rows = cpu_sumsq_rows,
        .rmsnorm_ss = cpu_rmsnorm_ss,
        .scatter_rows = cpu_scatter_rows,
        .attention_batch = cpu_attention_batch,
        .matmul_n = cpu_matmul_n,
        .matmul_glu = cpu_matmul_glu,
        .upload_quant = cpu_upload_quant,
    };
    int nt = ivl_cpu_threads();
    snprintf(be->device_name, sizeof be->device_name, "x86_64 CPU, %d thread%s", nt,
             nt == 1 ? "" : "s");
    LOG_DEBUG("cpu backend: %s, OpenBLAS single-threaded inside OpenMP", be->device_name);
    return be;
}
