// fuzz_tokenizer.c - the tokenizer files as ivl_tokenizer_load gets them from the model
// file's /tokenizer blobs. The input is up to four sections separated by FUZZ_SEP:
//     tokenizer.model | tokenizer_config.json | added_tokens.json | special_tokens_map.json
// (a missing or empty JSON section is passed as NULL, "file absent"). The .model bytes go
// through libsentencepiece's protobuf parse. An accepted tokenizer then encodes and decodes a
// fixed text and looks up every id it claims to have.
#define _GNU_SOURCE   // memmem
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/text/tokenizer.h"
#include "fuzz_util.h"

#define FUZZ_SEP "\xff" "IVL"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    fuzz_init_common();
    return 0;
}

// Splits off the next section; returns a malloc'ed NUL-terminated copy (NULL when empty).
static char *section(const uint8_t **p, size_t *n, size_t *len) {
    const uint8_t *s = *p, *e = memmem(s, *n, FUZZ_SEP, 4);
    size_t l = e ? (size_t)(e - s) : *n;
    *p += e ? l + 4 : l;
    *n -= e ? l + 4 : l;
    if (len) *len = l;
    if (!l) return NULL;
    char *c = malloc(l + 1);
    memcpy(c, s, l);
    c[l] = 0;
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *p = data;
    size_t n = size, model_len = 0;
    char *model = section(&p, &n, &model_len);
    char *cfg = section(&p, &n, NULL), *added = section(&p, &n, NULL);
    char *smap = section(&p, &n, NULL);
    ivl_tokenizer_blobs b = {model, model_len, cfg, added, smap, "fuzz"};
    ivl_tokenizer *t = NULL;
    if (ivl_tokenizer_load(&b, &t) == 0) {
        int v = ivl_tokenizer_vocab_size(t);
        if (v <= 0) __builtin_trap();
        for (int id = 0; id < v && id < 4096; id++) {
            // Ids between the .model's pieces and a far added token have no string (NULL).
            const char *s = ivl_tokenizer_id_to_token(t, id);
            if (!s) continue;
            ivl_tokenizer_token_to_id(t, s);
            ivl_tokenizer_is_special(t, id);
        }
        const char *text = "Hello <image> world\n\xe4\xbd\xa0\xe5\xa5\xbd <|im_end|> <s></s> \xff";
        ivl_token_list ids = {0};
        if (ivl_tokenizer_encode(t, text, -1, 1, &ids) == 0) {
            for (int i = 0; i < ids.n; i++)
                if (ids.ids[i] < 0 || ids.ids[i] >= v) __builtin_trap();
            size_t len;
            free(ivl_tokenizer_decode(t, ids.ids, ids.n, 0, &len));
            free(ivl_tokenizer_decode(t, ids.ids, ids.n, 1, &len));
        }
        ivl_token_list_free(&ids);
        ivl_tokenizer_free(t);
    } else if (!ivl_last_error()[0]) {
        __builtin_trap();
    }
    free(model);
    free(cfg);
    free(added);
    free(smap);
    return 0;
}
