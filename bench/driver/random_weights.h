// random_weights.h - a weight reader (core/models/weight_reader.h) that makes up every tensor
// of a config instead of reading a file, so `internvl bench --random-weights` needs no
// checkpoint. Values are deterministic: element (r, c) of tensor `name` depends only on the
// seed, the name and its index in the FULL tensor, so a tensor-parallel rank that reads a
// row or column block gets exactly the block of the tensor a single rank would see.
// Scale: matrices and embeddings uniform with std 0.02 (the checkpoints' initializer_range),
// biases std 0.02, norm weights 1 +- 0.02, LayerScale 1.0 (300M) / 0.1 (6B), like the
// models' init, so activations stay finite through every layer.
#ifndef IVL_BENCH_RANDOM_WEIGHTS_H
#define IVL_BENCH_RANDOM_WEIGHTS_H

#include <stdint.h>

#include "core/models/config.h"
#include "core/models/weight_reader.h"

typedef struct {
    ivl_model_config cfg;
    uint64_t seed;
    int64_t values_made;    // elements synthesised so far (for the log)
} ivl_random_weights;

// Fills r to read from rw (which must outlive r).
void ivl_random_weights_init(ivl_random_weights *rw, const ivl_model_config *cfg, uint64_t seed,
                             ivl_weight_reader *r);

// Shape of a tensor of the model (names of weights/SCHEMA.md): 0, or -1 for an unknown name.
int ivl_random_weights_shape(const ivl_model_config *cfg, const char *name, int *ndim,
                             int64_t *shape);

#endif
