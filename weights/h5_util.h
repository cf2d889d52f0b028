// h5_util.h - HDF5 helpers shared by the converter, the loader and `internvl info`:
// the on-disk float types (bf16 as a custom HDF5 float so h5dump prints numbers), the HDF5
// error message as text, and the H5_CHECK family of macros.
//
// HDF5's own error printing is switched off (ivl_h5_init); errors are reported through:
//   H5_CHECK(call)            unrecoverable (library misuse, out of resources): ivl_fatal_call
//   H5_TRY(call, fmt, ...)    status boundary: on failure sets ivl_errorf("<fmt>: <hdf5 msg>"),
//                             sets rc = -1 and jumps to the enclosing function's `fail:` label.
#ifndef IVL_WEIGHTS_H5_UTIL_H
#define IVL_WEIGHTS_H5_UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdio.h>

#include "core/check.h"
#include "core/tensor.h"

// Once per thread before any other HDF5 call: silences HDF5's automatic error stack printing.
void ivl_h5_init(void);

// The innermost messages of the current HDF5 error stack ("H5Dwrite: file write failed:
// ... errno = 27 ...") into buf; returns buf.
const char *ivl_h5_error_message(char *buf, size_t n);

// Canonical file/memory types for the float dtypes (owned by this module, do not close).
hid_t ivl_h5_type_bf16(void);
hid_t ivl_h5_type_f16(void);
hid_t ivl_h5_type_f32(void);
hid_t ivl_h5_type_for(ivl_dtype dt);     // one of the three above; -1 for other dtypes
// Classifies a dataset's float type: IVL_F32/BF16/F16, or -1 if it is none of them.
int ivl_h5_dtype_of(hid_t type);

// Fixed-length string attribute helpers; return 0 or -1 (with ivl_errorf).
int ivl_h5_write_str_attr(hid_t obj, const char *name, const char *value);
int ivl_h5_write_i64_attr(hid_t obj, const char *name, long long value);
// A 1-D uint8 dataset `name` of n bytes in group (config and tokenizer files). 0, or -1 +
// ivl_last_error() naming the dataset.
int ivl_h5_write_bytes(hid_t group, const char *name, const void *data, size_t n);
// Reads a string attribute into a new malloc'ed string (*out); -1 if absent or not a string.
int ivl_h5_read_str_attr(hid_t obj, const char *name, char **out);
int ivl_h5_read_i64_attr(hid_t obj, const char *name, long long *out);

#define H5_CHECK(x)                                                                     \
    do {                                                                                \
        if ((x) < 0) {                                                                  \
            char h5m_[1024];                                                            \
            ivl_fatal_call("HDF5", #x, ivl_h5_error_message(h5m_, sizeof h5m_), __FILE__, \
                           __LINE__, __func__);                                         \
        }                                                                               \
    } while (0)

#define H5_TRY(x, ...)                                                                  \
    do {                                                                                \
        if ((x) < 0) {                                                                  \
            char h5m_[1024], h5w_[8192];                                                \
            ivl_h5_error_message(h5m_, sizeof h5m_);                                    \
            snprintf(h5w_, sizeof h5w_, __VA_ARGS__);                                   \
            rc = ivl_errorf("%s: %s", h5w_, h5m_);                                      \
            goto fail;                                                                  \
        }                                                                               \
    } while (0)

#endif
