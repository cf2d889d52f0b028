// convert_check.h - is a Hugging Face checkpoint one the engine can use? Checked by
// `internvl convert` right after config.json is parsed, before any plan or tensor is built
// (issue 18): an architecture that is not InternVL, or a folder without tokenizer.model (the
// file converted, and then no command could run it). Sizes and tile counts are bounded by
// ivl_model_config_parse itself (core/models/config.c: 1e9 layers ran the converter out of
// memory with no message), so a model file cannot bring them in either. Every message names
// the key or file and says what is expected. Limits: docs/limits.md ("Checkpoints").
#ifndef IVL_WEIGHTS_CONVERT_CHECK_H
#define IVL_WEIGHTS_CONVERT_CHECK_H

#include "core/models/config.h"

// cfg_text: config.json's text (for the keys ivl_model_config does not keep); cfg: parsed;
// hf_dir: the checkpoint folder. Returns 0, or -1 + ivl_last_error().
int ivl_convert_check(const char *cfg_text, const ivl_model_config *cfg, const char *hf_dir);

#endif
