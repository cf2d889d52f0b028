// caption_feed.h - rank 0's producer for the captioning job: one thread walks the units in
// order, opens each unit's result file (resume scan: keys already there are skipped, before
// their bytes are even read), reads the images (files or tar members) and hands them to the
// image pipeline of core/image (N worker threads decoding and tiling ahead of the model).
// Decoded images, images that failed and unit boundaries come out of one bounded queue that
// the model loop pops without blocking while it has work, so decoding runs ahead of the
// model and never behind it.
#ifndef IVL_PARALLEL_CAPTION_FEED_H
#define IVL_PARALLEL_CAPTION_FEED_H

#include <stdint.h>

#include "core/image/image.h"
#include "parallel/caption_input.h"
#include "parallel/caption_out.h"

// What the loop knows about a unit. Filled by the feeder before the unit's first event; the
// loop owns `out` writes and the counters after that.
typedef struct {
    ivl_cap_out out;
    int opened;
    int64_t expected;     // images of this unit this run hands out; -1 until sealed
    int64_t written;      // of those, results written
    int64_t pending;      // of those, results waiting in the write buffer
    int64_t retried;      // of those, not written: retried by the next run (caption_retry.h)
    int complete, failed;
} ivl_cap_unit_state;

typedef enum {
    IVL_CAP_EV_IMAGE = 0,    // an image (decoded, or item.error / img.status != 0: failed)
    IVL_CAP_EV_SEALED,       // a unit's images were all handed out: count = how many
    IVL_CAP_EV_UNIT_DONE,    // a unit was complete before this run (count = its lines)
    IVL_CAP_EV_UNIT_FAILED,  // a unit could not be read to the end (message)
    IVL_CAP_EV_FATAL,        // a job-level error (an output file cannot be opened)
    IVL_CAP_EV_END,          // nothing more will come
} ivl_cap_ev_kind;

typedef struct {
    ivl_cap_ev_kind kind;
    int unit;
    ivl_cap_item item;       // IMAGE
    ivl_image_result img;    // IMAGE without item.error
    int64_t count, skipped;  // SEALED / UNIT_DONE: images skipped as already done
    int64_t dups;            // SEALED / UNIT_FAILED: keys twice in the unit (2nd skipped)
    int64_t dups_across;     // ... keys also in an earlier unit of this run (captioned)
    char *message;           // UNIT_FAILED / FATAL
} ivl_cap_event;

typedef struct ivl_cap_feed ivl_cap_feed;

// Starts the thread. units/states live as long as the feed. threads = image workers,
// queue = most decoded images held (each up to (max_tiles+1) * 3*448*448*4 bytes).
ivl_cap_feed *ivl_cap_feed_start(const ivl_cap_inputs *in, ivl_cap_unit_state *states,
                                 const char *out_dir, const ivl_preprocess_opts *popt,
                                 int threads, int queue, int64_t max_member_bytes);
// Next event into *ev. timeout_ms < 0 waits for one. Returns 1, or 0 on timeout.
int ivl_cap_feed_pop(ivl_cap_feed *f, ivl_cap_event *ev, int timeout_ms);
// Puts an event back at the front (an image that did not fit this step's budget).
void ivl_cap_feed_unpop(ivl_cap_feed *f, ivl_cap_event *ev);
void ivl_cap_event_free(ivl_cap_event *ev);
// Stops reading, joins the thread, frees what is queued.
void ivl_cap_feed_stop(ivl_cap_feed *f);

#endif
