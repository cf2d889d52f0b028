// caption_settings.h - what produced an output of `internvl caption` (issue 18, item 7).
//
// A resume appends to the outputs of an earlier run. If that run used another model, prompt,
// system message, tile limit, caption length or sampling setting, the file would silently hold
// two kinds of captions. So every output unit gets a sidecar DIR/<unit>.settings.json with the
// settings its lines were made with (and their fingerprint), written by rank 0 before the
// model is loaded, and every result line carries "model" (the model's name) and "settings"
// (the fingerprint). A run whose settings differ from a unit's record is refused before the
// model is loaded, with a message naming each setting that differs, unless the user passes
// --allow-mixed-settings: then the new settings are added to the record (it lists every
// settings object that wrote lines to the unit) and the lines tell the runs apart by their
// "settings" field.
//
// What counts: the model's name, the prompt, the effective system message, --max-tiles,
// --max-new-tokens, and the sampling settings (--do-sample; with it --temperature, --top-k,
// --top-p, --seed; --repetition-penalty always). Not counted (they do not change a caption):
// the layout (--tp/--pp), batching, threads, flush and log intervals, --device.
#ifndef IVL_PARALLEL_CAPTION_SETTINGS_H
#define IVL_PARALLEL_CAPTION_SETTINGS_H

#include "core/models/generate.h"
#include "parallel/caption_input.h"

typedef struct {
    char *model;            // the model's name (ivl_cap_model_name)
    char *prompt;
    char *system;           // the system message in effect ("" = none)
    int max_tiles;
    int max_new_tokens;
    ivl_sampling sampling;  // normalised: greedy runs zero what greedy does not use
    char fingerprint[17];   // 16 hex digits of a 64-bit FNV-1a hash of all of the above
} ivl_cap_settings;

// The model's name for result lines: config.json's _name_or_path (last component), else the
// model file's model_name attribute, else the file's name without its extension.
const char *ivl_cap_model_name(const char *cfg_name, const char *file_attr_name,
                               const char *path, char *buf, size_t cap);

void ivl_cap_settings_init(ivl_cap_settings *s, const char *model, const char *prompt,
                           const char *system, int max_tiles, int max_new_tokens,
                           const ivl_sampling *sampling);
void ivl_cap_settings_free(ivl_cap_settings *s);

// Rank 0, before the model loads. Compares s with the record of every unit of `in` that has
// one; with no difference (or allow_mixed) writes the records that are missing or gain the
// new settings (temp file, fsync, rename). Returns 0, or -1 + ivl_last_error(): a unit's record
// differs (the message names the unit and each setting that differs, and the way out), or a
// record cannot be read, parsed or written.
int ivl_cap_settings_check(const char *dir, const ivl_cap_inputs *in, const ivl_cap_settings *s,
                           int allow_mixed);

#endif
