// cmd_forward.c - `internvl forward`: the low-level entry point (docs/forward-io.md).
// Input ids (+ preprocessed pixel values) -> vision embeddings, prefill logits, greedy tokens,
// and, with --dump-layers (one rank), every named intermediate.
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm.h"
#include "core/check.h"
#include "core/log.h"
#include "launcher/commands.h"
#include "launcher/run_util.h"
#include "parallel/session.h"
#include "weights/tensor_io.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: internvl forward --model M.h5 --inputs IN.h5 --dump OUT.h5 [options]\n"
            "  --max-new-tokens N   greedy tokens to generate (default 32)\n"
            "  --dump-layers        also write every named intermediate (one rank only)\n"
            "  --device D           cpu (default), cuda or auto\n"
            IVL_KV_USAGE IVL_LAYOUT_USAGE
            "IN.h5: input_ids int64 [S] or [B,S], optional attention_mask [B,S] (left padding),\n"
            "optional pixel_values float32 [tiles,3,448,448]. See docs/forward-io.md.\n");
}

typedef struct {
    ivl_h5_out *out;
    int failed;
} dump_ctx;

static void dump_fn(void *vctx, const char *name, ivl_backend *be, const ivl_tensor *t) {
    dump_ctx *d = vctx;
    if (!d->out) return;
    ivl_tensor h = ivl_backend_to_host_f32(be, t);
    if (ivl_h5_out_write(d->out, name, &h) != 0) {
        LOG_ERROR("%s", ivl_last_error());
        d->failed = 1;
    }
    ivl_tensor_free_host(&h);
}

int cmd_forward(int argc, char **argv) {
    const char *model = NULL, *inputs = NULL, *dump_path = NULL, *device = "cpu";
    int max_new = 32, dump_layers = 0;
    ivl_parallel_opts popt = ivl_parallel_opts_default();
    ivl_kv_opts kvo = {0};
    static struct option opts[] = {{"model", 1, 0, 'm'},       {"inputs", 1, 0, 'i'},
                                   {"dump", 1, 0, 'o'},        {"max-new-tokens", 1, 0, 'n'},
                                   {"dump-layers", 0, 0, 'L'}, {"device", 1, 0, 'd'},
                                   IVL_LAYOUT_OPTIONS, IVL_KV_OPTIONS, {"help", 0, 0, 'h'},
                                   {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ivl_layout_option(c, optarg, &popt) || ivl_kv_option(c, optarg, &kvo)) continue;
        switch (c) {
        case 'm': model = optarg; break;
        case 'i': inputs = optarg; break;
        case 'o': dump_path = optarg; break;
        case 'n': max_new = ivl_parse_int("--max-new-tokens", optarg, 0, IVL_MAX_NEW_TOKENS); break;
        case 'L': dump_layers = 1; break;
        case 'd': device = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model || !inputs || !dump_path || optind < argc) {
        usage(stderr);
        return 2;
    }
    ivl_comm_init(&argc, &argv);
    // Inputs first: a batch without pixel_values needs no vision model.
    ivl_batch_inputs in;
    if (ivl_batch_inputs_read(inputs, &in) != 0) ivl_die(1, "%s: %s", inputs, ivl_last_error());
    popt.text_only = !in.pixels.data;
    ivl_session s;
    if (ivl_session_open(&s, model, device, &popt) != 0) ivl_die(1, "%s", ivl_last_error());
    // Layer dumps are written by rank 0: it must hold every layer (no pipeline) and encode
    // every tile (one vision group).
    if (dump_layers && (popt.pp > 1 || s.dist.topo.vit_dp.size > 1))
        ivl_die(2, "--dump-layers: rank 0 must hold every LLM layer and encode every tile: use "
                   "--pp 1 and --vit-tp %d (the world size), or run without mpirun",
                ivl_comm_world_size());
    const ivl_model_config *cfg = &s.model->cfg;
    ivl_special_ids sp;
    if (ivl_special_ids_resolve(cfg, s.tok, &sp) != 0) ivl_die(1, "%s", ivl_last_error());
    if (ivl_batch_inputs_check(&in, cfg, sp.img_context, max_new) != 0)
        ivl_die(1, "%s: %s", inputs, ivl_last_error());

    // OUT.h5 is written under a temporary name and renamed when complete, so a failed run
    // never leaves a file that looks like a result.
    char tmp_path[4200];
    snprintf(tmp_path, sizeof tmp_path, "%s.tmp-%d", dump_path, (int)getpid());
    dump_ctx dctx = {NULL, 0};
    ivl_dump dump = {&dctx, dump_fn};
    if (s.rank == 0) {
        if (ivl_h5_out_create(tmp_path, &dctx.out) != 0) ivl_die(1, "%s", ivl_last_error());
        ivl_set_cleanup_path(tmp_path);
    }
    LOG_DEBUG("rank %d read %llu bytes of weights", s.rank,
              (unsigned long long)ivl_model_file_bytes_read(s.src.mf));

    ivl_session_encode_images(&s, in.pixels.data ? &in.pixels : NULL, dump_layers ? &dump : NULL);
    if (s.embeds.data && !dump_layers) dump_fn(&dctx, "vision_embeds", s.be, &s.embeds);
    const int B = in.batch;
    // The whole batch's prefill in the first step (the dumps and prefill_logits cover every
    // prompt), every prompt computed in full (no prefix sharing: a reference check).
    int64_t total = 0;
    for (int b = 0; b < B; b++) {
        total += in.prompts[b].n + max_new;
        in.prompts[b].embeds = &s.embeds;
    }
    kvo.max_seqs = B;
    kvo.step_tokens = total;
    kvo.min_positions = in.max_len + max_new;
    kvo.want_positions = total;
    kvo.no_prefix_reuse = 1;
    if (ivl_session_kv_init(&s, &kvo) != 0) ivl_die(1, "%s", ivl_last_error());

    const int64_t V = cfg->llm.vocab;
    const int ncols = max_new > 0 ? max_new : 1;
    int32_t *gen = ivl_malloc((size_t)B * ncols * sizeof *gen);
    int *gen_len = ivl_calloc((size_t)B, sizeof *gen_len);
    float *logits = ivl_malloc((size_t)B * V * sizeof *logits);
    ivl_gen_params gp = {.max_new_tokens = max_new, .stop_id = sp.stop,
                         .sampling = ivl_sampling_default(), .prefill_logits = logits};
    ivl_generate(ivl_session_engine(&s), in.prompts, B, &gp, gen, gen_len,
                 dump_layers ? &dump : NULL);

    if (s.rank == 0) {
        ivl_tensor lt = {IVL_F32, 2, {B, V}, logits, IVL_HOST};
        ivl_tensor gt = ivl_tensor_host_2d(IVL_I64, B, max_new);
        for (int64_t i = 0; i < (int64_t)B * max_new; i++) ((int64_t *)gt.data)[i] = gen[i];
        if (ivl_h5_out_write(dctx.out, "prefill_logits", &lt) ||
            ivl_h5_out_write(dctx.out, "generated_ids", &gt) ||
            ivl_h5_out_attr_i64(dctx.out, "max_new_tokens", max_new) ||
            ivl_h5_out_attr_i64(dctx.out, "stop_id", sp.stop) || ivl_h5_out_close(dctx.out) ||
            dctx.failed)
            ivl_die(1, "writing %s: %s", dump_path, ivl_last_error());
        if (rename(tmp_path, dump_path) != 0)
            ivl_die(1, "cannot rename %s to %s: %s", tmp_path, dump_path, strerror(errno));
        ivl_set_cleanup_path(NULL);
        ivl_tensor_free_host(&gt);
        for (int b = 0; b < B; b++) {
            printf("sequence %d: %d prompt tokens, generated", b, (int)in.prompts[b].n);
            for (int t = 0; t < gen_len[b]; t++) printf(" %d", gen[(int64_t)b * ncols + t]);
            printf("\n");
        }
        LOG_INFO("wrote %s; peak resident memory %.1f MiB", dump_path, ivl_peak_rss_mib());
    }
    free(gen);
    free(gen_len);
    free(logits);
    ivl_batch_inputs_free(&in);
    ivl_session_close(&s);
    ivl_comm_finalize();
    return 0;
}
