// test_cpu_scatter_rows.c - scatter_rows (dst[rows[i], :] = src[i, :]): rows in any order,
// one row, none, every row; the untouched rows keep their values; and the bad calls refused
// (row out of range, repeated row, src shape, overlapping tensors, NULL rows).
#include "tests/ops/ops_test.h"

static void run_case(ivl_backend *be, int64_t R, int64_t C, const int64_t *rows, int64_t n) {
    float *d0 = rnd_array(R * C, -1, 1), *s = rnd_array(n * C, 2, 3);
    ivl_tensor dst = dev_from(be, d0, R, C), src = dev_from(be, s, n, C);
    be->scatter_rows(be, &dst, &src, rows, n);
    float *got = host_from(be, &dst);
    double *want = malloc(sizeof(double) * (size_t)(R * C));
    for (int64_t i = 0; i < R * C; i++) want[i] = d0[i];
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < C; c++) want[rows[i] * C + c] = s[i * C + c];
    char what[96];
    snprintf(what, sizeof what, "scatter_rows %lld rows into [%lld, %lld]", (long long)n,
             (long long)R, (long long)C);
    check_close(what, got, want, R * C, 0, 0);
    be->free(be, &dst), be->free(be, &src);
    free(d0), free(s), free(got), free(want);
}

int main(void) {
    ivl_backend *be = ivl_backend_cpu_create();
    // KV-cache style: 4 sequences in slots of 16 rows, appended out of slot order.
    const int64_t kv_rows[] = {3 * 16 + 5, 0 * 16 + 9, 2 * 16 + 15, 1 * 16 + 0};
    run_case(be, 64, 256, kv_rows, 4);
    const int64_t one[] = {7};
    run_case(be, 10, 3, one, 1);
    run_case(be, 10, 3, NULL, 0);
    int64_t all[12];
    for (int i = 0; i < 12; i++) all[i] = 11 - i;   // every row, reversed
    run_case(be, 12, 5, all, 12);
    const int64_t prefill[] = {20, 21, 22, 23, 24, 25};   // one sequence's new rows
    run_case(be, 32, 128, prefill, 6);

    ivl_tensor dst = ivl_backend_alloc_2d(be, 10, 8), src = ivl_backend_alloc_2d(be, 3, 8);
    ivl_tensor src7 = ivl_backend_alloc_2d(be, 3, 7), src2 = ivl_backend_alloc_2d(be, 2, 8);
    const int64_t good[] = {1, 5, 9}, past[] = {1, 10, 2}, neg[] = {1, -1, 2}, dup[] = {4, 1, 4};
    be->scatter_rows(be, &dst, &src, good, 3);
    check_true("scatter_rows accepts a valid call", 1);
    expect_rejected("scatter_rows: row past dst", be->scatter_rows(be, &dst, &src, past, 3));
    expect_rejected("scatter_rows: negative row", be->scatter_rows(be, &dst, &src, neg, 3));
    expect_rejected("scatter_rows: repeated row", be->scatter_rows(be, &dst, &src, dup, 3));
    expect_rejected("scatter_rows: src row width differs",
                    be->scatter_rows(be, &dst, &src7, good, 3));
    expect_rejected("scatter_rows: src rows differ from n",
                    be->scatter_rows(be, &dst, &src2, good, 3));
    expect_rejected("scatter_rows: NULL rows", be->scatter_rows(be, &dst, &src, NULL, 3));
    ivl_tensor lo = ivl_tensor_slice(&dst, 0, 3), hi = ivl_tensor_slice(&dst, 2, 3);
    const int64_t r3[] = {0, 1, 2};
    expect_rejected("scatter_rows: dst and src overlap", be->scatter_rows(be, &lo, &hi, r3, 3));
    be->free(be, &dst), be->free(be, &src), be->free(be, &src7), be->free(be, &src2);
    ivl_backend_destroy(be);
    return finish("test_cpu_scatter_rows");
}
