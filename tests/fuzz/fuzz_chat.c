// fuzz_chat.c - prompt building from untrusted text (questions, system messages, history and
// per-image tile counts from a captioning job's inputs): ivl_chat_build_text, ivl_chat_encode,
// ivl_chat_encode_batch and ivl_chat_response with the test tokenizers of tests/fuzz/data.
// Layout: byte 0 = tokenizer/template, byte 1 = number of images (0..7), byte 2 = history
// turns (0..3), byte 3 = batch size (1..3), then int32 tile counts, then NUL-separated strings:
// system (empty = template default), history user/assistant pairs, the question.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/text/chat.h"
#include "fuzz_util.h"

static ivl_tokenizer *g_tok[2];
static const char *const k_templates[2] = {"internlm2-chat", "phi3-chat"};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_common();
    const char *names[2] = {"tok-internlm2", "tok-phi3"};
    for (int i = 0; i < 2; i++)
        if (ivl_tokenizer_load_dir(fuzz_data_path(names[i]), &g_tok[i])) {
            fprintf(stderr, "fuzz_chat: %s\n", ivl_last_error());
            abort();
        }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_reader r = {data, size};
    int which = fuzz_u8(&r) & 1;
    int n_images = fuzz_u8(&r) % 8, n_hist = fuzz_u8(&r) % 4, batch = 1 + fuzz_u8(&r) % 3;
    const ivl_chat_template *tp = ivl_chat_template_find(k_templates[which]);
    if (!tp) __builtin_trap();
    int tiles[8];
    for (int i = 0; i < n_images; i++) {
        // Mostly 1..41 (real tile counts), sometimes raw (0, negative, huge).
        uint32_t u = fuzz_u32(&r);
        tiles[i] = (u & 0x80000000u) ? (int)u : (int)(u % 42);
    }
    char *sys = fuzz_str(&r);
    char *hist_s[6];
    ivl_chat_turn hist[3];
    for (int i = 0; i < n_hist; i++) {
        hist[i].user = hist_s[2 * i] = fuzz_str(&r);
        hist[i].assistant = hist_s[2 * i + 1] = fuzz_str(&r);
    }
    char *question = fuzz_str(&r);
    ivl_chat_prompt p = {sys[0] ? sys : NULL, hist, n_hist, question, tiles, n_images, 0};
    if (data[0] & 2) p.tokens_per_tile = 1 + (data[0] >> 2);   // small models' counts

    char *text = NULL;
    if (ivl_chat_build_text(tp, &p, &text) == 0) free(text);
    ivl_token_list ids = {0};
    char *etext = NULL;
    if (ivl_chat_encode(g_tok[which], tp, &p, &ids, &etext) == 0) {
        int v = ivl_tokenizer_vocab_size(g_tok[which]);
        for (int i = 0; i < ids.n; i++)
            if (ids.ids[i] < 0 || ids.ids[i] >= v) __builtin_trap();
        free(etext);
    }
    ivl_token_list_free(&ids);
    ivl_chat_prompt ps[3] = {p, p, p};
    ps[1].n_history = 0;
    ivl_chat_batch b = {0};
    if (ivl_chat_encode_batch(g_tok[which], tp, ps, batch, &b) == 0) {
        if (b.batch != batch) __builtin_trap();
        ivl_chat_batch_free(&b);
    }
    free(ivl_chat_response(tp, question));
    free(sys);
    for (int i = 0; i < 2 * n_hist; i++) free(hist_s[i]);
    free(question);
    return 0;
}
