// main.c - the `internvl` executable: dispatches to one subcommand.
// Each subcommand lives in launcher/cmd_<name>.c as `int cmd_<name>(int argc, char **argv)`
// (argv[0] is the subcommand name) and returns the process exit code.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "launcher/commands.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand k_commands[] = {
    {"convert", cmd_convert, "Hugging Face checkpoint folder -> one HDF5 model file"},
    {"info",    cmd_info,    "print a model file's config, parameter counts, dtypes, size"},
    {"forward", cmd_forward, "low-level run: input ids (+ pixel values) -> logits, tokens, dumps"},
    {"chat",    cmd_chat,    "answer questions about images, streaming"},
    {"caption", cmd_caption, "caption a dataset (folders, lists, tar shards), resumable"},
    {"bench",   cmd_bench,   "throughput benchmarks: vit, prefill, decode, e2e"},
    {"serve",   cmd_serve,   "OpenAI-compatible HTTP API (chat completions, streaming, metrics)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: internvl <command> [options]   (run under mpirun for several ranks)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        if (k_commands[i].fn)
            fprintf(f, "  %-8s %s\n", k_commands[i].name, k_commands[i].summary);
    fprintf(f, "\n`internvl <command> --help` describes each command's options.\n");
}

// OpenBLAS picks its kernels when the library loads, before main(), from the CPU id or
// OPENBLAS_CORETYPE. On virtual CPUs it often fails to recognise the model and falls back to
// generic kernels 2-4x slower. When the variable is unset we set it from the CPU's features
// and re-execute ourselves once (before MPI starts), so every rank gets fast kernels.
static void ensure_openblas_coretype(char **argv) {
    if (getenv("OPENBLAS_CORETYPE") || getenv("IVL_NO_REEXEC")) return;
    __builtin_cpu_init();
    const char *core = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                       : __builtin_cpu_supports("avx2")  ? "Haswell" : NULL;
    if (!core) return;
    setenv("OPENBLAS_CORETYPE", core, 1);
    setenv("IVL_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);   // on failure just continue with the generic kernels
}

int main(int argc, char **argv) {
    ensure_openblas_coretype(argv);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("internvl %s\n", IVL_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        if (k_commands[i].fn && !strcmp(argv[1], k_commands[i].name))
            return k_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "internvl: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
