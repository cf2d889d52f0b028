// test_serve_units.c - the pure parts of `internvl serve`: request parsing and its refusals,
// base64 and data: URLs, file:// confinement, stop strings in the job's output (streamed text
// held back only while it could still become a stop string), the bounded queue, metrics text.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parallel/serve/serve_job.h"
#include "parallel/serve/serve_media.h"
#include "parallel/serve/serve_metrics.h"
#include "parallel/serve/serve_request.h"

static int failures;
#define EXPECT(cond, ...)                                               \
    do {                                                                \
        if (!(cond)) {                                                  \
            failures++;                                                 \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                               \
            fputc('\n', stderr);                                        \
        }                                                               \
    } while (0)

static const ivl_serve_request_limits k_lim = {"m", 2, 1000};

static int parse(const char *body, ivl_serve_request *r, ivl_serve_error *e) {
    return ivl_serve_request_parse(body, strlen(body), &k_lim, r, e);
}

static void expect_refused(const char *body, int status, const char *param) {
    ivl_serve_request r;
    ivl_serve_error e;
    int rc = parse(body, &r, &e);
    EXPECT(rc == -1 && e.status == status && !strcmp(e.param, param) && e.message[0],
           "%s -> rc %d status %d param '%s' (%s)", body, rc, e.status, e.param, e.message);
    if (rc == 0) ivl_serve_request_free(&r);
}

static void test_parse(void) {
    ivl_serve_request r;
    ivl_serve_error e;
    const char *full =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:x\"}},"
        "{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
        "{\"role\":\"assistant\",\"content\":\"A1\"},{\"role\":\"user\",\"content\":\"Q2\"}],"
        "\"max_tokens\":7,\"temperature\":0.5,\"top_p\":0.9,\"seed\":3,\"stop\":[\"x\",\"yz\"],"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"max_tiles\":4,\"n\":1}";
    EXPECT(parse(full, &r, &e) == 0, "full request refused: %s", e.message);
    EXPECT(r.system && !strcmp(r.system, "S"), "system");
    EXPECT(r.n_history == 1 && !strcmp(r.history[0].user, "a\nb") &&
           !strcmp(r.history[0].assistant, "A1"), "history");
    EXPECT(!strcmp(r.question, "Q2") && r.n_images == 1 && !strcmp(r.image_urls[0], "data:x"), "question/images");
    EXPECT(r.max_tokens == 7 && !r.greedy && r.temperature == 0.5f && r.top_p == 0.9f, "sampling");
    EXPECT(r.has_seed && r.seed == 3 && r.n_stop == 2 && r.stream && r.include_usage && r.max_tiles == 4, "rest");
    ivl_serve_request_free(&r);
    EXPECT(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":0}", &r, &e) == 0 &&
           r.greedy && !r.model, "greedy default");
    ivl_serve_request_free(&r);

    expect_refused("{\"messages\":[", 400, "");
    expect_refused("[]", 400, "");
    expect_refused("{\"model\":\"other\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 404, "model");
    expect_refused("{\"messages\":[]}", 400, "messages");
    expect_refused("{\"messages\":[{\"role\":\"assistant\",\"content\":\"hi\"}]}", 400, "messages[0].role");
    expect_refused("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]}",
                   400, "messages[1].role");
    expect_refused("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"}]}",
                   400, "messages");
    expect_refused("{\"messages\":[{\"role\":\"tool\",\"content\":\"a\"}]}", 400, "messages[0].role");
    expect_refused("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"n\":2}", 400, "n");
    expect_refused("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"max_tokens\":-1}", 400, "max_tokens");
    expect_refused("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"max_tokens\":1.5}", 400, "max_tokens");
    expect_refused("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"max_tokens\":1001}", 400, "max_tokens");
    expect_refused("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"temperature\":3}", 400, "temperature");
    expect_refused("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"top_p\":0}", 400, "top_p");
    expect_refused("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", 400, "stop");
    expect_refused("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"max_tiles\":41}", 400, "max_tiles");
    expect_refused("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"logprobs\":true}", 400, "logprobs");
    expect_refused("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"frequency_penalty\":1}", 400, "frequency_penalty");
    // images: at most 2 here, only in the first user message
    const char *img = "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:x\"}}";
    char b[1024];
    snprintf(b, sizeof b, "{\"messages\":[{\"role\":\"user\",\"content\":[%s,%s,%s]}]}", img, img, img);
    expect_refused(b, 400, "messages[0].content");
    snprintf(b, sizeof b, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\","
             "\"content\":\"b\"},{\"role\":\"user\",\"content\":[%s]}]}", img);
    expect_refused(b, 400, "messages[2].content");
    ivl_serve_fail(&e, 429, "", "full");
    char *j = ivl_serve_error_json(&e);
    EXPECT(strstr(j, "\"type\":\"rate_limit_exceeded\"") && strstr(j, "\"message\":\"full\""), "%s", j);
    free(j);
}

static void test_media(void) {
    uint8_t *o;
    size_t n;
    EXPECT(ivl_base64_decode("aGVsbG8=", 8, &o, &n) == 0 && n == 5 && !memcmp(o, "hello", 5), "b64");
    free(o);
    EXPECT(ivl_base64_decode("aGVsbG8", 7, &o, &n) == 0 && n == 5, "b64 without padding");
    free(o);
    EXPECT(ivl_base64_decode("aGV*bG8=", 8, &o, &n) == -1, "b64 bad char");
    EXPECT(ivl_base64_decode("a", 1, &o, &n) == -1, "b64 bad length");
    EXPECT(ivl_base64_decode("aGVsbG*=", 8, &o, &n) == -1, "b64 bad char in the last group");
    EXPECT(ivl_base64_decode("TWFueSBoYW5kcyBtYWtlIGxpZ2h0IHdvcmsu", 36, &o, &n) == 0 && n == 27 &&
           !memcmp(o, "Many hands make light work.", 27), "b64 whole groups");
    free(o);
    EXPECT(ivl_base64_decode("/+/+AP8=", 8, &o, &n) == 0 && n == 5 &&
           !memcmp(o, "\xff\xef\xfe\x00\xff", 5), "b64 + / and high bytes");
    free(o);
    ivl_serve_error e;
    ivl_serve_media_opts mo = {NULL, 100};
    EXPECT(ivl_serve_media_fetch("data:image/png;base64,aGVsbG8=", &mo, "p", &o, &n, &e) == 0 && n == 5, "data url");
    free(o);
    EXPECT(ivl_serve_media_fetch("data:text/plain;base64,aGVsbG8=", &mo, "p", &o, &n, &e) == -1, "non-image type");
    EXPECT(ivl_serve_media_fetch("data:image/png,hello", &mo, "p", &o, &n, &e) == -1, "not base64");
    EXPECT(ivl_serve_media_fetch("http://x/y.png", &mo, "p", &o, &n, &e) == -1 && strstr(e.message, "does not fetch"), "http");
    EXPECT(ivl_serve_media_fetch("file:///etc/hostname", &mo, "p", &o, &n, &e) == -1 && strstr(e.message, "--allowed-local-media"), "file without root");
    char dir[] = "/tmp/ivl-media-XXXXXX";
    EXPECT(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256], url[300];
    snprintf(path, sizeof path, "%s/a.png", dir);
    FILE *f = fopen(path, "wb");
    fputs("pngbytes", f);
    fclose(f);
    mo.allowed_root = dir;
    snprintf(url, sizeof url, "file://%s", path);
    EXPECT(ivl_serve_media_fetch(url, &mo, "p", &o, &n, &e) == 0 && n == 8, "file under root: %s", e.message);
    free(o);
    snprintf(url, sizeof url, "file://%s/../%s/a.png", dir, strrchr(dir, '/') + 1);
    EXPECT(ivl_serve_media_fetch(url, &mo, "p", &o, &n, &e) == 0, ".. that stays inside: %s", e.message);
    free(o);
    snprintf(url, sizeof url, "file://%s/../../etc/passwd", dir);
    EXPECT(ivl_serve_media_fetch(url, &mo, "p", &o, &n, &e) == -1, ".. out of the root");
    snprintf(url, sizeof url, "file://%s-other/a.png", dir);   // a sibling sharing the prefix
    EXPECT(ivl_serve_media_fetch(url, &mo, "p", &o, &n, &e) == -1, "prefix sibling");
    unlink(path);
    rmdir(dir);
}

static void test_job(void) {
    ivl_serve_job *j = ivl_serve_job_new();
    j->stop[0] = strdup("END");
    j->n_stop = 1;
    EXPECT(ivl_serve_job_append(j, "abcE", 4) == 0 && j->ready == 3, "held back 'E': ready %zu", j->ready);
    EXPECT(ivl_serve_job_append(j, "N", 1) == 0 && j->ready == 3, "held back 'EN'");
    EXPECT(ivl_serve_job_append(j, "Dxyz", 4) == 1 && !strcmp(j->text, "abc") && j->ready == 3, "cut at END: '%s'", j->text);
    ivl_serve_job_unref(j);
    j = ivl_serve_job_new();
    j->stop[0] = strdup("\xe4\xbd\xa0\xe5\xa5\xbd");   // 你好
    j->n_stop = 1;
    EXPECT(ivl_serve_job_append(j, "ab\xe4\xbd\xa0", 5) == 0 && j->ready == 2, "UTF-8 prefix held: %zu", j->ready);
    EXPECT(ivl_serve_job_append(j, "\xe5\xa5\xbd!", 4) == 1 && j->len == 2, "multibyte stop");
    ivl_serve_job_unref(j);
    j = ivl_serve_job_new();   // no stop strings: everything is ready at once
    EXPECT(ivl_serve_job_append(j, "xy", 2) == 0 && j->ready == 2, "no stop");
    int done;
    EXPECT(ivl_serve_job_wait(j, 2, 0.01, &done) == 2 && !done, "wait times out");
    ivl_serve_job_finish(j, "length");
    EXPECT(ivl_serve_job_wait(j, 2, 1, &done) == 2 && done, "wait sees done");

    ivl_serve_queue q;
    ivl_serve_queue_init(&q, 2);
    EXPECT(ivl_serve_queue_push(&q, j) == 0 && ivl_serve_queue_push(&q, j) == 0, "push");
    EXPECT(ivl_serve_queue_push(&q, j) == -1 && ivl_serve_queue_len(&q) == 2, "full");
    EXPECT(ivl_serve_queue_peek(&q, 0.01) == j && ivl_serve_queue_len(&q) == 2, "peek leaves it");
    ivl_serve_job *p = ivl_serve_queue_pop(&q, 0.01);
    EXPECT(p == j, "pop");
    ivl_serve_job_unref(p);
    ivl_serve_queue_close(&q);
    EXPECT(ivl_serve_queue_push(&q, j) == -2, "closed");
    ivl_serve_queue_free(&q);
    EXPECT(ivl_serve_queue_pop != NULL && j->refs == 1, "refs back to 1: %d", j->refs);
    ivl_serve_job_unref(j);
}

static int is_cancelled(void *ctx, ivl_serve_job *j) {
    (void)ctx;
    return atomic_load(&j->cancel);
}

// take_if: the matching jobs leave the queue, the others keep their order.
static void test_queue_take(void) {
    ivl_serve_queue q;
    ivl_serve_queue_init(&q, 4);
    ivl_serve_job *a = ivl_serve_job_new(), *b = ivl_serve_job_new(), *c = ivl_serve_job_new();
    atomic_store(&b->cancel, 1);
    EXPECT(ivl_serve_queue_push(&q, a) == 0 && ivl_serve_queue_push(&q, b) == 0 &&
           ivl_serve_queue_push(&q, c) == 0, "push 3");
    ivl_serve_job *out[4];
    EXPECT(ivl_serve_queue_take_if(&q, is_cancelled, NULL, out, 4) == 1 && out[0] == b &&
           ivl_serve_queue_len(&q) == 2, "take the cancelled one");
    ivl_serve_job_unref(out[0]);
    ivl_serve_job *p = ivl_serve_queue_pop(&q, 0);
    EXPECT(p == a, "a first");
    ivl_serve_job_unref(p);
    p = ivl_serve_queue_pop(&q, 0);
    EXPECT(p == c && ivl_serve_queue_len(&q) == 0, "then c");
    ivl_serve_job_unref(p);
    ivl_serve_queue_free(&q);
    EXPECT(a->refs == 1 && b->refs == 1 && c->refs == 1, "refs back to 1");
    ivl_serve_job_unref(a);
    ivl_serve_job_unref(b);
    ivl_serve_job_unref(c);
}

static void test_metrics(void) {
    ivl_serve_metrics m;
    ivl_serve_metrics_init(&m);
    ivl_serve_metrics_status(&m, 200);
    ivl_serve_metrics_status(&m, 429);
    ivl_serve_metrics_done(&m, 100, 10, 0.3, 0.02, 0.5, "cancelled");
    ivl_serve_metrics_gauges(&m, &(ivl_serve_gauges){.queue_length = 3, .running = 2, .peak_running = 5,
                                                 .kv_used = 38, .kv_cached = 5, .kv_total = 400,
                                                 .reused_tokens = 320});
    char *t = ivl_serve_metrics_render(&m);
    EXPECT(strstr(t, "ivl_serve_requests_total{status=\"429\"} 1\n") &&
           strstr(t, "ivl_serve_time_to_first_token_seconds_bucket{le=\"0.5\"} 1\n") &&
           strstr(t, "ivl_serve_time_to_first_token_seconds_bucket{le=\"0.25\"} 0\n") &&
           strstr(t, "ivl_serve_queue_length 3\n") && strstr(t, "ivl_serve_kv_blocks_used 38\n") && strstr(t, "ivl_serve_kv_blocks_total 400\n") &&
           strstr(t, "ivl_serve_cancelled_total 1\n") && strstr(t, "ivl_serve_prompt_tokens_total 100\n") &&
           strstr(t, "ivl_serve_running_sequences 2\n") && strstr(t, "ivl_serve_running_sequences_peak 5\n") &&
           strstr(t, "ivl_serve_prompt_tokens_cached_total 320\n"),
           "metrics text:\n%s", t);
    free(t);
}

int main(void) {
    test_parse();
    test_media();
    test_job();
    test_queue_take();
    test_metrics();
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("serve units: all passed\n");
    return 0;
}
