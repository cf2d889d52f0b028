// detok.c - ids -> text, whole (ivl_tokenizer_decode) and incremental (ivl_token_stream).
//
// Decoding: skipped specials are removed first (HF drops them before grouping), then runs of
// SentencePiece ids between added tokens are decoded by SentencePiece (byte pieces joined,
// "▁" -> " ", the dummy-prefix space of a run dropped when the model adds one), added tokens
// are written as their text, and HF's clean_up_tokenization runs over the result if the
// tokenizer_config asks for it.
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/strbuf.h"
#include "core/text/tokenizer_impl.h"


static int flush_run(const ivl_tokenizer *t, const int32_t *ids, int n, int at_start, ivl_strbuf *out) {
    if (n == 0) return 0;
    char *text;
    size_t len;
    if (ivl_spm_decode(t->sp, ids, n, &text, &len)) return -1;
    size_t skip = 0;
    // legacy=False: the one "▁" encode put in front of the text comes off the first piece
    // (LlamaTokenizer.convert_tokens_to_string); legacy models drop it inside SentencePiece.
    if (t->nonlegacy && t->add_prefix_space && at_start && len > 0 && text[0] == ' ' &&
        strncmp(ivl_spm_id_to_piece(t->sp, ids[0]), "\xe2\x96\x81", 3) == 0)
        skip = 1;
    ivl_strbuf_add(out, text + skip, len - skip);
    free(text);
    return 0;
}

// The ids that decoding sees: skip_special removes HF's all_special_ids.
static int keep_id(const ivl_tokenizer *t, int32_t id, int skip_special) {
    return !(skip_special && ivl_tokenizer_is_special(t, id));
}

// Decodes ids (already filtered) without clean-up into out.
static int decode_raw(const ivl_tokenizer *t, const int32_t *ids, int n, ivl_strbuf *out) {
    if (n == 0) {   // ids may be NULL then (a stream that kept no id): no ids + 0 below
        if (!out->s) ivl_strbuf_add(out, "", 0);
        return 0;
    }
    int run0 = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size ||
            (ids[i] >= t->sp_size && t->added_of_id[ids[i]] < 0))
            return ivl_errorf("%s: token id %d is outside the vocabulary (0..%d)", t->source,
                              ids[i], t->vocab_size - 1);
        int a = t->added_of_id[ids[i]];
        if (a < 0) continue;
        if (flush_run(t, ids + run0, i - run0, run0 == 0, out)) return -1;
        ivl_strbuf_add(out, t->added[a].content, t->added[a].len);
        run0 = i + 1;
    }
    if (flush_run(t, ids + run0, n - run0, run0 == 0, out)) return -1;
    if (!out->s) ivl_strbuf_add(out, "", 0);
    return 0;
}

// HF PreTrainedTokenizerBase.clean_up_tokenization: these replacements, in this order, each
// over the whole string.
static const char *const k_cleanup[][2] = {
    {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
    {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};

static void clean_up(char *s, size_t *n) {
    for (size_t p = 0; p < sizeof k_cleanup / sizeof k_cleanup[0]; p++) {
        const char *from = k_cleanup[p][0], *to = k_cleanup[p][1];
        size_t fl = strlen(from), tl = strlen(to), r = 0, w = 0;
        while (r < *n) {
            if (r + fl <= *n && memcmp(s + r, from, fl) == 0) {
                memmove(s + w, to, tl);   // tl < fl and w <= r: never overruns unread input
                w += tl;
                r += fl;
            } else {
                s[w++] = s[r++];
            }
        }
        *n = w;
        s[w] = 0;
    }
}

char *ivl_tokenizer_decode(const ivl_tokenizer *t, const int32_t *ids, int n, int skip_special,
                           size_t *len) {
    int32_t *kept = ivl_malloc(sizeof(int32_t) * (size_t)(n + 1));
    int m = 0;
    for (int i = 0; i < n; i++)
        if (keep_id(t, ids[i], skip_special)) kept[m++] = ids[i];
    ivl_strbuf out = {0};
    int rc = decode_raw(t, kept, m, &out);
    free(kept);
    if (rc) {
        free(out.s);
        return NULL;
    }
    if (t->clean_up) clean_up(out.s, &out.n);
    if (len) *len = out.n;
    return out.s;
}

// ---------------------------------------------------------------- streaming

struct ivl_token_stream {
    const ivl_tokenizer *t;
    int skip_special;
    ivl_token_list ids;     // the kept ids so far
    size_t emitted;         // bytes of the final text already returned
    ivl_strbuf out;               // the text returned by the last call
    ivl_strbuf work;
};

ivl_token_stream *ivl_token_stream_new(const ivl_tokenizer *t, int skip_special) {
    ivl_token_stream *s = ivl_calloc(1, sizeof(*s));
    s->t = t;
    s->skip_special = skip_special;
    return s;
}

void ivl_token_stream_reset(ivl_token_stream *s) {
    s->ids.n = 0;
    s->emitted = 0;
}

void ivl_token_stream_free(ivl_token_stream *s) {
    if (!s) return;
    ivl_token_list_free(&s->ids);
    free(s->out.s);
    free(s->work.s);
    free(s);
}

static int utf8_seq_len(unsigned char lead) {
    if (lead < 0x80) return 1;
    if ((lead & 0xe0) == 0xc0) return 2;
    if ((lead & 0xf0) == 0xe0) return 3;
    if ((lead & 0xf8) == 0xf0) return 4;
    return 1;   // a stray continuation or invalid byte: it can never become valid
}

// How many trailing ids are byte pieces of a UTF-8 sequence that later bytes could complete.
static int incomplete_tail(const ivl_tokenizer *t, const ivl_token_list *ids) {
    unsigned char b[4];
    int k = 0;
    while (k < 4 && k < ids->n) {
        int32_t id = ids->ids[ids->n - 1 - k];
        if (id < 0 || id >= t->sp_size || t->added_of_id[id] >= 0 || !ivl_spm_is_byte(t->sp, id))
            break;   // (a negative id is refused by decode_raw; it must not index added_of_id)
        const char *p = ivl_spm_id_to_piece(t->sp, id);   // "<0xE4>"
        b[3 - k] = (unsigned char)strtol(p + 3, NULL, 16);
        k++;
    }
    // b[4-k .. 3] are the trailing bytes; find the last lead byte among them.
    for (int i = 3; i >= 4 - k; i--) {
        if ((b[i] & 0xc0) == 0x80) continue;
        int have = 4 - i, need = utf8_seq_len(b[i]);
        return have < need ? have : 0;
    }
    return 0;
}

// With clean-up on, text can still change around a space near the end (" ." -> "."). Every
// clean-up pattern starts with a space and is at most 4 characters long, and no replacement
// writes a space, so once the last 4 characters hold no space, what comes before is final.
static size_t cleanup_safe_end(const char *s, size_t n) {
    size_t end = n;
    for (;;) {
        size_t p = end;
        int chars = 0, space_at = -1;
        while (p > 0 && chars < 4) {
            p--;
            if (((unsigned char)s[p] & 0xc0) == 0x80) continue;
            chars++;
            if (s[p] == ' ' && space_at < 0) space_at = (int)p;
        }
        if (space_at < 0) return end;
        end = (size_t)space_at;
    }
}

static const char *emit(ivl_token_stream *s, const char *text, size_t n, size_t *len) {
    // What was emitted before must still be a prefix of the text: the hold-back rules above
    // guarantee it.
    IVL_ASSERT(n >= s->emitted);
    s->out.n = 0;
    ivl_strbuf_add(&s->out, text + s->emitted, n - s->emitted);
    s->emitted = n;
    if (len) *len = s->out.n;
    return s->out.s;
}

const char *ivl_token_stream_push(ivl_token_stream *s, int32_t id, size_t *len) {
    const ivl_tokenizer *t = s->t;
    if (keep_id(t, id, s->skip_special)) ivl_token_list_push(&s->ids, id);
    int hold = incomplete_tail(t, &s->ids);
    s->work.n = 0;
    if (decode_raw(t, s->ids.ids, s->ids.n - hold, &s->work)) {
        s->ids.n--;
        return NULL;
    }
    size_t n = s->work.n;
    if (t->clean_up) {
        n = cleanup_safe_end(s->work.s, n);
        s->work.s[n] = 0;
        clean_up(s->work.s, &n);
    }
    return emit(s, s->work.s, n, len);
}

const char *ivl_token_stream_finish(ivl_token_stream *s, size_t *len) {
    size_t n;
    char *full = ivl_tokenizer_decode(s->t, s->ids.ids, s->ids.n, 0, &n);
    if (!full) return NULL;
    const char *r = emit(s, full, n, len);
    free(full);
    return r;
}
