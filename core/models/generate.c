// generate.c - see generate.h.
#include "core/models/generate.h"
#include "core/check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

ivl_sampling ivl_sampling_default(void) {
    ivl_sampling s = {0, 1.0f, 50, 1.0f, 1.0f, 0};
    return s;
}

// splitmix64: small, seedable, good enough for sampling.
static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

typedef struct { float v; int32_t i; } scored;
static int cmp_scored_desc(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->v != y->v) return (x->v < y->v) - (x->v > y->v);
    return (x->i > y->i) - (x->i < y->i);
}

// HF RepetitionPenaltyLogitsProcessor: each distinct token seen so far once; a negative
// logit is multiplied by the penalty, a positive one divided.
static void apply_repetition_penalty(float *logits, int64_t V, const int32_t *history,
                                     int n_history, float penalty) {
    if (penalty == 1.0f) return;
    for (int i = 0; i < n_history; i++) {
        int32_t t = history[i];
        if (t < 0 || t >= V) continue;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = history[j] == t;
        if (seen) continue;
        logits[t] = logits[t] < 0 ? logits[t] * penalty : logits[t] / penalty;
    }
}

void ivl_sample_probs(float *logits, int64_t V, const int32_t *history, int n_history,
                      const ivl_sampling *s, float *probs) {
    apply_repetition_penalty(logits, V, history, n_history, s->repetition_penalty);
    // Warpers in HF order: temperature, top-k, top-p; then softmax.
    if (s->temperature > 0 && s->temperature != 1.0f)
        for (int64_t i = 0; i < V; i++) logits[i] /= s->temperature;
    if (s->top_k > 0 && s->top_k < V) {
        float *tmp = ivl_malloc((size_t)V * sizeof *tmp);
        memcpy(tmp, logits, (size_t)V * sizeof *tmp);
        qsort(tmp, (size_t)V, sizeof *tmp, cmp_desc);
        float kth = tmp[s->top_k - 1];   // ties with the k-th value survive, as in HF
        for (int64_t i = 0; i < V; i++)
            if (logits[i] < kth) logits[i] = -INFINITY;
        free(tmp);
    }
    float mx = -INFINITY;
    for (int64_t i = 0; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int64_t i = 0; i < V; i++) {
        probs[i] = logits[i] == -INFINITY ? 0.0f : (float)exp((double)logits[i] - mx);
        sum += probs[i];
    }
    for (int64_t i = 0; i < V; i++) probs[i] = (float)(probs[i] / sum);
    if (s->top_p < 1.0f) {
        // HF TopPLogitsWarper: sort ascending, remove the tokens whose cumulative probability
        // is <= 1 - top_p, always keeping the most likely one; then renormalise (softmax of
        // the surviving logits).
        scored *sc = ivl_malloc((size_t)V * sizeof *sc);
        for (int64_t i = 0; i < V; i++) sc[i] = (scored){probs[i], (int32_t)i};
        qsort(sc, (size_t)V, sizeof *sc, cmp_scored_desc);   // descending; walk it backwards
        double cum = 0;
        for (int64_t r = V - 1; r >= 1; r--) {
            cum += sc[r].v;
            if (cum <= 1.0 - s->top_p) probs[sc[r].i] = 0.0f;
            else break;
        }
        free(sc);
        double kept = 0;
        for (int64_t i = 0; i < V; i++) kept += probs[i];
        for (int64_t i = 0; i < V; i++) probs[i] = (float)(probs[i] / kept);
    }
}

int32_t ivl_sample_next(float *logits, int64_t V, const int32_t *history, int n_history,
                        const ivl_sampling *s, uint64_t *rng) {
    if (!s->do_sample) {   // greedy, after the repetition penalty (HF applies it to greedy too)
        apply_repetition_penalty(logits, V, history, n_history, s->repetition_penalty);
        int64_t best = 0;
        for (int64_t i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return (int32_t)best;
    }
    float *probs = ivl_malloc((size_t)V * sizeof *probs);
    ivl_sample_probs(logits, V, history, n_history, s, probs);
    double u = rng_uniform(rng), acc = 0;   // inverse-CDF draw over the kept tokens
    int32_t pick = -1, last = 0;
    for (int64_t i = 0; i < V; i++) {
        if (probs[i] <= 0) continue;
        last = (int32_t)i;
        acc += probs[i];
        if (u < acc) { pick = (int32_t)i; break; }
    }
    free(probs);
    return pick >= 0 ? pick : last;   // rounding left u above the total: the last kept token
}

// ---- the forward of one step on this rank's layers (one rank, or a pipeline stage) ----

int64_t *ivl_step_last_rows(const ivl_llm_seq *seqs, int nseq, int64_t *n_rows) {
    int64_t N = 0;
    int64_t *last = ivl_malloc((size_t)(nseq > 0 ? nseq : 1) * sizeof *last);
    for (int i = 0; i < nseq; i++) {
        N += seqs[i].n;
        last[i] = N - 1;
    }
    if (n_rows) *n_rows = N;
    return last;
}

void ivl_model_stage_forward(ivl_model *m, ivl_kv_cache *kv, const ivl_llm_seq *seqs, int nseq,
                             const int32_t *ids, const int64_t *img_row,
                             const ivl_tensor *image_embeds, ivl_tensor *x, const ivl_dump *dump) {
    ivl_backend *be = m->be;
    if (m->shard.has_embed) {
        ivl_model_embed_step(m, ids, img_row, ivl_tensor_rows(x), image_embeds, x);
        ivl_dump_tensor(dump, "llm.embeds", be, x);
    }
    ivl_llm_forward_layers(be, &m->cfg.llm, &m->shard, &m->llm, &m->tp, kv, seqs, nseq, x, dump);
}

// ---- one rank holding the whole model, without MPI (standalone harnesses: bench/gpu_e2e) ----

// Embedding + layers of one step; x [N, D] holds the last hidden rows, last[i] the row of
// sequence i's last token (freed by the caller).
static ivl_tensor local_forward(ivl_local_step *c, const ivl_llm_seq *seqs, int nseq,
                                const int32_t *ids, const int64_t *img_row,
                                const ivl_dump *dump, int64_t **last_out) {
    ivl_model *m = c->model;
    int64_t N = 0;
    int64_t *last = ivl_step_last_rows(seqs, nseq, &N);
    ivl_tensor x = ivl_backend_alloc_2d(m->be, N, m->cfg.llm.hidden);
    ivl_model_stage_forward(m, c->kv, seqs, nseq, ids, img_row, c->image_embeds, &x, dump);
    *last_out = last;
    return x;
}

static void local_run(void *vctx, const ivl_llm_seq *seqs, int nseq, const int32_t *ids,
                      const int64_t *img_row, float *logits, const ivl_dump *dump) {
    ivl_local_step *c = vctx;
    ivl_model *m = c->model;
    int64_t *last;
    ivl_tensor x = local_forward(c, seqs, nseq, ids, img_row, dump, &last);
    ivl_llm_logits(m->be, &m->cfg.llm, &m->shard, &m->llm, &m->tp, &x, last, nseq, logits, dump);
    m->be->free(m->be, &x);
    free(last);
}

// As local_run, then the greedy pick on the model's backend (only the ids come back).
static void local_run_argmax(void *vctx, const ivl_llm_seq *seqs, int nseq, const int32_t *ids,
                             const int64_t *img_row, int32_t *next_ids) {
    ivl_local_step *c = vctx;
    ivl_model *m = c->model;
    int64_t *last;
    ivl_tensor x = local_forward(c, seqs, nseq, ids, img_row, NULL, &last);
    ivl_llm_argmax(m->be, &m->cfg.llm, &m->shard, &m->llm, &x, last, nseq, next_ids);
    m->be->free(m->be, &x);
    free(last);
}

ivl_step ivl_model_local_step(ivl_local_step *ctx) {
    ivl_step s = {ctx, ctx->model->cfg.llm.vocab, local_run, NULL, NULL, NULL};
    const ivl_llm_shard *sh = &ctx->model->shard;
    if (sh->tp_size == 1 && sh->vocab_local == ctx->model->cfg.llm.vocab) s.run_argmax = local_run_argmax;
    return s;
}
