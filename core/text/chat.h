// chat.h - InternVL 1.5 chat prompts (spec 8.1, 8.2): templates, image-token expansion,
// multi-turn history, left-padded batches.
//
// Templates are "MPT" style (InternVL conversation.py):
//     system_prefix + system + sep, then per message: role + text + sep,
//     and the open assistant role last (no text, no sep).
// Images use the placeholder form of the later HF chat API: each "<image>" in the prompt is
// replaced, in order, by "<img>" + "<IMG_CONTEXT>" x tokens_per_tile*tiles_k + "</img>".
// Without any placeholder the first user message gets "<image>\n" in front (one image) or
// "Image-1: <image>\nImage-2: <image>\n..." (several). So the image block sits only in the first
// user message of a conversation, and history turns are plain text.
//
//     const ivl_chat_template *tp = ivl_chat_template_find(cfg.template_name);
//     int tiles[1] = {7};
//     ivl_chat_prompt p = {.question = "Describe the image.", .tiles = tiles, .n_images = 1};
//     ivl_token_list ids = {0};
//     if (ivl_chat_encode(tok, tp, &p, &ids, NULL)) ... ivl_last_error() ...
//     int stop = ivl_chat_stop_id(tok, tp);          // <|im_end|> / <|end|>, by its string
#ifndef IVL_TEXT_CHAT_H
#define IVL_TEXT_CHAT_H

#include <stdint.h>

#include "core/text/tokenizer.h"

// InternVL's image token strings (constants.py); their ids come from the tokenizer.
#define IVL_IMG_START_TOKEN "<img>"
#define IVL_IMG_END_TOKEN "</img>"
#define IVL_IMG_CONTEXT_TOKEN "<IMG_CONTEXT>"
#define IVL_IMAGE_PLACEHOLDER "<image>"

typedef struct {
    const char *name;            // "internlm2-chat", "phi3-chat" (config.json "template")
    const char *system_prefix;   // system_template up to {system_message}
    const char *user_role;
    const char *assistant_role;
    const char *sep;             // also the stop token of generation
    const char *default_system;  // the 1.5-series system message (spec 8.1)
} ivl_chat_template;

// By the config.json template name; NULL with ivl_last_error() set for an unknown name.
const ivl_chat_template *ivl_chat_template_find(const char *name);

typedef struct {
    const char *user;            // may hold "<image>" placeholders (first turn)
    const char *assistant;
} ivl_chat_turn;

typedef struct {
    const char *system;          // NULL: template default; config system_message or --system
    const ivl_chat_turn *history;
    int n_history;
    const char *question;        // the new user message
    const int *tiles;            // tiles of each image, in image order (thumbnail included)
    int n_images;
    int tokens_per_tile;         // 0 means 256 (the 1.5 models; take it from the config)
} ivl_chat_prompt;

// The prompt text with image blocks expanded (malloc'ed). -1 when the number of "<image>"
// placeholders differs from n_images.
int ivl_chat_build_text(const ivl_chat_template *tp, const ivl_chat_prompt *p, char **text);

// Appends the prompt's ids (BOS first, as the tokenizer config says) to ids. text, when not
// NULL, receives the prompt text (malloc'ed). Checks that the tokenizer has the image tokens
// when images are given and that the number of <IMG_CONTEXT> ids is tokens_per_tile * tiles.
int ivl_chat_encode(const ivl_tokenizer *tok, const ivl_chat_template *tp, const ivl_chat_prompt *p,
                    ivl_token_list *ids, char **text);

// The id of the template's separator (the generation stop token), looked up by its string.
// -1 with ivl_last_error() set when the tokenizer has no such single token.
int ivl_chat_stop_id(const ivl_tokenizer *tok, const ivl_chat_template *tp);
// The id of <IMG_CONTEXT> (the positions the image embeddings overwrite), or -1.
int ivl_chat_image_context_id(const ivl_tokenizer *tok);

// A batch of prompts, left-padded with the tokenizer's pad id (batch_chat): row b is
// ids[b*seq_len .. (b+1)*seq_len), mask 1 on real tokens and 0 on the pads in front.
typedef struct {
    int batch;
    int seq_len;
    int32_t *ids;
    int32_t *mask;
} ivl_chat_batch;

int ivl_chat_encode_batch(const ivl_tokenizer *tok, const ivl_chat_template *tp,
                          const ivl_chat_prompt *prompts, int n, ivl_chat_batch *out);
void ivl_chat_batch_free(ivl_chat_batch *b);

// The answer from generated text (decoded with skip_special): cut at the first separator
// string, whitespace stripped at both ends (spec 8.3). Returns a malloc'ed string.
char *ivl_chat_response(const ivl_chat_template *tp, const char *generated);

#endif
