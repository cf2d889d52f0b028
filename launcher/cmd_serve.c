// cmd_serve.c - `internvl serve`: an OpenAI-compatible HTTP API on the engine (docs/serve.md).
//
//   internvl serve --model M.h5 [--host 127.0.0.1] [--port 8000] [layout options]
//   mpirun -np 4 internvl serve --model M.h5 --tp 2 --pp 2
//
// Rank 0 serves HTTP (parallel/serve/serve_http.h) and queues checked requests; every rank
// runs the engine loop (parallel/serve/serve_engine.h): continuous batching, requests join
// and leave the running batch between engine steps (at most --max-seqs at once).
// SIGTERM, SIGINT or SIGUSR1 (what mpirun forwards): stop accepting, let running and queued
// requests finish within --grace seconds (then cancel them), exit 0.
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "core/check.h"
#include "core/log.h"
#include "core/text/chat.h"
#include "launcher/commands.h"
#include "launcher/run_util.h"
#include "parallel/serve/serve_engine.h"
#include "parallel/serve/serve_http.h"
#include "parallel/session.h"

static volatile sig_atomic_t g_shutdown;
static void on_signal(int sig) { g_shutdown = sig; }

static void usage(FILE *f) {
    fprintf(f,
            "usage: internvl serve --model M.h5 [options]\n"
            "An OpenAI-compatible HTTP API (docs/serve.md): POST /v1/chat/completions,\n"
            "GET /v1/models, GET /health, GET /metrics. Under mpirun rank 0 serves HTTP.\n"
            "  --host ADDR              numeric address to listen on (default 127.0.0.1)\n"
            "  --port N                 default 8000; 0 picks a free port (see --port-file)\n"
            "  --port-file F            write the port there once listening\n"
            "  --served-model-name NAME model id (default: the file name without .h5)\n"
            "  --system TEXT            default system message (default: config.json's)\n"
            "  --allowed-local-media D  accept file:// image URLs under directory D\n"
            "  --max-queue N            waiting requests before 429 (default 64)\n"
            "  --max-seqs N             most requests in the running batch (default 32)\n"
            "  --max-body BYTES         request body limit (default 33554432)\n"
            "  --max-image-bytes BYTES  one encoded image (default 20971520)\n"
            "  --max-pixels N           one decoded image (default 40000000; decompression bombs)\n"
            "  --max-images N           images per request (default 8)\n"
            "  --max-total-tiles N      tiles per request (default 64)\n"
            "  --default-max-tokens N   when a request sets none (default 512)\n"
            "  --request-timeout S      seconds from arrival to the last token (default 600)\n"
            "  --read-timeout S         close a connection idle this long (default 30)\n"
            "  --grace S                on SIGTERM: seconds to finish running requests (default 30)\n"
            "  --device D               cpu (default), cuda or auto\n"
            IVL_KV_USAGE IVL_LAYOUT_USAGE);
}

static void drain(void *ctx) { ivl_serve_http_quiesce(ctx); }

int cmd_serve(int argc, char **argv) {
    const char *model = NULL, *device = "cpu", *system = NULL, *port_file = NULL;
    const char *name = NULL;
    ivl_serve_http_opts ho = {.host = "127.0.0.1", .port = 8000, .max_body = 32u << 20,
                              .max_images = 8, .max_tokens_limit = IVL_MAX_NEW_TOKENS,
                              .read_timeout_s = 30, .max_connections = 512, .retry_after_s = 1};
    ivl_serve_model sm = {.max_pixels = 40000000, .max_total_tiles = 64,
                          .default_max_tokens = 512, .timeout_s = 600,
                          .media = {NULL, 20u << 20}};
    int max_queue = 64, max_seqs = 32;
    double grace = 30;
    ivl_parallel_opts popt = ivl_parallel_opts_default();
    ivl_kv_opts kvo = {0};
    static struct option opts[] = {
        {"model", 1, 0, 'm'},        {"host", 1, 0, 'H'},          {"port", 1, 0, 'P'},
        {"port-file", 1, 0, 'F'},    {"served-model-name", 1, 0, 'N'},
        {"system", 1, 0, 's'},       {"allowed-local-media", 1, 0, 'A'},
        {"max-queue", 1, 0, 'q'},    {"max-seqs", 1, 0, 'S'},
        {"max-body", 1, 0, 'b'},     {"max-image-bytes", 1, 0, 'B'},
        {"max-pixels", 1, 0, 'X'},   {"max-images", 1, 0, 'I'},    {"max-total-tiles", 1, 0, 'T'},
        {"default-max-tokens", 1, 0, 'n'}, {"request-timeout", 1, 0, 't'},
        {"read-timeout", 1, 0, 'r'}, {"grace", 1, 0, 'g'},         {"device", 1, 0, 'd'},
        IVL_LAYOUT_OPTIONS, IVL_KV_OPTIONS,
        {"help", 0, 0, 'h'},         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ivl_layout_option(c, optarg, &popt) || ivl_kv_option(c, optarg, &kvo)) continue;
        switch (c) {
        case 'm': model = optarg; break;
        case 'H': ho.host = optarg; break;
        case 'P': ho.port = ivl_parse_int("--port", optarg, 0, 65535); break;
        case 'F': port_file = optarg; break;
        case 'N': name = optarg; break;
        case 's': system = optarg; break;
        case 'A': sm.media.allowed_root = optarg; break;
        case 'q': max_queue = ivl_parse_int("--max-queue", optarg, 1, 1 << 20); break;
        case 'S': max_seqs = ivl_parse_int("--max-seqs", optarg, 1, 4096); break;
        case 'b': ho.max_body = (size_t)ivl_parse_double("--max-body", optarg, 1024, 1e10); break;
        case 'B': sm.media.max_bytes = (size_t)ivl_parse_double("--max-image-bytes", optarg, 1, 1e10); break;
        case 'X': sm.max_pixels = (int64_t)ivl_parse_double("--max-pixels", optarg, 1, 1e12); break;
        case 'I': ho.max_images = ivl_parse_int("--max-images", optarg, 0, 1024); break;
        case 'T': sm.max_total_tiles = ivl_parse_int("--max-total-tiles", optarg, 1, 4096); break;
        case 'n': sm.default_max_tokens = ivl_parse_int("--default-max-tokens", optarg, 1, IVL_MAX_NEW_TOKENS); break;
        case 't': sm.timeout_s = ivl_parse_double("--request-timeout", optarg, 0.001, 1e7); break;
        case 'r': ho.read_timeout_s = (unsigned)ivl_parse_int("--read-timeout", optarg, 1, 86400); break;
        case 'g': grace = ivl_parse_double("--grace", optarg, 0, 86400); break;
        case 'd': device = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model || optind != argc) {
        usage(stderr);
        return 2;
    }
    char model_id[256];
    if (!name) {   // the file name without its directory and .h5
        const char *b = strrchr(model, '/');
        snprintf(model_id, sizeof model_id, "%s", b ? b + 1 : model);
        size_t n = strlen(model_id);
        if (n > 3 && !strcmp(model_id + n - 3, ".h5")) model_id[n - 3] = 0;
        name = model_id;
    }
    ho.model_name = name;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);   // a client gone mid-write is an error return, not a death
    // Every connection thread would otherwise get its own malloc arena (up to 8 per core),
    // each keeping freed request buffers: a few arenas keep the idle RSS where it was.
    mallopt(M_ARENA_MAX, 4);

    ivl_comm_init(&argc, &argv);
    ivl_session s;
    if (ivl_session_open(&s, model, device, &popt) != 0) ivl_die(1, "%s", ivl_last_error());
    const ivl_model_config *cfg = &s.model->cfg;
    const ivl_chat_template *tp = ivl_chat_template_find(cfg->template_name);
    if (!tp) ivl_die(1, "%s: %s", model, ivl_last_error());
    const int32_t stop = ivl_chat_stop_id(s.tok, tp);
    if (stop < 0) ivl_die(1, "%s: %s", model, ivl_last_error());

    ivl_model_config cfg_view = *cfg;   // the default system message the requests get
    if (system) snprintf(cfg_view.system_message, sizeof cfg_view.system_message, "%s", system);
    sm.cfg = &cfg_view;
    sm.tok = s.tok;
    sm.tp = tp;
    sm.stop_id = stop;
    // One paged KV cache for the server's life (default: room for two full contexts, so one
    // conversation stays cached while another runs). A request never needs more than the
    // context, and prepare refuses one that would not fit the cache.
    kvo.min_positions = 256;
    kvo.want_positions = 2LL * cfg->llm.max_position;
    kvo.max_seqs = max_seqs;
    if (ivl_session_kv_init(&s, &kvo) != 0) ivl_die(1, "%s", ivl_last_error());
    sm.context = s.dist.kv.n_blocks * s.dist.kv.block_size;

    ivl_serve_queue queue;
    ivl_serve_metrics metrics;
    ivl_serve_queue_init(&queue, max_queue);
    ivl_serve_metrics_init(&metrics);
    ivl_serve_http *http = NULL;
    int32_t ok = 1;
    if (s.rank == 0) {
        http = ivl_serve_http_start(&ho, &sm, &queue, &metrics);
        if (!http) {
            LOG_ERROR("%s", ivl_last_error());
            ok = 0;
        }
    }
    if (s.distributed) ivl_comm_mpi_ops()->bcast(&s.dist.topo.world, &ok, 1, IVL_I32, 0);
    if (!ok) {
        ivl_session_close(&s);
        ivl_comm_finalize();
        return 1;
    }
    if (s.rank == 0) {
        int port = ivl_serve_http_port(http);
        LOG_INFO("serving %s on http://%s:%d (ranks %d, tp %d x pp %d)", name, ho.host, port,
                 s.dist.topo.world.size, popt.tp, popt.pp);
        fprintf(stderr, "internvl serve: listening on http://%s:%d\n", ho.host, port);
        if (port_file) {
            char tmp[4200];
            snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
            FILE *f = fopen(tmp, "w");
            if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, port_file) != 0)
                LOG_WARN("cannot write --port-file %s", port_file);
        }
    }
    ivl_serve_engine eng = {.s = &s, .stop_id = stop, .queue = &queue, .metrics = &metrics,
                            .shutdown = &g_shutdown, .grace_s = grace, .on_drain = drain,
                            .drain_ctx = http, .kvo = kvo,
                            .max_seqs = max_seqs};
    ivl_serve_engine_run(&eng);
    ivl_serve_http_stop(http);   // every job is finished: the connection threads end
    ivl_serve_queue_free(&queue);
    if (s.rank == 0) LOG_INFO("serve: stopped");
    ivl_session_close(&s);
    ivl_comm_finalize();
    return 0;
}
