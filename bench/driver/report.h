// report.h - one benchmark measurement, its statistics, and how it is written: a row of the
// stdout table and one JSON object per line (JSON Lines) in the --json file.
#ifndef IVL_BENCH_REPORT_H
#define IVL_BENCH_REPORT_H

#include <stdint.h>
#include <stdio.h>

#define IVL_BENCH_MAX_REPEATS 1000
#define IVL_BENCH_MAX_RANKS 1024

// Run-wide facts every record repeats, so one line stands on its own.
typedef struct {
    char preset[64];          // preset name or model file
    char model[128];          // config name
    char weights[16];         // "random" or "file"
    int world, tp, pp, vit_tp;
    char dtype[8];            // compute dtype: f32 (CPU), bf16/f16 (CUDA)
    char backend[16];         // cpu / cuda
    char device[128];         // backend's device name
    char comm[8];             // collectives used: "nccl", "mpi" or "none" (one rank)
    int threads;              // CPU threads per rank (OpenMP)
    char blas[32];            // OpenBLAS kernel set in use (openblas_get_corename), CPU runs
    char commit[64];          // git describe of the source tree (or "unknown")
    char date[32];            // UTC, ISO 8601
    char host[64];
    double peak_tflops;       // per rank, measured or given
    char peak_source[16];     // "measured" or "given"
    double mem_bw_gbs;        // per rank, measured or given (0 = none)
} ivl_bench_run;

typedef struct {
    double comm_s;            // mean per repeat, inside communication calls
    double comm_bytes;        // per repeat, this rank's payload
    double peak_rss_mib;
} ivl_bench_rank;

typedef struct {
    char phase[16];           // vit, prefill, decode, e2e, peak_gemm, mem_copy
    // parameters (0 when not used by the phase)
    int tiles, batch, images;
    int64_t prompt_len, context_len, output_len;
    char extra[128];          // free-form parameter note (e.g. the tile distribution)
    // timings, seconds per repeat (max over ranks)
    int n;
    double t[IVL_BENCH_MAX_REPEATS];
    double median, min, max, q1, q3, mean;
    // work per repeat
    double units;             // tiles, tokens or images
    char unit[16];            // "tiles/s", "tokens/s", "images/s", "TFLOP/s", "GB/s"
    double flops;             // whole-model FLOPs per repeat (0 = not counted)
    double bytes;             // minimum memory traffic per repeat (decode), 0 = none
    int nranks;
    ivl_bench_rank ranks[IVL_BENCH_MAX_RANKS];
    int skipped;              // 1: not run (reason in extra)
} ivl_bench_meas;

// Fills median/min/max/quartiles/mean from t[0..n).
void ivl_bench_stats(ivl_bench_meas *m);

// Prints the table header / one row to f.
void ivl_bench_table_header(FILE *f);
void ivl_bench_table_row(FILE *f, const ivl_bench_run *run, const ivl_bench_meas *m);

// One JSON object (no newline inside) for m; returns a malloc'ed string.
char *ivl_bench_json(const ivl_bench_run *run, const ivl_bench_meas *m);

// Fills commit, date and host.
void ivl_bench_run_stamp(ivl_bench_run *run);

#endif
