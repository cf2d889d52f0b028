// cmd_convert.c - `internvl convert --hf DIR --out FILE.h5`: Hugging Face checkpoint folder to
// the engine's HDF5 model file (weights/SCHEMA.md).
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <stdlib.h>

#include "bench/driver/presets.h"
#include "bench/driver/random_weights.h"
#include "core/check.h"
#include "core/log.h"
#include "launcher/commands.h"
#include "core/text/tokenizer.h"
#include "weights/convert.h"
#include "weights/model_write.h"

static char g_tmp[4096];

// Ctrl-C or a job's time limit: remove the half-written file, then die by the same signal.
static void on_signal(int sig) {
    if (g_tmp[0]) unlink(g_tmp);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: internvl convert --hf DIR --out FILE.h5 [--allow-unused] [--no-progress]\n"
            "                        [--quantize int8|int4 [--group-size N] [--quantize-vision]]\n"
            "       internvl convert --random-weights PRESET --tokenizer-from DIR --out FILE.h5\n"
            "                        [--seed S] [--no-progress] [--quantize ...]\n\n"
            "Converts a Hugging Face InternVL 1.5 checkpoint folder (config.json, model.safetensors\n"
            "or model.safetensors.index.json + shards, tokenizer files) into one HDF5 model file.\n"
            "The file is written as FILE.h5.tmp-<pid> and renamed when complete.\n\n"
            "  --hf DIR         the checkpoint folder\n"
            "  --out FILE.h5    the model file to write (replaced if it exists)\n"
            "  --allow-unused   warn about checkpoint tensors the engine does not use (default: error)\n"
            "  --no-progress    no progress bar (default: a bar when stderr is a terminal)\n"
            "  --random-weights PRESET  no checkpoint: a model file of a preset's real sizes\n"
            "                   (%s) with deterministic random bf16 weights,\n"
            "                   for tests and benchmarks of the real loading path\n"
            "  --tokenizer-from DIR  the tokenizer files to store (tokenizer.model and the HF\n"
            "                   json files; the vocabulary must match the preset's)\n"
            "  --seed S         random weights' seed (default 1)\n"
            "  --quantize int8|int4  weight-only quantization, round to nearest, of the language\n"
            "                   model's linear weights and LM head (weights/SCHEMA.md): int8 with\n"
            "                   one scale per output row, int4 with a scale and zero point per\n"
            "                   group of 128 inputs\n"
            "  --group-size N   inputs per scale (must divide every quantized input width)\n"
            "  --quantize-vision  also the ViT's and the projector's linear weights\n", ivl_bench_preset_names());
}

int cmd_convert(int argc, char **argv) {
    ivl_convert_opts o = {0};
    o.progress = isatty(2);
    const char *preset = NULL, *tok_dir = NULL;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--hf") && i + 1 < argc) o.hf_dir = argv[++i];
        else if (!strcmp(argv[i], "--random-weights") && i + 1 < argc) preset = argv[++i];
        else if (!strcmp(argv[i], "--tokenizer-from") && i + 1 < argc) tok_dir = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) o.out_path = argv[++i];
        else if (!strcmp(argv[i], "--allow-unused")) o.allow_unused = 1;
        else if (!strcmp(argv[i], "--quantize") && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(v, "int8")) o.quantize_bits = 8;
            else if (!strcmp(v, "int4")) o.quantize_bits = 4;
            else {
                fprintf(stderr, "internvl convert: --quantize %s: expected int8 or int4\n", v);
                return 2;
            }
        } else if (!strcmp(argv[i], "--group-size") && i + 1 < argc) {
            char *end;
            o.group_size = strtoll(argv[++i], &end, 10);
            if (*end || o.group_size < 1) {
                fprintf(stderr, "internvl convert: --group-size %s: expected a positive integer\n",
                        argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--quantize-vision")) o.quantize_vision = 1;
        else if (!strcmp(argv[i], "--no-progress")) o.progress = 0;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "internvl convert: unknown or incomplete option '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!o.out_path || !!o.hf_dir == !!preset || (preset && !tok_dir)) {
        usage(stderr);
        return 2;
    }
    // HDF5 1.10 crashes in its exit-time cleanup when a file's final flush failed (disk
    // full); the converter reports the error itself, so skip that cleanup.
    H5dont_atexit();
    snprintf(g_tmp, sizeof g_tmp, "%s.tmp-%ld", o.out_path, (long)getpid());
    o.tmp_path = g_tmp;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    // A file size limit (ulimit -f) must surface as a write error, not kill us mid-file.
    signal(SIGXFSZ, SIG_IGN);
    if (preset) {
        ivl_model_config cfg;
        if (ivl_bench_preset_config(preset, &cfg) != 0) {
            LOG_ERROR("convert: --random-weights: %s", ivl_last_error());
            return 2;
        }
        ivl_tokenizer *tok;
        if (ivl_tokenizer_load_dir(tok_dir, &tok) != 0) {
            LOG_ERROR("convert: --tokenizer-from %s: %s", tok_dir, ivl_last_error());
            return 1;
        }
        int nt = ivl_tokenizer_vocab_size(tok);
        ivl_tokenizer_free(tok);
        if (nt > cfg.llm.vocab) {
            LOG_ERROR("convert: --tokenizer-from %s has %d tokens, more than the %d of preset %s's "
                      "vocabulary: give the tokenizer of a model with this vocabulary", tok_dir, nt,
                      cfg.llm.vocab, preset);
            return 1;
        }
        ivl_random_weights rw;
        ivl_weight_reader r;
        ivl_random_weights_init(&rw, &cfg, seed, &r);
        char source[256];
        snprintf(source, sizeof source, "random:%s:seed=%llu", preset, seed);
        ivl_model_write_opts w = {o.out_path, ivl_bench_preset_json(preset), tok_dir, source, &r,
                                  o.progress, o.quantize_bits, o.group_size, o.quantize_vision};
        if (ivl_model_file_write(&w)) {
            LOG_ERROR("convert: %s", ivl_last_error());
            return 1;
        }
        return 0;
    }
    if (ivl_convert_hf(&o)) {
        LOG_ERROR("convert: %s", ivl_last_error());
        return 1;
    }
    return 0;
}
