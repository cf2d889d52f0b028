// cmd_chat.c - `internvl chat`: answers questions about images, streaming the answer.
//
//   internvl chat --model M.h5 [--image F]... "question"      one turn
//   internvl chat --model M.h5 [--image F]...                  turns from stdin, one per line
//
// The images go through the reference preprocessing (core/image), the prompt through the
// model's chat template (core/text/chat.h: the image block in the first user message),
// generation stops at the template separator. Multi-turn: each turn's prompt is the whole
// conversation (prompt + history), but the scheduler's prefix cache (parallel/scheduler.h)
// holds the earlier turns' KV blocks, images included, so only the new message is
// prefilled (--verbose reports it). Under mpirun every rank runs the same loop; rank 0 reads
// stdin and broadcasts each line, and only rank 0 prints.
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm.h"
#include "core/check.h"
#include "core/image/image.h"
#include "core/log.h"
#include "core/text/chat.h"
#include "launcher/commands.h"
#include "launcher/run_util.h"
#include "parallel/session.h"
#include "weights/tensor_io.h"

#define MAX_IMAGES 64

static void usage(FILE *f) {
    fprintf(f,
            "usage: internvl chat --model M.h5 [--image FILE]... [\"question\"] [options]\n"
            "Without a question, reads one question per line from stdin (a multi-turn\n"
            "conversation; an empty line or EOF ends it).\n"
            "  --image FILE         JPEG, PNG, WebP, GIF (first frame), BMP or TIFF (first page);\n"
            "                       repeat for several images (Image-1, Image-2, ...)\n"
            "  --system TEXT        system message (default: config.json's, else the template's)\n"
            "  --max-new-tokens N   default 512\n"
            "  --max-tiles N        1..40 tiles per image (default: config max_dynamic_patch)\n"
            "  --max-pixels N       refuse larger images (decompression bombs; default 178956970)\n"
            "  --exif-transpose     turn images upright by their EXIF orientation (Pillow's\n"
            "                       ImageOps.exif_transpose; off by default like the reference)\n"
            "  --do-sample          sample instead of greedy; with --temperature T (1.0),\n"
            "                       --top-k K (50), --top-p P (1.0), --seed S\n"
            "  --repetition-penalty R  (1.0, Hugging Face semantics)\n"
            "  --dump OUT.h5        write pixel_values, input_ids, vision_embeds, prefill_logits,\n"
            "                       generated_ids of the first turn (docs/forward-io.md)\n"
            "  --device D           cpu (default), cuda or auto\n"
            "  --verbose            report each turn's prompt positions reused from the KV cache\n"
            IVL_KV_USAGE IVL_LAYOUT_USAGE);
}

typedef struct {
    ivl_token_stream *stream;
    int32_t stop;
    int print;
} stream_ctx;

static void on_token(void *vctx, int seq, int32_t token) {
    stream_ctx *c = vctx;
    if (!c->print || token == c->stop) return;   // the separator ends the answer, unprinted
    size_t n;
    const char *piece = ivl_token_stream_push(c->stream, token, &n);
    if (piece && n) {
        fwrite(piece, 1, n, stdout);
        fflush(stdout);
    }
    (void)seq;
}

// Rank 0 reads a line; every rank gets it. Returns NULL at the end of the conversation.
static char *next_question(ivl_session *s) {
    char *line = NULL;
    int64_t len = 0;
    if (s->rank == 0) {
        size_t cap = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) {
            len = -1;
        } else {
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
            len = n;
        }
        if (len == 0) len = -1;
    }
    ivl_comm_mpi_ops()->bcast(&s->dist.topo.world, &len, 1, IVL_I64, 0);
    if (len < 0) {
        free(line);
        return NULL;
    }
    if (s->rank != 0) line = ivl_calloc((size_t)len + 1, 1);
    ivl_comm_mpi_ops()->bcast(&s->dist.topo.world, line, (size_t)len, IVL_U8, 0);
    return line;
}

static void write_dump(const char *path, ivl_session *s, const ivl_tensor *pixels,
                       const ivl_token_list *ids, const float *logits, const int32_t *gen,
                       int ngen, int max_new, int32_t stop) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    ivl_h5_out *o;
    if (ivl_h5_out_create(tmp, &o) != 0) ivl_die(1, "%s", ivl_last_error());
    ivl_set_cleanup_path(tmp);
    int rc = 0;
    if (pixels->data) {
        rc |= ivl_h5_out_write(o, "pixel_values", pixels);
        ivl_tensor e = ivl_backend_to_host_f32(s->be, &s->embeds);
        rc |= ivl_h5_out_write(o, "vision_embeds", &e);
        ivl_tensor_free_host(&e);
    }
    ivl_tensor it = ivl_tensor_host_2d(IVL_I64, 1, ids->n);
    for (int i = 0; i < ids->n; i++) ((int64_t *)it.data)[i] = ids->ids[i];
    ivl_tensor gt = ivl_tensor_host_2d(IVL_I64, 1, max_new);
    for (int i = 0; i < max_new; i++) ((int64_t *)gt.data)[i] = i < ngen ? gen[i] : -1;
    const int64_t V = s->model->cfg.llm.vocab;
    ivl_tensor lt = {IVL_F32, 2, {1, V}, (void *)logits, IVL_HOST};
    rc |= ivl_h5_out_write(o, "input_ids", &it);
    rc |= ivl_h5_out_write(o, "prefill_logits", &lt);
    rc |= ivl_h5_out_write(o, "generated_ids", &gt);
    rc |= ivl_h5_out_attr_i64(o, "max_new_tokens", max_new);
    rc |= ivl_h5_out_attr_i64(o, "stop_id", stop);
    rc |= ivl_h5_out_close(o);
    if (rc || rename(tmp, path) != 0) ivl_die(1, "writing %s: %s", path, ivl_last_error());
    ivl_set_cleanup_path(NULL);
    ivl_tensor_free_host(&it);
    ivl_tensor_free_host(&gt);
}

int cmd_chat(int argc, char **argv) {
    const char *model = NULL, *device = "cpu", *system = NULL, *dump_path = NULL;
    const char *images[MAX_IMAGES];
    int n_images = 0, max_new = 512, max_tiles = 0;
    int64_t max_pixels = 0;
    int exif_transpose = 0;
    ivl_sampling samp = ivl_sampling_default();
    ivl_parallel_opts popt = ivl_parallel_opts_default();
    ivl_kv_opts kvo = {0};
    int verbose = 0;
    static struct option opts[] = {
        {"model", 1, 0, 'm'},          {"image", 1, 0, 'i'},       {"system", 1, 0, 's'},
        {"max-new-tokens", 1, 0, 'n'}, {"max-tiles", 1, 0, 'T'},   {"do-sample", 0, 0, 'S'},
        {"temperature", 1, 0, 't'},    {"top-k", 1, 0, 'k'},       {"top-p", 1, 0, 'p'},
        {"seed", 1, 0, 'r'},           {"repetition-penalty", 1, 0, 'R'},
        {"dump", 1, 0, 'o'},           {"device", 1, 0, 'd'},      {"max-pixels", 1, 0, 'X'},
        {"exif-transpose", 0, 0, 'E'}, {"verbose", 0, 0, 'v'},
        IVL_LAYOUT_OPTIONS, IVL_KV_OPTIONS,
        {"help", 0, 0, 'h'},           {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ivl_layout_option(c, optarg, &popt) || ivl_kv_option(c, optarg, &kvo)) continue;
        switch (c) {
        case 'v': verbose = 1; break;
        case 'm': model = optarg; break;
        case 'i':
            if (n_images == MAX_IMAGES) ivl_die(2, "at most %d --image options", MAX_IMAGES);
            images[n_images++] = optarg;
            break;
        case 's': system = optarg; break;
        case 'n': max_new = ivl_parse_int("--max-new-tokens", optarg, 1, IVL_MAX_NEW_TOKENS); break;
        case 'T': max_tiles = ivl_parse_int("--max-tiles", optarg, 1, 40); break;
        case 'S': samp.do_sample = 1; break;
        case 't': samp.temperature = (float)ivl_parse_double("--temperature", optarg, 1e-6, 100); break;
        case 'k': samp.top_k = ivl_parse_int("--top-k", optarg, 0, 1 << 30); break;
        case 'p': samp.top_p = (float)ivl_parse_double("--top-p", optarg, 1e-6, 1); break;
        case 'r': samp.seed = (uint64_t)strtoull(optarg, NULL, 10); break;
        case 'R': samp.repetition_penalty = (float)ivl_parse_double("--repetition-penalty", optarg, 1e-3, 100); break;
        case 'o': dump_path = optarg; break;
        case 'X': max_pixels = (int64_t)ivl_parse_double("--max-pixels", optarg, 1, 1e12); break;
        case 'E': exif_transpose = 1; break;
        case 'd': device = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model || argc - optind > 1) {
        usage(stderr);
        return 2;
    }
    const char *question = optind < argc ? argv[optind] : NULL;

    ivl_comm_init(&argc, &argv);
    ivl_session s;
    popt.text_only = n_images == 0;   // a text conversation never needs the ViT
    if (ivl_session_open(&s, model, device, &popt) != 0) ivl_die(1, "%s", ivl_last_error());
    const ivl_model_config *cfg = &s.model->cfg;
    const ivl_chat_template *tp = ivl_chat_template_find(cfg->template_name);
    if (!tp) ivl_die(1, "%s: %s", model, ivl_last_error());
    const int32_t stop = ivl_chat_stop_id(s.tok, tp);
    if (stop < 0) ivl_die(1, "%s: %s", model, ivl_last_error());
    if (!system && cfg->system_message[0]) system = cfg->system_message;

    // Images: every rank preprocesses them (deterministic), tiles in image order.
    ivl_preprocess_opts po = ivl_preprocess_defaults();
    po.image_size = cfg->vit.image_size;
    po.min_tiles = cfg->min_dynamic_patch;
    po.max_tiles = max_tiles ? max_tiles : cfg->max_dynamic_patch;
    po.use_thumbnail = cfg->use_thumbnail;
    if (po.min_tiles > po.max_tiles) po.min_tiles = po.max_tiles;
    int tiles[MAX_IMAGES], total_tiles = 0;
    void *pix[MAX_IMAGES];
    for (int i = 0; i < n_images; i++) {
        ivl_image img;
        ivl_tile_grid grid;
        if (ivl_image_load_oriented(images[i], max_pixels, exif_transpose, &img) != 0 || ivl_image_preprocess(&img, &po, &grid, &pix[i]) != 0)
            ivl_die(1, "%s", ivl_last_error());
        ivl_image_free(&img);
        tiles[i] = grid.ntiles;
        total_tiles += grid.ntiles;
    }
    const int64_t S = cfg->vit.image_size, tile_elems = 3 * S * S;
    ivl_tensor pixels = {0};
    if (total_tiles) {
        pixels = ivl_tensor_host(IVL_F32, 4, (int64_t[]){total_tiles, 3, S, S});
        for (int i = 0, t = 0; i < n_images; t += tiles[i], i++) {
            memcpy((float *)pixels.data + (int64_t)t * tile_elems, pix[i],
                   (size_t)(tiles[i] * tile_elems) * sizeof(float));
            free(pix[i]);
        }
        LOG_INFO("%d image(s), %d tiles", n_images, total_tiles);
    }
    ivl_session_encode_images(&s, total_tiles ? &pixels : NULL, NULL);

    const int64_t V = cfg->llm.vocab;
    float *logits = ivl_malloc((size_t)V * sizeof *logits);
    int32_t *gen = ivl_malloc((size_t)max_new * sizeof *gen);
    ivl_chat_turn *history = NULL;
    int n_hist = 0;
    stream_ctx sc = {ivl_token_stream_new(s.tok, 1), stop, s.rank == 0};
    for (int turn = 0;; turn++) {
        char *q = question ? (turn == 0 ? ivl_strdup(question) : NULL) : next_question(&s);
        if (!q) break;
        ivl_chat_prompt p = {.system = system, .history = history, .n_history = n_hist,
                             .question = q, .tiles = tiles, .n_images = n_images,
                             .tokens_per_tile = cfg->proj.tokens_per_tile};
        ivl_token_list ids = {0};
        if (ivl_chat_encode(s.tok, tp, &p, &ids, NULL) != 0) ivl_die(1, "%s", ivl_last_error());
        if (ids.n + max_new > cfg->llm.max_position && cfg->llm.rope_scaling != IVL_ROPE_DYNAMIC)
            ivl_die(1, "the conversation needs %d prompt tokens + %d new tokens, more than the "
                       "model's context of %d positions: use fewer tiles (--max-tiles) or images,"
                       " or a smaller --max-new-tokens", ids.n, max_new, cfg->llm.max_position);
        // Image rows for the <IMG_CONTEXT> positions, in order.
        int64_t *img_row = ivl_malloc((size_t)ids.n * sizeof *img_row);
        int32_t ctx_id = ivl_chat_image_context_id(s.tok);
        for (int i = 0, r = 0; i < ids.n; i++) img_row[i] = ids.ids[i] == ctx_id ? r++ : -1;
        if (turn == 0) {
            // One cache for the conversation: its earlier turns stay there for the next.
            kvo.min_positions = ids.n + max_new;
            kvo.want_positions = cfg->llm.max_position;
            if (kvo.want_positions < 2 * kvo.min_positions) kvo.want_positions = 2 * kvo.min_positions;
            if (ivl_session_kv_init(&s, &kvo) != 0) ivl_die(1, "%s", ivl_last_error());
            if (verbose && s.rank == 0) {
                char d[160];
                ivl_session_kv_describe(&s, d, sizeof d);
                LOG_INFO("%s", d);
            }
        }
        uint64_t *keys = NULL;
        if (total_tiles) {
            keys = ivl_malloc((size_t)ids.n * sizeof *keys);
            ivl_image_row_keys(pixels.data, tile_elems, tiles, n_images,
                               cfg->proj.tokens_per_tile, img_row, ids.n, keys);
        }
        ivl_gen_prompt gp = {ids.ids, ids.n, total_tiles ? img_row : NULL, keys, &s.embeds};
        // The prefill logits are kept only for the dump (else greedy picks stay on the device).
        const int dumping = turn == 0 && dump_path && s.rank == 0;
        int64_t reused = 0;
        ivl_gen_params par = {.max_new_tokens = max_new, .stop_id = stop, .sampling = samp,
                              .on_token = on_token, .cb_ctx = &sc,
                              .prefill_logits = dumping ? logits : NULL, .reused_tokens = &reused};
        int ngen = 0;
        ivl_token_stream_reset(sc.stream);
        ivl_generate(ivl_session_engine(&s), &gp, 1, &par, gen, &ngen, NULL);
        free(keys);
        if (verbose && s.rank == 0)
            LOG_INFO("turn %d: %d prompt positions, %lld reused from the KV cache, %lld prefilled",
                     turn + 1, ids.n, (long long)reused, (long long)(ids.n - reused));
        if (s.rank == 0) {
            size_t n;
            const char *tail = ivl_token_stream_finish(sc.stream, &n);
            if (tail && n) fwrite(tail, 1, n, stdout);
            fputc('\n', stdout);
            fflush(stdout);
        }
        if (dumping)
            write_dump(dump_path, &s, &pixels, &ids, logits, gen, ngen, max_new, stop);
        // History keeps the cleaned answer (spec 8.3) for the next turn's prompt.
        int keep = ngen > 0 && gen[ngen - 1] == stop ? ngen - 1 : ngen;
        char *raw = ivl_tokenizer_decode(s.tok, gen, keep, 1, NULL);
        history = ivl_realloc(history, (size_t)(n_hist + 1) * sizeof *history);
        history[n_hist].user = q;
        history[n_hist].assistant = ivl_chat_response(tp, raw ? raw : "");
        n_hist++;
        free(raw);
        free(img_row);
        ivl_token_list_free(&ids);
    }
    for (int i = 0; i < n_hist; i++) {
        free((char *)history[i].user);
        free((char *)history[i].assistant);
    }
    free(history);
    ivl_token_stream_free(sc.stream);
    free(logits);
    free(gen);
    ivl_tensor_free_host(&pixels);
    ivl_session_close(&s);
    ivl_comm_finalize();
    return 0;
}
