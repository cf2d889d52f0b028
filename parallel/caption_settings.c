// caption_settings.c - see caption_settings.h.
#include "parallel/caption_settings.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/check.h"
#include "core/log.h"

const char *ivl_cap_model_name(const char *cfg_name, const char *file_attr_name,
                               const char *path, char *buf, size_t cap) {
    if (cfg_name && cfg_name[0]) snprintf(buf, cap, "%s", cfg_name);
    else if (file_attr_name && file_attr_name[0]) snprintf(buf, cap, "%s", file_attr_name);
    else {
        const char *b = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        snprintf(buf, cap, "%s", b);
        char *dot = strrchr(buf, '.');
        if (dot && dot != buf) *dot = 0;
    }
    return buf;
}

static void fnv(uint64_t *h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) *h = (*h ^ b[i]) * 1099511628211ull;
}

static void fnv_str(uint64_t *h, const char *s) { fnv(h, s, strlen(s) + 1); }

void ivl_cap_settings_init(ivl_cap_settings *s, const char *model, const char *prompt,
                           const char *system, int max_tiles, int max_new_tokens,
                           const ivl_sampling *sampling) {
    memset(s, 0, sizeof *s);
    s->model = ivl_strdup(model ? model : "");
    s->prompt = ivl_strdup(prompt ? prompt : "");
    s->system = ivl_strdup(system ? system : "");
    s->max_tiles = max_tiles;
    s->max_new_tokens = max_new_tokens;
    s->sampling = *sampling;
    if (!s->sampling.do_sample) {   // greedy: only the repetition penalty changes the result
        s->sampling.temperature = 0;
        s->sampling.top_k = 0;
        s->sampling.top_p = 0;
        s->sampling.seed = 0;
    }
    // The hash covers the decimal text of the numbers, as the record holds them.
    char num[160];
    snprintf(num, sizeof num, "%d %d %d %.9g %d %.9g %.9g %" PRIu64, s->max_tiles,
             s->max_new_tokens, s->sampling.do_sample, (double)s->sampling.temperature,
             s->sampling.top_k, (double)s->sampling.top_p,
             (double)s->sampling.repetition_penalty, s->sampling.seed);
    uint64_t h = 1469598103934665603ull;
    fnv_str(&h, s->model);
    fnv_str(&h, s->prompt);
    fnv_str(&h, s->system);
    fnv_str(&h, num);
    snprintf(s->fingerprint, sizeof s->fingerprint, "%016" PRIx64, h);
}

void ivl_cap_settings_free(ivl_cap_settings *s) {
    free(s->model);
    free(s->prompt);
    free(s->system);
    memset(s, 0, sizeof *s);
}

static cJSON *settings_json(const ivl_cap_settings *s) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "fingerprint", s->fingerprint);
    cJSON_AddStringToObject(j, "model", s->model);
    cJSON_AddStringToObject(j, "prompt", s->prompt);
    cJSON_AddStringToObject(j, "system", s->system);
    cJSON_AddNumberToObject(j, "max_tiles", s->max_tiles);
    cJSON_AddNumberToObject(j, "max_new_tokens", s->max_new_tokens);
    cJSON_AddBoolToObject(j, "do_sample", s->sampling.do_sample);
    cJSON_AddNumberToObject(j, "temperature", s->sampling.temperature);
    cJSON_AddNumberToObject(j, "top_k", s->sampling.top_k);
    cJSON_AddNumberToObject(j, "top_p", s->sampling.top_p);
    cJSON_AddNumberToObject(j, "repetition_penalty", s->sampling.repetition_penalty);
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, s->sampling.seed);
    cJSON_AddStringToObject(j, "seed", seed);   // a string: 64 bits do not fit a double
    return j;
}

// Appends "what: A in the output, B now; " for each field of rec that differs from cur.
static void describe_diff(const cJSON *rec, const cJSON *cur, char *out, size_t cap) {
    static const struct { const char *field, *option; } F[] = {
        {"model", "model"}, {"prompt", "--prompt"}, {"system", "--system (system message)"},
        {"max_tiles", "--max-tiles"}, {"max_new_tokens", "--max-new-tokens"},
        {"do_sample", "--do-sample"}, {"temperature", "--temperature"}, {"top_k", "--top-k"},
        {"top_p", "--top-p"}, {"repetition_penalty", "--repetition-penalty"}, {"seed", "--seed"}};
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < sizeof F / sizeof F[0]; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(rec, F[i].field);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(cur, F[i].field);
        char *ta = a ? cJSON_PrintUnformatted(a) : ivl_strdup("(absent)");
        char *tb = cJSON_PrintUnformatted(b);
        if (strcmp(ta, tb) != 0 && n < cap)
            n += (size_t)snprintf(out + n, cap - n, "%s%s %.200s in the output, %.200s now",
                                  n ? "; " : "", F[i].option, ta, tb);
        free(ta);
        free(tb);
    }
    if (!out[0]) snprintf(out, cap, "fingerprint differs (a record written by another version)");
}

static char *unit_path(const char *dir, const char *unit, const char *ext) {
    size_t n = strlen(dir) + strlen(unit) + strlen(ext) + 2;
    char *p = ivl_malloc(n);
    snprintf(p, n, "%s/%s%s", dir, unit, ext);
    return p;
}

// Reads the record at path: *runs = its "runs" array (owned by *root), or NULL when absent.
static int read_record(const char *path, cJSON **root, const cJSON **runs) {
    *root = NULL;
    *runs = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return 0;
        return ivl_errorf("cannot read %s: %s", path, strerror(errno));
    }
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int big = !feof(f);
    fclose(f);
    if (big) return ivl_errorf("%s: larger than 64 KiB, not a settings record of internvl caption", path);
    buf[n] = 0;
    *root = cJSON_Parse(buf);
    const cJSON *r = *root ? cJSON_GetObjectItemCaseSensitive(*root, "runs") : NULL;
    if (!cJSON_IsArray(r))
        return ivl_errorf("%s: not a settings record (a JSON object with a \"runs\" array); remove "
                          "it only if you know which settings made the output beside it", path);
    *runs = r;
    return 0;
}

static int write_record(const char *path, const char *dir, cJSON *root) {
    char *text = cJSON_Print(root);
    size_t n = strlen(path) + 32;
    char *tmp = ivl_malloc(n);
    snprintf(tmp, n, "%s.tmp-%d", path, (int)getpid());
    int err = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) err = errno;
    else {
        size_t len = strlen(text);
        if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) != 0)
            err = errno ? errno : EIO;
        if (close(fd) != 0 && !err) err = errno;
        if (!err && rename(tmp, path) != 0) err = errno;
        if (err) unlink(tmp);
    }
    if (!err) {
        int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d >= 0) {
            fsync(d);
            close(d);
        }
    }
    free(tmp);
    free(text);
    return err ? ivl_errorf("cannot write the settings record %s: %s", path, strerror(err)) : 0;
}

int ivl_cap_settings_check(const char *dir, const ivl_cap_inputs *in, const ivl_cap_settings *s,
                           int allow_mixed) {
    cJSON *cur = settings_json(s);
    int rc = 0;
    // Two passes: nothing is written unless every unit agrees.
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (int u = 0; u < in->n && rc == 0; u++) {
            char *path = unit_path(dir, in->units[u].name, ".settings.json");
            // A complete output is checked (a rerun must not say "done" for other settings)
            // but not written to: nothing of this run goes there.
            char *done_path = unit_path(dir, in->units[u].name, ".done");
            const int done = access(done_path, F_OK) == 0;
            free(done_path);
            cJSON *root = NULL;
            const cJSON *runs = NULL;
            rc = read_record(path, &root, &runs);
            const cJSON *differs = NULL;
            int have = 0;
            for (const cJSON *r = runs ? runs->child : NULL; r && rc == 0; r = r->next) {
                const cJSON *fp = cJSON_GetObjectItemCaseSensitive(r, "fingerprint");
                if (cJSON_IsString(fp) && !strcmp(fp->valuestring, s->fingerprint)) have = 1;
                else if (!differs) differs = r;
            }
            if (rc == 0 && pass == 0 && differs && !allow_mixed) {
                char diff[2048];
                describe_diff(differs, cur, diff, sizeof diff);
                rc = ivl_errorf("%s/%s.jsonl was made with other settings (%s): %s. %s Run again "
                                "with the "
                                "settings of the output, or use another --out, or pass "
                                "--allow-mixed-settings to mix them (each line's \"settings\" "
                                "field names the settings that made it)",
                                dir, in->units[u].name, path, diff,
                                done ? "It is complete: this run would skip it and report done "
                                       "results it did not make."
                                     : "Resuming would mix two kinds of captions in one output.");
            } else if (rc == 0 && pass == 0 && differs && !done) {
                LOG_WARN("%s/%s.jsonl was made with other settings; --allow-mixed-settings: "
                         "adding these (%s) to %s", dir, in->units[u].name, s->fingerprint, path);
            }
            if (rc == 0 && pass == 1 && !have && !done) {
                if (!root) {
                    root = cJSON_CreateObject();
                    cJSON_AddStringToObject(root, "what", "settings of internvl caption that "
                                            "wrote the output beside this file; lines name theirs "
                                            "in \"settings\" (docs/caption.md)");
                    cJSON_AddItemToObject(root, "runs", cJSON_CreateArray());
                }
                cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(root, "runs"),
                                     cJSON_Duplicate(cur, 1));
                rc = write_record(path, dir, root);
            }
            cJSON_Delete(root);
            free(path);
        }
    }
    cJSON_Delete(cur);
    return rc;
}
