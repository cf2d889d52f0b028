// compare_dumps.c - compares an engine dump (internvl forward --dump-layers) with the Python
// reference's dump, name by name in forward order, and reports the first tensor and element
// that differ.
//
// Tolerance (CPU f32 engine vs f32 reference): for every float tensor,
//     max |engine - ref| <= tol * max |ref|       (tol = 1e-4 by default, --tol to change)
// i.e. a relative error measured against the tensor's scale: both sides compute in f32 but
// in different orders (BLAS blocking, softmax, erf), which gives ~1e-6 relative differences;
// 1e-4 leaves room for accumulation over layers while a wrong layout, a missed LayerScale or
// a wrong RoPE shows up as O(1). generated_ids must be identical.
//
// usage: compare_dumps REF.h5 ENGINE.h5 VIT_LAYERS LLM_LAYERS [--tol T] [--no-layers]
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "weights/tensor_io.h"

static int compare_float(const char *name, const char *ref_path, const char *eng_path, double tol,
                         int optional) {
    ivl_tensor r = {0}, e = {0};
    int rc = ivl_h5_read_array(ref_path, name, IVL_F32, optional, &r);
    if (rc == 1) return 0;   // absent in the reference and optional (e.g. no images)
    if (rc < 0 || ivl_h5_read_array(eng_path, name, IVL_F32, 0, &e) != 0) {
        printf("FAIL %-16s %s\n", name, ivl_last_error());
        return 1;
    }
    if (ivl_tensor_numel(&r) != ivl_tensor_numel(&e) || r.ndim != e.ndim) {
        char a[96], b[96];
        printf("FAIL %-16s shape: reference %s, engine %s\n", name,
               ivl_tensor_shape_str(&r, a, sizeof a), ivl_tensor_shape_str(&e, b, sizeof b));
        return 1;
    }
    const float *x = r.data, *y = e.data;
    int64_t n = ivl_tensor_numel(&r), first = -1, worst = 0;
    double scale = 0, maxd = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(x[i]));
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)x[i] - y[i]);
        if (!(d <= tol * scale) && first < 0) first = i;   // NaN counts as a mismatch
        if (!(d <= maxd)) { maxd = d; worst = i; }
    }
    double rel = scale > 0 ? maxd / scale : maxd;
    int fail = first >= 0;
    printf("%s %-16s max|diff| %.3e  max|ref| %.3e  rel %.3e (tol %.0e)\n", fail ? "FAIL" : "ok  ",
           name, maxd, scale, rel, tol);
    if (fail) {
        int64_t cols = r.shape[r.ndim - 1];
        printf("     first mismatch at flat index %lld (row %lld, col %lld): ref %.7g engine %.7g\n",
               (long long)first, (long long)(first / cols), (long long)(first % cols), x[first],
               y[first]);
        printf("     worst at flat index %lld: ref %.7g engine %.7g\n", (long long)worst, x[worst],
               y[worst]);
    }
    ivl_tensor_free_host(&r);
    ivl_tensor_free_host(&e);
    return fail;
}

static int compare_ids(const char *ref_path, const char *eng_path) {
    ivl_tensor r = {0}, e = {0};
    if (ivl_h5_read_array(ref_path, "generated_ids", IVL_I64, 0, &r) ||
        ivl_h5_read_array(eng_path, "generated_ids", IVL_I64, 0, &e)) {
        printf("FAIL generated_ids %s\n", ivl_last_error());
        return 1;
    }
    if (ivl_tensor_numel(&r) != ivl_tensor_numel(&e)) {
        printf("FAIL generated_ids: different shapes\n");
        return 1;
    }
    const int64_t *x = r.data, *y = e.data, cols = r.shape[r.ndim - 1];
    for (int64_t i = 0; i < ivl_tensor_numel(&r); i++)
        if (x[i] != y[i]) {
            printf("FAIL generated_ids: sequence %lld differs first at token %lld: ref %lld engine %lld\n",
                   (long long)(i / cols), (long long)(i % cols), (long long)x[i], (long long)y[i]);
            return 1;
        }
    printf("ok   generated_ids identical (%lld sequences x %lld)\n", (long long)r.shape[0],
           (long long)cols);
    ivl_tensor_free_host(&r);
    ivl_tensor_free_host(&e);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: compare_dumps REF.h5 ENGINE.h5 VIT_LAYERS LLM_LAYERS [--tol T] [--no-layers]\n");
        return 2;
    }
    const char *ref = argv[1], *eng = argv[2];
    int vit_layers = atoi(argv[3]), llm_layers = atoi(argv[4]), layers = 1;
    double tol = 1e-4;
    for (int i = 5; i < argc; i++) {
        if (!strcmp(argv[i], "--tol") && i + 1 < argc) tol = atof(argv[++i]);
        else if (!strcmp(argv[i], "--no-layers")) layers = 0;
    }
    // Forward order, so the first failure printed is where the divergence starts.
    int fails = 0;
    char name[64];
    if (layers) {
        fails += compare_float("vit.embeddings", ref, eng, tol, 1);
        for (int l = 0; l < vit_layers; l++) {
            snprintf(name, sizeof name, "vit.layer.%d", l);
            fails += compare_float(name, ref, eng, tol, 1);
        }
        fails += compare_float("pixel_shuffle", ref, eng, tol, 1);
    }
    fails += compare_float("vision_embeds", ref, eng, tol, 1);
    if (layers) {
        fails += compare_float("llm.embeds", ref, eng, tol, 0);
        for (int l = 0; l < llm_layers; l++) {
            snprintf(name, sizeof name, "llm.layer.%d", l);
            fails += compare_float(name, ref, eng, tol, 0);
        }
        fails += compare_float("llm.norm", ref, eng, tol, 0);
    }
    fails += compare_float("prefill_logits", ref, eng, tol, 0);
    fails += compare_ids(ref, eng);
    printf("%s: %d tensor(s) differ\n", fails ? "FAILED" : "PASSED", fails);
    return fails ? 1 : 0;
}
