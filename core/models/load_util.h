// load_util.h - reading named tensors onto a backend with shape checks (shared by the
// ViT, projector and LLM loaders).
#ifndef IVL_MODELS_LOAD_UTIL_H
#define IVL_MODELS_LOAD_UTIL_H

#include <stdint.h>

#include "core/backend.h"
#include "core/models/weight_reader.h"

// Reads `name` (whole, or a row/column block) and uploads it to the backend in be->dtype,
// checking that the result has numel == expect_numel (when > 0) and viewing it as
// [rows, cols] (cols = last_dim). Returns 0 or -1 with ivl_last_error() naming the tensor.
int ivl_load_tensor(ivl_backend *be, const ivl_weight_reader *r, const char *name,
                    ivl_read_kind kind, int64_t start, int64_t count, int64_t rows,
                    int64_t cols, ivl_tensor *out);

// A linear layer's weight [rows, cols] (out, in): like ivl_load_tensor, but a quantized tensor
// of the source (weights/SCHEMA.md) is uploaded as a quantized backend weight (upload_quant;
// an error naming the tensor on a backend without quantized kernels).
int ivl_load_weight(ivl_backend *be, const ivl_weight_reader *r, const char *name,
                    ivl_read_kind kind, int64_t start, int64_t count, int64_t rows,
                    int64_t cols, ivl_tensor *out);

// Whole tensor that must hold exactly rows*cols elements.
static inline int ivl_load_2d(ivl_backend *be, const ivl_weight_reader *r, const char *name,
                              int64_t rows, int64_t cols, ivl_tensor *out) {
    return ivl_load_tensor(be, r, name, IVL_READ_ALL, 0, 0, rows, cols, out);
}
// Whole tensor of n elements, as a 1-D [n] tensor (norm weights, biases, LayerScale).
static inline int ivl_load_1d(ivl_backend *be, const ivl_weight_reader *r, const char *name,
                              int64_t n, ivl_tensor *out) {
    if (ivl_load_tensor(be, r, name, IVL_READ_ALL, 0, 0, 1, n, out) != 0) return -1;
    *out = ivl_tensor_reshape(out, 1, &n);
    return 0;
}

// Frees a backend tensor if it holds memory.
void ivl_free_tensor(ivl_backend *be, ivl_tensor *t);

#endif
