// convert.c - see convert.h. Order of work: parse the config, open and check every
// safetensors header, build the plan and check every source tensor's presence, dtype and
// shape against the config; only then write. Each source tensor is read once (pread into one
// buffer, the only tensor in memory) and its engine tensors are written from that buffer with
// HDF5 hyperslab selections.
#include "weights/convert.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/check.h"
#include "core/log.h"
#include "core/models/config.h"
#include "weights/convert_check.h"
#include "weights/h5_util.h"
#include "weights/name_map.h"
#include "weights/quantize.h"
#include "weights/safetensors.h"

static const char *k_tokenizer_files[] = {"tokenizer.model", "tokenizer_config.json",
                                          "added_tokens.json", "special_tokens_map.json"};

// 2-D+ tensors are chunked by blocks of whole rows of about this many bytes.
#define CHUNK_TARGET_BYTES (1u << 20)

int ivl_read_file(const char *path, char **data, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return ivl_errorf("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, got;
    char *buf = ivl_malloc(cap);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0)
        if ((n += got) == cap) buf = ivl_realloc(buf, cap *= 2);
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return ivl_errorf("%s: read error", path);
    }
    buf = ivl_realloc(buf, n + 1);
    buf[n] = 0;
    *data = buf;
    if (size) *size = n;
    return 0;
}

static const char *shape_str(int ndim, const int64_t *s, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)s[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

// mkdir -p of the directory part of path, so `--out models/x.h5` works in a fresh tree.
static int make_parent_dirs(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return 0;
    *slash = 0;
    for (char *p = dir + 1; ; p++) {
        if (*p != '/' && *p != 0) continue;
        char c = *p;
        *p = 0;
        if (mkdir(dir, 0777) && errno != EEXIST)
            return ivl_errorf("cannot create directory %s for %s: %s", dir, path, strerror(errno));
        struct stat st;
        if (stat(dir, &st) || !S_ISDIR(st.st_mode))
            return ivl_errorf("cannot create %s: %s is not a directory", path, dir);
        *p = c;
        if (!c) break;
    }
    return 0;
}

// --- checks before writing ----------------------------------------------------------------

// Every plan source must exist with the expected shape and a float dtype; every checkpoint
// tensor must be used (or only warned about with allow_unused).
// AWQ source of a plan entry: the float name minus ".weight" plus suffix.
static const ivl_st_tensor *awq_part(const ivl_st_checkpoint *ck, const ivl_plan_entry *e,
                                     const char *suffix, char *name, size_t n) {
    size_t len = strlen(e->hf_name);
    if (len < 7 || strcmp(e->hf_name + len - 7, ".weight")) return NULL;
    snprintf(name, n, "%.*s%s", (int)(len - 7), e->hf_name, suffix);
    return ivl_st_find(ck, name);
}

// The three AWQ tensors of an entry with their expected shapes (weights/SCHEMA.md): qweight
// int32 [K, N/8], qzeros int32 [K/G, N/8], scales float [K/G, N], N = source outputs.
static int check_awq_entry(const ivl_plan_entry *e, const ivl_st_checkpoint *ck,
                           int64_t group, const ivl_st_tensor **parts) {
    static const char *suf[3] = {".qweight", ".qzeros", ".scales"};
    const int64_t N = e->hf_shape[0], K = e->hf_shape[1];
    char name[200], a[96], b[96];
    if (e->hf_ndim != 2 || N % 8 || K % group || group % 2)
        return ivl_errorf("AWQ tensor %s [%lld, %lld]: outputs must be a multiple of 8 and the "
                          "group size %lld must divide the %lld inputs (and be even)",
                          e->hf_name, (long long)N, (long long)K, (long long)group, (long long)K);
    int64_t want[3][2] = {{K, N / 8}, {K / group, N / 8}, {K / group, N}};
    for (int i = 0; i < 3; i++) {
        parts[i] = awq_part(ck, e, suf[i], name, sizeof name);
        if (!parts[i])
            return ivl_errorf("AWQ checkpoint: tensor %s missing (the quantized layer %s needs "
                              "qweight, qzeros and scales)", name, e->hf_name);
        const ivl_st_tensor *t = parts[i];
        int ok = t->ndim == 2 && t->shape[0] == want[i][0] && t->shape[1] == want[i][1];
        int dt_ok = i < 2 ? t->dtype == IVL_I32 : t->dtype != IVL_I32;
        if (!ok || !dt_ok)
            return ivl_errorf("%s: tensor %s is %s %s, expected %s %s (AWQ gemm layout of %s "
                              "[%lld outputs, %lld inputs], group %lld)",
                              ivl_st_file_path(ck, t->file), name, ivl_dtype_name(t->dtype),
                              shape_str(t->ndim, t->shape, a, sizeof a),
                              i < 2 ? "int32" : "float",
                              shape_str(2, want[i], b, sizeof b), e->hf_name, (long long)N,
                              (long long)K, (long long)group);
    }
    return 0;
}

static int check_plan(const ivl_plan *plan, const ivl_st_checkpoint *ck, const char *hf_dir,
                      int allow_unused, uint64_t *bytes_total, const char *awq, int64_t group) {
    int n = ivl_st_count(ck), rc = 0;
    char *used = ivl_calloc((size_t)(n ? n : 1), 1);
    *bytes_total = 0;
    for (int i = 0; i < plan->n && !rc; i++) {
        const ivl_plan_entry *e = &plan->e[i];
        if (awq && awq[i]) {
            const ivl_st_tensor *parts[3];
            if ((rc = check_awq_entry(e, ck, group, parts))) break;
            for (int k = 0; k < 3; k++) {
                int idx = (int)(parts[k] - ivl_st_at(ck, 0));
                if (!used[idx]) *bytes_total += parts[k]->nbytes;
                used[idx] = 1;
            }
            continue;
        }
        const ivl_st_tensor *t = ivl_st_find(ck, e->hf_name);
        char a[96], b[96];
        if (!t) {
            rc = ivl_errorf("%s: tensor %s missing from the checkpoint (the config needs it with "
                            "shape %s for %s)", hf_dir, e->hf_name,
                            shape_str(e->hf_ndim, e->hf_shape, a, sizeof a), e->name);
            break;
        }
        int same = t->ndim == e->hf_ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == e->hf_shape[d];
        if (!same) {
            rc = ivl_errorf("%s: tensor %s has shape %s but config.json implies %s",
                            ivl_st_file_path(ck, t->file), e->hf_name,
                            shape_str(t->ndim, t->shape, a, sizeof a),
                            shape_str(e->hf_ndim, e->hf_shape, b, sizeof b));
            break;
        }
        if (t->dtype == IVL_I32) {
            rc = ivl_errorf("%s: tensor %s is int32; the engine needs floats (an AWQ layer's "
                            "qweight belongs to a checkpoint with a quantization_config)",
                            ivl_st_file_path(ck, t->file), e->hf_name);
            break;
        }
        int idx = (int)(t - ivl_st_at(ck, 0));
        if (!used[idx]) *bytes_total += t->nbytes;
        used[idx] = 1;
    }
    for (int i = 0; i < n && !rc; i++) {
        if (used[i]) continue;
        const ivl_st_tensor *t = ivl_st_at(ck, i);
        if (!allow_unused) {
            rc = ivl_errorf("%s: tensor %s is not part of the model the config describes "
                            "(use --allow-unused to skip such tensors)",
                            ivl_st_file_path(ck, t->file), t->name);
        } else {
            LOG_WARN("%s: tensor %s is not used by the engine; skipped",
                     ivl_st_file_path(ck, t->file), t->name);
        }
    }
    free(used);
    return rc;
}

// Tensors are stored in their own dtype whatever config.json's torch_dtype says (the loader
// converts on read), but a checkpoint that disagrees with its config is worth a warning.
static void warn_dtypes(const char *cfg_text, const ivl_st_checkpoint *ck) {
    cJSON *root = cJSON_Parse(cfg_text);
    const cJSON *td = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
    int want = -1;
    if (cJSON_IsString(td)) {
        if (!strcmp(td->valuestring, "bfloat16")) want = IVL_BF16;
        else if (!strcmp(td->valuestring, "float16")) want = IVL_F16;
        else if (!strcmp(td->valuestring, "float32")) want = IVL_F32;
    }
    int n = 0;
    const ivl_st_tensor *first = NULL;
    for (int i = 0; want >= 0 && i < ivl_st_count(ck); i++)
        if ((int)ivl_st_at(ck, i)->dtype != want && n++ == 0) first = ivl_st_at(ck, i);
    if (n)
        LOG_WARN("%d tensors are not %s as config.json torch_dtype says (e.g. %s is %s); they "
                 "are stored as they are", n, td->valuestring, first->name,
                 ivl_dtype_name(first->dtype));
    cJSON_Delete(root);
}

// quantization_config of config.json (top level or under llm_config): 0 = none, 1 = AWQ
// (group size in *group), -1 = an error naming what is not supported. --quantize on a
// quantized checkpoint is refused (the weights are not floats to round).
static int parse_quant_config(const ivl_convert_opts *o, const char *cfg_text, int64_t *group) {
    cJSON *root = cJSON_Parse(cfg_text);
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    const cJSON *llm = cJSON_GetObjectItemCaseSensitive(root, "llm_config");
    if (!qc && llm) qc = cJSON_GetObjectItemCaseSensitive(llm, "quantization_config");
    int rc = 0;
    if (qc) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(qc, "quant_method");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(qc, "bits");
        if (!b) b = cJSON_GetObjectItemCaseSensitive(qc, "w_bit");
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(qc, "group_size");
        if (!g) g = cJSON_GetObjectItemCaseSensitive(qc, "q_group_size");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(qc, "version");
        const cJSON *z = cJSON_GetObjectItemCaseSensitive(qc, "zero_point");
        const char *method = cJSON_IsString(m) ? m->valuestring : "(missing)";
        int bits = cJSON_IsNumber(b) ? b->valueint : 0;
        if (o->quantize_bits)
            rc = ivl_errorf("%s is already quantized (config.json quantization_config: "
                            "quant_method '%s', %d bits); convert it without --quantize",
                            o->hf_dir, method, bits);
        else if (strcmp(method, "awq"))
            rc = ivl_errorf("%s: config.json quantization_config quant_method '%s' is not "
                            "supported (this converter reads 'awq')", o->hf_dir, method);
        else if (bits != 4)
            rc = ivl_errorf("%s: AWQ with %d bits is not supported (bits must be 4)", o->hf_dir,
                            bits);
        else if (v && (!cJSON_IsString(v) || strcasecmp(v->valuestring, "gemm")))
            rc = ivl_errorf("%s: AWQ version '%s' is not supported (gemm)", o->hf_dir,
                            cJSON_IsString(v) ? v->valuestring : "?");
        else if (z && !cJSON_IsTrue(z))
            rc = ivl_errorf("%s: AWQ without zero points (zero_point false) is not supported",
                            o->hf_dir);
        else if (!cJSON_IsNumber(g) || g->valuedouble < 2)
            rc = ivl_errorf("%s: AWQ quantization_config has no valid group_size", o->hf_dir);
        else {
            *group = (int64_t)g->valuedouble;
            rc = 1;
        }
    }
    cJSON_Delete(root);
    return rc;
}

// --- writing ----------------------------------------------------------------------------------

static int write_file_blob(hid_t group, const char *dir, const char *name, int required) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (access(path, F_OK) != 0) {
        if (required) return ivl_errorf("%s: missing", path);
        return 0;
    }
    char *data;
    size_t n;
    if (ivl_read_file(path, &data, &n)) return -1;
    int rc = ivl_h5_write_bytes(group, name, data, n);
    free(data);
    return rc;
}

// Writes one engine tensor from the buffer holding its whole source tensor (dtype dt).
static int write_tensor(hid_t group, const ivl_plan_entry *e, ivl_dtype dt, const void *src) {
    int rc = 0;
    hid_t fs = -1, ms = -1, dcpl = -1, dapl = -1, d = -1;
    hid_t type = ivl_h5_type_for(dt);
    hsize_t dims[IVL_MAX_DIMS], sdims[IVL_MAX_DIMS], chunk[IVL_MAX_DIMS];
    hsize_t row_elems = 1, nonzero = 1;
    for (int i = 0; i < e->ndim; i++) {
        dims[i] = chunk[i] = (hsize_t)e->shape[i];
        sdims[i] = (hsize_t)e->hf_shape[i];
        if (i) row_elems *= dims[i];
        nonzero = nonzero && dims[i];
    }
    H5_CHECK(fs = H5Screate_simple(e->ndim, dims, NULL));
    H5_CHECK(dcpl = H5Pcreate(H5P_DATASET_CREATE));
    H5_CHECK(dapl = H5Pcreate(H5P_DATASET_ACCESS));
    if (e->ndim >= 2 && nonzero) {
        hsize_t row_bytes = row_elems * ivl_dtype_size(dt);
        hsize_t rows = CHUNK_TARGET_BYTES / row_bytes;
        chunk[0] = rows < 1 ? 1 : rows > dims[0] ? dims[0] : rows;
        H5_CHECK(H5Pset_chunk(dcpl, e->ndim, chunk));
        // Room for a few chunks so row segments that start mid-chunk (wqkv heads) complete
        // a chunk in cache instead of rewriting it.
        H5_CHECK(H5Pset_chunk_cache(dapl, 521, 8 * chunk[0] * row_bytes, 1.0));
    }
    H5_TRY(d = H5Dcreate2(group, e->name, type, fs, H5P_DEFAULT, dcpl, dapl), "tensor %s", e->name);
    if (ivl_h5_write_str_attr(d, "hf_name", e->hf_name) ||
        ivl_h5_write_i64_attr(d, "hf_row0", e->nseg ? e->seg[0].src_row : 0)) {
        rc = ivl_errorf("tensor %s: %s", e->name, ivl_last_error());
        goto fail;
    }
    if (e->nseg == 0) {
        if (nonzero) H5_TRY(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, src), "writing tensor %s", e->name);
    } else {
        H5_CHECK(ms = H5Screate_simple(e->hf_ndim, sdims, NULL));
        for (int s = 0; s < e->nseg; s++) {
            hsize_t mstart[IVL_MAX_DIMS] = {0}, fstart[IVL_MAX_DIMS] = {0}, count[IVL_MAX_DIMS];
            for (int i = 0; i < e->ndim; i++) count[i] = dims[i];
            mstart[0] = (hsize_t)e->seg[s].src_row;
            fstart[0] = (hsize_t)e->seg[s].dst_row;
            count[0] = (hsize_t)e->seg[s].rows;
            H5_CHECK(H5Sselect_hyperslab(ms, H5S_SELECT_SET, mstart, NULL, count, NULL));
            H5_CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, fstart, NULL, count, NULL));
            H5_TRY(H5Dwrite(d, type, ms, fs, H5P_DEFAULT, src), "writing tensor %s", e->name);
        }
    }
fail:
    if (d >= 0 && H5Dclose(d) < 0 && !rc) {
        char m[512];
        rc = ivl_errorf("writing tensor %s: %s", e->name, ivl_h5_error_message(m, sizeof m));
    }
    if (ms >= 0) H5Sclose(ms);
    H5Pclose(dapl);
    H5Pclose(dcpl);
    H5Sclose(fs);
    return rc;
}

static void progress(int on, uint64_t done, uint64_t total, double t0) {
    if (!on) return;
    double frac = total ? (double)done / (double)total : 1.0;
    int w = 40, fill = (int)(frac * w);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double el = (double)ts.tv_sec + ts.tv_nsec * 1e-9 - t0;
    fprintf(stderr, "\rconverting [%.*s%*s] %5.1f%% %8.1f / %.1f MB %6.1f s", fill,
            "========================================", w - fill, "", 100.0 * frac,
            (double)done / 1e6, (double)total / 1e6, el);
    if (done >= total) fputc('\n', stderr);
    fflush(stderr);
}

// Quantizes one engine tensor (round to nearest) from the buffer holding its source tensor.
static int write_quantized(hid_t group, const ivl_plan_entry *e, ivl_dtype dt, const void *src,
                           const ivl_quant_opts *q) {
    const int64_t N = e->shape[0], K = e->shape[1];
    const size_t es = ivl_dtype_size(dt);
    float *w = ivl_malloc((size_t)(N * K) * sizeof(float));
    if (e->nseg == 0) {
        ivl_convert(w, IVL_F32, src, dt, (size_t)(N * K));
    } else {
        for (int s = 0; s < e->nseg; s++)
            ivl_convert(w + e->seg[s].dst_row * K, IVL_F32,
                        (const char *)src + (size_t)(e->seg[s].src_row * K) * es, dt,
                        (size_t)(e->seg[s].rows * K));
    }
    ivl_qweight qw;
    ivl_quant_rtn(w, N, K, q->bits, ivl_quant_group(q, K), &qw);
    free(w);
    int rc = ivl_quant_write(group, e->name, e->hf_name, e->nseg ? e->seg[0].src_row : 0, &qw,
                             "rtn", IVL_F32);
    ivl_qweight_free_host(&qw);
    return rc;
}

// One engine tensor from an AWQ layer (SCHEMA.md "The AWQ release"): its rows are output
// columns of qweight [K, N/8] / qzeros [K/G, N/8] / scales [K/G, N] (output 8j + c is nibble
// REVERSE[c] of word j), written as engine int4 rows with f16 scales.
static int write_awq(hid_t group, const ivl_plan_entry *e, const int32_t *qw, const int32_t *qz,
                     const void *sc, ivl_dtype sdt, int64_t G) {
    static const int REVERSE[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    const int64_t Ns = e->hf_shape[0], K = e->hf_shape[1], N = e->shape[0], ng = K / G;
    ivl_qweight q = {4, N, K, G, NULL, NULL, NULL};
    q.q = ivl_calloc((size_t)(N * K / 2), 1);
    q.scales = ivl_malloc((size_t)(N * ng) * sizeof(float));
    q.zeros = ivl_malloc((size_t)(N * ng));
    float *srow = ivl_malloc((size_t)Ns * sizeof(float));
    int64_t *src = ivl_malloc((size_t)N * sizeof(int64_t));   // engine row -> source output
    for (int64_t r = 0; r < N; r++) src[r] = r;
    for (int s = 0; s < e->nseg; s++)
        for (int64_t r = 0; r < e->seg[s].rows; r++)
            src[e->seg[s].dst_row + r] = e->seg[s].src_row + r;
    for (int64_t g = 0; g < ng; g++) {
        ivl_convert(srow, IVL_F32, (const char *)sc + (size_t)(g * Ns) * ivl_dtype_size(sdt), sdt,
                    (size_t)Ns);
        for (int64_t r = 0; r < N; r++) {
            int64_t c = src[r];
            uint32_t zw = (uint32_t)qz[g * (Ns / 8) + c / 8];
            q.zeros[r * ng + g] = (uint8_t)((zw >> (4 * REVERSE[c % 8])) & 15u);
            q.scales[r * ng + g] = srow[c];
        }
    }
    uint8_t *qb = q.q;
    for (int64_t k = 0; k < K; k++)
        for (int64_t r = 0; r < N; r++) {
            int64_t c = src[r];
            uint32_t w = (uint32_t)qw[k * (Ns / 8) + c / 8];
            uint8_t v = (uint8_t)((w >> (4 * REVERSE[c % 8])) & 15u);
            qb[r * (K / 2) + k / 2] |= (uint8_t)(k % 2 ? v << 4 : v);
        }
    int rc = ivl_quant_write(group, e->name, e->hf_name, e->nseg ? e->seg[0].src_row : 0, &q,
                             "awq", IVL_F16);
    free(srow);
    free(src);
    ivl_qweight_free_host(&q);
    return rc;
}

static int write_all(hid_t file, const ivl_convert_opts *o, const ivl_model_config *cfg,
                     const char *cfg_text, size_t cfg_len, const ivl_plan *plan,
                     const ivl_st_checkpoint *ck, uint64_t total, const char *awq,
                     int64_t awq_group) {
    int rc = 0;
    ivl_quant_opts qo = {o->quantize_bits, o->group_size, o->quantize_vision}, *q = &qo;
    hid_t g = -1;
    void *buf = NULL;
    char name[256];
    // model_name: the last path component of _name_or_path, else of the HF folder.
    const char *src = cfg->name[0] ? cfg->name : o->hf_dir;
    snprintf(name, sizeof name, "%s", src);
    for (size_t n = strlen(name); n > 1 && name[n - 1] == '/'; n--) name[n - 1] = 0;
    const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
    if (ivl_h5_write_str_attr(file, "format", IVL_MODEL_FORMAT) ||
        ivl_h5_write_i64_attr(file, "format_version", IVL_MODEL_FORMAT_VERSION) ||
        ivl_h5_write_str_attr(file, "model_name", base) ||
        ivl_h5_write_str_attr(file, "source", o->hf_dir))
        return -1;

    H5_TRY(g = H5Gcreate2(file, "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group /config");
    if ((rc = ivl_h5_write_bytes(g, "config.json", cfg_text, cfg_len))) goto fail;
    H5Gclose(g);
    H5_TRY(g = H5Gcreate2(file, "tokenizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group /tokenizer");
    for (size_t i = 0; i < sizeof k_tokenizer_files / sizeof *k_tokenizer_files; i++)
        if ((rc = write_file_blob(g, o->hf_dir, k_tokenizer_files[i], 0))) goto fail;
    H5Gclose(g);
    H5_TRY(g = H5Gcreate2(file, "tensors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group /tensors");

    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t0 = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
    uint64_t done = 0;
    progress(o->progress, 0, total, t0);
    // Entries from one source are adjacent in the plan: read the source once for all of them.
    for (int i = 0; i < plan->n;) {
        if (awq && awq[i]) {   // AWQ: the three parts, for every entry of this source
            const ivl_st_tensor *parts[3];
            void *pb[3] = {0};
            if ((rc = check_awq_entry(&plan->e[i], ck, awq_group, parts))) goto fail;
            for (int k = 0; k < 3 && !rc; k++) {
                pb[k] = ivl_malloc(parts[k]->nbytes);
                rc = ivl_st_read(ck, parts[k], 0, parts[k]->nbytes, pb[k]);
            }
            int j = i;
            for (; !rc && j < plan->n && !strcmp(plan->e[j].hf_name, plan->e[i].hf_name); j++)
                rc = write_awq(g, &plan->e[j], pb[0], pb[1], pb[2], parts[2]->dtype, awq_group);
            for (int k = 0; k < 3; k++) {
                free(pb[k]);
                done += parts[k]->nbytes;
            }
            if (rc) goto fail;
            progress(o->progress, done, total, t0);
            i = j;
            continue;
        }
        const ivl_st_tensor *t = ivl_st_find(ck, plan->e[i].hf_name);
        buf = ivl_malloc(t->nbytes);
        if ((rc = ivl_st_read(ck, t, 0, t->nbytes, buf))) goto fail;
        int j = i;
        for (; j < plan->n && !strcmp(plan->e[j].hf_name, t->name); j++)
            if ((rc = ivl_quant_selects(q, plan->e[j].name)
                          ? write_quantized(g, &plan->e[j], t->dtype, buf, q)
                          : write_tensor(g, &plan->e[j], t->dtype, buf)))
                goto fail;
        free(buf);
        buf = NULL;
        done += t->nbytes;
        progress(o->progress, done, total, t0);
        i = j;
    }
fail:
    free(buf);
    if (g >= 0) H5Gclose(g);
    return rc;
}

int ivl_convert_hf(const ivl_convert_opts *o) {
    char cfg_path[4096], tmp_default[4096];
    char *cfg_text = NULL;
    size_t cfg_len = 0;
    ivl_model_config cfg;
    ivl_st_checkpoint *ck = NULL;
    ivl_plan plan = {0};
    char *awq = NULL;   // per plan entry: read from AWQ qweight/qzeros/scales
    hid_t file = -1, fapl = -1;
    int rc = 0, created = 0;
    const char *tmp = o->tmp_path;
    // Paths are built in fixed buffers below: refuse what would not fit instead of opening a
    // shortened name (limit 4000 bytes leaves room for "/tokenizer_config.json", ".tmp-<pid>").
    if (strlen(o->hf_dir) > 4000 || strlen(o->out_path) > 4000)
        return ivl_errorf("path too long (over 4000 bytes): %.80s...",
                          strlen(o->hf_dir) > 4000 ? o->hf_dir : o->out_path);
    if (!tmp) {
        snprintf(tmp_default, sizeof tmp_default, "%s.tmp-%ld", o->out_path, (long)getpid());
        tmp = tmp_default;
    }
    ivl_h5_init();

    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", o->hf_dir);
    if ((rc = ivl_read_file(cfg_path, &cfg_text, &cfg_len))) goto fail;
    if (ivl_model_config_parse(cfg_text, &cfg) || ivl_convert_check(cfg_text, &cfg, o->hf_dir)) {
        rc = ivl_errorf("%s: %s", o->hf_dir, ivl_last_error());
        goto fail;
    }
    if ((rc = ivl_st_open_dir(o->hf_dir, &ck))) goto fail;

    // The vocabulary size is the embedding's row count (Phi-3: 32020 or 32064).
    const char *emb = cfg.llm.arch == IVL_LLM_PHI3 ? "language_model.model.embed_tokens.weight"
                                                   : "language_model.model.tok_embeddings.weight";
    const ivl_st_tensor *et = ivl_st_find(ck, emb);
    if (et && et->ndim == 2 && et->shape[0] != cfg.llm.vocab) {
        LOG_INFO("vocab: %s has %lld rows, config.json vocab_size says %d; using %lld", emb,
                 (long long)et->shape[0], cfg.llm.vocab, (long long)et->shape[0]);
        cfg.llm.vocab = (int)et->shape[0];
    }
    ivl_plan_build(&cfg, &plan);
    ivl_quant_opts qo = {o->quantize_bits, o->group_size, o->quantize_vision};
    int64_t awq_group = 0;
    int qk = parse_quant_config(o, cfg_text, &awq_group);
    if (qk < 0 || (rc = ivl_quant_check_plan(&qo, &plan))) {
        rc = -1;
        goto fail;
    }
    if (qk == 1) {   // AWQ: the entries whose source has a qweight instead of a weight
        awq = ivl_calloc((size_t)plan.n, 1);
        char nm[200];
        for (int i = 0; i < plan.n; i++)
            awq[i] = !ivl_st_find(ck, plan.e[i].hf_name) &&
                     awq_part(ck, &plan.e[i], ".qweight", nm, sizeof nm) != NULL;
    }
    uint64_t total = 0;
    if ((rc = check_plan(&plan, ck, o->hf_dir, o->allow_unused, &total, awq, awq_group))) goto fail;
    warn_dtypes(cfg_text, ck);

    // Latest-format-only files are smaller and faster; the reader is this same HDF5.
    H5_CHECK(fapl = H5Pcreate(H5P_FILE_ACCESS));
    H5_CHECK(H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST));
    // After a failed write, closing the file must also close the datasets left open.
    H5_CHECK(H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG));
    if ((rc = make_parent_dirs(tmp))) goto fail;
    H5_TRY(file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl), "cannot create %s", tmp);
    created = 1;
    if ((rc = write_all(file, o, &cfg, cfg_text, cfg_len, &plan, ck, total, awq, awq_group))) {
        rc = ivl_errorf("%s: %s", tmp, ivl_last_error());
        goto fail;
    }
    herr_t cr = H5Fclose(file);
    file = -1;
    H5_TRY(cr, "closing %s", tmp);
    if (rename(tmp, o->out_path)) {
        rc = ivl_errorf("cannot rename %s to %s: %s", tmp, o->out_path, strerror(errno));
        goto fail;
    }
    created = 0;
    LOG_INFO("wrote %s: %d tensors, %.1f MB of tensor data", o->out_path, plan.n, total / 1e6);
fail:
    if (file >= 0) H5Fclose(file);
    if (fapl >= 0) H5Pclose(fapl);
    if (rc && created && unlink(tmp) && errno != ENOENT)
        LOG_WARN("could not remove %s: %s", tmp, strerror(errno));
    ivl_plan_free(&plan);
    free(awq);
    ivl_st_close(ck);
    free(cfg_text);
    return rc;
}
