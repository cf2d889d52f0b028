// chat.c - InternVL chat templates and prompt building (spec 8.1, 8.2; see chat.h).
#include "core/text/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/strbuf.h"

// conversation.py of the 1.5 series (spec 8.1): separator style MPT, no newline after sep.
static const ivl_chat_template k_templates[] = {
    {"internlm2-chat", "<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n",
     "<|im_end|>", "You are an AI assistant whose name is InternLM (\xe4\xb9\xa6\xe7\x94\x9f\xc2\xb7"
     "\xe6\xb5\xa6\xe8\xaf\xad)."},
    {"phi3-chat", "<|system|>\n", "<|user|>\n", "<|assistant|>\n", "<|end|>",
     "You are an AI assistant whose name is Phi-3."},
};

const ivl_chat_template *ivl_chat_template_find(const char *name) {
    for (size_t i = 0; i < sizeof k_templates / sizeof k_templates[0]; i++)
        if (name && strcmp(name, k_templates[i].name) == 0) return &k_templates[i];
    ivl_errorf("unknown chat template \"%s\" (config.json \"template\"); known: internlm2-chat, "
               "phi3-chat", name ? name : "(null)");
    return NULL;
}



// conversation.py get_prompt for MPT: an empty message counts as no message.
static void add_message(ivl_strbuf *b, const ivl_chat_template *tp, const char *role, const char *msg,
                        const char *prefix) {
    ivl_strbuf_str(b, role);
    if ((prefix && *prefix) || (msg && *msg)) {
        if (prefix) ivl_strbuf_str(b, prefix);
        if (msg) ivl_strbuf_str(b, msg);
        ivl_strbuf_str(b, tp->sep);
    }
}

static void build_with_placeholders(const ivl_chat_template *tp, const ivl_chat_prompt *p,
                                    const char *first_prefix, ivl_strbuf *b) {
    ivl_strbuf_str(b, tp->system_prefix);
    ivl_strbuf_str(b, p->system ? p->system : tp->default_system);
    ivl_strbuf_str(b, tp->sep);
    for (int i = 0; i < p->n_history; i++) {
        add_message(b, tp, tp->user_role, p->history[i].user, i == 0 ? first_prefix : NULL);
        add_message(b, tp, tp->assistant_role, p->history[i].assistant, NULL);
    }
    add_message(b, tp, tp->user_role, p->question, p->n_history == 0 ? first_prefix : NULL);
    ivl_strbuf_str(b, tp->assistant_role);
}

static int count_placeholders(const char *s) {
    int n = 0;
    for (const char *q = s; (q = strstr(q, IVL_IMAGE_PLACEHOLDER)); q += strlen(IVL_IMAGE_PLACEHOLDER))
        n++;
    return n;
}

int ivl_chat_build_text(const ivl_chat_template *tp, const ivl_chat_prompt *p, char **text) {
    *text = NULL;
    ivl_strbuf b = {0};
    build_with_placeholders(tp, p, NULL, &b);
    int found = count_placeholders(b.s);
    if (found == 0 && p->n_images > 0) {
        // No placeholder: the image block goes in front of the first user message.
        ivl_strbuf pre = {0};
        if (p->n_images == 1) {
            ivl_strbuf_str(&pre, IVL_IMAGE_PLACEHOLDER "\n");
        } else {
            char line[64];
            for (int k = 0; k < p->n_images; k++) {
                snprintf(line, sizeof line, "Image-%d: " IVL_IMAGE_PLACEHOLDER "\n", k + 1);
                ivl_strbuf_str(&pre, line);
            }
        }
        b.n = 0;
        build_with_placeholders(tp, p, pre.s, &b);
        free(pre.s);
        found = p->n_images;
    }
    if (p->n_images > 0 && found != p->n_images) {
        free(b.s);
        return ivl_errorf("the prompt has %d \"<image>\" placeholders but %d images were given",
                          found, p->n_images);
    }
    if (p->n_images == 0) {   // HF leaves the text alone when there is no image
        *text = b.s;
        return 0;
    }
    int per_tile = p->tokens_per_tile > 0 ? p->tokens_per_tile : 256;
    ivl_strbuf out = {0};
    const char *q = b.s;
    for (int k = 0; k < p->n_images; k++) {
        if (p->tiles[k] < 1) {
            free(b.s);
            free(out.s);
            return ivl_errorf("image %d has %d tiles; every image has at least one", k + 1,
                              p->tiles[k]);
        }
        const char *ph = strstr(q, IVL_IMAGE_PLACEHOLDER);
        ivl_strbuf_add(&out, q, (size_t)(ph - q));
        ivl_strbuf_str(&out, IVL_IMG_START_TOKEN);
        for (long i = 0; i < (long)per_tile * p->tiles[k]; i++) ivl_strbuf_str(&out, IVL_IMG_CONTEXT_TOKEN);
        ivl_strbuf_str(&out, IVL_IMG_END_TOKEN);
        q = ph + strlen(IVL_IMAGE_PLACEHOLDER);
    }
    ivl_strbuf_str(&out, q);
    free(b.s);
    *text = out.s;
    return 0;
}

int ivl_chat_image_context_id(const ivl_tokenizer *tok) {
    return ivl_tokenizer_token_to_id(tok, IVL_IMG_CONTEXT_TOKEN);
}

int ivl_chat_stop_id(const ivl_tokenizer *tok, const ivl_chat_template *tp) {
    int id = ivl_tokenizer_token_to_id(tok, tp->sep);
    if (id < 0)
        return ivl_errorf("the tokenizer has no token \"%s\", the stop token of template %s; "
                          "is the checkpoint's template right?", tp->sep, tp->name);
    return id;
}

int ivl_chat_encode(const ivl_tokenizer *tok, const ivl_chat_template *tp, const ivl_chat_prompt *p,
                    ivl_token_list *ids, char **text) {
    if (text) *text = NULL;
    int ctx = -1;
    if (p->n_images > 0) {
        const char *need[3] = {IVL_IMG_START_TOKEN, IVL_IMG_END_TOKEN, IVL_IMG_CONTEXT_TOKEN};
        for (int i = 0; i < 3; i++)
            if (!ivl_tokenizer_is_added(tok, ivl_tokenizer_token_to_id(tok, need[i])))
                return ivl_errorf("the tokenizer has no added token \"%s\"; an InternVL "
                                  "checkpoint adds it (added_tokens.json)", need[i]);
        ctx = ivl_chat_image_context_id(tok);
    }
    char *s;
    if (ivl_chat_build_text(tp, p, &s)) return -1;
    int start = ids->n;
    if (ivl_tokenizer_encode(tok, s, -1, 1, ids)) {
        free(s);
        return -1;
    }
    if (ctx >= 0) {
        long want = 0, got = 0;
        for (int k = 0; k < p->n_images; k++)
            want += (long)(p->tokens_per_tile > 0 ? p->tokens_per_tile : 256) * p->tiles[k];
        for (int i = start; i < ids->n; i++) got += ids->ids[i] == ctx;
        if (got != want) {
            ids->n = start;
            free(s);
            return ivl_errorf("the prompt holds %ld <IMG_CONTEXT> tokens but its images need %ld; "
                              "does the question contain the token text itself?", got, want);
        }
    }
    if (text) *text = s;
    else free(s);
    return 0;
}

int ivl_chat_encode_batch(const ivl_tokenizer *tok, const ivl_chat_template *tp,
                          const ivl_chat_prompt *prompts, int n, ivl_chat_batch *out) {
    memset(out, 0, sizeof *out);
    int pad = ivl_tokenizer_pad_id(tok);
    if (pad < 0)
        return ivl_errorf("the tokenizer has no pad token (special_tokens_map.json pad_token); "
                          "a batch needs one for left padding");
    ivl_token_list *rows = ivl_calloc((size_t)n, sizeof(ivl_token_list));
    int rc = 0, len = 0;
    for (int b = 0; b < n && rc == 0; b++) {
        rc = ivl_chat_encode(tok, tp, &prompts[b], &rows[b], NULL);
        if (rows[b].n > len) len = rows[b].n;
    }
    if (rc == 0) {
        out->batch = n;
        out->seq_len = len;
        out->ids = ivl_malloc(sizeof(int32_t) * (size_t)n * (size_t)len + 1);
        out->mask = ivl_malloc(sizeof(int32_t) * (size_t)n * (size_t)len + 1);
        for (int b = 0; b < n; b++) {
            int padn = len - rows[b].n;
            for (int i = 0; i < len; i++) {
                out->ids[(size_t)b * len + i] = i < padn ? pad : rows[b].ids[i - padn];
                out->mask[(size_t)b * len + i] = i >= padn;
            }
        }
    }
    for (int b = 0; b < n; b++) ivl_token_list_free(&rows[b]);
    free(rows);
    return rc;
}

void ivl_chat_batch_free(ivl_chat_batch *b) {
    free(b->ids);
    free(b->mask);
    memset(b, 0, sizeof *b);
}

char *ivl_chat_response(const ivl_chat_template *tp, const char *generated) {
    const char *end = strstr(generated, tp->sep);
    size_t n = end ? (size_t)(end - generated) : strlen(generated);
    const char *s = generated;
    while (n > 0 && (*s == ' ' || (*s >= '\t' && *s <= '\r'))) s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || (s[n - 1] >= '\t' && s[n - 1] <= '\r'))) n--;
    char *r = ivl_malloc(n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}
