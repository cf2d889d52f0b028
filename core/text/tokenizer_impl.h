// tokenizer_impl.h - the inside of ivl_tokenizer, shared by tokenizer.c (loading, lookups),
// encode.c and detok.c. Not for use outside core/text/.
#ifndef IVL_TEXT_TOKENIZER_IMPL_H
#define IVL_TEXT_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "core/text/spm.h"
#include "core/text/tokenizer.h"

typedef struct {
    char *content;      // the token text, e.g. "<|im_end|>"
    size_t len;
    int id;
    int lstrip;         // HF AddedToken flags: strip whitespace left / right of the token,
    int rstrip;         // match only as a whole word
    int single_word;
} ivl_added_token;

struct ivl_tokenizer {
    char *source;               // file or folder, for messages
    ivl_spm *sp;
    int sp_size;                // pieces in tokenizer.model
    int vocab_size;             // max(sp_size, largest added id + 1)
    ivl_added_token *added;     // added_tokens_decoder + added_tokens.json + named specials
    int n_added;
    int *added_of_id;           // [vocab_size]: index into added, or -1
    unsigned char first_bytes[256];  // 1 where some added token starts with that byte
    int *special_ids;           // HF all_special_ids (what skip_special drops)
    int n_special;
    int32_t *sp_remap_from;     // .model ids whose piece text is an added token ...
    int32_t *sp_remap;          // ... and the added id HF gives them instead
    int n_remap;
    int bos_id, eos_id, unk_id, pad_id;
    char *unk_token;            // unk text, for the legacy=False leading-space trick
    int unk_len;                // ids of unk_token alone (legacy=False only)
    int add_bos, add_eos;       // tokenizer_config add_bos_token / add_eos_token
    int clean_up;               // clean_up_tokenization_spaces
    int nonlegacy;              // LlamaTokenizer with legacy=false
    int add_prefix_space;       // legacy=false: one "▁" before the whole text (HF default)
    int sp_dummy_prefix;        // the loaded model adds "▁" to every chunk it encodes
};

// Python's str.isspace() for the UTF-8 character at s (n bytes left): its byte length, or 0.
size_t ivl_text_space_len(const char *s, size_t n);

#endif
