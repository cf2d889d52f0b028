// image_tool.c - command-line access to core/image for the Python parity tests and for
// measuring throughput. Output files are raw little-endian arrays; errors are printed as
// "ERROR <status>: <message>" on stdout with exit code 2 (never a crash).
//
//   image_tool candidates-all MAX           one line per 1<=min<=max<=MAX: "min max i,j i,j ..."
//   image_tool grids < "W H MIN MAX S"...   one line per input: "cols rows ntiles"
//   image_tool decode FILE OUT.rgb          prints "W H"; OUT = H*W*3 bytes
//   image_tool decode-exif FILE OUT.rgb     the same with the EXIF orientation applied
//                                           (ivl_image_load_oriented); prints "W H ORIENTATION"
//   image_tool resize FILE W H OUT.rgb      Pillow-bicubic resize of the decoded image
//   image_tool tiles FILE MAXNUM PREFIX     PREFIX.u8 [T,S,S,3], PREFIX.f32 and PREFIX.bf16
//                                           [T,3,S,S] via ivl_image_preprocess; prints
//                                           "cols rows ntiles"
//   image_tool bench FILE THREADS N [MAXNUM] decode+preprocess N copies through the
//                                           pipeline; prints images/s and tiles/s
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/check.h"
#include "core/image/image.h"

static int write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        if (f) fclose(f);
        return 1;
    }
    fclose(f);
    return 0;
}

static int load_or_report_ex(const char *path, int exif, ivl_image *img) {
    int st = ivl_image_load_oriented(path, 0, exif, img);
    if (st != IVL_IMAGE_OK) {
        printf("ERROR %s: %s\n", ivl_image_status_name(st), ivl_last_error());
        return 2;
    }
    return 0;
}

static int load_or_report(const char *path, ivl_image *img) { return load_or_report_ex(path, 0, img); }

// The EXIF orientation of a file (read whole), for decode-exif's report.
static int file_orientation(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = malloc(n > 0 ? (size_t)n : 1);
    size_t got = fread(b, 1, n > 0 ? (size_t)n : 0, f);
    fclose(f);
    int o = ivl_image_exif_orientation(b, got);
    free(b);
    return o;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmd_bench(const char *path, int threads, int n, int max_num) {
    FILE *f = fopen(path, "rb");
    if (!f) return fprintf(stderr, "cannot open %s\n", path), 1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)size);
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) return fprintf(stderr, "read error\n"), 1;
    fclose(f);
    ivl_preprocess_opts o = ivl_preprocess_defaults();
    o.max_tiles = max_num;
    ivl_image_pipeline *p = ivl_image_pipeline_create(threads, 2 * threads + 2, &o);
    if (!p) return fprintf(stderr, "%s\n", ivl_last_error()), 1;
    double t0 = now_s(), dec = 0, pre = 0;
    long tiles = 0;
    int submitted = 0, done = 0;
    ivl_image_result r;
    ivl_image_source src = {.data = buf, .size = (size_t)size, .name = path};
    while (done < n) {
        if (submitted < n && ivl_image_pipeline_in_flight(p) < ivl_image_pipeline_capacity(p)) {
            ivl_image_pipeline_submit(p, &src, NULL);
            submitted++;
            continue;
        }
        if (ivl_image_pipeline_next(p, &r) != 0) break;
        if (r.status != 0) return fprintf(stderr, "%s\n", r.error), 1;
        tiles += r.grid.ntiles;
        dec += r.decode_s;
        pre += r.preprocess_s;
        ivl_image_result_free(&r);
        done++;
    }
    double dt = now_s() - t0;
    printf("%s: %d images, %ld tiles, %d threads: %.1f images/s, %.1f tiles/s "
           "(%.1f tiles/s per thread); per image: decode %.2f ms, tiles+normalize %.2f ms\n",
           path, n, tiles, threads, n / dt, tiles / dt, tiles / dt / threads, 1e3 * dec / n,
           1e3 * pre / n);
    ivl_image_pipeline_free(p);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: see the comment at the top of tests/image/image_tool.c\n");
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "candidates-all") && argc == 3) {
        int maxn = atoi(argv[2]);
        ivl_tile_ratio *c = malloc(sizeof *c * 4096);
        for (int hi = 1; hi <= maxn; hi++)
            for (int lo = 1; lo <= hi; lo++) {
                int n = ivl_tile_candidates(lo, hi, c, 4096);
                if (n < 0 || n > 4096) return fprintf(stderr, "%s\n", ivl_last_error()), 1;
                printf("%d %d", lo, hi);
                for (int k = 0; k < n; k++) printf(" %d,%d", c[k].cols, c[k].rows);
                printf("\n");
            }
        free(c);
        return 0;
    }
    if (!strcmp(cmd, "grids")) {
        int w, h, lo, hi, s;
        while (scanf("%d %d %d %d %d", &w, &h, &lo, &hi, &s) == 5) {
            ivl_tile_grid g;
            if (ivl_tile_grid_select(w, h, lo, hi, s, 1, &g)) return fprintf(stderr, "%s\n", ivl_last_error()), 1;
            printf("%d %d %d\n", g.cols, g.rows, g.ntiles);
        }
        return 0;
    }
    if (!strcmp(cmd, "decode") && argc == 4) {
        ivl_image img;
        if (load_or_report(argv[2], &img)) return 2;
        printf("%d %d\n", img.width, img.height);
        int rc = write_file(argv[3], img.rgb, (size_t)img.width * img.height * 3);
        ivl_image_free(&img);
        return rc;
    }
    if (!strcmp(cmd, "decode-exif") && argc == 4) {
        ivl_image img;
        if (load_or_report_ex(argv[2], 1, &img)) return 2;
        printf("%d %d %d\n", img.width, img.height, file_orientation(argv[2]));
        int rc = write_file(argv[3], img.rgb, (size_t)img.width * img.height * 3);
        ivl_image_free(&img);
        return rc;
    }
    if (!strcmp(cmd, "resize") && argc == 6) {
        ivl_image img;
        if (load_or_report(argv[2], &img)) return 2;
        int w = atoi(argv[3]), h = atoi(argv[4]);
        uint8_t *out = malloc((size_t)w * h * 3);
        if (ivl_image_resize_bicubic(img.rgb, img.width, img.height, out, w, h))
            return fprintf(stderr, "%s\n", ivl_last_error()), 1;
        int rc = write_file(argv[5], out, (size_t)w * h * 3);
        free(out);
        ivl_image_free(&img);
        return rc;
    }
    if (!strcmp(cmd, "tiles") && argc == 5) {
        ivl_image img;
        if (load_or_report(argv[2], &img)) return 2;
        ivl_preprocess_opts o = ivl_preprocess_defaults();
        o.max_tiles = atoi(argv[3]);
        int S = o.image_size;
        ivl_tile_grid g;
        void *f32 = NULL, *bf16 = NULL;
        if (ivl_image_preprocess(&img, &o, &g, &f32)) return fprintf(stderr, "%s\n", ivl_last_error()), 1;
        o.dtype = IVL_BF16;
        ivl_tile_grid g2;
        if (ivl_image_preprocess(&img, &o, &g2, &bf16)) return fprintf(stderr, "%s\n", ivl_last_error()), 1;
        size_t plane = (size_t)S * S * 3;
        uint8_t *u8 = malloc(plane * g.ntiles);
        if (ivl_image_tiles_u8(&img, &g, S, u8)) return fprintf(stderr, "%s\n", ivl_last_error()), 1;
        char path[4096];
        int rc = 0;
        snprintf(path, sizeof path, "%s.u8", argv[4]);
        rc |= write_file(path, u8, plane * g.ntiles);
        snprintf(path, sizeof path, "%s.f32", argv[4]);
        rc |= write_file(path, f32, plane * g.ntiles * 4);
        snprintf(path, sizeof path, "%s.bf16", argv[4]);
        rc |= write_file(path, bf16, plane * g.ntiles * 2);
        printf("%d %d %d\n", g.cols, g.rows, g.ntiles);
        free(u8);
        free(f32);
        free(bf16);
        ivl_image_free(&img);
        return rc;
    }
    if (!strcmp(cmd, "bench") && argc >= 5)
        return cmd_bench(argv[2], atoi(argv[3]), atoi(argv[4]), argc > 5 ? atoi(argv[5]) : 12);
    fprintf(stderr, "image_tool: unknown command or wrong arguments: %s\n", cmd);
    return 1;
}
