// cmd_info.c - `internvl info FILE.h5`: what a model file holds. Prints the model name, a
// config summary, parameter counts per part from the config (spec 10) next to the sums of
// the stored tensors (they must agree), dtypes and the file size.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/check.h"
#include "core/log.h"
#include "core/models/config.h"
#include "launcher/commands.h"
#include "weights/model_file.h"
#include "weights/name_map.h"

typedef struct {
    int64_t params[3];       // vision, projector, llm
    int64_t other;           // tensors outside the three parts
    int64_t by_dtype[8];     // element counts by stored dtype (f32, bf16, f16, ..., int8, int4)
    int64_t q_tensors[2], q_bytes[2], q_bf16_bytes[2];   // int8, int4: count, stored bytes, as bf16
    int count;
} tally;

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && !strcmp(s + n - m, suffix);
}

// <name>.scales / <name>.zeros of a quantized tensor: part of that tensor, not parameters.
static int is_quant_part(ivl_model_file *mf, const char *name) {
    if (!ends_with(name, ".scales") && !ends_with(name, ".zeros")) return 0;
    char base[300];
    snprintf(base, sizeof base, "%.*s", (int)(strrchr(name, '.') - name), name);
    ivl_quant_info qi;
    return ivl_model_file_has(mf, base) && !ivl_model_file_quant_info(mf, base, &qi) && qi.bits;
}

static int count_tensors(ivl_model_file *mf, tally *t, int list) {
    char **names;
    int n;
    if (ivl_model_file_list(mf, &names, &n)) return -1;
    int rc = 0;
    if (list) printf("\n%-44s %-16s %-24s %12s %12s\n", "tensor", "shape", "format", "bytes",
                     "saved vs bf16");
    for (int i = 0; i < n; i++) {
        int ndim;
        int64_t shape[IVL_MAX_DIMS], numel = 1;
        ivl_dtype dt;
        if (!rc && is_quant_part(mf, names[i])) {
            free(names[i]);
            continue;
        }
        if (!rc && !(rc = ivl_model_file_shape(mf, names[i], &ndim, shape, &dt))) {
            for (int d = 0; d < ndim; d++) numel *= shape[d];
            t->by_dtype[dt] += numel;
            char fmt[64], sh[48];
            int64_t bytes = numel * (int64_t)ivl_dtype_size(dt);
            snprintf(fmt, sizeof fmt, "%s", ivl_dtype_name(dt));
            if (dt == IVL_Q8 || dt == IVL_Q4) {
                ivl_quant_info qi;
                if ((rc = ivl_model_file_quant_info(mf, names[i], &qi))) break;
                int k = dt == IVL_Q4;
                bytes = ivl_qweight_bytes(qi.bits, qi.rows, qi.cols, qi.group,
                                          (int)ivl_dtype_size(qi.scale_dt), qi.has_zeros);
                t->q_tensors[k]++;
                t->q_bytes[k] += bytes;
                t->q_bf16_bytes[k] += numel * 2;
                snprintf(fmt, sizeof fmt, "%s g%lld %s%s%s", ivl_dtype_name(dt), (long long)qi.group,
                         ivl_dtype_name(qi.scale_dt), qi.method[0] ? " " : "", qi.method);
            }
            if (list) {
                size_t k = (size_t)snprintf(sh, sizeof sh, "[");
                for (int d = 0; d < ndim && k < sizeof sh; d++)
                    k += (size_t)snprintf(sh + k, sizeof sh - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
                if (k < sizeof sh) snprintf(sh + k, sizeof sh - k, "]");
                printf("%-44s %-16s %-24s %12lld %12lld\n", names[i], sh, fmt, (long long)bytes,
                       (long long)(numel * 2 - bytes));
            }
            const char *part = ivl_tensor_part(names[i]);
            if (!part) t->other += numel;
            else t->params[!strcmp(part, "vision") ? 0 : !strcmp(part, "projector") ? 1 : 2] += numel;
            t->count++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static const char *human(double bytes, char *buf, size_t n) {
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    int i = 0;
    while (bytes >= 1000 && i < 4) bytes /= 1000, i++;
    snprintf(buf, n, "%.2f %s", bytes, u[i]);
    return buf;
}

int cmd_info(int argc, char **argv) {
    int list = argc == 3 && !strcmp(argv[2], "--tensors");
    if ((argc != 2 && !list) || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fprintf(argc == 2 ? stdout : stderr,
                "usage: internvl info FILE.h5 [--tensors]\n\nPrints a model file's name, config, "
                "parameter counts per part (config formula and stored tensors), dtypes and size;\n"
                "quantized tensors (int8/int4) with the bytes they save against bf16.\n"
                "--tensors: one line per tensor (shape, format, stored bytes, bytes saved).\n"
                "Exit status 1 if the file cannot be read or the counts disagree.\n");
        return argc == 2 ? 0 : 2;
    }
    const char *path = argv[1];
    ivl_model_file *mf;
    ivl_model_config c;
    if (ivl_model_file_open(path, &mf) || ivl_model_file_config(mf, &c)) {
        LOG_ERROR("info: %s", ivl_last_error());
        return 1;
    }
    struct stat st;
    char hb[32];
    stat(path, &st);
    const ivl_vit_config *v = &c.vit;
    const ivl_llm_config *l = &c.llm;
    printf("file        %s (%s)\n", path, human((double)st.st_size, hb, sizeof hb));
    printf("model       %s\n", ivl_model_file_name(mf));
    printf("vision      InternViT: hidden %d, layers %d, heads %d x %d, mlp %d, %s eps %g, "
           "qkv_bias %d, qk_norm %d, image %d, patch %d\n", v->hidden, v->layers, v->heads,
           v->head_dim, v->intermediate, v->norm == IVL_NORM_RMS ? "rms_norm" : "layer_norm",
           v->norm_eps, v->qkv_bias, v->qk_norm, v->image_size, v->patch_size);
    printf("projector   pixel shuffle %g (ps %s) -> %d tokens/tile, %d -> %d\n",
           c.proj.downsample, c.proj.ps_version == 2 ? "v2" : "v1", c.proj.tokens_per_tile,
           c.proj.in_dim, c.proj.out_dim);
    printf("llm         %s: hidden %d, layers %d, heads %d (kv %d) x %d, mlp %d, vocab %d, "
           "rope theta %g", l->arch == IVL_LLM_PHI3 ? "Phi3ForCausalLM" : "InternLM2ForCausalLM",
           l->hidden, l->layers, l->heads, l->kv_heads, l->head_dim, l->intermediate, l->vocab,
           l->rope_theta);
    if (l->rope_scaling == IVL_ROPE_DYNAMIC) printf(", dynamic NTK factor %g", l->rope_factor);
    if (l->rope_scaling == IVL_ROPE_SU)
        printf(", su (original %d)", l->original_max_position);
    printf(", max positions %d\n", l->max_position);
    printf("chat        template %s, tiles %d..%d%s\n", c.template_name, c.min_dynamic_patch,
           c.max_dynamic_patch, c.use_thumbnail ? " + thumbnail" : "");

    tally t = {0};
    if (count_tensors(mf, &t, list)) {
        LOG_ERROR("info: %s", ivl_last_error());
        ivl_model_file_close(mf);
        return 1;
    }
    int64_t want[3] = {ivl_vit_param_count(v), ivl_projector_param_count(&c.proj),
                       ivl_llm_param_count(l)};
    const char *names[3] = {"vision", "projector", "llm"};
    int ok = 1;
    printf("\nparameters  %15s %15s\n", "config", "tensors");
    for (int i = 0; i < 3; i++) {
        printf("  %-9s %15lld %15lld%s\n", names[i], (long long)want[i], (long long)t.params[i],
               want[i] == t.params[i] ? "" : "   MISMATCH");
        ok &= want[i] == t.params[i];
    }
    printf("  %-9s %15lld %15lld\n", "total", (long long)(want[0] + want[1] + want[2]),
           (long long)(t.params[0] + t.params[1] + t.params[2] + t.other));
    if (t.other) {
        printf("  %lld elements in tensors outside vision./mlp1./llm.\n", (long long)t.other);
        ok = 0;
    }
    printf("\ntensors     %d:", t.count);
    for (int i = 0; i < 8; i++)
        if (t.by_dtype[i])
            printf(" %s %lld elements", ivl_dtype_name((ivl_dtype)i), (long long)t.by_dtype[i]);
    printf("\n");
    for (int k = 0; k < 2; k++)
        if (t.q_tensors[k]) {
            char a[32], b[32], c2[32];
            printf("quantized   %s: %lld tensors, %s stored (with scales and zero points), %s "
                   "as bf16: saves %s\n", k ? "int4" : "int8", (long long)t.q_tensors[k],
                   human((double)t.q_bytes[k], a, sizeof a),
                   human((double)t.q_bf16_bytes[k], b, sizeof b),
                   human((double)(t.q_bf16_bytes[k] - t.q_bytes[k]), c2, sizeof c2));
        }
    ivl_model_file_close(mf);
    if (!ok) {
        LOG_ERROR("info: %s: stored tensors do not match the parameter counts of its config", path);
        return 1;
    }
    return 0;
}
