// model_write.h - a model file (weights/SCHEMA.md) whose tensors come from a weight reader
// instead of a Hugging Face checkpoint. `internvl convert --random-weights PRESET` uses it with
// the deterministic random reader of bench/driver/random_weights.h to make real-size test
// models (Mini-2B, the 26B) on machines that have no checkpoint, such as the lent GPU box:
// the product then runs its real path (HDF5, hyperslab shards, tokenizer) on them.
#ifndef IVL_WEIGHTS_MODEL_WRITE_H
#define IVL_WEIGHTS_MODEL_WRITE_H

#include "core/models/weight_reader.h"

typedef struct {
    const char *out_path;     // final file; written as out_path.tmp-<pid>, renamed when complete
    const char *config_json;  // config.json text (the model's sizes)
    const char *tok_dir;      // folder with tokenizer.model and the HF tokenizer json files
    const char *source;       // the "source" attribute ("random:mini-2b:seed=1")
    const ivl_weight_reader *values;   // every tensor of the config's plan, read whole as bf16
    int progress;             // progress bar on stderr
    int quantize_bits;        // 0, or 8 / 4: round-to-nearest quantization (weights/quantize.h)
    long long group_size;     // 0: the default group
    int quantize_vision;
} ivl_model_write_opts;

// 0, or -1 + ivl_last_error() naming the tensor or file; no partial file is left behind.
int ivl_model_file_write(const ivl_model_write_opts *o);

#endif
