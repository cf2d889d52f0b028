// sampling_tool.c - exposes the engine's sampling to tests/models/test_sampling.py.
//   sampling_tool probs  T TOPK TOPP REP  < "V logits... H history..."  -> V probabilities
//   sampling_tool draws  T TOPK TOPP REP SEED N  < same                  -> counts per token
//   sampling_tool greedy REP                < same                       -> the argmax id
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/models/generate.h"

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    long V, H;
    if (scanf("%ld", &V) != 1 || V < 1) return 2;
    float *logits = ivl_malloc((size_t)V * sizeof *logits), *work = ivl_malloc((size_t)V * sizeof *work);
    for (long i = 0; i < V; i++)
        if (scanf("%f", &logits[i]) != 1) return 2;
    if (scanf("%ld", &H) != 1 || H < 0) return 2;
    int32_t *hist = ivl_malloc((size_t)(H + 1) * sizeof *hist);
    for (long i = 0; i < H; i++)
        if (scanf("%d", &hist[i]) != 1) return 2;
    ivl_sampling s = ivl_sampling_default();
    if (!strcmp(argv[1], "greedy")) {
        s.repetition_penalty = (float)atof(argv[2]);
        uint64_t rng = 1;
        printf("%d\n", ivl_sample_next(logits, V, hist, (int)H, &s, &rng));
        free(logits), free(work), free(hist);   // (freed so the ASan suite sees no leak)
        return 0;
    }
    if (argc < 6) return 2;
    s.do_sample = 1;
    s.temperature = (float)atof(argv[2]);
    s.top_k = atoi(argv[3]);
    s.top_p = (float)atof(argv[4]);
    s.repetition_penalty = (float)atof(argv[5]);
    if (!strcmp(argv[1], "probs")) {
        float *p = ivl_malloc((size_t)V * sizeof *p);
        ivl_sample_probs(logits, V, hist, (int)H, &s, p);
        for (long i = 0; i < V; i++) printf("%.9g\n", p[i]);
        free(p), free(logits), free(work), free(hist);
        return 0;
    }
    if (argc < 8) return 2;
    uint64_t rng = strtoull(argv[6], NULL, 10);
    long n = atol(argv[7]);
    long *count = ivl_calloc((size_t)V, sizeof *count);
    for (long d = 0; d < n; d++) {
        memcpy(work, logits, (size_t)V * sizeof *work);
        count[ivl_sample_next(work, V, hist, (int)H, &s, &rng)]++;
    }
    for (long i = 0; i < V; i++) printf("%ld\n", count[i]);
    free(count), free(logits), free(work), free(hist);
    return 0;
}
