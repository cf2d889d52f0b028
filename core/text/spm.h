// spm.h - private C view of libsentencepiece (C++), used only by core/text/tokenizer.c.
// libsentencepiece has no C API; spm_shim.cc wraps the few calls the tokenizer needs.
// Every function catches C++ exceptions; errors come back as -1 with ivl_errorf() set.
#ifndef IVL_TEXT_SPM_H
#define IVL_TEXT_SPM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ivl_spm ivl_spm;

// Loads a serialized ModelProto (the bytes of tokenizer.model). what names the source in errors.
int ivl_spm_load(const void *data, size_t size, const char *what, ivl_spm **out);
void ivl_spm_free(ivl_spm *sp);

// Encodes UTF-8 text with the model's own normalizer (dummy prefix, byte fallback...).
// *ids is malloc'ed (caller frees); *n may be 0.
int ivl_spm_encode(const ivl_spm *sp, const char *text, size_t len, int32_t **ids, int *n);
// Decodes ids as SentencePiece does (byte pieces joined into UTF-8, "\xe2\x96\x81" -> " ",
// leading space of the first piece dropped when the model adds a dummy prefix).
// *text is malloc'ed and NUL-terminated, *len excludes the NUL.
int ivl_spm_decode(const ivl_spm *sp, const int32_t *ids, int n, char **text, size_t *len);

int ivl_spm_size(const ivl_spm *sp);
const char *ivl_spm_id_to_piece(const ivl_spm *sp, int id);   // "" when out of range
int ivl_spm_piece_to_id(const ivl_spm *sp, const char *piece, size_t len); // -1 when absent
int ivl_spm_is_byte(const ivl_spm *sp, int id);
int ivl_spm_is_control(const ivl_spm *sp, int id);
int ivl_spm_is_unknown(const ivl_spm *sp, int id);
int ivl_spm_unk_id(const ivl_spm *sp);
int ivl_spm_bos_id(const ivl_spm *sp);
int ivl_spm_eos_id(const ivl_spm *sp);
int ivl_spm_pad_id(const ivl_spm *sp);

#ifdef __cplusplus
}
#endif
#endif
