// text_tool.c - drives core/text from JSON lines so the Python tests can compare it with
// their own reference. Usage:
//   text_tool DIR info TEMPLATE            -> one JSON object (ids of the named tokens)
//   text_tool DIR encode  < {"text": s, "special": 0|1} lines
//       -> {"ids": [...], then the decode fields below for those ids}
//   text_tool DIR decode  < {"ids": [...]} lines
//       -> {"decode", "decode_skip": whole decodes; "stream", "stream_skip": concatenated
//           ivl_token_stream pushes; "chunks_ok": every pushed piece was whole UTF-8}
//   text_tool DIR chat TEMPLATE  < {"system"?, "history"?: [[u, a]...], "question", "tiles"?,
//                                  "tokens_per_tile"?} lines -> {"ids", "text"} or {"error"}
//   text_tool DIR batch TEMPLATE < the same lines, one batch -> {"ids": [[...]], "mask": [[...]]}
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/check.h"
#include "core/text/chat.h"
#include "core/text/tokenizer.h"

static int utf8_whole(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int need = u[i] < 0x80 ? 1 : (u[i] & 0xe0) == 0xc0 ? 2 : (u[i] & 0xf0) == 0xe0 ? 3
                 : (u[i] & 0xf8) == 0xf0 ? 4 : 0;
        if (need == 0 || i + (size_t)need > n) return 0;
        for (int k = 1; k < need; k++)
            if ((u[i + k] & 0xc0) != 0x80) return 0;
        i += (size_t)need;
    }
    return 1;
}

static void print_json(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    puts(s);
    free(s);
    cJSON_Delete(o);
}

static cJSON *ids_array(const int32_t *ids, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

static void stream_all(const ivl_tokenizer *tok, const int32_t *ids, int n, int skip, cJSON *o,
                       const char *key, int *ok) {
    ivl_token_stream *s = ivl_token_stream_new(tok, skip);
    char *acc = calloc(1, 1);
    size_t an = 0, len;
    for (int i = 0; i <= n; i++) {
        const char *piece = i < n ? ivl_token_stream_push(s, ids[i], &len)
                                  : ivl_token_stream_finish(s, &len);
        IVL_CHECK(piece, "stream failed: %s", ivl_last_error());
        if (!utf8_whole(piece, len)) *ok = 0;
        acc = realloc(acc, an + len + 1);
        memcpy(acc + an, piece, len + 1);
        an += len;
    }
    cJSON_AddStringToObject(o, key, acc);
    free(acc);
    ivl_token_stream_free(s);
}

static void decode_fields(const ivl_tokenizer *tok, const int32_t *ids, int n, cJSON *o) {
    char *d = ivl_tokenizer_decode(tok, ids, n, 0, NULL);
    char *ds = ivl_tokenizer_decode(tok, ids, n, 1, NULL);
    if (!d || !ds) {
        cJSON_AddStringToObject(o, "error", ivl_last_error());
    } else {
        cJSON_AddStringToObject(o, "decode", d);
        cJSON_AddStringToObject(o, "decode_skip", ds);
        int ok = 1;
        stream_all(tok, ids, n, 0, o, "stream", &ok);
        stream_all(tok, ids, n, 1, o, "stream_skip", &ok);
        cJSON_AddBoolToObject(o, "chunks_ok", ok);
    }
    free(d);
    free(ds);
}

static int read_prompt(const cJSON *j, ivl_chat_prompt *p, ivl_chat_turn **turns, int **tiles) {
    memset(p, 0, sizeof *p);
    const cJSON *v = cJSON_GetObjectItem(j, "system");
    p->system = cJSON_IsString(v) ? v->valuestring : NULL;
    v = cJSON_GetObjectItem(j, "question");
    p->question = cJSON_IsString(v) ? v->valuestring : "";
    const cJSON *h = cJSON_GetObjectItem(j, "history");
    p->n_history = cJSON_GetArraySize(h);
    *turns = calloc((size_t)p->n_history + 1, sizeof(ivl_chat_turn));
    for (int i = 0; i < p->n_history; i++) {
        const cJSON *t = cJSON_GetArrayItem(h, i);
        (*turns)[i].user = cJSON_GetArrayItem(t, 0)->valuestring;
        (*turns)[i].assistant = cJSON_GetArrayItem(t, 1)->valuestring;
    }
    p->history = *turns;
    const cJSON *tl = cJSON_GetObjectItem(j, "tiles");
    p->n_images = cJSON_GetArraySize(tl);
    *tiles = calloc((size_t)p->n_images + 1, sizeof(int));
    for (int i = 0; i < p->n_images; i++) (*tiles)[i] = cJSON_GetArrayItem(tl, i)->valueint;
    p->tiles = *tiles;
    v = cJSON_GetObjectItem(j, "tokens_per_tile");
    p->tokens_per_tile = cJSON_IsNumber(v) ? v->valueint : 0;
    return 0;
}

static char *read_line(FILE *f) {
    size_t cap = 0;
    char *line = NULL;
    ssize_t n = getline(&line, &cap, f);
    if (n <= 0) {
        free(line);
        return NULL;
    }
    return line;
}

int main(int argc, char **argv) {
    IVL_CHECK(argc >= 3, "usage: text_tool DIR info|encode|decode|chat|batch [TEMPLATE]");
    ivl_tokenizer *tok;
    IVL_CHECK(ivl_tokenizer_load_dir(argv[1], &tok) == 0, "%s", ivl_last_error());
    const char *cmd = argv[2];
    const ivl_chat_template *tp = NULL;
    if (argc > 3) IVL_CHECK((tp = ivl_chat_template_find(argv[3])), "%s", ivl_last_error());

    if (strcmp(cmd, "info") == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "vocab", ivl_tokenizer_vocab_size(tok));
        cJSON_AddNumberToObject(o, "bos", ivl_tokenizer_bos_id(tok));
        cJSON_AddNumberToObject(o, "eos", ivl_tokenizer_eos_id(tok));
        cJSON_AddNumberToObject(o, "pad", ivl_tokenizer_pad_id(tok));
        cJSON_AddNumberToObject(o, "unk", ivl_tokenizer_unk_id(tok));
        cJSON_AddNumberToObject(o, "dummy_prefix", ivl_tokenizer_sp_dummy_prefix(tok));
        if (tp) {
            cJSON_AddNumberToObject(o, "stop", ivl_chat_stop_id(tok, tp));
            cJSON_AddNumberToObject(o, "img_context", ivl_chat_image_context_id(tok));
        }
        cJSON *tokens = cJSON_CreateObject();   // token -> id for every id (round trip)
        int bad = 0;
        for (int id = 0; id < ivl_tokenizer_vocab_size(tok); id++) {
            const char *s = ivl_tokenizer_id_to_token(tok, id);
            if (!s) continue;
            if (ivl_tokenizer_is_added(tok, id)) cJSON_AddNumberToObject(tokens, s, id);
            if (ivl_tokenizer_token_to_id(tok, s) != id && !ivl_tokenizer_is_added(tok, id)) {
                // a piece shadowed by an added token of the same text keeps HF's added id
                int other = ivl_tokenizer_token_to_id(tok, s);
                if (!ivl_tokenizer_is_added(tok, other)) bad++;
            }
        }
        cJSON_AddItemToObject(o, "added", tokens);
        cJSON_AddNumberToObject(o, "lookup_mismatches", bad);
        cJSON *special = cJSON_CreateArray();
        for (int id = 0; id < ivl_tokenizer_vocab_size(tok); id++)
            if (ivl_tokenizer_is_special(tok, id)) cJSON_AddItemToArray(special, cJSON_CreateNumber(id));
        cJSON_AddItemToObject(o, "special", special);
        print_json(o);
    } else if (strcmp(cmd, "encode") == 0 || strcmp(cmd, "decode") == 0) {
        char *line;
        while ((line = read_line(stdin))) {
            cJSON *j = cJSON_Parse(line);
            IVL_CHECK(j, "bad input line: %s", line);
            cJSON *o = cJSON_CreateObject();
            ivl_token_list ids = {0};
            if (cmd[0] == 'e') {
                const cJSON *t = cJSON_GetObjectItem(j, "text");
                int special = cJSON_IsTrue(cJSON_GetObjectItem(j, "special")) ||
                              (cJSON_IsNumber(cJSON_GetObjectItem(j, "special")) &&
                               cJSON_GetObjectItem(j, "special")->valueint);
                IVL_CHECK(ivl_tokenizer_encode(tok, t->valuestring, -1, special, &ids) == 0, "%s",
                          ivl_last_error());
                cJSON_AddItemToObject(o, "ids", ids_array(ids.ids, ids.n));
            } else {
                const cJSON *a = cJSON_GetObjectItem(j, "ids");
                for (int i = 0; i < cJSON_GetArraySize(a); i++)
                    ivl_token_list_push(&ids, cJSON_GetArrayItem(a, i)->valueint);
            }
            decode_fields(tok, ids.ids, ids.n, o);
            print_json(o);
            ivl_token_list_free(&ids);
            cJSON_Delete(j);
            free(line);
        }
    } else if (strcmp(cmd, "chat") == 0 || strcmp(cmd, "batch") == 0) {
        IVL_CHECK(tp, "chat and batch need a TEMPLATE argument");
        ivl_chat_prompt ps[64];
        ivl_chat_turn *turns[64];
        int *tiles[64];
        cJSON *js[64];
        int n = 0;
        char *line;
        while ((line = read_line(stdin)) && n < 64) {
            js[n] = cJSON_Parse(line);
            IVL_CHECK(js[n], "bad input line: %s", line);
            read_prompt(js[n], &ps[n], &turns[n], &tiles[n]);
            n++;
            free(line);
        }
        if (cmd[0] == 'c') {
            for (int i = 0; i < n; i++) {
                cJSON *o = cJSON_CreateObject();
                ivl_token_list ids = {0};
                char *text;
                if (ivl_chat_encode(tok, tp, &ps[i], &ids, &text)) {
                    cJSON_AddStringToObject(o, "error", ivl_last_error());
                } else {
                    cJSON_AddItemToObject(o, "ids", ids_array(ids.ids, ids.n));
                    cJSON_AddStringToObject(o, "text", text);
                    free(text);
                }
                print_json(o);
                ivl_token_list_free(&ids);
            }
        } else {
            ivl_chat_batch b;
            cJSON *o = cJSON_CreateObject();
            if (ivl_chat_encode_batch(tok, tp, ps, n, &b)) {
                cJSON_AddStringToObject(o, "error", ivl_last_error());
            } else {
                cJSON *ids = cJSON_CreateArray(), *mask = cJSON_CreateArray();
                for (int r = 0; r < b.batch; r++) {
                    cJSON_AddItemToArray(ids, ids_array(b.ids + (size_t)r * b.seq_len, b.seq_len));
                    cJSON_AddItemToArray(mask, ids_array(b.mask + (size_t)r * b.seq_len, b.seq_len));
                }
                cJSON_AddItemToObject(o, "ids", ids);
                cJSON_AddItemToObject(o, "mask", mask);
                ivl_chat_batch_free(&b);
            }
            print_json(o);
        }
        for (int i = 0; i < n; i++) {
            cJSON_Delete(js[i]);
            free(turns[i]);
            free(tiles[i]);
        }
    } else {
        IVL_CHECK(0, "unknown command %s", cmd);
    }
    ivl_tokenizer_free(tok);
    return 0;
}
