// model_source.h - an opened model file ready for the model code: its parsed config, a
// weight reader (core/models/weight_reader.h) over it, and its tokenizer.
#ifndef IVL_WEIGHTS_MODEL_SOURCE_H
#define IVL_WEIGHTS_MODEL_SOURCE_H

#include "core/models/config.h"
#include "core/models/weight_reader.h"
#include "core/text/tokenizer.h"
#include "weights/model_file.h"

typedef struct {
    ivl_model_file *mf;
    ivl_model_config cfg;        // vocab from the stored embedding shape
    ivl_weight_reader reader;    // reads /tensors/<name>, whole or as row/column blocks
} ivl_model_source;

// 0 or -1 + ivl_last_error() (missing file, wrong format version, bad config).
int ivl_model_source_open(const char *path, ivl_model_source *src);
void ivl_model_source_close(ivl_model_source *src);

// The tokenizer stored in the model file.
int ivl_model_source_tokenizer(ivl_model_source *src, ivl_tokenizer **out);

#endif
