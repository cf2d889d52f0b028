// test_comm_msg.c - protobuf-c messages of comm/proto/ivl.proto.
// Every rank: a full BatchPlan / Results / Control / Envelope survives pack + unpack with
// every field; truncated, bit-flipped and random bytes give NULL + a message, never a crash.
// With 2+ ranks: send/recv (also from any source), bcast, and a corrupt message sent over the
// wire gives a status error naming the sender, after which the channel still works.
#include <stdlib.h>
#include <string.h>

#include "comm/msg.h"
#include "comm_test.h"
#include "core/check.h"

static Ivl__BatchPlan *make_plan(void) {
    // Built on the heap the way a planner would, freed with free_plan().
    Ivl__BatchPlan *p = ivl_malloc(sizeof *p);
    ivl__batch_plan__init(p);
    p->batch_id = 42;
    p->n_images = 2;
    p->images = ivl_malloc(2 * sizeof *p->images);
    for (int i = 0; i < 2; i++) {
        Ivl__ImageRef *im = ivl_malloc(sizeof *im);
        ivl__image_ref__init(im);
        im->key = ivl_strdup(i ? "shard-000/0001" : "cat");
        if (i == 0) {
            im->source_case = IVL__IMAGE_REF__SOURCE_PATH;
            im->path = ivl_strdup("/data/cat.jpg");
        } else {
            Ivl__ShardMember *sm = ivl_malloc(sizeof *sm);
            ivl__shard_member__init(sm);
            sm->shard = ivl_strdup("shards/00000.tar");
            sm->member = ivl_strdup("0001.png");
            im->source_case = IVL__IMAGE_REF__SOURCE_SHARD;
            im->shard = sm;
        }
        im->tiles = i ? 7 : 3;
        im->width = 1000 + i;
        im->height = 700;
        im->first_tile = i ? 3 : 0;
        p->images[i] = im;
    }
    p->total_tiles = 10;
    p->n_assignments = 2;
    p->assignments = ivl_malloc(2 * sizeof *p->assignments);
    for (int a = 0; a < 2; a++) {
        Ivl__TileAssignment *ta = ivl_malloc(sizeof *ta);
        ivl__tile_assignment__init(ta);
        ta->vision_rank = a;
        ta->n_tiles = 5;
        ta->tiles = ivl_malloc(5 * sizeof *ta->tiles);
        for (int k = 0; k < 5; k++) ta->tiles[k] = a + 2 * k;
        p->assignments[a] = ta;
    }
    p->n_sequences = 1;
    p->sequences = ivl_malloc(sizeof *p->sequences);
    Ivl__Sequence *s = ivl_malloc(sizeof *s);
    ivl__sequence__init(s);
    s->id = 1ull << 40;
    s->key = ivl_strdup("cat");
    s->n_images = 2;
    s->images = ivl_malloc(2 * sizeof *s->images);
    s->images[0] = 0;
    s->images[1] = 1;
    s->n_prompt_ids = 4;
    s->prompt_ids = ivl_malloc(4 * sizeof *s->prompt_ids);
    int32_t ids[4] = {1, 92544, -5, 2147483647};
    memcpy(s->prompt_ids, ids, sizeof ids);
    s->max_new_tokens = 64;
    p->sequences[0] = s;
    return p;
}

static void free_plan(Ivl__BatchPlan *p) {
    for (size_t i = 0; i < p->n_images; i++) {
        Ivl__ImageRef *im = p->images[i];
        free(im->key);
        if (im->source_case == IVL__IMAGE_REF__SOURCE_PATH) free(im->path);
        else {
            free(im->shard->shard);
            free(im->shard->member);
            free(im->shard);
        }
        free(im);
    }
    for (size_t a = 0; a < p->n_assignments; a++) {
        free(p->assignments[a]->tiles);
        free(p->assignments[a]);
    }
    for (size_t q = 0; q < p->n_sequences; q++) {
        free(p->sequences[q]->key);
        free(p->sequences[q]->images);
        free(p->sequences[q]->prompt_ids);
        free(p->sequences[q]);
    }
    free(p->images);
    free(p->assignments);
    free(p->sequences);
    free(p);
}

static void expect_plan(const Ivl__BatchPlan *p, const char *where) {
    EXPECT(p != NULL, "%s: no plan (%s)", where, ivl_last_error());
    if (!p) return;
    EXPECT(p->batch_id == 42 && p->n_images == 2 && p->total_tiles == 10, "%s: header", where);
    if (p->n_images == 2) {
        const Ivl__ImageRef *a = p->images[0], *b = p->images[1];
        EXPECT(!strcmp(a->key, "cat") && a->source_case == IVL__IMAGE_REF__SOURCE_PATH &&
                   !strcmp(a->path, "/data/cat.jpg") && a->tiles == 3 && a->width == 1000 &&
                   a->height == 700 && a->first_tile == 0,
               "%s: image 0", where);
        EXPECT(!strcmp(b->key, "shard-000/0001") && b->source_case == IVL__IMAGE_REF__SOURCE_SHARD &&
                   !strcmp(b->shard->shard, "shards/00000.tar") &&
                   !strcmp(b->shard->member, "0001.png") && b->tiles == 7 && b->first_tile == 3,
               "%s: image 1", where);
    }
    EXPECT(p->n_assignments == 2, "%s: assignments", where);
    for (size_t a = 0; a < p->n_assignments && a < 2; a++) {
        EXPECT(p->assignments[a]->vision_rank == a && p->assignments[a]->n_tiles == 5 &&
                   p->assignments[a]->tiles[4] == a + 8,
               "%s: assignment %zu", where, a);
    }
    EXPECT(p->n_sequences == 1, "%s: sequences", where);
    if (p->n_sequences == 1) {
        const Ivl__Sequence *s = p->sequences[0];
        EXPECT(s->id == 1ull << 40 && !strcmp(s->key, "cat") && s->n_images == 2 &&
                   s->images[1] == 1 && s->n_prompt_ids == 4 && s->prompt_ids[1] == 92544 &&
                   s->prompt_ids[2] == -5 && s->prompt_ids[3] == 2147483647 &&
                   s->max_new_tokens == 64,
               "%s: sequence", where);
    }
}

static void test_round_trip_and_corrupt(void) {
    Ivl__BatchPlan *plan = make_plan();
    size_t len = 0;
    uint8_t *bytes = ivl_msg_pack(&plan->base, &len);
    EXPECT(len > 50, "plan packs to %zu bytes", len);
    Ivl__BatchPlan *back = (Ivl__BatchPlan *)ivl_msg_unpack(&ivl__batch_plan__descriptor, bytes,
                                                            len, "round trip");
    expect_plan(back, "round trip");
    ivl_msg_free(&back->base);

    // Results with timings and an error field.
    Ivl__Timings tm = IVL__TIMINGS__INIT;
    tm.vision_ms = 12.5;
    tm.decode_ms = 1e-3;
    tm.new_tokens = 3;
    int32_t toks[3] = {5, 6, 92542};
    Ivl__Result r0 = IVL__RESULT__INIT, r1 = IVL__RESULT__INIT;
    r0.key = "cat";
    r0.n_token_ids = 3;
    r0.token_ids = toks;
    r0.text = "A cat on a mat. ✓";
    r0.timings = &tm;
    r0.tiles = 3;
    r1.key = "broken";
    r1.error = "broken.jpg: not a JPEG file";
    Ivl__Result *rs[2] = {&r0, &r1};
    Ivl__Results res = IVL__RESULTS__INIT;
    res.batch_id = 7;
    res.n_results = 2;
    res.results = rs;
    Ivl__Envelope env = IVL__ENVELOPE__INIT;
    env.body_case = IVL__ENVELOPE__BODY_RESULTS;
    env.results = &res;
    size_t elen = 0;
    uint8_t *eb = ivl_msg_pack(&env.base, &elen);
    Ivl__Envelope *eback =
        (Ivl__Envelope *)ivl_msg_unpack(&ivl__envelope__descriptor, eb, elen, "envelope");
    EXPECT(eback && eback->body_case == IVL__ENVELOPE__BODY_RESULTS &&
               eback->results->n_results == 2,
           "envelope results");
    if (eback && eback->results && eback->results->n_results == 2) {
        const Ivl__Result *a = eback->results->results[0], *b = eback->results->results[1];
        EXPECT(!strcmp(a->key, "cat") && a->n_token_ids == 3 && a->token_ids[2] == 92542 &&
                   !strcmp(a->text, "A cat on a mat. ✓") && a->timings &&
                   a->timings->vision_ms == 12.5 && a->timings->decode_ms == 1e-3 &&
                   a->timings->new_tokens == 3 && a->tiles == 3 && !strcmp(a->error, ""),
               "result 0");
        EXPECT(!strcmp(b->key, "broken") && !strcmp(b->error, "broken.jpg: not a JPEG file") &&
                   b->n_token_ids == 0 && b->timings == NULL,
               "result 1");
    }
    ivl_msg_free(eback ? &eback->base : NULL);
    free(eb);

    Ivl__Control c = IVL__CONTROL__INIT;
    c.kind = IVL__CONTROL__KIND__ERROR;
    c.rank = 3;
    c.message = "CUDA out of memory";
    size_t clen = 0;
    uint8_t *cb = ivl_msg_pack(&c.base, &clen);
    Ivl__Control *cback =
        (Ivl__Control *)ivl_msg_unpack(&ivl__control__descriptor, cb, clen, "control");
    EXPECT(cback && cback->kind == IVL__CONTROL__KIND__ERROR && cback->rank == 3 &&
               !strcmp(cback->message, "CUDA out of memory"),
           "control round trip");
    ivl_msg_free(cback ? &cback->base : NULL);
    free(cb);

    // Corrupt bytes. Truncations: every cut that breaks a length-delimited field must fail;
    // a cut exactly between fields is a valid shorter message, so count failures instead.
    int truncated_failures = 0;
    for (size_t cut = 1; cut < len; cut++) {
        ProtobufCMessage *m =
            ivl_msg_unpack(&ivl__batch_plan__descriptor, bytes, cut, "truncated");
        if (!m) {
            truncated_failures++;
            EXPECT(strstr(ivl_last_error(), "ivl.BatchPlan") &&
                       strstr(ivl_last_error(), "not a valid"),
                   "message: %s", ivl_last_error());
        }
        ivl_msg_free(m);
    }
    EXPECT(truncated_failures > (int)len / 2, "only %d of %zu truncations rejected",
           truncated_failures, len - 1);
    // A length prefix pointing past the end of the buffer.
    uint8_t bad[4] = {0x12, 0x7f, 0x0a, 0x01};   // field 2 (images), length 127, 2 bytes left
    EXPECT(ivl_msg_unpack(&ivl__batch_plan__descriptor, bad, sizeof bad, "overlong") == NULL,
           "overlong length accepted");
    // A wire type that cannot be (7 is reserved).
    uint8_t bad2[2] = {0x0f, 0x00};
    EXPECT(ivl_msg_unpack(&ivl__control__descriptor, bad2, sizeof bad2, "bad wire type") == NULL,
           "bad wire type accepted");
    // Random bytes: must never crash; most are rejected.
    srand(1234);
    int rejected = 0;
    uint8_t junk[64];
    for (int t = 0; t < 500; t++) {
        for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)rand();
        ProtobufCMessage *m = ivl_msg_unpack(&ivl__batch_plan__descriptor, junk, sizeof junk, "junk");
        rejected += m == NULL;
        ivl_msg_free(m);
    }
    EXPECT(rejected > 400, "only %d of 500 random buffers rejected", rejected);
    free(bytes);
    free_plan(plan);
}

static void test_over_mpi(void) {
    ivl_comm_group w;
    ivl_comm_group_world(&w);
    const int R = w.rank, N = w.size;
    Ivl__BatchPlan *plan = R == 0 ? make_plan() : NULL;

    // bcast: every rank, root included, gets its own copy.
    Ivl__BatchPlan *got = (Ivl__BatchPlan *)ivl_msg_bcast(&w, &ivl__batch_plan__descriptor,
                                                          plan ? &plan->base : NULL, 0);
    expect_plan(got, "bcast");
    ivl_msg_free(got ? &got->base : NULL);

    if (N >= 2) {
        // Results from every other rank to rank 0, in whatever order they arrive.
        if (R != 0) {
            Ivl__Result r = IVL__RESULT__INIT, *rp = &r;
            char key[32];
            snprintf(key, sizeof key, "from-%d", R);
            r.key = key;
            int32_t id = 1000 + R;
            r.n_token_ids = 1;
            r.token_ids = &id;
            Ivl__Results rs = IVL__RESULTS__INIT;
            rs.batch_id = (uint64_t)R;
            rs.n_results = 1;
            rs.results = &rp;
            ivl_msg_send(&w, &rs.base, 0);
        } else {
            int seen = 0;
            for (int k = 1; k < N; k++) {
                int from = -1;
                Ivl__Results *rs = (Ivl__Results *)ivl_msg_recv(&w, &ivl__results__descriptor,
                                                                IVL_MSG_ANY_SOURCE, &from);
                EXPECT(rs != NULL, "recv results: %s", ivl_last_error());
                if (!rs) continue;
                char key[32];
                snprintf(key, sizeof key, "from-%d", from);
                EXPECT(from >= 1 && from < N && rs->batch_id == (uint64_t)from &&
                           rs->n_results == 1 && !strcmp(rs->results[0]->key, key) &&
                           rs->results[0]->token_ids[0] == 1000 + from,
                       "results from %d", from);
                seen |= 1 << from;
                ivl_msg_free(&rs->base);
            }
            EXPECT(seen == ((1 << N) - 2), "senders seen: %x", seen);
        }

        // Corrupt bytes over the wire: rank 1 gets a status error naming rank 0, then the next
        // message on the same channel is fine.
        if (R == 0) {
            uint8_t junk[3] = {0x0a, 0x50, 0x01};   // field 1, length 80, 1 byte present
            ivl_msg_send_bytes(&w, junk, sizeof junk, 1);
            Ivl__Control c = IVL__CONTROL__INIT;
            c.kind = IVL__CONTROL__KIND__SHUTDOWN;
            ivl_msg_send(&w, &c.base, 1);
        } else if (R == 1) {
            int from = -1;
            ProtobufCMessage *m = ivl_msg_recv(&w, &ivl__control__descriptor, 0, &from);
            EXPECT(m == NULL && from == 0, "corrupt message accepted");
            EXPECT(strstr(ivl_last_error(), "rank 0") && strstr(ivl_last_error(), "ivl.Control"),
                   "message: %s", ivl_last_error());
            printf("corrupt message over MPI: %s\n", ivl_last_error());
            Ivl__Control *c = (Ivl__Control *)ivl_msg_recv(&w, &ivl__control__descriptor, 0, NULL);
            EXPECT(c && c->kind == IVL__CONTROL__KIND__SHUTDOWN, "message after the corrupt one");
            ivl_msg_free(c ? &c->base : NULL);
        }
    }
    if (plan) free_plan(plan);
    ivl_comm_group_free(&w);
}

int main(int argc, char **argv) {
    ivl_comm_init(&argc, &argv);
    test_round_trip_and_corrupt();
    test_over_mpi();
    return comm_test_finish("test_comm_msg");
}
