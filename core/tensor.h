// tensor.h - dtypes, bf16/f16 conversion and the tensor descriptor.
//
// A tensor is a descriptor over contiguous row-major memory that lives either in host memory
// or in a backend's memory (device). Shapes are outermost first: shape[ndim-1] is the
// innermost (contiguous) dimension. Most engine tensors are 2-D [rows, cols]; "rows" below
// always means numel / shape[ndim-1].
#ifndef IVL_TENSOR_H
#define IVL_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    IVL_F32  = 0,
    IVL_BF16 = 1,
    IVL_F16  = 2,
    IVL_I32  = 3,
    IVL_I64  = 4,
    IVL_U8   = 5,
    // Quantized weights (weights/SCHEMA.md "Quantized tensors"): a [rows, cols] weight whose
    // data points to an ivl_qweight (below), not to elements. Only backend weight tensors made
    // by upload_quant have these dtypes; no view, copy or conversion applies to them.
    IVL_Q8   = 6,   // int8, scales per group of cols (per output row when group == cols)
    IVL_Q4   = 7,   // 4-bit unsigned with a zero point per group
} ivl_dtype;

typedef enum {
    IVL_HOST   = 0,   // plain host memory
    IVL_DEVICE = 1,   // memory owned by a backend (for the CPU backend this is host memory too)
} ivl_location;

#define IVL_MAX_DIMS 4

typedef struct ivl_tensor {
    ivl_dtype dtype;
    int ndim;
    int64_t shape[IVL_MAX_DIMS];
    void *data;
    ivl_location loc;
} ivl_tensor;

// A quantized weight [rows, cols] (out, in), host or backend memory: weight (r, k) is
//   scales[r, k / group] * (q(r, k) - zeros[r, k / group])     (zeros NULL: 0).
// Host layout (the file's, weights/SCHEMA.md): int8: q is int8 [rows, cols]; int4: q is uint8
// [rows, cols / 2], element k in the low nibble of byte k / 2 when k is even, in the high
// nibble when k is odd. A backend may keep its own layout after upload_quant.
// group divides cols; int4 needs group % 32 == 0 and zeros (0..15).
typedef struct ivl_qweight {
    int bits;              // 8 or 4
    int64_t rows, cols, group;
    void *q;
    float *scales;         // [rows, cols / group]
    uint8_t *zeros;        // [rows, cols / group] or NULL
} ivl_qweight;

// Bytes of the packed integers, scales (as stored: 4 or 2 bytes each) and zero points.
int64_t ivl_qweight_bytes(int bits, int64_t rows, int64_t cols, int64_t group,
                          int scale_bytes, int has_zeros);
// The weight as f32 [rows, cols] into w (host layout), exactly as the formula above.
void ivl_qweight_dequant(const ivl_qweight *q, float *w);
void ivl_qweight_free_host(ivl_qweight *q);

size_t ivl_dtype_size(ivl_dtype dt);
const char *ivl_dtype_name(ivl_dtype dt);

// bf16: round to nearest even (NaN stays NaN), as torch's .to(torch.bfloat16).
static inline uint16_t ivl_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v = {f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
    uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)((v.u + rounding) >> 16);
}
static inline float ivl_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}
uint16_t ivl_f32_to_f16(float f);   // IEEE half, round to nearest even
float ivl_f16_to_f32(uint16_t h);

// Converts n elements between float dtypes (F32, BF16, F16); same dtype is a memcpy.
void ivl_convert(void *dst, ivl_dtype dst_dt, const void *src, ivl_dtype src_dt, size_t n);

int64_t ivl_tensor_numel(const ivl_tensor *t);
size_t ivl_tensor_nbytes(const ivl_tensor *t);
int64_t ivl_tensor_cols(const ivl_tensor *t);    // shape[ndim-1]
int64_t ivl_tensor_rows(const ivl_tensor *t);    // numel / cols

// Descriptor only (no memory): ivl_tensor_desc(IVL_F32, 2, (int64_t[]){rows, cols}).
ivl_tensor ivl_tensor_desc(ivl_dtype dt, int ndim, const int64_t *shape);
// Host tensor with zeroed memory; free with ivl_tensor_free_host.
ivl_tensor ivl_tensor_host(ivl_dtype dt, int ndim, const int64_t *shape);
ivl_tensor ivl_tensor_host_2d(ivl_dtype dt, int64_t rows, int64_t cols);
void ivl_tensor_free_host(ivl_tensor *t);

// Views (no copy; work for host and device memory alike).
// Rows r0 .. r0+n-1 of the first dimension; the view keeps the other dimensions.
ivl_tensor ivl_tensor_slice(const ivl_tensor *t, int64_t r0, int64_t n);
// The same memory seen as [rows, cols] (rows*cols must equal numel).
ivl_tensor ivl_tensor_view_2d(const ivl_tensor *t, int64_t rows, int64_t cols);
// The same memory with another shape of the same numel.
ivl_tensor ivl_tensor_reshape(const ivl_tensor *t, int ndim, const int64_t *shape);

// "[3, 1025, 64] f32" into buf, for messages.
const char *ivl_tensor_shape_str(const ivl_tensor *t, char *buf, size_t n);

// 1 if the n row indices are all different (scatter_rows' destinations): O(n) when they
// increase, else sorted on a copy.
int ivl_rows_distinct(const int64_t *rows, int64_t n);

#endif
