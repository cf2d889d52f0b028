// tokenizer.c - loading the HF tokenizer files, the added-token table and encoding.
// Decoding and streaming are in detok.c. Rules and the HF code they mirror: README.md here.
#include "core/text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/check.h"
#include "core/log.h"
#include "core/text/tokenizer_impl.h"

// ---------------------------------------------------------------- token lists

void ivl_token_list_push(ivl_token_list *l, int32_t id) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->ids = ivl_realloc(l->ids, sizeof(int32_t) * (size_t)l->cap);
    }
    l->ids[l->n++] = id;
}

void ivl_token_list_append(ivl_token_list *l, const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) ivl_token_list_push(l, ids[i]);
}

void ivl_token_list_free(ivl_token_list *l) {
    free(l->ids);
    l->ids = NULL;
    l->n = l->cap = 0;
}

// ---------------------------------------------------------------- JSON helpers

static cJSON *parse_json(const char *text, const char *source, const char *file, int *err) {
    *err = 0;
    if (!text) return NULL;
    cJSON *j = cJSON_Parse(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        j = NULL;   // the caller deletes what it gets back
        *err = ivl_errorf("%s/%s: not a JSON object (near \"%.40s\")", source, file,
                          cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
    }
    return j;
}

// A special token entry is a string or an AddedToken dict {"content": ..., "rstrip": ...}.
static const char *token_content(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

static int json_flag(const cJSON *obj, const char *key, int dflt) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

// ---------------------------------------------------------------- added-token table

static int find_added_content(const ivl_tokenizer *t, const char *s, size_t n) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].content, s, n) == 0) return i;
    return -1;
}

static int find_added_id(const ivl_tokenizer *t, int id) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return i;
    return -1;
}

static void add_token(ivl_tokenizer *t, const char *content, int id, const cJSON *flags) {
    t->added = ivl_realloc(t->added, sizeof(ivl_added_token) * (size_t)(t->n_added + 1));
    ivl_added_token *a = &t->added[t->n_added++];
    a->content = ivl_strdup(content);
    a->len = strlen(content);
    a->id = id;
    a->lstrip = json_flag(flags, "lstrip", 0);
    a->rstrip = json_flag(flags, "rstrip", 0);
    a->single_word = json_flag(flags, "single_word", 0);
}

// The named special tokens of HF (SPECIAL_TOKENS_ATTRIBUTES); special_tokens_map.json wins
// over tokenizer_config.json, as in PreTrainedTokenizerBase._from_pretrained.
static const char *const k_named[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                      "pad_token", "cls_token", "mask_token"};
enum { NAMED_BOS = 0, NAMED_EOS = 1, NAMED_UNK = 2, NAMED_PAD = 4, N_NAMED = 7 };

static const cJSON *named_entry(const cJSON *cfg, const cJSON *smap, const char *key) {
    const cJSON *v = smap ? cJSON_GetObjectItemCaseSensitive(smap, key) : NULL;
    if (v && !cJSON_IsNull(v)) return v;
    v = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, key) : NULL;
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

// Resolves a special token string to an id: the added table first, then the .model piece;
// adds it to the table (HF puts every special token in its added-token trie).
static int resolve_special(ivl_tokenizer *t, const cJSON *entry, const char *what) {
    const char *s = token_content(entry);
    if (!s) return -1;
    int a = find_added_content(t, s, strlen(s));
    if (a >= 0) return t->added[a].id;
    int id = ivl_spm_piece_to_id(t->sp, s, strlen(s));
    if (id < 0) {
        LOG_WARN("%s: %s \"%s\" is neither an added token nor a piece of tokenizer.model; "
                 "ignored", t->source, what, s);
        return -1;
    }
    add_token(t, s, id, cJSON_IsObject(entry) ? entry : NULL);
    return id;
}

static void mark_special(ivl_tokenizer *t, int id) {
    if (id < 0) return;
    for (int i = 0; i < t->n_special; i++)
        if (t->special_ids[i] == id) return;
    t->special_ids = ivl_realloc(t->special_ids, sizeof(int) * (size_t)(t->n_special + 1));
    t->special_ids[t->n_special++] = id;
}

// Added-token ids above this are refused: the vocabulary is sized by the largest id (the real
// models have < 100k), so a corrupt id would allocate gigabytes or overflow an int.
#define IVL_TOKENIZER_MAX_ID (1 << 24)

static int load_added(ivl_tokenizer *t, const cJSON *cfg, const cJSON *added_json) {
    // 1. added_tokens_decoder: {"92542": {"content": "<|im_end|>", "rstrip": false, ...}}
    const cJSON *dec = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder") : NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, dec) {
        char *end = NULL;
        long id = strtol(e->string, &end, 10);
        const char *content = token_content(e);
        if (!end || *end || id < 0 || id >= IVL_TOKENIZER_MAX_ID || !content)
            return ivl_errorf("%s/tokenizer_config.json: added_tokens_decoder entry \"%s\" needs "
                              "an integer id (0..%d) and a content string", t->source, e->string,
                              IVL_TOKENIZER_MAX_ID - 1);
        int old = find_added_id(t, (int)id);
        if (old >= 0) continue;
        add_token(t, content, (int)id, e);
    }
    // 2. added_tokens.json: {"<img>": 92544, ...}; fills ids the config did not list.
    cJSON_ArrayForEach(e, added_json) {
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0 && e->valuedouble < IVL_TOKENIZER_MAX_ID))
            return ivl_errorf("%s/added_tokens.json: \"%s\" must map to an id in 0..%d",
                              t->source, e->string, IVL_TOKENIZER_MAX_ID - 1);
        int id = (int)e->valuedouble;
        int by_id = find_added_id(t, id);
        if (by_id >= 0) {
            if (strcmp(t->added[by_id].content, e->string) != 0)
                return ivl_errorf("%s: id %d is \"%s\" in tokenizer_config.json but \"%s\" in "
                                  "added_tokens.json", t->source, id, t->added[by_id].content,
                                  e->string);
            continue;
        }
        if (find_added_content(t, e->string, strlen(e->string)) >= 0) continue;
        add_token(t, e->string, id, NULL);
    }
    return 0;
}

static int load_specials(ivl_tokenizer *t, const cJSON *cfg, const cJSON *smap) {
    int ids[N_NAMED];
    for (int k = 0; k < N_NAMED; k++) {
        const cJSON *v = named_entry(cfg, smap, k_named[k]);
        ids[k] = v ? resolve_special(t, v, k_named[k]) : -1;
        mark_special(t, ids[k]);
    }
    t->bos_id = ids[NAMED_BOS];
    t->eos_id = ids[NAMED_EOS];
    t->unk_id = ids[NAMED_UNK];
    t->pad_id = ids[NAMED_PAD];
    const cJSON *unk = named_entry(cfg, smap, "unk_token");
    t->unk_token = ivl_strdup(unk && token_content(unk) ? token_content(unk) : "<unk>");

    const cJSON *extra = named_entry(cfg, smap, "additional_special_tokens");
    const cJSON *e;
    cJSON_ArrayForEach(e, extra) mark_special(t, resolve_special(t, e, "additional special token"));
    return 0;
}

// ---------------------------------------------------------------- loading

// Protobuf merges a repeated embedded message field into the earlier one, so appending
// ModelProto.normalizer_spec (field 3) = { add_dummy_prefix (field 3) = false } to the
// serialized model switches the dummy prefix off and keeps everything else; this is what
// HF's LlamaTokenizer.get_spm_processor does for legacy=False.
static const unsigned char k_no_dummy_prefix[4] = {0x1A, 0x02, 0x18, 0x00};

// Reads the effective add_dummy_prefix of a loaded model: SentencePiece 0.1.97 exposes no
// NormalizerSpec to C++ callers (no sentencepiece_model.pb.h is installed), so ask the model
// itself: with the flag set, "a" normalizes to "▁a".
static int probe_dummy_prefix(const ivl_spm *sp) {
    int32_t *ids;
    int n;
    if (ivl_spm_encode(sp, "a", 1, &ids, &n) || n == 0) {
        free(ids);
        return 0;
    }
    unsigned char first[4] = {0};
    int have = 0;
    for (int i = 0; i < n && have < 3; i++) {
        const char *p = ivl_spm_id_to_piece(sp, ids[i]);
        unsigned int b;
        if (ivl_spm_is_byte(sp, ids[i]) && sscanf(p, "<0x%2X>", &b) == 1) {
            first[have++] = (unsigned char)b;
        } else {
            for (; *p && have < 3; p++) first[have++] = (unsigned char)*p;
        }
    }
    free(ids);
    return (have >= 3 && memcmp(first, "\xe2\x96\x81", 3) == 0) || (have >= 1 && first[0] == ' ');
}

int ivl_tokenizer_load(const ivl_tokenizer_blobs *b, ivl_tokenizer **out) {
    *out = NULL;
    const char *src = b->source ? b->source : "tokenizer";
    if (!b->model || b->model_size == 0)
        return ivl_errorf("%s: tokenizer.model missing; the checkpoint must ship the "
                          "SentencePiece model", src);
    int err1, err2, err3;
    cJSON *cfg = parse_json(b->config_json, src, "tokenizer_config.json", &err1);
    cJSON *added = parse_json(b->added_tokens_json, src, "added_tokens.json", &err2);
    cJSON *smap = parse_json(b->special_map_json, src, "special_tokens_map.json", &err3);
    ivl_tokenizer *t = ivl_calloc(1, sizeof(*t));
    t->source = ivl_strdup(src);
    int rc = (err1 || err2 || err3) ? -1 : 0;

    // HF: LlamaTokenizer(legacy=False) encodes with the dummy prefix off, adding one "▁" to
    // the whole text instead; legacy defaults to True when the key is absent.
    const cJSON *cls = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "tokenizer_class") : NULL;
    int is_llama = cJSON_IsString(cls) && strncmp(cls->valuestring, "LlamaTokenizer", 14) == 0;
    t->nonlegacy = is_llama && !json_flag(cfg, "legacy", 1);
    t->add_prefix_space = json_flag(cfg, "add_prefix_space", 1);
    t->add_bos = json_flag(cfg, "add_bos_token", 1);
    t->add_eos = json_flag(cfg, "add_eos_token", 0);
    t->clean_up = json_flag(cfg, "clean_up_tokenization_spaces", 1);

    if (rc == 0) rc = ivl_spm_load(b->model, b->model_size, src, &t->sp);
    if (rc == 0) {
        t->sp_dummy_prefix = probe_dummy_prefix(t->sp);
        if (t->nonlegacy && t->sp_dummy_prefix) {
            unsigned char *m = ivl_malloc(b->model_size + sizeof k_no_dummy_prefix);
            memcpy(m, b->model, b->model_size);
            memcpy(m + b->model_size, k_no_dummy_prefix, sizeof k_no_dummy_prefix);
            ivl_spm_free(t->sp);
            t->sp = NULL;
            rc = ivl_spm_load(m, b->model_size + sizeof k_no_dummy_prefix, src, &t->sp);
            free(m);
            if (rc == 0 && probe_dummy_prefix(t->sp))
                rc = ivl_errorf("%s: could not switch off add_dummy_prefix for legacy=false",
                                src);
        }
    }
    if (rc == 0) rc = load_added(t, cfg, added);
    if (rc == 0) rc = load_specials(t, cfg, smap);
    cJSON_Delete(cfg);
    cJSON_Delete(added);
    cJSON_Delete(smap);
    if (rc) {
        ivl_tokenizer_free(t);
        return -1;
    }

    t->sp_size = ivl_spm_size(t->sp);
    t->vocab_size = t->sp_size;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id + 1 > t->vocab_size) t->vocab_size = t->added[i].id + 1;
    t->added_of_id = ivl_malloc(sizeof(int) * (size_t)t->vocab_size);
    for (int i = 0; i < t->vocab_size; i++) t->added_of_id[i] = -1;
    for (int i = 0; i < t->n_added; i++) {
        t->added_of_id[t->added[i].id] = i;
        t->first_bytes[(unsigned char)t->added[i].content[0]] = 1;
    }
    // HF's convert_tokens_to_ids looks in the added-token map before the .model, so a piece
    // whose text is an added token maps to the added id.
    t->sp_remap = ivl_malloc(sizeof(int32_t) * (size_t)(t->n_added + 1));
    t->sp_remap_from = ivl_malloc(sizeof(int32_t) * (size_t)(t->n_added + 1));
    for (int i = 0; i < t->n_added; i++) {
        int sid = ivl_spm_piece_to_id(t->sp, t->added[i].content, t->added[i].len);
        if (sid >= 0 && sid != t->added[i].id) {
            t->sp_remap_from[t->n_remap] = sid;
            t->sp_remap[t->n_remap++] = t->added[i].id;
        }
    }
    // Length in ids of the unk token text, for the legacy=False " text" trick (see encode.c).
    if (t->nonlegacy) {
        int32_t *ids;
        if (ivl_spm_encode(t->sp, t->unk_token, strlen(t->unk_token), &ids, &t->unk_len)) {
            ivl_tokenizer_free(t);
            return -1;
        }
        free(ids);
    }
    LOG_DEBUG("%s: %d pieces, %d added tokens, vocab %d, bos %d eos %d pad %d, dummy prefix %d, "
              "legacy %d", src, t->sp_size, t->n_added, t->vocab_size, t->bos_id, t->eos_id,
              t->pad_id, t->sp_dummy_prefix, !t->nonlegacy);
    *out = t;
    return 0;
}

static int read_file(const char *dir, const char *name, int required, char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = ivl_malloc(n);
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        free(path);
        return required ? ivl_errorf("%s/%s: cannot open (a Hugging Face checkpoint folder has "
                                     "it next to config.json)", dir, name) : 0;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = ivl_malloc(cap + 1);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) buf = ivl_realloc(buf, (cap *= 2) + 1);
    }
    int bad = ferror(f);
    fclose(f);
    free(path);
    if (bad) {
        free(buf);
        return ivl_errorf("%s/%s: read error", dir, name);
    }
    buf[len] = 0;
    *data = buf;
    *size = len;
    return 0;
}

int ivl_tokenizer_load_dir(const char *dir, ivl_tokenizer **out) {
    char *files[4] = {0};
    size_t sizes[4];
    static const char *names[4] = {"tokenizer.model", "tokenizer_config.json",
                                   "added_tokens.json", "special_tokens_map.json"};
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++) rc = read_file(dir, names[i], i == 0, &files[i], &sizes[i]);
    if (rc == 0) {
        ivl_tokenizer_blobs b = {files[0], sizes[0], files[1], files[2], files[3], dir};
        rc = ivl_tokenizer_load(&b, out);
    }
    for (int i = 0; i < 4; i++) free(files[i]);
    return rc;
}

void ivl_tokenizer_free(ivl_tokenizer *t) {
    if (!t) return;
    if (t->sp) ivl_spm_free(t->sp);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    free(t->added_of_id);
    free(t->special_ids);
    free(t->sp_remap);
    free(t->sp_remap_from);
    free(t->unk_token);
    free(t->source);
    free(t);
}

// ---------------------------------------------------------------- lookups

int ivl_tokenizer_vocab_size(const ivl_tokenizer *t) { return t->vocab_size; }
int ivl_tokenizer_bos_id(const ivl_tokenizer *t) { return t->bos_id; }
int ivl_tokenizer_eos_id(const ivl_tokenizer *t) { return t->eos_id; }
int ivl_tokenizer_pad_id(const ivl_tokenizer *t) { return t->pad_id; }
int ivl_tokenizer_unk_id(const ivl_tokenizer *t) { return t->unk_id; }
int ivl_tokenizer_sp_dummy_prefix(const ivl_tokenizer *t) { return t->sp_dummy_prefix; }

int ivl_tokenizer_token_to_id(const ivl_tokenizer *t, const char *token) {
    int a = find_added_content(t, token, strlen(token));
    if (a >= 0) return t->added[a].id;
    return ivl_spm_piece_to_id(t->sp, token, strlen(token));
}

const char *ivl_tokenizer_id_to_token(const ivl_tokenizer *t, int id) {
    if (id < 0 || id >= t->vocab_size) return NULL;
    if (t->added_of_id[id] >= 0) return t->added[t->added_of_id[id]].content;
    if (id >= t->sp_size) return NULL;
    return ivl_spm_id_to_piece(t->sp, id);
}

int ivl_tokenizer_is_special(const ivl_tokenizer *t, int id) {
    for (int i = 0; i < t->n_special; i++)
        if (t->special_ids[i] == id) return 1;
    return 0;
}

int ivl_tokenizer_is_added(const ivl_tokenizer *t, int id) {
    return id >= 0 && id < t->vocab_size && t->added_of_id[id] >= 0;
}
