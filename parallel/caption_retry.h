// caption_retry.h - which failures of one image are its result and which are retried
// (issue 18). A result line is final: a rerun skips its key. So only a failure of the image
// itself may become an error line: its bytes are not a valid image (not_image, corrupt,
// truncated, unsupported, too_large, empty), or its entry names something that is not an
// image file (a path that does not exist, a FIFO, device or directory, a file or member
// above the size limit, a member name that escapes the shard). A failure of the medium or
// the container (an I/O error, a tar shard cut or corrupt in the middle of a member, out of
// memory) says nothing about the image: it writes no line, the unit gets no .done marker,
// the job exits 1 and the next run tries the key again.
#ifndef IVL_PARALLEL_CAPTION_RETRY_H
#define IVL_PARALLEL_CAPTION_RETRY_H

#include "core/image/image.h"
#include "parallel/caption_input.h"

// 1 when the failure of this image (item.error set, or img->status != 0) is final and goes
// into the result file; 0 when it must be retried by the next run. img may be NULL (the
// item failed before decoding).
int ivl_cap_failure_is_final(const ivl_cap_item *it, const ivl_image_result *img);

#endif
