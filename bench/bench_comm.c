// bench_comm.c - collective bandwidth of the MPI backend, in the manner of nccl-tests.
//
//   mpirun -np 4 bench_comm [-b 8] [-e 64M] [-f 2] [-n iters] [-w warmup] [-o allreduce,...]
//
// For each op and message size: check the result once against hand-computed values, then
// time `iters` calls after `warmup`. Each call is timed on every rank and the slowest rank's
// time of each call is kept; the report gives the median and the minimum of those (the median
// rather than nccl-tests' mean, because on a shared, oversubscribed box one preempted call
// can cost milliseconds and would swamp a mean), the algorithm bandwidth algbw = size /
// median and the bus bandwidth of nccl-tests (doc/PERFORMANCE.md), which is comparable
// across rank counts:
//   allreduce       size = the buffer             busbw = algbw * 2(n-1)/n
//   allgather       size = the gathered output    busbw = algbw * (n-1)/n
//   reduce_scatter  size = the full input         busbw = algbw * (n-1)/n
//   sendrecv        size = bytes each rank sends  busbw = algbw        (ring shift)
// Data is f32. Sizes for allgather/reduce_scatter are rounded down to a multiple of 4n bytes.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "core/check.h"

typedef enum { OP_ALLREDUCE, OP_ALLGATHER, OP_REDUCE_SCATTER, OP_SENDRECV, OP_COUNT } bench_op;
static const char *k_op_names[OP_COUNT] = {"allreduce", "allgather", "reduce_scatter", "sendrecv"};

typedef struct {
    size_t min_bytes, max_bytes;
    double factor;
    int iters;       // 0: chosen per size
    int warmup;
    int ops[OP_COUNT];
} bench_args;

static size_t parse_size(const char *s) {
    char *end = NULL;
    double v = strtod(s, &end);
    IVL_CHECK(end != s && v > 0, "bad size '%s' (examples: 8, 64K, 64M, 1G)", s);
    switch (*end) {
    case 'k': case 'K': v *= 1024; break;
    case 'm': case 'M': v *= 1024 * 1024; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
    case 0: break;
    default: IVL_CHECK(0, "bad size suffix in '%s' (K, M or G)", s);
    }
    return (size_t)v;
}

static void usage(void) {
    fprintf(stderr,
            "usage: [mpirun -np N] bench_comm [options]\n"
            "  -b SIZE   smallest message (default 8)\n"
            "  -e SIZE   largest message (default 64M)\n"
            "  -f X      size factor between steps (default 2)\n"
            "  -n N      timed iterations per size (default: 50 for small sizes, down to 3)\n"
            "  -w N      warm-up iterations (default 2)\n"
            "  -o LIST   ops, comma separated: allreduce,allgather,reduce_scatter,sendrecv (default all)\n");
}

static bench_args parse_args(int argc, char **argv) {
    bench_args a = {.min_bytes = 8, .max_bytes = (size_t)64 << 20, .factor = 2, .warmup = 2};
    for (int i = 0; i < OP_COUNT; i++) a.ops[i] = 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            if (ivl_comm_world_rank() == 0) usage();
            ivl_comm_finalize();
            exit(0);
        }
        IVL_CHECK(i + 1 < argc, "option %s needs a value (see -h)", o);
        const char *v = argv[++i];
        if (!strcmp(o, "-b")) a.min_bytes = parse_size(v);
        else if (!strcmp(o, "-e")) a.max_bytes = parse_size(v);
        else if (!strcmp(o, "-f")) a.factor = atof(v);
        else if (!strcmp(o, "-n")) a.iters = atoi(v);
        else if (!strcmp(o, "-w")) a.warmup = atoi(v);
        else if (!strcmp(o, "-o")) {
            for (int k = 0; k < OP_COUNT; k++) a.ops[k] = 0;
            char *list = ivl_strdup(v), *save = NULL;
            for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                int found = 0;
                for (int k = 0; k < OP_COUNT; k++)
                    if (!strcmp(t, k_op_names[k])) a.ops[k] = found = 1;
                IVL_CHECK(found, "unknown op '%s' (allreduce, allgather, reduce_scatter, sendrecv)", t);
            }
            free(list);
        } else
            IVL_CHECK(0, "unknown option %s (see -h)", o);
    }
    IVL_CHECK(a.factor > 1, "-f must be > 1");
    IVL_CHECK(a.min_bytes >= 4 && a.min_bytes <= a.max_bytes, "need 4 <= -b <= -e");
    IVL_CHECK(a.warmup >= 0 && a.iters >= 0, "-n and -w must be >= 0");
    return a;
}

// Elements per call for `bytes`, and the bytes the bandwidth is computed from.
static size_t op_count(bench_op op, size_t bytes, int n, size_t *size_out) {
    size_t elems = bytes / sizeof(float);
    if (op == OP_ALLGATHER || op == OP_REDUCE_SCATTER) {
        size_t per_rank = elems / (size_t)n;
        *size_out = per_rank * (size_t)n * sizeof(float);
        return per_rank;
    }
    *size_out = elems * sizeof(float);
    return elems;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double bus_factor(bench_op op, int n) {
    switch (op) {
    case OP_ALLREDUCE: return 2.0 * (n - 1) / n;
    case OP_ALLGATHER:
    case OP_REDUCE_SCATTER: return (double)(n - 1) / n;
    default: return 1.0;
    }
}

static void run_op(const ivl_comm_ops *ops, const ivl_comm_group *g, bench_op op, size_t count,
                   float *a, float *b) {
    int right = (g->rank + 1) % g->size, left = (g->rank + g->size - 1) % g->size;
    switch (op) {
    case OP_ALLREDUCE: ops->allreduce(g, a, count, IVL_F32, IVL_COMM_SUM); break;
    case OP_ALLGATHER: ops->allgather(g, a, b, count, IVL_F32); break;
    case OP_REDUCE_SCATTER: ops->reduce_scatter(g, a, b, count, IVL_F32, IVL_COMM_SUM); break;
    case OP_SENDRECV: ops->sendrecv(g, a, count, right, b, count, left, IVL_F32); break;
    default: break;
    }
}

// One call on known data; returns the number of wrong elements on this rank.
static size_t check_op(const ivl_comm_ops *ops, const ivl_comm_group *g, bench_op op,
                       size_t count, float *a, float *b) {
    const int R = g->rank, N = g->size;
    size_t in = op == OP_REDUCE_SCATTER ? count * (size_t)N : count;
    for (size_t i = 0; i < in; i++) a[i] = (float)(R + 1) + (float)(i % 13);
    run_op(ops, g, op, count, a, b);
    size_t bad = 0;
    int left = (R + N - 1) % N;
    switch (op) {
    case OP_ALLREDUCE:
        for (size_t i = 0; i < count; i++)
            bad += a[i] != (float)(N * (N + 1) / 2) + (float)N * (float)(i % 13);
        break;
    case OP_ALLGATHER:
        for (int r = 0; r < N; r++)
            for (size_t i = 0; i < count; i++)
                bad += b[(size_t)r * count + i] != (float)(r + 1) + (float)(i % 13);
        break;
    case OP_REDUCE_SCATTER:
        for (size_t i = 0; i < count; i++)
            bad += b[i] != (float)(N * (N + 1) / 2) + (float)N * (float)((R * count + i) % 13);
        break;
    case OP_SENDRECV:
        for (size_t i = 0; i < count; i++) bad += b[i] != (float)(left + 1) + (float)(i % 13);
        break;
    default: break;
    }
    return bad;
}

int main(int argc, char **argv) {
    ivl_comm_init(&argc, &argv);
    bench_args a = parse_args(argc, argv);
    ivl_comm_group g;
    ivl_comm_group_world(&g);
    const ivl_comm_ops *ops = ivl_comm_mpi_ops();
    const int N = g.size, root = g.rank == 0;
    // Buffers for the largest call: reduce_scatter reads N*count, allgather writes N*count.
    size_t max_elems = a.max_bytes / sizeof(float) + (size_t)N;
    float *bufa = ivl_calloc(max_elems, sizeof(float)), *bufb = ivl_calloc(max_elems, sizeof(float));
    if (root) {
        printf("# bench_comm: %d ranks, backend %s, f32, sizes %zu .. %zu bytes, warmup %d\n", N,
               ops->name, a.min_bytes, a.max_bytes, a.warmup);
        printf("# per call: slowest rank; median and min over iters; algbw = size/median; "
               "busbw per nccl-tests\n");
    }
    size_t total_wrong = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        if (!a.ops[op]) continue;
        if (root)
            printf("\n# %s\n# %12s %12s %6s %12s %12s %10s %10s %7s\n", k_op_names[op],
                   "size(B)", "count", "iters", "median(us)", "min(us)", "algbw", "busbw",
                   "#wrong");
        size_t last = 0;
        for (double s = (double)a.min_bytes; s <= (double)a.max_bytes * 1.0000001; s *= a.factor) {
            size_t size = 0, count = op_count((bench_op)op, (size_t)s, N, &size);
            if (count == 0 || size == last) continue;
            last = size;
            size_t wrong = check_op(ops, &g, (bench_op)op, count, bufa, bufb);
            // Timed calls on zeros: in-place sums of zeros stay finite however many there are.
            memset(bufa, 0, max_elems * sizeof(float));
            int iters = a.iters ? a.iters : (int)fmin(50, fmax(3, (double)(1 << 26) / (double)size));
            for (int w = 0; w < a.warmup; w++) run_op(ops, &g, (bench_op)op, count, bufa, bufb);
            ops->barrier(&g);
            double *t = ivl_malloc((size_t)iters * sizeof *t);
            for (int it = 0; it < iters; it++) {
                double t0 = MPI_Wtime();
                run_op(ops, &g, (bench_op)op, count, bufa, bufb);
                ops->synchronize(&g);
                t[it] = MPI_Wtime() - t0;
            }
            MPI_Allreduce(MPI_IN_PLACE, t, iters, MPI_DOUBLE, MPI_MAX, g.comm);
            qsort(t, (size_t)iters, sizeof *t, cmp_double);
            double worst = t[iters / 2], best = t[0];
            free(t);
            int64_t w64 = (int64_t)wrong;
            ops->allreduce(&g, &w64, 1, IVL_I64, IVL_COMM_SUM);
            total_wrong += (size_t)w64;
            double algbw = (double)size / worst / 1e9;
            if (root)
                printf("  %12zu %12zu %6d %12.2f %12.2f %10.3f %10.3f %7lld\n", size, count,
                       iters, worst * 1e6, best * 1e6, algbw, algbw * bus_factor((bench_op)op, N),
                       (long long)w64);
        }
    }
    if (root) printf("\n# bandwidths in GB/s (1e9 bytes/s); wrong elements: %zu\n", total_wrong);
    free(bufa);
    free(bufb);
    ivl_comm_group_free(&g);
    ivl_comm_finalize();
    return total_wrong ? 1 : 0;
}
