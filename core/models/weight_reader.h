// weight_reader.h - how model code gets its tensors, without knowing about files or ranks.
// weights/ implements this over the HDF5 model file; tests may implement it over memory.
// A read returns a new HOST tensor (F32, BF16 or F16 as asked) holding either the whole
// tensor or one block of rows / columns, so a tensor-parallel rank reads only its share.
#ifndef IVL_MODELS_WEIGHT_READER_H
#define IVL_MODELS_WEIGHT_READER_H

#include <stdint.h>

#include "core/tensor.h"

typedef enum {
    IVL_READ_ALL  = 0,   // the whole tensor
    IVL_READ_ROWS = 1,   // rows [start, start+count) of the first dimension
    IVL_READ_COLS = 2,   // columns [start, start+count) of a 2-D tensor
} ivl_read_kind;

typedef struct ivl_weight_reader {
    void *ctx;
    // 0 on success; -1 with ivl_last_error() naming the tensor.
    int (*read)(void *ctx, const char *name, ivl_read_kind kind, int64_t start, int64_t count,
                ivl_dtype dt, ivl_tensor *out);
    int (*has)(void *ctx, const char *name);
    // Shape of a stored tensor (for the vocab size and shape checks).
    int (*shape)(void *ctx, const char *name, int *ndim, int64_t *shape);
    // Quantized tensors (weights/SCHEMA.md "Quantized tensors"); both NULL when the source
    // has none. quant_bits: 8 or 4 for a quantized tensor, 0 for a float one, -1 + error.
    // read_quant: the whole weight, a block of rows, or a block of input columns (which must
    // start and end on group boundaries) as a new host ivl_qweight (host layout).
    int (*quant_bits)(void *ctx, const char *name);
    int (*read_quant)(void *ctx, const char *name, ivl_read_kind kind, int64_t start,
                      int64_t count, ivl_qweight *out);
} ivl_weight_reader;

#endif
