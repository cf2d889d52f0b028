// cmd_caption.c - `internvl caption`: caption a dataset (folders, list files, WebDataset tar
// shards) into JSON Lines, resumably, on one rank or a tp x pp group (parallel/caption_run.h).
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm.h"
#include "core/backend.h"
#include "core/check.h"
#include "core/image/image.h"
#include "core/log.h"
#include "core/models/generate.h"
#include "core/models/internvl.h"
#include "launcher/commands.h"
#include "launcher/run_util.h"
#include "parallel/caption_input.h"
#include "parallel/caption_lock.h"
#include "parallel/caption_meta.h"
#include "parallel/caption_out.h"
#include "parallel/caption_run.h"
#include "parallel/caption_settings.h"
#include "parallel/session.h"
#include "weights/model_source.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: internvl caption --model M.h5 --input SRC [--input SRC ...] --out DIR [options]\n"
        "SRC: a folder (recursive; jpg jpeg png gif bmp webp tif tiff: JPEG, PNG, WebP, GIF\n"
        "     (first frame), BMP, TIFF (first page), decoded as Pillow does; the content decides\n"
        "     the format), a list file (PATH, KEY<TAB>PATH or KEY<TAB>PATH<TAB>META per line),\n"
        "     or WebDataset .tar shards with brace ranges:\n"
        "     'shards/{00000..00999}.tar' (quote it so the shell leaves the braces alone).\n"
        "Output: DIR/<unit>.jsonl per shard (or per --chunk images of a folder/list), one JSON\n"
        "object per image (key, caption, tiles, tokens, timings, or error); DIR/<unit>.done when\n"
        "the unit is complete. A rerun skips what is done.\n"
        "  --prompt TEXT          question asked for each image (default \"Describe the image in detail.\")\n"
        "  --system TEXT          system message (default: the model's)\n"
        "  --max-tiles N          dynamic tiling limit (default: the model's max_dynamic_patch)\n"
        "  --max-pixels N         images with more pixels become error lines (decompression\n"
        "                         bombs; default 178956970, Pillow's limit)\n"
        "  --exif-transpose       turn images upright by their EXIF orientation, as Pillow's\n"
        "                         ImageOps.exif_transpose (off by default, like the official\n"
        "                         pipeline; TIFF's own Orientation tag always applies, as in Pillow)\n"
        "  --max-new-tokens N     caption length limit in tokens (default 128)\n"
        "  --do-sample --temperature T --top-k K --top-p P --repetition-penalty R --seed S\n"
        "                         sampling (default greedy); each image's draw is seeded by\n"
        "                         seed and its key, so results do not depend on batching\n"
        "  --max-seqs N           most sequences in flight at once (default 64)\n"
        "  --kv-mem SIZE          KV cache of each rank, with a unit (512M, 20G): paged in\n"
        "                         blocks, sequences take blocks as they grow (default: a share\n"
        "                         of the memory left after the weights, at most max-seqs x the\n"
        "                         longest prompt + max-new-tokens); --kv-mem-mb M = --kv-mem MM\n"
        "  --kv-block N           positions per KV block (default 16)\n"
        "  --no-prefix-cache      do not share the KV blocks of the common prompt prefix\n"
        "  --batch-tokens N       most rows (prefill chunks + decode) per step (default 8192)\n"
        "  --threads N            image decode threads on rank 0 (default 4)\n"
        "  --queue N              decoded images held ahead of the model (default 2 x max-seqs)\n"
        "  --chunk N              images per output file for folders and lists (default 10000)\n"
        "  --flush-interval S     results reach the disk at least every S seconds (default 2;\n"
        "                         0 = after every step)\n"
        "  --log-interval S       progress line period when stderr is not a terminal (default 30)\n"
        "  --progress bar|log     force the progress style (default: bar on a terminal)\n"
        "  --max-member-mb M      tar members and image files above M MiB become error lines\n"
        "                         (default 256); only regular files are read\n"
        "  --keep-meta            copy each sample's metadata into its line as \"meta\": the\n"
        "                         fields of a shard's KEY.json, KEY.txt as source_text, a list\n"
        "                         file's third column (JSON object fields, or text)\n"
        "  --max-meta-kb K        metadata above K KiB per sample is not copied, the line says\n"
        "                         so in meta.meta_error (default 64)\n"
        "  --device D             cpu (default), cuda or auto\n"
        "  --tp T --pp P          tensor x pipeline parallel layout (world = T x P, under mpirun)\n"
        "  --pp-layers A,B,..  --microbatches M  --vit-tp V (split the ViT over V ranks)\n"
        "  --gpu-share            let several ranks use one GPU (tests, small models)\n"
        "  --step-timeout S       end the job (exit 1, naming the ranks still alive) when no step\n"
        "                         finishes for S seconds: a rank is frozen or gone (default 600;\n"
        "                         0 = off; raise it for CPU runs of the 26B model; one rank: off)\n"
        "  --allow-mixed-settings resume outputs made with another model, prompt, system message,\n"
        "                         --max-tiles, --max-new-tokens or sampling (refused by default;\n"
        "                         DIR/<unit>.settings.json records them, each line's \"settings\")\n"
        "Exit codes: 0 all outputs complete; 75 stopped early by SIGTERM, SIGINT, SIGUSR1 or SIGUSR2\n"
        "to the ranks (results so far are on disk: run again, e.g. requeue); 1 an error (message\n"
        "on stderr); 2 bad usage, or settings that differ from the outputs' (see above).\n"
        "Signals and launchers: mpirun and srun forward SIGUSR1/SIGUSR2 to the ranks (75), but\n"
        "their own SIGTERM ends the job (mpirun exits 1, srun SIGKILLs the tasks: 137); results\n"
        "so far are on disk all the same. Stop a launcher with SIGUSR1 to get 75; Slurm's own\n"
        "SIGTERM (scancel, preemption) reaches the ranks directly. slurm/caption.sbatch turns\n"
        "its SIGTERM into SIGUSR1 and requeues on 75 (docs/caption.md, slurm/README.md).\n"
        "A first signal finishes the captions in flight; a second drops them.\n");
}

static volatile sig_atomic_t g_stop;

static void on_stop(int sig) {
    (void)sig;
    if (g_stop < 2) g_stop++;
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);   // what mpirun forwards without ending the job itself
    sigaction(SIGUSR2, &sa, NULL);   // forwarded by mpirun too
    // A file size limit (ulimit -f) must give EFBIG from write(), not kill us mid-batch.
    signal(SIGXFSZ, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
}

static void encode_share(void *vctx, const ivl_tensor *px, int64_t tiles, ivl_tensor *embeds) {
    ivl_session_encode_share(vctx, px, tiles, embeds);
}

static void tile_share(void *vctx, int rank, int64_t tiles, int64_t *t0, int64_t *t1) {
    ivl_session_tile_share(vctx, rank, tiles, t0, t1);
}

// Rank 0 checks something; every rank learns whether it worked (no MPI_Abort for user errors).
static int agree(int ok_on_root) {
    ivl_comm_group w;
    ivl_comm_group_world(&w);
    int32_t ok = ok_on_root;
    ivl_comm_mpi_ops()->bcast(&w, &ok, 1, IVL_I32, 0);
    ivl_comm_group_free(&w);
    return ok;
}

int cmd_caption(int argc, char **argv) {
    const char *model = NULL, *out_dir = NULL, *device = "cpu", *progress = NULL;
    char **inputs = NULL;
    int ninputs = 0;
    ivl_caption_opts o = {0};
    o.prompt = "Describe the image in detail.";
    o.max_tiles = -1;
    o.max_new_tokens = 128;
    o.sampling = ivl_sampling_default();
    o.max_seqs = 64;
    o.batch_tokens = 8192;
    o.threads = 4;
    o.flush_s = 2;
    o.log_s = 30;
    o.max_member_bytes = (int64_t)256 << 20;
    int64_t chunk = 10000;
    ivl_kv_opts kvo = {0};
    int allow_mixed = 0;
    o.step_timeout_s = 600;
    int keep_meta = 0;
    int64_t meta_max_bytes = IVL_CAP_META_DEFAULT_MAX_BYTES;
    ivl_parallel_opts popt = {.tp = 1, .pp = 1, .vit_tp = 1};
    enum { O_SYSTEM = 256, O_TEMP, O_TOPK, O_TOPP, O_REP, O_SEED, O_SAMPLE, O_SEQS, O_KVMEM,
           O_BT, O_THREADS, O_QUEUE, O_CHUNK, O_FLUSH, O_LOG, O_PROGRESS, O_MEMBER, O_PPL, O_MB,
           O_VITTP, O_MAXPIX, O_GPUSHARE, O_STEPTO, O_MIXED, O_KEEPMETA, O_METAKB, O_EXIF };
    static struct option opts[] = {
        {"model", 1, 0, 'm'}, {"input", 1, 0, 'i'}, {"out", 1, 0, 'o'}, {"prompt", 1, 0, 'q'},
        {"system", 1, 0, O_SYSTEM}, {"max-tiles", 1, 0, 'T'}, {"max-new-tokens", 1, 0, 'n'},
        {"temperature", 1, 0, O_TEMP}, {"top-k", 1, 0, O_TOPK}, {"top-p", 1, 0, O_TOPP},
        {"repetition-penalty", 1, 0, O_REP}, {"seed", 1, 0, O_SEED}, {"do-sample", 0, 0, O_SAMPLE},
        {"max-seqs", 1, 0, O_SEQS}, {"kv-mem-mb", 1, 0, O_KVMEM}, {"batch-tokens", 1, 0, O_BT},
        IVL_KV_OPTIONS,
        {"threads", 1, 0, O_THREADS}, {"queue", 1, 0, O_QUEUE}, {"chunk", 1, 0, O_CHUNK},
        {"flush-interval", 1, 0, O_FLUSH}, {"log-interval", 1, 0, O_LOG},
        {"progress", 1, 0, O_PROGRESS}, {"max-member-mb", 1, 0, O_MEMBER},
        {"device", 1, 0, 'd'}, {"tp", 1, 0, 't'}, {"pp", 1, 0, 'p'}, {"pp-layers", 1, 0, O_PPL},
        {"microbatches", 1, 0, O_MB}, {"vit-tp", 1, 0, O_VITTP}, {"max-pixels", 1, 0, O_MAXPIX},
        {"gpu-share", 0, 0, O_GPUSHARE}, {"step-timeout", 1, 0, O_STEPTO},
        {"allow-mixed-settings", 0, 0, O_MIXED},
        {"keep-meta", 0, 0, O_KEEPMETA}, {"exif-transpose", 0, 0, O_EXIF}, {"max-meta-kb", 1, 0, O_METAKB},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ivl_kv_option(c, optarg, &kvo)) continue;
        switch (c) {
        case 'm': model = optarg; break;
        case 'i':
            inputs = ivl_realloc(inputs, (size_t)(ninputs + 1) * sizeof *inputs);
            inputs[ninputs++] = optarg;
            break;
        case 'o': out_dir = optarg; break;
        case 'q': o.prompt = optarg; break;
        case O_SYSTEM: o.system = optarg; break;
        case 'T': o.max_tiles = ivl_parse_int("--max-tiles", optarg, 1, 40); break;
        case 'n': o.max_new_tokens = ivl_parse_int("--max-new-tokens", optarg, 1, IVL_MAX_NEW_TOKENS); break;
        case O_TEMP: o.sampling.temperature = (float)ivl_parse_double("--temperature", optarg, 1e-6, 100); break;
        case O_TOPK: o.sampling.top_k = ivl_parse_int("--top-k", optarg, 0, 1 << 30); break;
        case O_TOPP: o.sampling.top_p = (float)ivl_parse_double("--top-p", optarg, 1e-6, 1); break;
        case O_REP: o.sampling.repetition_penalty = (float)ivl_parse_double("--repetition-penalty", optarg, 1e-3, 100); break;
        case O_SEED: o.sampling.seed = strtoull(optarg, NULL, 10); break;
        case O_SAMPLE: o.sampling.do_sample = 1; break;
        case O_SEQS: o.max_seqs = ivl_parse_int("--max-seqs", optarg, 1, 4096); break;
        case O_KVMEM: kvo.kv_mem = (int64_t)ivl_parse_double("--kv-mem-mb", optarg, 1, 1 << 30) << 20; break;
        case O_BT: o.batch_tokens = (int64_t)ivl_parse_double("--batch-tokens", optarg, 1, 1 << 30); break;
        case O_THREADS: o.threads = ivl_parse_int("--threads", optarg, 1, 1024); break;
        case O_QUEUE: o.queue = ivl_parse_int("--queue", optarg, 1, 1 << 20); break;
        case O_CHUNK: chunk = (int64_t)ivl_parse_double("--chunk", optarg, 1, 1e12); break;
        case O_FLUSH: o.flush_s = ivl_parse_double("--flush-interval", optarg, 0, 86400); break;
        case O_LOG: o.log_s = ivl_parse_double("--log-interval", optarg, 0.1, 86400); break;
        case O_PROGRESS: progress = optarg; break;
        case O_MEMBER: o.max_member_bytes = (int64_t)ivl_parse_double("--max-member-mb", optarg, 1, 1 << 20) << 20; break;
        case 'd': device = optarg; break;
        case 't': popt.tp = ivl_parse_int("--tp", optarg, 1, 4096); break;
        case 'p': popt.pp = ivl_parse_int("--pp", optarg, 1, 1024); break;
        case O_PPL: popt.pp_layers = optarg; break;
        case O_MB: popt.microbatches = ivl_parse_int("--microbatches", optarg, 1, 4096); break;
        case O_VITTP: popt.vit_tp = ivl_parse_int("--vit-tp", optarg, 1, 4096); break;
        case O_GPUSHARE: popt.gpu_share = 1; break;
        case O_MAXPIX: o.max_pixels = (int64_t)ivl_parse_double("--max-pixels", optarg, 1, 1e12); break;
        case O_STEPTO: o.step_timeout_s = ivl_parse_double("--step-timeout", optarg, 0, 604800); break;
        case O_MIXED: allow_mixed = 1; break;
        case O_KEEPMETA: keep_meta = 1; break;
        case O_EXIF: o.exif_transpose = 1; break;
        case O_METAKB: meta_max_bytes = (int64_t)ivl_parse_int("--max-meta-kb", optarg, 1, 16384) << 10; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    for (int i = optind; i < argc; i++) {   // trailing arguments are inputs too
        inputs = ivl_realloc(inputs, (size_t)(ninputs + 1) * sizeof *inputs);
        inputs[ninputs++] = argv[i];
    }
    if (!model || !out_dir || ninputs == 0) {
        fprintf(stderr, "internvl caption: --model, --input and --out are required\n\n");
        usage(stderr);
        return 2;
    }
    const char *bad = o.max_new_tokens < 1 || o.max_new_tokens > IVL_MAX_NEW_TOKENS
                        ? "--max-new-tokens must be in 1..65536 (docs/limits.md)"
                    : o.max_seqs < 1       ? "--max-seqs must be >= 1"
                    : o.batch_tokens < 1   ? "--batch-tokens must be >= 1"
                    : o.threads < 1        ? "--threads must be >= 1"
                    : chunk < 1            ? "--chunk must be >= 1"
                    : o.flush_s < 0        ? "--flush-interval must be >= 0"
                    : (progress && strcmp(progress, "bar") && strcmp(progress, "log"))
                        ? "--progress takes bar or log" : NULL;
    if (bad) {
        fprintf(stderr, "internvl caption: %s\n", bad);
        return 2;
    }
    o.progress_bar = progress ? !strcmp(progress, "bar") : isatty(STDERR_FILENO);
    o.out_dir = out_dir;
    o.stop_level = &g_stop;

    ivl_comm_init(&argc, &argv);
    install_signals();
    const int rank = ivl_comm_world_rank();

    // Job-level input and output problems, before the model is loaded.
    ivl_cap_inputs in = {0};
    int ok = 1;
    if (rank == 0) {
        // A unit another job is writing stops this one now (caption_lock.h).
        if (ivl_cap_out_check_dir(out_dir) != 0 || ivl_cap_inputs_build(inputs, ninputs, chunk, &in) != 0 ||
            ivl_cap_lock_precheck(out_dir, &in) != 0) {
            LOG_ERROR("%s", ivl_last_error());
            ok = 0;
        } else {
            LOG_INFO("%d outputs to write under %s (%lld images in folders/lists, plus tar shards)",
                     in.n, out_dir, (long long)in.known_images);
            for (int u = 0; keep_meta && u < in.n; u++) in.units[u].meta_max_bytes = meta_max_bytes;
        }
    }
    if (!agree(ok)) {
        ivl_cap_inputs_free(&in);
        free(inputs);
        ivl_comm_finalize();
        return 1;
    }

    ivl_session ses;
    if (ivl_session_open_source(&ses, model) != 0) ivl_die(1, "%s", ivl_last_error());
    const ivl_model_source *src = &ses.src;
    ivl_tokenizer *tok = ses.tok;
    ivl_special_ids sp;
    if (ivl_special_ids_resolve(&src->cfg, tok, &sp) != 0) ivl_die(1, "%s", ivl_last_error());
    const ivl_chat_template *tmpl = ivl_chat_template_find(src->cfg.template_name);
    if (!tmpl) ivl_die(1, "%s: %s", model, ivl_last_error());
    if (o.max_tiles < 0) o.max_tiles = src->cfg.max_dynamic_patch > 0 ? src->cfg.max_dynamic_patch : 12;
    if (o.max_tiles < 1 || o.max_tiles > IVL_TILE_MAX_NUM)
        ivl_die(2, "--max-tiles must be in 1..%d", IVL_TILE_MAX_NUM);
    if (o.queue < 1) o.queue = 2 * o.max_seqs;
    // What makes the captions (caption_settings.h): refused before the model loads when an
    // output was made with other settings.
    char model_name[256];
    ivl_cap_model_name(src->cfg.name, ivl_model_file_name(src->mf), model, model_name,
                       sizeof model_name);
    const char *sys_eff = o.system ? o.system : src->cfg.system_message;
    ivl_cap_settings settings;
    ivl_cap_settings_init(&settings, model_name, o.prompt, sys_eff, o.max_tiles, o.max_new_tokens,
                          &o.sampling);
    o.model_name = settings.model;
    o.settings_id = settings.fingerprint;
    ok = 1;
    if (rank == 0 && ivl_cap_settings_check(out_dir, &in, &settings, allow_mixed) != 0) {
        LOG_ERROR("%s", ivl_last_error());
        ok = 0;
    }
    if (!agree(ok)) {
        ivl_cap_settings_free(&settings);
        ivl_session_close(&ses);
        ivl_cap_inputs_free(&in);
        free(inputs);
        ivl_comm_finalize();
        return 2;
    }
    const int64_t max_ctx = ivl_caption_max_ctx(tok, tmpl, &src->cfg, &o);
    if (max_ctx < 0) ivl_die(1, "cannot encode the prompt: %s", ivl_last_error());
    if (max_ctx > src->cfg.llm.max_position && src->cfg.llm.rope_scaling != IVL_ROPE_DYNAMIC)
        ivl_die(2, "the prompt with %d tiles per image + %d new tokens needs %lld positions, more "
                   "than the model's context of %d: use a smaller --max-new-tokens or --max-tiles",
                o.max_tiles, o.max_new_tokens, (long long)max_ctx, src->cfg.llm.max_position);

    // The same session as chat and forward: backend and GPU choice, memory check, layout.
    if (ivl_session_load(&ses, device, &popt) != 0) ivl_die(1, "%s: %s", model, ivl_last_error());
    ivl_backend *be = ses.be;
    ivl_model *m = ses.model;
    // The paged KV cache: --kv-mem, or a share of the memory left, at most what max_seqs
    // sequences of the longest prompt would use; it must hold one such sequence.
    // The cache must hold the smallest image (one tile); larger ones that do not fit become
    // error lines naming the numbers.
    ivl_caption_opts one = o;
    one.max_tiles = 1;
    const int64_t min_ctx = ivl_caption_max_ctx(tok, tmpl, &src->cfg, &one);
    kvo.max_seqs = o.max_seqs;
    kvo.step_tokens = o.batch_tokens;
    kvo.min_positions = min_ctx;
    kvo.want_positions = (int64_t)o.max_seqs * max_ctx;
    if (ivl_session_kv_init(&ses, &kvo) != 0) ivl_die(1, "%s", ivl_last_error());
    const int64_t kv_pos = ses.dist.kv.n_blocks * ses.dist.kv.block_size;
    if (rank == 0) {
        char d[200];
        ivl_session_kv_describe(&ses, d, sizeof d);
        LOG_INFO("%s; one image needs at most %lld (%d tiles); step budget %lld rows, at most "
                 "%d sequences", d, (long long)max_ctx, o.max_tiles, (long long)o.batch_tokens,
                 o.max_seqs);
        if (kv_pos < max_ctx)
            LOG_WARN("the KV cache holds %lld positions, less than an image of %d tiles needs "
                     "(%lld): such images become error lines; raise --kv-mem or lower --max-tiles",
                     (long long)kv_pos, o.max_tiles + (src->cfg.use_thumbnail && o.max_tiles > 1),
                     (long long)max_ctx);
    }
    ivl_caption_engine e = {.cfg = &m->cfg, .eng = ivl_session_engine(&ses), .be = be,
                            .tok = tok, .tmpl = tmpl, .stop_id = sp.stop,
                            .img_context = sp.img_context,
                            .kv_positions = kv_pos,
                            .kv_block = ses.dist.kv.block_size};
    e.encode = encode_share;
    e.tile_share = tile_share;
    e.encode_ctx = &ses;

    ivl_caption_summary sum;
    int rc = ivl_caption_run(&e, rank == 0 ? &in : NULL, &o, &sum);
    if (rank == 0) LOG_INFO("peak resident memory %.1f MiB (rank 0)", ivl_peak_rss_mib());

    ivl_session_close(&ses);
    ivl_cap_settings_free(&settings);
    ivl_cap_inputs_free(&in);
    free(inputs);
    ivl_comm_finalize();
    return rc;
}
