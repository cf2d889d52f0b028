// caption_retry.c - see caption_retry.h.
#include "parallel/caption_retry.h"

#include <errno.h>
#include <sys/stat.h>

int ivl_cap_failure_is_final(const ivl_cap_item *it, const ivl_image_result *img) {
    if (it->error) return !it->retry;   // the reader decided (caption_input.c)
    if (!img || img->status == IVL_IMAGE_OK) return 1;
    switch (img->status) {
    case IVL_IMAGE_E_NOMEM: return 0;   // this node's memory, not the image
    case IVL_IMAGE_E_IO: {
        // The file could not be opened or read. A path that does not exist (a list entry
        // naming a missing file) is the entry's own fault and final; anything else (EIO,
        // ESTALE, EACCES, EMFILE, a read error) may pass, so the key is retried.
        struct stat st;
        if (!it->path) return 0;
        if (stat(it->path, &st) != 0 && (errno == ENOENT || errno == ENOTDIR)) return 1;
        return 0;
    }
    default: return 1;                  // the bytes are not a valid image
    }
}
