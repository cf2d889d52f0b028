// tokenizer.h - the Hugging Face "slow" tokenizer of the InternVL checkpoints (InternLM2 and
// Phi-3/Llama SentencePiece models plus added tokens), on top of libsentencepiece.
//
// Encoding follows PreTrainedTokenizer.tokenize (spec section 9; details in core/text/README.md):
//   1. added and special tokens (added_tokens_decoder of tokenizer_config.json, added_tokens.json,
//      the named special tokens) are split out of the text first, leftmost-longest like HF's trie;
//      their lstrip/rstrip flags remove whitespace next to them (Phi-3's chat tokens are rstrip);
//   2. every remaining chunk is SentencePiece-encoded on its own, with the .model's own
//      normalizer (so add_dummy_prefix is whatever the file says). LlamaTokenizer with
//      "legacy": false adds one "▁" to the whole text instead of one per chunk, as HF does;
//   3. BOS is prepended when add_bos_token (EOS appended when add_eos_token).
// Every id and token string is read from the files; nothing is hard-coded.
//
// Loading: from in-memory blobs (what the HDF5 model file stores under /tokenizer, read with
// ivl_model_file_read_blob(mf, "tokenizer", "tokenizer.model", ...)) or from a Hugging Face
// folder. core/ does not depend on weights/, so the caller reads the blobs:
//
//     void *m, *c = NULL, *a = NULL, *s = NULL; size_t nm, n;
//     ivl_model_file_read_blob(mf, "tokenizer", "tokenizer.model", &m, &nm);     // required
//     ivl_model_file_read_blob(mf, "tokenizer", "tokenizer_config.json", &c, &n); // optional
//     ... same for added_tokens.json and special_tokens_map.json
//     ivl_tokenizer_blobs b = {m, nm, c, a, s, ivl_model_file_path(mf)};
//     ivl_tokenizer *tok; if (ivl_tokenizer_load(&b, &tok)) ... ivl_last_error() ...
//
// All functions that can fail return 0 or -1 with ivl_last_error() set. A loaded tokenizer is
// read-only and may be shared between threads.
#ifndef IVL_TEXT_TOKENIZER_H
#define IVL_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct ivl_tokenizer ivl_tokenizer;

// A growable list of token ids. Zero-initialise ({0}) before first use; free with
// ivl_token_list_free. Encoding functions append to it.
typedef struct {
    int32_t *ids;
    int n;
    int cap;
} ivl_token_list;

void ivl_token_list_push(ivl_token_list *l, int32_t id);
void ivl_token_list_append(ivl_token_list *l, const int32_t *ids, int n);
void ivl_token_list_free(ivl_token_list *l);

typedef struct {
    const void *model;              // tokenizer.model bytes (required)
    size_t model_size;
    const char *config_json;        // tokenizer_config.json text, or NULL
    const char *added_tokens_json;  // added_tokens.json text, or NULL
    const char *special_map_json;   // special_tokens_map.json text, or NULL
    const char *source;             // names the origin in error messages (file or folder)
} ivl_tokenizer_blobs;

int ivl_tokenizer_load(const ivl_tokenizer_blobs *b, ivl_tokenizer **out);
// Reads tokenizer.model (required) and the three JSON files (each optional) from dir.
int ivl_tokenizer_load_dir(const char *dir, ivl_tokenizer **out);
void ivl_tokenizer_free(ivl_tokenizer *t);

// Appends the ids of text (UTF-8, len bytes; len < 0 means NUL-terminated). add_special != 0
// adds BOS/EOS as the tokenizer_config asks (add_bos_token / add_eos_token), like HF's
// add_special_tokens=True.
int ivl_tokenizer_encode(const ivl_tokenizer *t, const char *text, long len, int add_special,
                         ivl_token_list *out);

// Decodes ids to UTF-8 (byte-fallback pieces joined, invalid sequences as U+FFFD the way
// SentencePiece does). skip_special drops the named special tokens (bos/eos/unk/pad and
// additional_special_tokens, HF's all_special_ids). Added tokens are written as their text,
// with no spaces inserted around them (HF's spaces_between_special_tokens=False).
// clean_up_tokenization (" ." -> "." ...) is applied when tokenizer_config asks for it.
// Returns a malloc'ed NUL-terminated string (*len, if not NULL, excludes the NUL) or NULL.
char *ivl_tokenizer_decode(const ivl_tokenizer *t, const int32_t *ids, int n, int skip_special,
                           size_t *len);

// Vocabulary: ids run from 0 to vocab_size-1 (SentencePiece pieces, then added tokens).
int ivl_tokenizer_vocab_size(const ivl_tokenizer *t);
// The id of a token string: an added/special token's text or a SentencePiece piece
// ("▁the", "<0x0A>"). -1 when the string is no single token.
int ivl_tokenizer_token_to_id(const ivl_tokenizer *t, const char *token);
// The token string of an id (added token text, else the piece); NULL when out of range.
const char *ivl_tokenizer_id_to_token(const ivl_tokenizer *t, int id);
// 1 when id is in the skip_special set of ivl_tokenizer_decode.
int ivl_tokenizer_is_special(const ivl_tokenizer *t, int id);
// 1 when id is an added token (split out of text before SentencePiece).
int ivl_tokenizer_is_added(const ivl_tokenizer *t, int id);

// Named special tokens from the files; -1 when the tokenizer has none.
int ivl_tokenizer_bos_id(const ivl_tokenizer *t);
int ivl_tokenizer_eos_id(const ivl_tokenizer *t);
int ivl_tokenizer_pad_id(const ivl_tokenizer *t);
int ivl_tokenizer_unk_id(const ivl_tokenizer *t);
// Whether the SentencePiece model adds a dummy "▁" prefix to each chunk (read from the .model).
int ivl_tokenizer_sp_dummy_prefix(const ivl_tokenizer *t);

// Incremental decoder for streaming: feed ids one at a time, get back only text that can no
// longer change. It never returns part of a UTF-8 sequence (a Chinese character split over
// several byte-fallback ids comes out whole) and holds back a tail that clean-up could still
// rewrite. The concatenation of all pushes and the finish equals ivl_tokenizer_decode of all
// ids with the same skip_special.
typedef struct ivl_token_stream ivl_token_stream;

ivl_token_stream *ivl_token_stream_new(const ivl_tokenizer *t, int skip_special);
// Returns the new text (NUL-terminated, possibly "") valid until the next call; *len its length.
// NULL on error (an id out of range).
const char *ivl_token_stream_push(ivl_token_stream *s, int32_t id, size_t *len);
// Returns whatever was held back. The stream can be reused after ivl_token_stream_reset.
const char *ivl_token_stream_finish(ivl_token_stream *s, size_t *len);
void ivl_token_stream_reset(ivl_token_stream *s);
void ivl_token_stream_free(ivl_token_stream *s);

#endif
