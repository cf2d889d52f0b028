// encode.c - text -> ids, the way HF's PreTrainedTokenizer.tokenize does it for the slow
// InternLM2Tokenizer and LlamaTokenizer (README.md in this folder lists the rules).
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/text/tokenizer_impl.h"

size_t ivl_text_space_len(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) return 0;
    if (u[0] < 0x80) {
        unsigned char c = u[0];
        return (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) ? 1 : 0;
    }
    if (n >= 2 && u[0] == 0xc2 && (u[1] == 0x85 || u[1] == 0xa0)) return 2;
    if (n < 3) return 0;
    unsigned cp = ((u[0] & 0x0fu) << 12) | ((u[1] & 0x3fu) << 6) | (u[2] & 0x3fu);
    if ((u[0] & 0xf0) != 0xe0) return 0;
    if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
        cp == 0x202f || cp == 0x205f || cp == 0x3000)
        return 3;
    return 0;
}

static size_t utf8_prev(const char *s, size_t end) {   // start of the character before end
    size_t i = end - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80) i--;
    return i;
}

typedef struct {
    char *s;
    size_t n;
    int added;      // index into t->added, or -1 for text
} chunk;

typedef struct {
    chunk *c;
    int n, cap;
} chunk_list;

static void push_chunk(chunk_list *l, const char *s, size_t n, int added) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->c = ivl_realloc(l->c, sizeof(chunk) * (size_t)l->cap);
    }
    chunk *c = &l->c[l->n++];
    c->s = ivl_malloc(n + 1);
    memcpy(c->s, s, n);
    c->s[n] = 0;
    c->n = n;
    c->added = added;
}

// Trie.split: the earliest match wins, and the longest one at that position.
static void split_added(const ivl_tokenizer *t, const char *s, size_t n, chunk_list *out) {
    size_t text_start = 0, i = 0;
    while (i < n) {
        int best = -1;
        if (t->first_bytes[(unsigned char)s[i]]) {
            for (int k = 0; k < t->n_added; k++) {
                const ivl_added_token *a = &t->added[k];
                if (a->len <= n - i && memcmp(s + i, a->content, a->len) == 0 &&
                    (best < 0 || a->len > t->added[best].len))
                    best = k;
            }
        }
        if (best < 0) {
            i++;
            continue;
        }
        if (i > text_start) push_chunk(out, s + text_start, i - text_start, -1);
        push_chunk(out, s + i, t->added[best].len, best);
        i += t->added[best].len;
        text_start = i;
    }
    if (n > text_start) push_chunk(out, s + text_start, n - text_start, -1);
}

static void strip_left(chunk *c) {
    size_t k = 0, w;
    while (k < c->n && (w = ivl_text_space_len(c->s + k, c->n - k)) > 0) k += w;
    memmove(c->s, c->s + k, c->n - k + 1);
    c->n -= k;
}

static void strip_right(chunk *c) {
    while (c->n > 0) {
        size_t p = utf8_prev(c->s, c->n);
        if (ivl_text_space_len(c->s + p, c->n - p) != c->n - p) break;
        c->n = p;
    }
    c->s[c->n] = 0;
}

static void append_to(chunk *dst, const chunk *src) {
    dst->s = ivl_realloc(dst->s, dst->n + src->n + 1);
    memcpy(dst->s + dst->n, src->s, src->n + 1);
    dst->n += src->n;
}

// The AddedToken flags, in HF's order: rstrip trims the next chunk, lstrip the previous one,
// single_word glues a token that touches a word back into that word.
static void apply_flags(const ivl_tokenizer *t, chunk_list *l) {
    for (int i = 0; i < l->n; i++) {
        if (l->c[i].added < 0) continue;
        const ivl_added_token *a = &t->added[l->c[i].added];
        chunk *left = i > 0 ? &l->c[i - 1] : NULL;
        chunk *right = i + 1 < l->n ? &l->c[i + 1] : NULL;
        if (a->rstrip && right && right->n) strip_left(right);
        if (a->lstrip && left && left->n) strip_right(left);
        if (a->single_word && left && left->n && left->s[left->n - 1] != ' ') {
            append_to(left, &l->c[i]);
            l->c[i].n = 0;
        } else if (a->single_word && right && right->n && right->s[0] != ' ') {
            append_to(&l->c[i], right);
            l->c[i].added = -1;     // no longer a token string: SentencePiece encodes it
            right->n = 0;
        }
    }
}

static int sp_encode_append(const ivl_tokenizer *t, const char *s, size_t n, int drop,
                            ivl_token_list *out) {
    int32_t *ids;
    int m;
    if (ivl_spm_encode(t->sp, s, n, &ids, &m)) return -1;
    for (int i = drop < m ? drop : m; i < m; i++) {
        int32_t id = ids[i];
        for (int r = 0; r < t->n_remap; r++)
            if (t->sp_remap_from[r] == id) id = t->sp_remap[r];
        ivl_token_list_push(out, id);
    }
    free(ids);
    return 0;
}

// One text chunk. legacy=False (Llama): the model has no dummy prefix, and a chunk that starts
// with a space is encoded behind the unk text, whose ids are then dropped, so its leading
// "▁" survives (LlamaTokenizer._tokenize).
static int encode_chunk(const ivl_tokenizer *t, const chunk *c, ivl_token_list *out) {
    int lead_space = c->n > 0 && (c->s[0] == ' ' || (c->n >= 3 && memcmp(c->s, "\xe2\x96\x81", 3) == 0));
    if (!t->nonlegacy || !lead_space) return sp_encode_append(t, c->s, c->n, 0, out);
    size_t ul = strlen(t->unk_token);
    char *buf = ivl_malloc(ul + c->n + 1);
    memcpy(buf, t->unk_token, ul);
    memcpy(buf + ul, c->s, c->n);
    int rc = sp_encode_append(t, buf, ul + c->n, t->unk_len, out);
    free(buf);
    return rc;
}

// legacy=False: "▁" in the text becomes a space, and one "▁" goes in front of it all.
static char *nonlegacy_text(const ivl_tokenizer *t, const char *text, size_t n, size_t *out_n) {
    char *buf = ivl_malloc(n + 4);
    size_t k = 0;
    if (t->add_prefix_space) {
        memcpy(buf, "\xe2\x96\x81", 3);
        k = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (i + 3 <= n && memcmp(text + i, "\xe2\x96\x81", 3) == 0) {
            buf[k++] = ' ';
            i += 2;
        } else {
            buf[k++] = text[i];
        }
    }
    buf[k] = 0;
    *out_n = k;
    return buf;
}

int ivl_tokenizer_encode(const ivl_tokenizer *t, const char *text, long len, int add_special,
                         ivl_token_list *out) {
    size_t n = len < 0 ? strlen(text) : (size_t)len;
    int start = out->n;
    if (add_special && t->add_bos && t->bos_id >= 0) ivl_token_list_push(out, t->bos_id);
    int first = out->n;

    char *owned = NULL;
    const char *s = text;
    if (t->nonlegacy && n > 0) s = owned = nonlegacy_text(t, text, n, &n);

    chunk_list l = {0};
    split_added(t, s, n, &l);
    apply_flags(t, &l);
    int rc = 0;
    for (int i = 0; i < l.n && rc == 0; i++) {
        if (l.c[i].n == 0) continue;
        if (l.c[i].added >= 0) ivl_token_list_push(out, t->added[l.c[i].added].id);
        else rc = encode_chunk(t, &l.c[i], out);
    }
    for (int i = 0; i < l.n; i++) free(l.c[i].s);
    free(l.c);
    free(owned);
    if (rc) {
        out->n = start;
        return -1;
    }
    // legacy=False: a lone "▁" in front of a special token is dropped (LlamaTokenizer.tokenize).
    if (t->nonlegacy && out->n - first > 1 && !ivl_tokenizer_is_added(t, out->ids[first]) &&
        strcmp(ivl_tokenizer_id_to_token(t, out->ids[first]), "\xe2\x96\x81") == 0 &&
        ivl_tokenizer_is_special(t, out->ids[first + 1])) {
        memmove(out->ids + first, out->ids + first + 1, sizeof(int32_t) * (size_t)(out->n - first - 1));
        out->n--;
    }
    if (add_special && t->add_eos && t->eos_id >= 0) ivl_token_list_push(out, t->eos_id);
    return 0;
}
