// cmd_forward.c - `internvl forward`: the low-level entry point (docs/forward-io.md).
// Input ids (+ preprocessed pixel values) -> vision embeddings, prefill logits, greedy tokens,
// and, with --dump-layers, every named intermediate.
#include <errno.h>
#include <getopt.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backend.h"
#include "core/check.h"
#include "core/log.h"
#include "core/models/generate.h"
#include "core/models/internvl.h"
#include "comm/comm.h"
#include "launcher/commands.h"
#include "parallel/dist.h"
#include "launcher/run_util.h"
#include "weights/model_source.h"
#include "weights/tensor_io.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: internvl forward --model M.h5 --inputs IN.h5 --dump OUT.h5 [options]\n"
            "  --max-new-tokens N   greedy tokens to generate (default 32)\n"
            "  --dump-layers        also write every named intermediate (docs/forward-io.md)\n"
            "  --device D           cpu (default), cuda or auto\n"
            "  --tp T --pp P        tensor x pipeline parallel layout (world = T x P; under mpirun)\n"
            "  --pp-layers A,B,..   layers per pipeline stage (default: even split)\n"
            "  --microbatches M     pipeline micro-batches per step (default: P)\n"
            "  --vit-tp V           ranks per ViT (1: every rank holds the ViT, tiles sharded)\n"
            "IN.h5: input_ids int64 [S] or [B,S], optional attention_mask [B,S] (left padding),\n"
            "optional pixel_values float32 [tiles,3,448,448].\n");
}

typedef struct {
    ivl_h5_out *out;
    int failed;
} dump_ctx;

static void dump_fn(void *vctx, const char *name, ivl_backend *be, const ivl_tensor *t) {
    dump_ctx *d = vctx;
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
    ivl_parallel_opts popt = {1, 1, 1, NULL, 0};
    static struct option opts[] = {{"model", 1, 0, 'm'},          {"inputs", 1, 0, 'i'},
                                   {"dump", 1, 0, 'o'},           {"max-new-tokens", 1, 0, 'n'},
                                   {"dump-layers", 0, 0, 'L'},    {"device", 1, 0, 'd'},
                                   {"tp", 1, 0, 't'},             {"pp", 1, 0, 'p'},
                                   {"pp-layers", 1, 0, 'P'},      {"microbatches", 1, 0, 'M'},
                                   {"vit-tp", 1, 0, 'v'},
                                   {"help", 0, 0, 'h'},           {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'i': inputs = optarg; break;
        case 'o': dump_path = optarg; break;
        case 'n': max_new = atoi(optarg); break;
        case 'L': dump_layers = 1; break;
        case 'd': device = optarg; break;
        case 't': popt.tp = atoi(optarg); break;
        case 'p': popt.pp = atoi(optarg); break;
        case 'P': popt.pp_layers = optarg; break;
        case 'M': popt.microbatches = atoi(optarg); break;
        case 'v': popt.vit_tp = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model || !inputs || !dump_path) {
        usage(stderr);
        return 2;
    }
    if (max_new < 0) ivl_die(2, "--max-new-tokens must be >= 0");

    ivl_comm_init(&argc, &argv);
    const int rank = ivl_comm_world_rank();
    const int distributed = ivl_comm_world_size() > 1 || popt.tp > 1 || popt.pp > 1;
    if (distributed && dump_layers)
        ivl_die(2, "--dump-layers needs one rank (run the same inputs without mpirun)");

    ivl_model_source src;
    if (ivl_model_source_open(model, &src) != 0) ivl_die(1, "%s", ivl_last_error());
    ivl_fault_point("load");
    ivl_tokenizer *tok;
    if (ivl_model_source_tokenizer(&src, &tok) != 0) ivl_die(1, "%s", ivl_last_error());
    ivl_special_ids sp;
    if (ivl_special_ids_resolve(&src.cfg, tok, &sp) != 0) ivl_die(1, "%s", ivl_last_error());

    ivl_batch_inputs in;
    if (ivl_batch_inputs_read(inputs, &in) != 0) ivl_die(1, "%s", ivl_last_error());
    if (ivl_batch_inputs_check(&in, &src.cfg, sp.img_context, max_new) != 0)
        ivl_die(1, "%s: %s", inputs, ivl_last_error());

    ivl_backend *be = ivl_backend_create(device, ivl_comm_local_rank());
    const int need_vision = in.pixels.data != NULL;
    const int B = in.batch;
    ivl_model local_model;
    ivl_dist dist;
    ivl_model *m;
    ivl_kv_cache local_kv;
    ivl_local_step lctx;
    ivl_step step;
    ivl_tensor embeds = {0};
    ivl_h5_out *out = NULL;
    dump_ctx dctx = {NULL, 0};
    ivl_dump dump = {&dctx, dump_fn};
    // OUT.h5 is written under a temporary name and renamed when complete, so a failed run
    // never leaves a file that looks like a result.
    char tmp_path[4200];
    snprintf(tmp_path, sizeof tmp_path, "%s.tmp-%d", dump_path, (int)getpid());
    if (rank == 0) {
        if (ivl_h5_out_create(tmp_path, &out) != 0) ivl_die(1, "%s", ivl_last_error());
        ivl_set_cleanup_path(tmp_path);
        dctx.out = out;
    }
    if (!distributed) {
        m = &local_model;
        if (ivl_model_load(m, be, &src.reader, &src.cfg, NULL, NULL, need_vision) != 0)
            ivl_die(1, "%s: %s", model, ivl_last_error());
        if (need_vision) ivl_model_encode_images(m, &in.pixels, &embeds, dump_layers ? &dump : NULL);
        ivl_kv_cache_init(be, &m->cfg.llm, &m->shard, B, in.max_len + max_new, &local_kv);
        lctx = (ivl_local_step){m, &local_kv, need_vision ? &embeds : NULL};
        step = ivl_model_local_step(&lctx);
    } else {
        if (ivl_dist_init(&dist, be, &src.reader, &src.cfg, &popt) != 0)
            ivl_die(1, "%s", ivl_last_error());
        m = &dist.model;
        if (need_vision) ivl_dist_encode_images(&dist, &in.pixels, &embeds);
        dist.image_embeds = need_vision ? &embeds : NULL;
        ivl_dist_kv_init(&dist, B, in.max_len + max_new);
        step = ivl_dist_step(&dist);
    }
    if (need_vision && !dump_layers && rank == 0) dump_fn(&dctx, "vision_embeds", be, &embeds);
    LOG_DEBUG("rank %d read %llu bytes of weights", rank,
              (unsigned long long)ivl_model_file_bytes_read(src.mf));

    const int64_t V = m->cfg.llm.vocab;
    int ncols = max_new > 0 ? max_new : 1;
    int32_t *gen = ivl_malloc((size_t)B * ncols * sizeof *gen);
    int *gen_len = ivl_calloc((size_t)B, sizeof *gen_len);
    float *logits = ivl_malloc((size_t)B * V * sizeof *logits);
    ivl_gen_params gp = {.max_new_tokens = max_new, .stop_id = sp.stop,
                         .sampling = ivl_sampling_default(), .prefill_logits = logits};
    ivl_generate(&step, in.prompts, B, &gp, gen, gen_len, dump_layers ? &dump : NULL);

    if (rank == 0) {
        ivl_tensor lt = {IVL_F32, 2, {B, V}, logits, IVL_HOST};
        ivl_tensor gt = ivl_tensor_host_2d(IVL_I64, B, max_new);
        for (int64_t i = 0; i < (int64_t)B * max_new; i++) ((int64_t *)gt.data)[i] = gen[i];
        if (ivl_h5_out_write(out, "prefill_logits", &lt) || ivl_h5_out_write(out, "generated_ids", &gt) ||
            ivl_h5_out_attr_i64(out, "max_new_tokens", max_new) ||
            ivl_h5_out_attr_i64(out, "stop_id", sp.stop) || ivl_h5_out_close(out) || dctx.failed)
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
    if (embeds.data) be->free(be, &embeds);
    if (distributed) {
        ivl_dist_free(&dist);
    } else {
        ivl_kv_cache_free(be, &m->shard, &local_kv);
        ivl_model_free(m);
    }
    ivl_backend_destroy(be);
    ivl_batch_inputs_free(&in);
    ivl_tokenizer_free(tok);
    ivl_model_source_close(&src);
    ivl_comm_finalize();
    return 0;
}
