// caption_utf8.h - strings that go into the JSON Lines results must be UTF-8 (issue 18): a
// strict parser rejects a line with any other byte. Keys, sources and prompts come from file
// names, tar member names and the command line, which are bytes. They are written as is when
// they are valid UTF-8; otherwise escaped, reversibly:
//   - each byte that is not part of a valid UTF-8 sequence becomes the 4 characters \xHH
//     (lower-case hex; in the JSON text "\\xHH"),
//   - a backslash becomes two backslashes, so \xHH in the escaped text is always a byte,
//   - valid sequences are kept.
// The result line then also carries key_hex (and source_hex): the raw bytes in hex, so a
// reader gets the exact bytes back without parsing escapes. The resume scan compares keys
// in this escaped form (ivl_cap_key_json), so a rerun recognises them.
// A valid UTF-8 key that happens to spell an escape (a literal "\xff") maps to the same text
// as the raw byte it spells; such a pair is treated as one key (a duplicate).
#ifndef IVL_PARALLEL_CAPTION_UTF8_H
#define IVL_PARALLEL_CAPTION_UTF8_H

// 1 when s (NUL-terminated) is valid UTF-8 (no overlong forms, surrogates or code points
// above U+10FFFF).
int ivl_cap_utf8_valid(const char *s);
// The text written for s (malloc'ed): s itself when valid, else the escaped form above.
// *escaped (may be NULL) = 1 when it was escaped.
char *ivl_cap_key_json(const char *s, int *escaped);
// The bytes of s in lower-case hex (malloc'ed).
char *ivl_cap_hex(const char *s);

#endif
