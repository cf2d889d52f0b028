// cmd_bench.c - `internvl bench`: throughput of the vision encoder, prefill, decode and
// end-to-end captioning, on one rank or any tp x pp layout under mpirun, with a preset
// size and random weights or a model file. Work is counted with spec section 10's formulas
// and set against ceilings measured in the same run (a large GEMM, a large copy). Output: a
// table on stdout, JSON Lines (--json), and optionally the PyTorch reference side by side.
// The pieces live in bench/driver/ (presets, random weights, FLOPs, phases, comm timing).
#include <getopt.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/driver/comm_timer.h"
#include "bench/driver/phases.h"
#include "bench/driver/presets.h"
#include "bench/driver/random_weights.h"
#include "bench/driver/report.h"
#include "comm/comm.h"
#include "core/backend.h"
#include "core/check.h"
#include "core/log.h"
#include "launcher/commands.h"
#include "launcher/run_util.h"
#include "parallel/rank_device.h"
#include "weights/model_source.h"

#ifndef IVL_SOURCE_DIR
#define IVL_SOURCE_DIR "."
#endif
#ifndef IVL_PYTHON_EXE
#define IVL_PYTHON_EXE "/usr/bin/python3"
#endif

#define MAX_LIST 64

static void usage(FILE *f) {
    fprintf(f,
        "usage: internvl bench (--preset NAME --random-weights | --model M.h5 [--random-weights]) [options]\n"
        "  presets: %s (tiny = tiny-mini2b)\n"
        "  --phases LIST          vit,prefill,decode,e2e (default: all)\n"
        "  --tiles N              vit: tiles per forward (default 1)\n"
        "  --prompt-lens LIST     prefill: prompt lengths (default 128)\n"
        "  --prefill-batch N      prefill: sequences per step (default 1)\n"
        "  --batch-sizes LIST     decode: batch sizes, e.g. 1,2,4,...,256 (default 1,4,16)\n"
        "  --context-lens LIST    decode: cached positions before the step (default 128)\n"
        "  --e2e-tiles LIST       e2e: tiles of each image of the batch (default 1,2,4)\n"
        "  --e2e-prompt N         e2e: text tokens per prompt (default 32)\n"
        "  --e2e-output N         e2e: generated tokens per image (default 16)\n"
        "  --e2e-kv-mem SIZE      e2e: KV cache a rank (512M, 2G; default: the whole batch)\n"
        "  --e2e-max-seqs N       e2e: most sequences in flight (default 64)\n"
        "                         With --model M.h5 (a tokenizer inside) e2e runs the caption\n"
        "                         pipeline on synthetic photos (decode, tiling, scheduler, paged\n"
        "                         KV, JSONL); with --preset, synthetic prompts of --e2e-prompt\n"
        "                         text tokens through the scheduler\n"
        "  --warmup N --repeats N timed runs: discarded, kept (default 1, 3)\n"
        "  --json OUT             JSON Lines, one record per measurement (--append: add to OUT)\n"
        "  --device D             cpu (default), cuda or auto\n"
        "  --gpu-share            let several ranks use one GPU (tests, small models)\n"
        "  --threads N            CPU threads per rank (default: OMP_NUM_THREADS or all cores)\n"
        "  --tp T --pp P --vit-tp V --pp-layers A,B --microbatches M   layout (under mpirun)\n"
        "  --peak-tflops X        per-rank peak for MFU instead of measuring a GEMM\n"
        "  --mem-bw-gbs X         per-rank memory bandwidth instead of measuring a copy\n"
        "  --peak-gemm-n N        size of the peak GEMM (default 2048 on CPU, 8192 on GPU)\n"
        "  --copy-mib N           size of the bandwidth copy (default 256)\n"
        "  --max-kv-gib X         skip points whose KV cache needs more per rank (default 4)\n"
        "  --seed N               random weights and inputs (default 1)\n"
        "  --compare-torch        then run bench/torch_ref_bench.py at the same size, threads\n"
        "                         and points (one rank, CPU), and record engine/torch ratios\n"
        "  --torch-script PATH    the PyTorch script (default %s/bench/torch_ref_bench.py)\n"
        "  --dump-config FILE     write the preset's config.json and exit\n",
        ivl_bench_preset_names(), IVL_SOURCE_DIR);
}

// "1,2,4" -> values; ends the job naming the option on bad input.
static int parse_list(const char *opt, const char *s, long *out) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || n >= MAX_LIST)
            ivl_die(2, "--%s '%s': expected up to %d positive integers separated by commas", opt, s, MAX_LIST);
        out[n++] = v;
        if (*end == ',') end++;
        else if (*end) ivl_die(2, "--%s '%s': unexpected '%c'", opt, s, *end);
        p = end;
    }
    if (n == 0) ivl_die(2, "--%s: empty list", opt);
    return n;
}

static int positive(const char *opt, const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0 || v > 1 << 30) ivl_die(2, "--%s '%s': expected a non-negative integer", opt, s);
    return (int)v;
}

typedef struct {
    ivl_bench_meas **v;
    int n, cap;
} meas_list;

static ivl_bench_meas *meas_new(meas_list *l) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = ivl_realloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    return l->v[l->n++] = ivl_calloc(1, sizeof(ivl_bench_meas));
}

typedef struct {
    FILE *json;        // rank 0 only
    ivl_bench_run run;
    int rank;
} out_ctx;

static void emit(out_ctx *o, const ivl_bench_meas *m) {
    if (o->rank != 0) return;
    ivl_bench_table_row(stdout, &o->run, m);
    fflush(stdout);
    if (o->json) {
        char *s = ivl_bench_json(&o->run, m);
        fprintf(o->json, "%s\n", s);
        fflush(o->json);
        free(s);
    }
}

// ---- side by side with PyTorch ------------------------------------------------------------

#include <cjson/cJSON.h>

static double json_num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

// Runs the PyTorch script with the same config and points, copies its records to the JSON
// output and writes one "compare" record per point both measured.
static void compare_torch(out_ctx *o, const char *script, const char *cfg_json, const char *args,
                          meas_list *ml) {
    char cfg_path[] = "/tmp/ivl-bench-cfg-XXXXXX", out_path[] = "/tmp/ivl-bench-torch-XXXXXX";
    int fd1 = mkstemp(cfg_path), fd2 = mkstemp(out_path);
    IVL_CHECK(fd1 >= 0 && fd2 >= 0, "bench: cannot create temporary files in /tmp");
    close(fd2);
    FILE *cf = fdopen(fd1, "w");
    fputs(cfg_json, cf);
    fclose(cf);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' '%s' --config '%s' --json '%s' --name '%s' --commit '%s' %s",
             IVL_PYTHON_EXE, script, cfg_path, out_path, o->run.preset, o->run.commit, args);
    LOG_INFO("running the PyTorch reference: %s", cmd);
    fflush(stdout);
    int rc = system(cmd);
    if (rc != 0) {
        LOG_ERROR("the PyTorch reference failed (exit status %d); no ratios recorded", rc);
        unlink(cfg_path);
        unlink(out_path);
        return;
    }
    FILE *f = fopen(out_path, "r");
    IVL_CHECK(f, "bench: cannot read %s", out_path);
    char *line = NULL;
    size_t cap = 0;
    printf("\n%-9s %-28s %14s %14s %-9s %8s\n", "compare", "params", "engine", "torch", "unit", "ratio");
    while (getline(&line, &cap, f) > 0) {
        if (o->json) fputs(line, o->json);
        cJSON *t = cJSON_Parse(line);
        if (!t) continue;
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(t, "phase");
        const cJSON *par = cJSON_GetObjectItemCaseSensitive(t, "params");
        double tt = json_num(t, "throughput");
        for (int i = 0; i < ml->n && cJSON_IsString(ph); i++) {
            ivl_bench_meas *m = ml->v[i];
            if (m->skipped || strcmp(m->phase, ph->valuestring) ||
                m->tiles != (int)json_num(par, "tiles") || m->batch != (int)json_num(par, "batch") ||
                m->prompt_len != (int64_t)json_num(par, "prompt_len") ||
                m->context_len != (int64_t)json_num(par, "context_len"))
                continue;
            double et = m->units / m->median;
            char p[96];
            if (!strcmp(m->phase, "vit")) snprintf(p, sizeof p, "tiles=%d", m->tiles);
            else if (!strcmp(m->phase, "prefill")) snprintf(p, sizeof p, "B=%d S=%lld", m->batch, (long long)m->prompt_len);
            else snprintf(p, sizeof p, "B=%d ctx=%lld", m->batch, (long long)m->context_len);
            printf("%-9s %-28s %14.3f %14.3f %-9s %8.3f\n", m->phase, p, et, tt, m->unit, tt > 0 ? et / tt : 0);
            if (o->json) {
                cJSON *c = cJSON_CreateObject();
                cJSON_AddStringToObject(c, "phase", "compare");
                cJSON_AddStringToObject(c, "of", m->phase);
                cJSON_AddStringToObject(c, "preset", o->run.preset);
                cJSON_AddItemToObject(c, "params", cJSON_Duplicate(par, 1));
                cJSON_AddNumberToObject(c, "threads", o->run.threads);
                cJSON_AddStringToObject(c, "commit", o->run.commit);
                cJSON_AddStringToObject(c, "date", o->run.date);
                cJSON_AddStringToObject(c, "unit", m->unit);
                cJSON_AddNumberToObject(c, "engine_throughput", et);
                cJSON_AddNumberToObject(c, "torch_throughput", tt);
                cJSON_AddNumberToObject(c, "ratio", tt > 0 ? et / tt : 0);
                char *s = cJSON_PrintUnformatted(c);
                fprintf(o->json, "%s\n", s);
                free(s);
                cJSON_Delete(c);
            }
        }
        cJSON_Delete(t);
    }
    free(line);
    fclose(f);
    unlink(cfg_path);
    unlink(out_path);
}

static void join_list(char *buf, size_t n, const long *v, int k) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < k && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%ld", i ? "," : "", v[i]);
}

int cmd_bench(int argc, char **argv) {
    const char *preset = NULL, *model = NULL, *phases = "vit,prefill,decode,e2e", *json_path = NULL;
    const char *device = "cpu", *dump_config = NULL, *torch_script = NULL;
    int random_weights = 0, tiles = 1, prefill_batch = 1, warmup = 1, repeats = 3, threads = 0;
    int append = 0, compare = 0, gemm_n = 0, copy_mib = 256;
    long prompt_lens[MAX_LIST] = {128}, batches[MAX_LIST] = {1, 4, 16}, ctxs[MAX_LIST] = {128};
    long e2e_tiles[MAX_LIST] = {1, 2, 4};
    int n_prompt = 1, n_batch = 3, n_ctx = 1, n_e2e = 3, e2e_prompt = 32, e2e_out = 16;
    int64_t e2e_kv = 0;
    int e2e_seqs = 64;
    double peak_given = 0, bw_given = 0, max_kv_gib = 4;
    unsigned long long seed = 1;
    ivl_parallel_opts popt = {.tp = 1, .pp = 1, .vit_tp = 1};
    static struct option opts[] = {
        {"preset", 1, 0, 'P'}, {"model", 1, 0, 'm'}, {"random-weights", 0, 0, 'r'},
        {"phases", 1, 0, 'f'}, {"tiles", 1, 0, 'T'}, {"prompt-lens", 1, 0, 'S'},
        {"prefill-batch", 1, 0, 'B'}, {"batch-sizes", 1, 0, 'b'}, {"context-lens", 1, 0, 'c'},
        {"e2e-tiles", 1, 0, 'E'}, {"e2e-prompt", 1, 0, 'q'}, {"e2e-output", 1, 0, 'o'},
        {"e2e-kv-mem", 1, 0, 1101}, {"e2e-max-seqs", 1, 0, 1102},
        {"warmup", 1, 0, 'w'}, {"repeats", 1, 0, 'n'}, {"json", 1, 0, 'j'}, {"append", 0, 0, 'a'},
        {"device", 1, 0, 'd'}, {"threads", 1, 0, 'x'}, {"tp", 1, 0, 't'}, {"pp", 1, 0, 'p'},
        {"vit-tp", 1, 0, 'v'}, {"pp-layers", 1, 0, 'L'}, {"microbatches", 1, 0, 'M'},
        {"peak-tflops", 1, 0, 'K'}, {"mem-bw-gbs", 1, 0, 'W'}, {"peak-gemm-n", 1, 0, 'g'},
        {"copy-mib", 1, 0, 'C'}, {"max-kv-gib", 1, 0, 'k'}, {"seed", 1, 0, 's'},
        {"compare-torch", 0, 0, 'Z'}, {"torch-script", 1, 0, 'Y'}, {"dump-config", 1, 0, 'D'},
        {"gpu-share", 0, 0, 'G'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'P': preset = optarg; break;
        case 'm': model = optarg; break;
        case 'r': random_weights = 1; break;
        case 'f': phases = optarg; break;
        case 'T': tiles = positive("tiles", optarg); break;
        case 'S': n_prompt = parse_list("prompt-lens", optarg, prompt_lens); break;
        case 'B': prefill_batch = positive("prefill-batch", optarg); break;
        case 'b': n_batch = parse_list("batch-sizes", optarg, batches); break;
        case 'c': n_ctx = parse_list("context-lens", optarg, ctxs); break;
        case 'E': n_e2e = parse_list("e2e-tiles", optarg, e2e_tiles); break;
        case 'q': e2e_prompt = positive("e2e-prompt", optarg); break;
        case 'o': e2e_out = positive("e2e-output", optarg); break;
        case 1101: e2e_kv = ivl_parse_size("--e2e-kv-mem", optarg); break;
        case 1102: e2e_seqs = positive("e2e-max-seqs", optarg); break;
        case 'w': warmup = positive("warmup", optarg); break;
        case 'n': repeats = positive("repeats", optarg); break;
        case 'j': json_path = optarg; break;
        case 'a': append = 1; break;
        case 'd': device = optarg; break;
        case 'x': threads = positive("threads", optarg); break;
        case 't': popt.tp = positive("tp", optarg); break;
        case 'p': popt.pp = positive("pp", optarg); break;
        case 'v': popt.vit_tp = positive("vit-tp", optarg); break;
        case 'L': popt.pp_layers = optarg; break;
        case 'M': popt.microbatches = positive("microbatches", optarg); break;
        case 'G': popt.gpu_share = 1; break;
        case 'K': peak_given = atof(optarg); break;
        case 'W': bw_given = atof(optarg); break;
        case 'g': gemm_n = positive("peak-gemm-n", optarg); break;
        case 'C': copy_mib = positive("copy-mib", optarg); break;
        case 'k': max_kv_gib = atof(optarg); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'Z': compare = 1; break;
        case 'Y': torch_script = optarg; break;
        case 'D': dump_config = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) ivl_die(2, "bench: unexpected argument '%s' (see --help)", argv[optind]);
    if (!!preset == !!model) ivl_die(2, "bench: give exactly one of --preset NAME or --model M.h5");
    if (preset && !random_weights && !dump_config)
        ivl_die(2, "bench: a preset has no weights; add --random-weights (or use --model M.h5)");
    if (repeats < 1) ivl_die(2, "bench: --repeats must be >= 1");
    if (compare && !preset)
        ivl_die(2, "bench: --compare-torch needs --preset (the PyTorch script builds the model from its config)");
    int do_vit = !!strstr(phases, "vit"), do_prefill = !!strstr(phases, "prefill");
    int do_decode = !!strstr(phases, "decode"), do_e2e = !!strstr(phases, "e2e");
    if (!(do_vit || do_prefill || do_decode || do_e2e))
        ivl_die(2, "bench: --phases '%s' names none of vit, prefill, decode, e2e", phases);

    ivl_model_source src;
    ivl_model_config cfg;
    const char *cfg_json = NULL;
    if (preset) {
        if (ivl_bench_preset_config(preset, &cfg) != 0) ivl_die(2, "bench: %s", ivl_last_error());
        cfg_json = ivl_bench_preset_json(preset);
        if (dump_config) {
            FILE *f = fopen(dump_config, "w");
            if (!f || fputs(cfg_json, f) < 0 || fclose(f) != 0) ivl_die(1, "bench: cannot write %s", dump_config);
            return 0;
        }
    }
    if (threads > 0) omp_set_num_threads(threads);

    ivl_comm_init(&argc, &argv);
    const int rank = ivl_comm_world_rank(), world = ivl_comm_world_size();
    if (compare && (world > 1 || strcmp(device, "cpu")))
        ivl_die(2, "bench: --compare-torch runs on one rank on the CPU (no mpirun, --device cpu)");

    ivl_weight_reader reader;
    ivl_random_weights rw;
    if (model) {
        if (ivl_model_source_open(model, &src) != 0) ivl_die(1, "%s", ivl_last_error());
        cfg = src.cfg;
        reader = src.reader;
    }
    if (random_weights) ivl_random_weights_init(&rw, &cfg, seed, &reader);

    // The same GPU choice as every other command (CUDA_VISIBLE_DEVICES, Slurm, --gpu-share).
    ivl_rank_device rdev;
    ivl_backend *be = ivl_rank_backend_open(device, popt.gpu_share, &rdev);
    popt.gpu_shared = rdev.gpu.shared;
    out_ctx o;
    memset(&o, 0, sizeof o);
    o.rank = rank;
    ivl_bench_run *run = &o.run;
    snprintf(run->preset, sizeof run->preset, "%s", preset ? preset : model);
    snprintf(run->model, sizeof run->model, "%s", cfg.name);
    snprintf(run->weights, sizeof run->weights, "%s", random_weights ? "random" : "file");
    run->world = world;
    run->tp = popt.tp;
    run->pp = popt.pp;
    run->vit_tp = popt.vit_tp;
    snprintf(run->dtype, sizeof run->dtype, "%s", ivl_dtype_name(be->dtype));
    snprintf(run->backend, sizeof run->backend, "%s", be->name);
    snprintf(run->device, sizeof run->device, "%s", be->device_name);
    run->threads = omp_get_max_threads();
    ivl_bench_run_stamp(run);
    if (rank == 0 && json_path) {
        o.json = fopen(json_path, append ? "a" : "w");
        if (!o.json) ivl_die(1, "bench: cannot write %s", json_path);
    }
    if (rank == 0)
        printf("# internvl bench: %s (%s weights), layout world=%d tp=%d pp=%d vit_tp=%d, %s %s, "
               "%d threads/rank, %s, commit %s, %s, host %s\n", run->preset, run->weights, world,
               popt.tp, popt.pp, popt.vit_tp, run->backend, run->dtype, run->threads, run->blas,
               run->commit, run->date, run->host);
    if (rank == 0 && !strcmp(be->name, "cpu") && strstr(run->blas, "Prescott"))
        LOG_WARN("OpenBLAS runs its Prescott (SSE3) kernels on this CPU; set OPENBLAS_CORETYPE=Haswell "
                 "(or SkylakeX) for numbers that reflect the machine");

    // Ceilings first, before the model takes the memory (and the caches).
    meas_list ml = {0};
    const int gpu = strcmp(be->name, "cpu") != 0;
    if (rank == 0) ivl_bench_table_header(stdout);
    if (peak_given > 0) {
        run->peak_tflops = peak_given;
        snprintf(run->peak_source, sizeof run->peak_source, "given");
    } else {
        ivl_bench_meas *m = meas_new(&ml);
        ivl_bench_peak_gemm(be, gemm_n > 0 ? gemm_n : (gpu ? 8192 : 2048), 1, 3, m);
        run->peak_tflops = m->flops / m->min / 1e12;   // best of the repeats
        snprintf(run->peak_source, sizeof run->peak_source, "measured");
    }
    if (bw_given > 0) {
        run->mem_bw_gbs = bw_given;
    } else if (copy_mib > 0) {
        ivl_bench_meas *m = meas_new(&ml);
        ivl_bench_mem_copy(be, copy_mib, 1, 3, m);
        run->mem_bw_gbs = m->bytes / m->min / 1e9;
    }
    const int n_ceilings = ml.n;   // emitted once the model's collectives are known

    double t_load = omp_get_wtime();
    ivl_bench_ctx bc = {0};
    bc.warmup = warmup;
    bc.repeats = repeats;
    bc.seed = seed;
    bc.max_kv_bytes = max_kv_gib * (double)(1 << 30);
    if (ivl_bench_ctx_init(&bc, be, &reader, &cfg, &popt) != 0)
        ivl_die(1, "bench: %s", ivl_last_error());
    if (rank == 0)
        LOG_INFO("model ready in %.1f s (%s weights)", omp_get_wtime() - t_load, run->weights);
    snprintf(run->comm, sizeof run->comm, "%s", world > 1 ? bc.dist.comm_name : "none");
    for (int i = 0; i < n_ceilings; i++) emit(&o, ml.v[i]);

    if (do_vit) emit(&o, (ivl_bench_vit(&bc, tiles, meas_new(&ml)), ml.v[ml.n - 1]));
    if (do_prefill)
        for (int i = 0; i < n_prompt; i++)
            emit(&o, (ivl_bench_prefill(&bc, prefill_batch, prompt_lens[i], meas_new(&ml)), ml.v[ml.n - 1]));
    if (do_decode)
        for (int j = 0; j < n_ctx; j++)
            for (int i = 0; i < n_batch; i++)
                emit(&o, (ivl_bench_decode(&bc, (int)batches[i], ctxs[j], meas_new(&ml)), ml.v[ml.n - 1]));
    if (do_e2e) {
        int et[MAX_LIST];
        for (int i = 0; i < n_e2e; i++) et[i] = (int)e2e_tiles[i];
        ivl_tokenizer *tok = NULL;
        if (model && ivl_model_source_tokenizer(&src, &tok) == 0)
            emit(&o, (ivl_bench_e2e_caption(&bc, tok, et, n_e2e, e2e_out, e2e_kv, e2e_seqs,
                                            meas_new(&ml)), ml.v[ml.n - 1]));
        else
            emit(&o, (ivl_bench_e2e(&bc, et, n_e2e, e2e_prompt, e2e_out, meas_new(&ml)), ml.v[ml.n - 1]));
        if (tok) ivl_tokenizer_free(tok);
    }
    if (rank == 0) LOG_INFO("peak resident memory %.1f MiB (rank 0)", ml.n ? ml.v[ml.n - 1]->ranks[0].peak_rss_mib : 0.0);

    // The engine's memory goes back before PyTorch allocates its own copy of the model.
    ivl_bench_ctx_free(&bc);
    ivl_backend_destroy(be);
    if (compare && rank == 0) {
        char args[2048], pl[512], bl[512], cl[512];
        join_list(pl, sizeof pl, prompt_lens, n_prompt);
        join_list(bl, sizeof bl, batches, n_batch);
        join_list(cl, sizeof cl, ctxs, n_ctx);
        char ph[64] = "";
        if (do_vit) strcat(ph, "vit,");
        if (do_prefill) strcat(ph, "prefill,");
        if (do_decode) strcat(ph, "decode,");
        if (ph[0]) {
            ph[strlen(ph) - 1] = 0;
            snprintf(args, sizeof args,
                     "--phases %s --tiles %d --prompt-lens %s --prefill-batch %d --batch-sizes %s "
                     "--context-lens %s --warmup %d --repeats %d --threads %d --seed %llu --max-kv-gib %g",
                     ph, tiles, pl, prefill_batch, bl, cl, warmup, repeats, run->threads, seed, max_kv_gib);
            char def[4200];
            snprintf(def, sizeof def, "%s/bench/torch_ref_bench.py", IVL_SOURCE_DIR);
            compare_torch(&o, torch_script ? torch_script : def, cfg_json ? cfg_json : "", args, &ml);
        }
    }
    if (o.json) fclose(o.json);
    for (int i = 0; i < ml.n; i++) free(ml.v[i]);
    free(ml.v);
    if (model) ivl_model_source_close(&src);
    ivl_comm_finalize();
    return 0;
}
