// caption_out.h - one JSON Lines result file of the captioning job (one per input unit: a tar
// shard, or a chunk of a directory or list), written by one writer (rank 0).
//
// Exactly-once rules, for a reader and for a restarted job:
//   - A line is a result only when it ends in '\n' and parses as a JSON object with a string
//     "key". Results are appended in whole batches with write(2) and fsync(2); a write that
//     fails part way (full disk, file size limit) is cut back with ftruncate to where the
//     batch began, so the file never ends in a torn line while the job is alive.
//   - A crash (SIGKILL, node failure) can still leave a torn last line. Reopening the file
//     (ivl_cap_out_open) drops everything from the first line that is not a result and logs
//     it; the keys of the lines kept are the ones a restarted job skips.
//   - <name>.done is written (fsync'ed, then the directory fsync'ed) only after every key of
//     the unit is in <name>.jsonl; a unit with a .done marker is not opened again.
#ifndef IVL_PARALLEL_CAPTION_OUT_H
#define IVL_PARALLEL_CAPTION_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "parallel/caption_keyset.h"
#include "parallel/caption_lock.h"

typedef struct {
    int fd;
    char *path;          // DIR/<name>.jsonl
    char *done_path;     // DIR/<name>.done
    char *dir;
    int64_t size;        // bytes of whole lines in the file
    int64_t lines;       // results in the file
    ivl_keyset keys;     // their keys (filled by open)
    ivl_cap_lock lock;   // DIR/<name>.lock, held from open to close (caption_lock.h)
    int marked;          // the .done marker exists (written, or found by open)
} ivl_cap_out;

// Opens (creating) DIR/<name>.jsonl for appending, after a resume scan, holding the unit's
// lock (caption_lock.h). *complete = 1 when the .done marker exists: then nothing is opened
// (no lock is needed to see a marker), and o->lines holds the marker's count. Returns 0, or -1 + ivl_last_error() (another job holds
// the unit, or the file cannot be created, read or truncated); close it in either case.
int ivl_cap_out_open(const char *dir, const char *name, ivl_cap_out *o, int *complete);
// Appends len bytes of whole lines (nlines of them) and fsyncs. On failure the file is cut
// back to its previous size and -1 + ivl_last_error() (naming the file and errno) returned.
int ivl_cap_out_append(ivl_cap_out *o, const char *buf, size_t len, int64_t nlines);
// Writes the .done marker (the line count), fsyncs it and the directory.
int ivl_cap_out_mark_done(ivl_cap_out *o);
// Closes the file and drops the unit's lock (removing the lock file once .done exists).
void ivl_cap_out_close(ivl_cap_out *o);

// Checks that dir exists (creating it and its parents) and that a file can be created in it.
int ivl_cap_out_check_dir(const char *dir);

// Scans buf (a file's bytes) for whole result lines. Returns the byte length of the valid
// prefix; adds each line's key to keys (may be NULL) and counts lines in *nlines.
size_t ivl_cap_scan_lines(const char *buf, size_t len, ivl_keyset *keys, int64_t *nlines);

#endif
