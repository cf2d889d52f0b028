// tensor_io.h - plain HDF5 files of named arrays: the inputs of `internvl forward` (IN.h5)
// and the dumps (OUT.h5, docs/forward-io.md). Not the model file (that is model_file.h).
#ifndef IVL_WEIGHTS_TENSOR_IO_H
#define IVL_WEIGHTS_TENSOR_IO_H

#include <stdint.h>

#include "core/tensor.h"

typedef struct ivl_h5_out ivl_h5_out;

// Creates (truncates) path. 0 or -1 + ivl_last_error().
int ivl_h5_out_create(const char *path, ivl_h5_out **out);
// Writes a host tensor (F32 or I64; other float dtypes are converted to F32) as dataset name.
int ivl_h5_out_write(ivl_h5_out *f, const char *name, const ivl_tensor *t);
int ivl_h5_out_attr_i64(ivl_h5_out *f, const char *name, long long value);
int ivl_h5_out_close(ivl_h5_out *f);

// Reads dataset `name` of path into a new host tensor of dtype dt (F32 or I64; integer and
// float datasets are converted). Returns 1 if the dataset is absent (when optional), 0 on
// success, -1 on error.
int ivl_h5_read_array(const char *path, const char *name, ivl_dtype dt, int optional,
                      ivl_tensor *out);

#endif
