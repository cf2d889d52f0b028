// fuzz_model_file.c - the HDF5 model loader on mutated model files (a download cut short, a
// flipped bit, a hostile file). The input is a whole .h5 file (seeds: small model files made
// by make_seeds.py in the converter's layout). Exercises what a rank does at load: open,
// config, tensor list, shapes, whole/row/column reads in every dtype, tokenizer blobs.
// Crashes inside libhdf5 itself are reported upstream, not fixed here (README.md).
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/tensor.h"
#include "fuzz_util.h"
#include "weights/model_file.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_common();
    return 0;
}

// Tensors of at most this many elements are read (a corrupt shape can claim terabytes; the
// loader's allocation is then the reader's problem, not HDF5's).
#define MAX_READ_ELEMS (1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_file("model.h5", data, size);
    ivl_model_file *mf = NULL;
    if (ivl_model_file_open(path, &mf)) {
        if (!ivl_last_error()[0]) __builtin_trap();
        return 0;
    }
    ivl_model_config *cfg = calloc(1, sizeof *cfg);
    ivl_model_file_config(mf, cfg);
    free(cfg);
    void *blob;
    size_t n;
    if (ivl_model_file_read_blob(mf, "tokenizer", "tokenizer_config.json", &blob, &n) == 0)
        free(blob);
    char **names = NULL;
    int count = 0;
    if (ivl_model_file_list(mf, &names, &count) == 0) {
        for (int i = 0; i < count; i++) {
            int nd = 0;
            int64_t shape[IVL_MAX_DIMS];
            ivl_dtype st;
            if (ivl_model_file_shape(mf, names[i], &nd, shape, &st) == 0) {
                int64_t el = 1;
                for (int d = 0; d < nd && el <= MAX_READ_ELEMS; d++)
                    el = shape[d] < 0 ? MAX_READ_ELEMS + 1 : el * (shape[d] ? shape[d] : 1);
                if (el <= MAX_READ_ELEMS) {
                    ivl_tensor t;
                    ivl_dtype dt = (ivl_dtype[]){IVL_F32, IVL_BF16, IVL_F16}[i % 3];
                    if (ivl_model_file_read(mf, names[i], dt, &t) == 0) ivl_tensor_free_host(&t);
                    if (nd >= 1 && shape[0] > 1 &&
                        ivl_model_file_read_rows(mf, names[i], 1, shape[0] - 1, dt, &t) == 0)
                        ivl_tensor_free_host(&t);
                    if (nd == 2 && shape[1] > 1 &&
                        ivl_model_file_read_cols(mf, names[i], 0, 1, dt, &t) == 0)
                        ivl_tensor_free_host(&t);
                }
            }
            free(names[i]);
        }
        free(names);
    }
    ivl_model_file_close(mf);
    return 0;
}
