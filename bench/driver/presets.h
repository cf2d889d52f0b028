// presets.h - the model sizes `internvl bench` knows without a checkpoint: the three released
// InternVL 1.5 models (spec section 1) and the tiny test families (tests/gen/families.py).
// A preset is config.json text, parsed by ivl_model_config_parse like a real checkpoint's, so
// the benchmark runs exactly the configuration the loader would produce.
#ifndef IVL_BENCH_PRESETS_H
#define IVL_BENCH_PRESETS_H

#include "core/models/config.h"

// The config.json text of a preset (static storage), or NULL for an unknown name.
const char *ivl_bench_preset_json(const char *name);
// Parses the preset into cfg. 0, or -1 + ivl_last_error() listing the known names.
int ivl_bench_preset_config(const char *name, ivl_model_config *cfg);
// "internvl-chat-v1-5, mini-2b, ..." for usage text.
const char *ivl_bench_preset_names(void);

#endif
