// fuzz_safetensors.c - the input is a model.safetensors file (8-byte header length, JSON
// header, data). Opens it through ivl_st_open_dir and, when it is accepted, reads the first and
// last bytes of every tensor: the header checks must make every read land inside the file.
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "fuzz_util.h"
#include "weights/safetensors.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_common();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write_file("model.safetensors", data, size);
    ivl_st_checkpoint *ck = NULL;
    if (ivl_st_open_dir(fuzz_scratch_dir(), &ck)) {
        if (!ivl_last_error()[0]) __builtin_trap();
        return 0;
    }
    uint64_t total = 0;
    unsigned char buf[64];
    for (int i = 0; i < ivl_st_count(ck); i++) {
        const ivl_st_tensor *t = ivl_st_at(ck, i);
        if (t->offset + t->nbytes > size || t->offset < 8) __builtin_trap();
        if (ivl_st_find(ck, t->name) != t) __builtin_trap();
        uint64_t n = t->nbytes < sizeof buf ? t->nbytes : sizeof buf;
        if (n && ivl_st_read(ck, t, 0, n, buf)) __builtin_trap();
        if (n && ivl_st_read(ck, t, t->nbytes - n, n, buf)) __builtin_trap();
        total += t->nbytes;
    }
    if (total != ivl_st_total_bytes(ck)) __builtin_trap();
    ivl_st_close(ck);
    return 0;
}
