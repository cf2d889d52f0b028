// model_file.h - reading the engine's HDF5 model file (schema: weights/SCHEMA.md).
// All functions return 0 on success or -1 with ivl_last_error() naming the file and tensor.
// Reads are counted so tests can prove a rank read only its share.
#ifndef IVL_WEIGHTS_MODEL_FILE_H
#define IVL_WEIGHTS_MODEL_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/models/config.h"
#include "core/tensor.h"

typedef struct ivl_model_file ivl_model_file;

int ivl_model_file_open(const char *path, ivl_model_file **out);
void ivl_model_file_close(ivl_model_file *mf);

const char *ivl_model_file_path(const ivl_model_file *mf);
const char *ivl_model_file_name(const ivl_model_file *mf);       // model_name attribute
const char *ivl_model_file_config_json(const ivl_model_file *mf); // NUL-terminated config.json

// Tokenizer and other blobs: name is e.g. "tokenizer.model". *data is malloc'ed (caller
// frees) and NUL-terminated one byte past *size. Returns -1 if absent.
int ivl_model_file_read_blob(ivl_model_file *mf, const char *group, const char *name,
                             void **data, size_t *size);

int ivl_model_file_has(ivl_model_file *mf, const char *tensor);
// Names of all tensors, sorted; *names and each name are malloc'ed (caller frees).
int ivl_model_file_list(ivl_model_file *mf, char ***names, int *count);
// Shape and stored dtype of a tensor.
int ivl_model_file_shape(ivl_model_file *mf, const char *tensor, int *ndim, int64_t *shape,
                         ivl_dtype *stored);

// Whole tensor into a new host tensor of dtype dt (F32, BF16 or F16; converted on read).
int ivl_model_file_read(ivl_model_file *mf, const char *tensor, ivl_dtype dt, ivl_tensor *out);
// Rows [r0, r0+n) of the first dimension (hyperslab), shape [n, ...rest].
int ivl_model_file_read_rows(ivl_model_file *mf, const char *tensor, int64_t r0, int64_t n,
                             ivl_dtype dt, ivl_tensor *out);
// Columns [c0, c0+n) of a 2-D tensor (hyperslab), shape [rows, n].
int ivl_model_file_read_cols(ivl_model_file *mf, const char *tensor, int64_t c0, int64_t n,
                             ivl_dtype dt, ivl_tensor *out);

// Quantized weights (weights/SCHEMA.md "Quantized tensors"). quant_info checks the packed
// data, scales and zero points against the attributes (every mismatch is an error naming the
// dataset and the numbers) and fills qi; bits = 0 for a float tensor.
typedef struct {
    int bits;                   // 8, 4; 0 = not quantized
    int64_t rows, cols, group;  // logical [rows, cols] (out, in); group divides cols
    ivl_dtype scale_dt;         // stored dtype of <name>.scales (read as f32)
    int has_zeros;              // <name>.zeros present
    char method[16];            // quant_method attribute ("rtn", "awq"), "" if absent
} ivl_quant_info;
int ivl_model_file_quant_info(ivl_model_file *mf, const char *tensor, ivl_quant_info *qi);
// The whole weight (axis -1), rows [r0, r0+n) (axis 0) or input columns [r0, r0+n) (axis 1,
// on group boundaries unless the tensor has one group per row) into a new host ivl_qweight.
int ivl_model_file_read_quant(ivl_model_file *mf, const char *tensor, int axis, int64_t r0,
                              int64_t n, ivl_qweight *out);

// Bytes the tensors whose names start with prefix take on a backend: float tensors at
// float_bytes per element, quantized ones packed with f32 scales (ivl_qweight_bytes);
// *quantized (may be NULL) = 1 if any is quantized.
int ivl_model_file_part_bytes(ivl_model_file *mf, const char *prefix, int float_bytes,
                              double *bytes, int *quantized);

// Bytes of tensor data read from the file so far (sum of stored-dtype sizes of the elements
// selected by every read call).
uint64_t ivl_model_file_bytes_read(const ivl_model_file *mf);

// The model's config parsed from /config/config.json, with llm.vocab set from the shape of
// llm.embed (the checkpoint's real vocabulary; Phi-3: 32020 or 32064).
int ivl_model_file_config(ivl_model_file *mf, ivl_model_config *cfg);

#endif
