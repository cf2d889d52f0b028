// dump.h - naming intermediates. Forward functions call ivl_dump(d, name, tensor) after each
// named step (names in docs/forward-io.md: "vit.layer.3", "llm.embeds", ...). With d == NULL
// or d->fn == NULL nothing happens, so the hook costs nothing in normal runs.
#ifndef IVL_MODELS_DUMP_H
#define IVL_MODELS_DUMP_H

#include "core/backend.h"

typedef struct ivl_dump {
    void *ctx;
    // t lives on be, with the shape to record (e.g. [tiles, 1025, C]); the callee downloads it.
    void (*fn)(void *ctx, const char *name, ivl_backend *be, const ivl_tensor *t);
} ivl_dump;

static inline void ivl_dump_tensor(const ivl_dump *d, const char *name, ivl_backend *be,
                                   const ivl_tensor *t) {
    if (d && d->fn) d->fn(d->ctx, name, be, t);
}

#endif
