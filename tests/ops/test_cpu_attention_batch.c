// test_cpu_attention_batch.c - attention_batch (many sequences per call) against the
// single-sequence attention op called once per sequence with row slices: the contract in
// backend.h says the results are identical, so the comparison is bit for bit. Sequences with
// 1, 3 and 17 queries (17 is past the CUDA batched kernel's limit), an empty one, lengths
// from 1 to a few dozen, KV rows in non-contiguous slots of a shared cache (not in slot
// order), query rows with a gap; GQA and MHA, head_dim 64 and 128; causal (the LLM) and
// bidirectional (the ViT's tiles). The same call through block tables (the paged KV cache:
// each slot's rows scattered over permuted blocks of 4 positions of another pool) gives the
// same bits. Also: the bad calls the op must refuse.
#include "tests/ops/ops_test.h"

#define SLOT_ROWS 48   // KV rows per slot (the cache's max context)
#define SLOTS 6

typedef struct {
    int H, K, hd;
} head_cfg;

// The sequences of every case: {q_row0, n, slot, len}; q rows 0..22 and 24..26 (row 23 is a
// gap no sequence writes).
static const int64_t g_seqs[][4] = {
    {0, 1, 3, 7},      // decode, short context
    {1, 3, 0, 12},     // 3 new tokens (speculative / chunked)
    {4, 17, 5, 30},    // prefill chunk of 17 on top of 13 cached tokens
    {21, 0, 1, 0},     // nothing this step
    {21, 1, 2, 1},     // first token of a fresh sequence
    {22, 1, 4, SLOT_ROWS},   // a full slot
    {24, 3, 1, 3},     // a 3-token prompt, all new
};
#define NSEQ ((int)(sizeof g_seqs / sizeof g_seqs[0]))
#define TQ 27

static void run_case(ivl_backend *be, head_cfg c, int nt, int causal) {
    const int64_t qw = (int64_t)c.H * c.hd, kw = (int64_t)c.K * c.hd;
    const int64_t LK = (int64_t)SLOTS * SLOT_ROWS;
    const float scale = 1.0f / sqrtf((float)c.hd);
    float *q = rnd_array(TQ * qw, -2, 2), *k = rnd_array(LK * kw, -2, 2);
    float *v = rnd_array(LK * kw, -1, 1), *fill = rnd_array(TQ * qw, 5, 6);
    ivl_tensor tq = dev_from(be, q, TQ, qw), tk = dev_from(be, k, LK, kw);
    ivl_tensor tv = dev_from(be, v, LK, kw);
    // Both outputs start from the same values, so rows no sequence covers must stay as they are.
    ivl_tensor ob = dev_from(be, fill, TQ, qw), ol = dev_from(be, fill, TQ, qw);

    ivl_attn_seq seqs[NSEQ];
    for (int i = 0; i < NSEQ; i++)
        seqs[i] = (ivl_attn_seq){.q_row0 = g_seqs[i][0], .n = g_seqs[i][1],
                                 .kv_row0 = g_seqs[i][2] * SLOT_ROWS, .len = g_seqs[i][3]};
    be->attention_batch(be, &ob, &tq, &tk, &tv, c.H, c.K, c.hd, causal, seqs, NSEQ, scale);
    for (int i = 0; i < NSEQ; i++) {
        const ivl_attn_seq *s = &seqs[i];
        if (!s->n) continue;
        ivl_tensor o = ivl_tensor_slice(&ol, s->q_row0, s->n);
        ivl_tensor qq = ivl_tensor_slice(&tq, s->q_row0, s->n);
        ivl_tensor kk = ivl_tensor_slice(&tk, s->kv_row0, s->len);
        ivl_tensor vv = ivl_tensor_slice(&tv, s->kv_row0, s->len);
        be->attention(be, &o, &qq, &kk, &vv, c.H, c.K, c.hd, causal, causal ? s->len - s->n : 0,
                      scale);
    }
    // Paged: slot s's rows j*4 .. j*4+3 live in block perm[s * 12 + j] of another pool.
    enum { BS = 4, PER = SLOT_ROWS / BS, NB = SLOTS * PER };
    int32_t perm[NB];
    for (int b = 0; b < NB; b++) perm[b] = (int32_t)((b * 29 + 7) % NB);   // 29 is prime to 72
    float *k2 = malloc(sizeof(float) * (size_t)(LK * kw)), *v2 = malloc(sizeof(float) * (size_t)(LK * kw));
    for (int b = 0; b < NB; b++) {
        memcpy(k2 + (int64_t)perm[b] * BS * kw, k + (int64_t)b * BS * kw, sizeof(float) * (size_t)(BS * kw));
        memcpy(v2 + (int64_t)perm[b] * BS * kw, v + (int64_t)b * BS * kw, sizeof(float) * (size_t)(BS * kw));
    }
    ivl_tensor tk2 = dev_from(be, k2, LK, kw), tv2 = dev_from(be, v2, LK, kw);
    ivl_tensor op = dev_from(be, fill, TQ, qw);
    ivl_attn_seq pseqs[NSEQ];
    for (int i = 0; i < NSEQ; i++) {
        pseqs[i] = seqs[i];
        pseqs[i].kv_row0 = 9999;   // ignored with a block table
        pseqs[i].blocks = perm + g_seqs[i][2] * PER;
        pseqs[i].block_size = BS;
    }
    be->attention_batch(be, &op, &tq, &tk2, &tv2, c.H, c.K, c.hd, causal, pseqs, NSEQ, scale);
    float *pg = host_from(be, &op);
    float *a = host_from(be, &ob), *b = host_from(be, &ol);
    char what[160];
    snprintf(what, sizeof what, "attention_batch through block tables == contiguous, H=%d K=%d "
             "hd=%d, %s (bit for bit)", c.H, c.K, c.hd, causal ? "causal" : "bidirectional");
    check_true(what, !memcmp(a, pg, sizeof(float) * (size_t)(TQ * qw)));
    // Consecutive blocks (the pool's own order): read in place, the same bits again.
    int32_t ident[NB];
    for (int b = 0; b < NB; b++) ident[b] = b;
    for (int i = 0; i < NSEQ; i++) pseqs[i].blocks = ident + g_seqs[i][2] * PER;
    ivl_tensor oi = dev_from(be, fill, TQ, qw);
    be->attention_batch(be, &oi, &tq, &tk, &tv, c.H, c.K, c.hd, causal, pseqs, NSEQ, scale);
    float *ig = host_from(be, &oi);
    check_true("attention_batch through consecutive blocks == contiguous (bit for bit)",
               !memcmp(a, ig, sizeof(float) * (size_t)(TQ * qw)));
    be->free(be, &tk2), be->free(be, &tv2), be->free(be, &op), be->free(be, &oi);
    free(k2), free(v2), free(pg), free(ig);
    snprintf(what, sizeof what, "attention_batch == per-sequence attention, H=%d K=%d hd=%d, "
             "%d sequences, %s, threads=%d (bit for bit)", c.H, c.K, c.hd, NSEQ,
             causal ? "causal" : "bidirectional", nt);
    check_true(what, !memcmp(a, b, sizeof(float) * (size_t)(TQ * qw)));
    // The gap row and the rows of the empty sequence's position keep their old values, and
    // covered rows changed (the comparison above cannot pass by both doing nothing).
    check_true("attention_batch leaves the uncovered query row alone",
               !memcmp(a + 23 * qw, fill + 23 * qw, sizeof(float) * (size_t)qw));
    int changed = 1;
    for (int i = 0; i < NSEQ; i++)
        if (g_seqs[i][1] && !memcmp(a + g_seqs[i][0] * qw, fill + g_seqs[i][0] * qw,
                                    sizeof(float) * (size_t)qw))
            changed = 0;
    check_true("attention_batch writes every sequence's rows", changed);
    be->free(be, &tq), be->free(be, &tk), be->free(be, &tv), be->free(be, &ob), be->free(be, &ol);
    free(q), free(k), free(v), free(fill), free(a), free(b);
}

static void bad_calls(ivl_backend *be) {
    const int H = 4, K = 2, hd = 64;
    ivl_tensor q = ivl_backend_alloc_2d(be, 8, H * hd), o = ivl_backend_alloc_2d(be, 8, H * hd);
    ivl_tensor k = ivl_backend_alloc_2d(be, 20, K * hd), v = ivl_backend_alloc_2d(be, 20, K * hd);
    ivl_tensor v2 = ivl_backend_alloc_2d(be, 19, K * hd), o2 = ivl_backend_alloc_2d(be, 7, H * hd);
    ivl_attn_seq ok = {0, 2, 10, 5, NULL, 0};
    ivl_attn_seq more_q_than_keys = {0, 6, 0, 5, NULL, 0}, keys_past_end = {0, 1, 16, 5, NULL, 0};
    ivl_attn_seq q_past_end = {7, 2, 0, 5, NULL, 0}, neg_row = {-1, 1, 0, 5, NULL, 0}, neg_n = {0, -1, 0, 5, NULL, 0};
    be->attention_batch(be, &o, &q, &k, &v, H, K, hd, 1, &ok, 1, 0.125f);   // accepted
    check_true("attention_batch accepts a valid call", 1);
    ivl_attn_seq no_keys = {0, 2, 10, 0, NULL, 0};
    be->attention_batch(be, &o, &q, &k, &v, H, K, hd, 0, &more_q_than_keys, 1, 0.125f);
    check_true("attention_batch accepts n > len when bidirectional", 1);
    expect_rejected("attention_batch: len 0 (bidirectional)",
                    be->attention_batch(be, &o, &q, &k, &v, H, K, hd, 0, &no_keys, 1, 1));
    expect_rejected("attention_batch: n > len",
                    be->attention_batch(be, &o, &q, &k, &v, H, K, hd, 1, &more_q_than_keys, 1, 1));
    expect_rejected("attention_batch: KV rows past the cache",
                    be->attention_batch(be, &o, &q, &k, &v, H, K, hd, 1, &keys_past_end, 1, 1));
    expect_rejected("attention_batch: query rows past q",
                    be->attention_batch(be, &o, &q, &k, &v, H, K, hd, 1, &q_past_end, 1, 1));
    expect_rejected("attention_batch: negative q_row0",
                    be->attention_batch(be, &o, &q, &k, &v, H, K, hd, 1, &neg_row, 1, 1));
    expect_rejected("attention_batch: negative n",
                    be->attention_batch(be, &o, &q, &k, &v, H, K, hd, 1, &neg_n, 1, 1));
    expect_rejected("attention_batch: heads not a multiple of kv heads",
                    be->attention_batch(be, &o, &q, &k, &v, 3, 2, 64, 1, &ok, 1, 1));
    expect_rejected("attention_batch: v rows differ from k",
                    be->attention_batch(be, &o, &q, &k, &v2, H, K, hd, 1, &ok, 1, 1));
    expect_rejected("attention_batch: out rows differ from q",
                    be->attention_batch(be, &o2, &q, &k, &v, H, K, hd, 1, &ok, 1, 1));
    expect_rejected("attention_batch: out aliases q",
                    be->attention_batch(be, &q, &q, &k, &v, H, K, hd, 1, &ok, 1, 1));
    int32_t far_block[2] = {5, 0};   // block 5: rows 20..23 of a 20-row k
    ivl_attn_seq paged_out = {0, 2, 0, 5, far_block, 4};
    expect_rejected("attention_batch: a block past the cache",
                    be->attention_batch(be, &o, &q, &k, &v, H, K, hd, 1, &paged_out, 1, 1));
    expect_rejected("attention_batch: seqs NULL",
                    be->attention_batch(be, &o, &q, &k, &v, H, K, hd, 1, NULL, 1, 1));
    ivl_tensor *all[] = {&q, &o, &k, &v, &v2, &o2};
    for (int i = 0; i < 6; i++) be->free(be, all[i]);
}

int main(void) {
    ivl_backend *be = ivl_backend_cpu_create();
    static const head_cfg cfgs[] = {{8, 2, 64}, {6, 6, 64}, {12, 2, 128}, {4, 1, 128}};
    FOR_THREADS(nt) {
        for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
            run_case(be, cfgs[i], nt, 1);
            run_case(be, cfgs[i], nt, 0);   // the ViT's use: every query sees its len keys
        }
    }
    bad_calls(be);
    ivl_backend_destroy(be);
    return finish("test_cpu_attention_batch");
}
