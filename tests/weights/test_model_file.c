// test_model_file.c - the loader against a converted file:
//   test_model_file FILE.h5
// For every tensor: the whole tensor read as f32, bf16 and f16 agree with each other; every
// row block and (2-D) column block of a few block counts equals the same slice of the full
// read; the byte counter adds exactly the stored bytes of each selection; out-of-range
// blocks, missing tensors and bad dtypes fail with messages naming the tensor.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/models/config.h"
#include "weights/model_file.h"

static int g_fail;
#define EXPECT(cond, ...)                                                \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);         \
            fprintf(stderr, __VA_ARGS__);                                \
            fprintf(stderr, "\n");                                       \
            g_fail++;                                                    \
        }                                                                \
    } while (0)

static void must(int rc, const char *what) {
    if (rc) {
        fprintf(stderr, "FAIL: %s: %s\n", what, ivl_last_error());
        exit(1);
    }
}

// Splits n into k nearly equal blocks, like a tensor-parallel shard rule would.
static void block(int64_t n, int k, int i, int64_t *b0, int64_t *bn) {
    *b0 = n * i / k;
    *bn = n * (i + 1) / k - *b0;
}

static void check_tensor(ivl_model_file *mf, const char *name) {
    int ndim;
    int64_t shape[IVL_MAX_DIMS];
    ivl_dtype st;
    must(ivl_model_file_shape(mf, name, &ndim, shape, &st), name);
    ivl_tensor full, fb, fh;
    uint64_t b0 = ivl_model_file_bytes_read(mf);
    must(ivl_model_file_read(mf, name, IVL_F32, &full), name);
    int64_t numel = ivl_tensor_numel(&full);
    EXPECT(ivl_model_file_bytes_read(mf) - b0 == (uint64_t)numel * ivl_dtype_size(st),
           "%s: byte counter", name);
    EXPECT(full.ndim == ndim && full.dtype == IVL_F32, "%s: shape/dtype of read", name);
    // Reading in the stored dtype is bit-exact; the other float dtype agrees after rounding.
    must(ivl_model_file_read(mf, name, IVL_BF16, &fb), name);
    must(ivl_model_file_read(mf, name, IVL_F16, &fh), name);
    for (int64_t i = 0; i < numel; i++) {
        float f = ((float *)full.data)[i];
        uint16_t b = ((uint16_t *)fb.data)[i], h = ((uint16_t *)fh.data)[i];
        if (st == IVL_BF16) EXPECT(ivl_bf16_to_f32(b) == f, "%s[%lld]: bf16 read", name, (long long)i);
        if (st == IVL_F16) EXPECT(ivl_f16_to_f32(h) == f, "%s[%lld]: f16 read", name, (long long)i);
        EXPECT(b == ivl_f32_to_bf16(f), "%s[%lld]: bf16 conversion", name, (long long)i);
        EXPECT(h == ivl_f32_to_f16(f), "%s[%lld]: f16 conversion", name, (long long)i);
        if (g_fail > 20) exit(1);
    }
    ivl_tensor_free_host(&fb);
    ivl_tensor_free_host(&fh);

    int64_t rows = shape[0], rowlen = numel / (rows ? rows : 1);
    int ks[] = {1, 2, 3, 4};
    for (int ki = 0; ki < 4; ki++) {
        for (int i = 0; i < ks[ki]; i++) {
            int64_t r0, rn;
            block(rows, ks[ki], i, &r0, &rn);
            ivl_tensor part;
            uint64_t before = ivl_model_file_bytes_read(mf);
            must(ivl_model_file_read_rows(mf, name, r0, rn, IVL_F32, &part), name);
            EXPECT(ivl_model_file_bytes_read(mf) - before == (uint64_t)(rn * rowlen) * ivl_dtype_size(st),
                   "%s rows: byte counter", name);
            EXPECT(part.shape[0] == rn && part.ndim == ndim, "%s rows: shape", name);
            EXPECT(!memcmp(part.data, (float *)full.data + r0 * rowlen,
                           (size_t)(rn * rowlen) * sizeof(float)),
                   "%s rows [%lld,+%lld) differ from the full read", name, (long long)r0, (long long)rn);
            ivl_tensor_free_host(&part);
            if (ndim != 2) continue;
            int64_t c0, cn, cols = shape[1];
            block(cols, ks[ki], i, &c0, &cn);
            must(ivl_model_file_read_cols(mf, name, c0, cn, IVL_F32, &part), name);
            EXPECT(part.shape[0] == rows && part.shape[1] == cn, "%s cols: shape", name);
            for (int64_t r = 0; r < rows; r++)
                if (memcmp((float *)part.data + r * cn, (float *)full.data + r * cols + c0,
                           (size_t)cn * sizeof(float))) {
                    EXPECT(0, "%s cols [%lld,+%lld) row %lld differ", name, (long long)c0,
                           (long long)cn, (long long)r);
                    break;
                }
            ivl_tensor_free_host(&part);
        }
    }
    ivl_tensor_free_host(&full);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_model_file FILE.h5\n");
        return 2;
    }
    ivl_model_file *mf;
    must(ivl_model_file_open(argv[1], &mf), "open");
    ivl_model_config cfg;
    must(ivl_model_file_config(mf, &cfg), "config");
    EXPECT(strlen(ivl_model_file_config_json(mf)) > 100, "config.json text");
    EXPECT(ivl_model_file_name(mf)[0], "model name");
    void *blob;
    size_t n;
    must(ivl_model_file_read_blob(mf, "tokenizer", "tokenizer.model", &blob, &n), "tokenizer.model");
    EXPECT(n > 0 && ((char *)blob)[n] == 0, "tokenizer blob NUL-terminated");
    free(blob);
    EXPECT(ivl_model_file_read_blob(mf, "tokenizer", "nope.json", &blob, &n) == -1 &&
               strstr(ivl_last_error(), "nope.json"), "absent blob");

    char **names;
    int count;
    must(ivl_model_file_list(mf, &names, &count), "list");
    EXPECT(count > 10, "tensor count %d", count);
    for (int i = 0; i < count; i++) {
        check_tensor(mf, names[i]);
        free(names[i]);
    }
    free(names);

    // Errors name the tensor.
    ivl_tensor t;
    EXPECT(ivl_model_file_read(mf, "llm.no_such", IVL_F32, &t) == -1 &&
               strstr(ivl_last_error(), "llm.no_such"), "missing tensor: %s", ivl_last_error());
    int64_t V = cfg.llm.vocab, D = cfg.llm.hidden;
    EXPECT(ivl_model_file_read_rows(mf, "llm.embed", V - 1, 2, IVL_F32, &t) == -1 &&
               strstr(ivl_last_error(), "llm.embed"), "rows past the end: %s", ivl_last_error());
    EXPECT(ivl_model_file_read_cols(mf, "llm.embed", D, 1, IVL_F32, &t) == -1,
           "cols past the end");
    EXPECT(ivl_model_file_read_cols(mf, "llm.norm", 0, 1, IVL_F32, &t) == -1 &&
               strstr(ivl_last_error(), "2-D"), "cols of a 1-D tensor");
    EXPECT(ivl_model_file_read(mf, "llm.norm", IVL_I32, &t) == -1, "read as i32");
    ivl_model_file_close(mf);

    EXPECT(ivl_model_file_open("/nonexistent/x.h5", &mf) == -1 &&
               strstr(ivl_last_error(), "/nonexistent/x.h5"), "open missing file");
    if (g_fail) {
        fprintf(stderr, "%d failures\n", g_fail);
        return 1;
    }
    printf("OK %s: %d tensors, whole/rows/cols reads consistent\n", argv[1], count);
    return 0;
}
