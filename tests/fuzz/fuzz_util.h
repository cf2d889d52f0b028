// fuzz_util.h - shared bits of the libFuzzer targets (tests/fuzz/README.md).
//
// Parsers that take a path get the fuzz input written to a per-process scratch folder under
// $TMPDIR (else /dev/shm when it exists: no disk traffic; the run scripts point TMPDIR into the
// build folder, since a crash skips the clean-up). The folder is made once and removed at exit.
// Logging is turned down to errors so a run is not drowned in warnings.
#ifndef IVL_FUZZ_UTIL_H
#define IVL_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

// Creates the scratch folder on first use and returns it.
const char *fuzz_scratch_dir(void);
// Writes data to <scratch>/<name> (replacing it) and returns the full path (static buffer,
// valid until the next call). Ends the process if the write fails: that is the harness's
// problem, not a finding.
const char *fuzz_write_file(const char *name, const void *data, size_t size);
void fuzz_remove_file(const char *name);
// Quiet logs, HDF5 error stack off; called from each target's LLVMFuzzerInitialize.
void fuzz_init_common(void);

// A cursor over the fuzz input, for targets that build structured arguments from it.
typedef struct {
    const uint8_t *p;
    size_t n;
} fuzz_reader;
uint32_t fuzz_u32(fuzz_reader *r);   // 0 when exhausted
uint8_t fuzz_u8(fuzz_reader *r);
// The next NUL-terminated piece (up to a 0 byte or the end) as a malloc'ed string.
char *fuzz_str(fuzz_reader *r);

// A folder shipped with the fuzz targets (tests/fuzz/data/<name>), for fixed inputs such as
// the tokenizer of the decoding and prompt targets. IVL_FUZZ_DATA overrides the root.
const char *fuzz_data_path(const char *name);

#endif
