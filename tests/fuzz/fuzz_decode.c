// fuzz_decode.c - token decoding of arbitrary ids (what a model with a bigger vocabulary, a
// corrupt message or a bug upstream could hand the detokenizer): ivl_tokenizer_decode and the
// streaming decoder, on the test tokenizers of tests/fuzz/data (InternLM2 and Phi-3 styles).
// Byte 0 picks the tokenizer and skip_special; the rest are little-endian int32 ids, biased so
// most fall inside the vocabulary. Oracle: when every id is valid, the stream's pieces
// concatenated equal the one-shot decode (tokenizer.h promises it); an invalid id fails both.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/text/tokenizer.h"
#include "fuzz_util.h"

static ivl_tokenizer *g_tok[2];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_common();
    const char *names[2] = {"tok-internlm2", "tok-phi3"};
    for (int i = 0; i < 2; i++)
        if (ivl_tokenizer_load_dir(fuzz_data_path(names[i]), &g_tok[i])) {
            fprintf(stderr, "fuzz_decode: %s\n", ivl_last_error());
            abort();
        }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    ivl_tokenizer *t = g_tok[data[0] & 1];
    int skip = (data[0] >> 1) & 1, v = ivl_tokenizer_vocab_size(t);
    // At most 2048 ids: each stream push re-decodes every id so far (quadratic), and real
    // generations are capped by max_new_tokens anyway.
    int n = (int)((size - 1) / 4), valid = 1;
    if (n > 2048) n = 2048;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, data + 1 + 4 * i, 4);
        // Small values index the vocabulary; the high bit keeps the raw value (negative, huge).
        ids[i] = (u & 0x80000000u) ? (int32_t)u : (int32_t)(u % (uint32_t)(v + 8));
        if (ids[i] < 0 || ids[i] >= v) valid = 0;
    }
    size_t len = 0;
    char *whole = ivl_tokenizer_decode(t, ids, n, skip, &len);
    if (valid && !whole) __builtin_trap();
    // (no strlen check: byte-fallback <0x00> decodes to a real NUL byte inside the text)

    ivl_token_stream *s = ivl_token_stream_new(t, skip);
    char *acc = malloc(1);
    size_t acc_n = 0, piece_n;
    int failed = 0;
    for (int i = 0; i < n; i++) {
        const char *piece = ivl_token_stream_push(s, ids[i], &piece_n);
        if (!piece) {
            failed = 1;
            continue;
        }
        acc = realloc(acc, acc_n + piece_n + 1);
        memcpy(acc + acc_n, piece, piece_n);
        acc_n += piece_n;
    }
    const char *tail = ivl_token_stream_finish(s, &piece_n);
    if (tail) {
        acc = realloc(acc, acc_n + piece_n + 1);
        memcpy(acc + acc_n, tail, piece_n);
        acc_n += piece_n;
    }
    if (valid && failed) __builtin_trap();
    if (valid && whole && (acc_n != len || memcmp(acc, whole, len))) __builtin_trap();
    ivl_token_stream_free(s);
    free(acc);
    free(whole);
    free(ids);
    return 0;
}
