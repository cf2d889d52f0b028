// ops_test.h - shared helpers for the CPU op tests: deterministic random data, device
// tensors from host arrays, the tolerance check |a - ref| <= atol + rtol |ref| with the first
// mismatch and the max difference printed, and a way to assert that a bad call is rejected.
// Header-only on purpose: each test is one program (static functions, no shared library).
#ifndef IVL_OPS_TEST_H
#define IVL_OPS_TEST_H

#include "core/backend.h"
#include "core/check.h"

#include <math.h>
#include <omp.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_failures;

// xorshift64*: the same numbers on every machine, uniform in [lo, hi).
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static inline double rnd_uniform(double lo, double hi) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    uint64_t r = g_rng * 2685821657736338717ull;
    return lo + (hi - lo) * (double)(r >> 11) * (1.0 / 9007199254740992.0);
}
static inline float *rnd_array(int64_t n, double lo, double hi) {
    float *a = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) a[i] = (float)rnd_uniform(lo, hi);
    return a;
}

// Compares n values; on failure prints the first mismatch and the max diff, returns 0.
static inline int check_close(const char *what, const float *got, const double *ref, int64_t n,
                              double atol, double rtol) {
    int64_t bad = 0, first = -1, worst = 0;
    double maxdiff = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= atol + rtol * fabs(ref[i]))) {   // NaN counts as a mismatch
            if (first < 0) first = i;
            bad++;
        }
        if (d > maxdiff || d != d) {
            maxdiff = d;
            worst = i;
        }
    }
    if (bad) {
        printf("FAIL %s: %lld of %lld values off (atol %g, rtol %g); first at %lld: got %.9g "
               "want %.9g; max diff %.3g at %lld\n",
               what, (long long)bad, (long long)n, atol, rtol, (long long)first,
               (double)got[first], ref[first], maxdiff, (long long)worst);
        g_failures++;
        return 0;
    }
    printf("ok   %s (max diff %.3g)\n", what, maxdiff);
    return 1;
}

static inline void check_true(const char *what, int cond) {
    printf("%s %s\n", cond ? "ok  " : "FAIL", what);
    if (!cond) g_failures++;
}

// Device tensor [rows, cols] filled from a host f32 array.
static inline ivl_tensor dev_from(ivl_backend *be, const float *host, int64_t rows,
                                  int64_t cols) {
    ivl_tensor h = ivl_tensor_desc(IVL_F32, 2, (int64_t[]){rows, cols});
    h.data = (void *)host;
    h.loc = IVL_HOST;
    ivl_tensor t = be->alloc(be, IVL_F32, 2, h.shape);
    be->upload(be, &t, &h);
    return t;
}
// Downloads a device tensor into a new malloc'ed f32 array.
static inline float *host_from(ivl_backend *be, const ivl_tensor *t) {
    int64_t n = ivl_tensor_numel(t);
    float *a = malloc(sizeof(float) * (size_t)(n ? n : 1));
    ivl_tensor h = ivl_tensor_desc(IVL_F32, t->ndim, t->shape);
    h.data = a;
    h.loc = IVL_HOST;
    be->download(be, &h, t);
    return a;
}

// expect_rejected(stmt): stmt must end in IVL_CHECK. The abort hook jumps back here instead
// of ending the process (the message is still printed on stderr).
static jmp_buf g_jmp;
__attribute__((unused)) static void jump_hook(int code) { longjmp(g_jmp, code ? code : 1); }
#define expect_rejected(what, stmt)                                              \
    do {                                                                         \
        ivl_set_abort_hook(jump_hook);                                           \
        if (setjmp(g_jmp) == 0) {                                                \
            stmt;                                                                \
            check_true(what " is rejected", 0);                                  \
        } else {                                                                 \
            check_true(what " is rejected", 1);                                  \
        }                                                                        \
        ivl_set_abort_hook(NULL);                                                \
    } while (0)

// Thread counts every test runs with: 1, an odd count (uneven splits) and 4 (a 2 x 2 grid of
// matmul blocks). ctest pins OMP_NUM_THREADS=1; the kernels must be right for any count.
static const int g_thread_counts[] = {1, 3, 4};
#define FOR_THREADS(nt)                                                          \
    for (int ti_ = 0, nt; ti_ < 3 && (nt = g_thread_counts[ti_], omp_set_num_threads(nt), 1); ti_++)

static inline int finish(const char *name) {
    if (g_failures) printf("%s: %d check(s) FAILED\n", name, g_failures);
    else printf("%s: all checks passed\n", name);
    return g_failures ? 1 : 0;
}

#endif
