/*
 * c_loop.c - the baseline rows of bench/20-transport.sh: plain libcurl
 * doing nothing but the requests, i.e. the practical limit for any
 * binding of libcurl on this machine.
 *
 *   c_loop easy  METHOD URL BODYFILE SECONDS      one easy handle, reused
 *   c_loop multi METHOD URL BODYFILE SECONDS N    multi interface, N in flight
 *
 * BODYFILE is "-" for none. Prints "REQUESTS ELAPSED_S CPU_S" (CPU: the
 * process's user + system time in the loop, start-up excluded). The request
 * carries the same headers the Lua rows send; the body is counted, not kept.
 * SECONDS written as "nCOUNT" (n520) makes exactly COUNT requests instead:
 * what bench/transport/prof.sh runs under callgrind. SECONDS written as
 * "serve" is slice mode (bench/transport/lockstep.c drives it): the handles
 * are set up once, then each command read on stdin runs one slice on them,
 * "t SECONDS" (requests for SECONDS) or "n COUNT" (COUNT requests), and is
 * answered with "REQUESTS ELAPSED_S CPU_S"; "q" or end of input exits.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t count_body(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    *(size_t *)ud += size * n;
    return size * n;
}

static char *slurp(const char *path, long *len)
{
    FILE *f;
    char *buf;
    *len = 0;
    if (strcmp(path, "-") == 0)
        return NULL;
    f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0 || (*len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        perror(path);
        exit(2);
    }
    buf = malloc((size_t)*len + 1);
    if (!buf || fread(buf, 1, (size_t)*len, f) != (size_t)*len) {
        perror(path);
        exit(2);
    }
    fclose(f);
    return buf;
}

typedef struct Conf {
    const char *method, *url;
    char *body;
    long body_len;
    struct curl_slist *hdrs;
    size_t received;
    int multi, inflight;    /* multi interface, that many in flight */
    CURL *easy;             /* easy: the one handle */
    CURLM *m;               /* multi: the multi handle and its easy handles */
    CURL **hs;
} Conf;

static CURL *make_handle(Conf *c)
{
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, count_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &c->received);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
    if (c->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, c->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    }
    if (strcmp(c->method, "GET") != 0 && strcmp(c->method, "POST") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);
    return e;
}

static void check(CURL *e, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 200) {
        fprintf(stderr, "c_loop: %s, status %ld\n", curl_easy_strerror(rc), status);
        exit(1);
    }
}

static void setup(Conf *c)
{
    int i;
    if (!c->multi) {
        c->easy = make_handle(c);
        return;
    }
    c->m = curl_multi_init();
    c->hs = calloc((size_t)c->inflight, sizeof *c->hs);
    for (i = 0; i < c->inflight; i++)
        c->hs[i] = make_handle(c);
}

static void teardown(Conf *c)
{
    int i;
    if (!c->multi) {
        curl_easy_cleanup(c->easy);
        return;
    }
    for (i = 0; i < c->inflight; i++)
        curl_easy_cleanup(c->hs[i]);
    free(c->hs);
    curl_multi_cleanup(c->m);
}

/* Requests until `end` (now() value) or until `count` of them (count < 0:
 * no limit); returns how many. A multi slice starts and ends with nothing
 * in flight. */
static long run(Conf *c, double end, long count)
{
    long n = 0, started;
    int i, in_multi = 0, left, inflight = c->inflight;
    if (!c->multi) {
        while (count >= 0 ? n < count : now() < end) {
            check(c->easy, curl_easy_perform(c->easy));
            n++;
        }
        return n;
    }
    if (count >= 0 && inflight > count)
        inflight = (int)count;
    started = inflight;
    for (i = 0; i < inflight; i++) {
        curl_multi_add_handle(c->m, c->hs[i]);
        in_multi++;
    }
    while (in_multi > 0) {
        CURLMsg *msg;
        int active = 0, finished = 0;
        curl_multi_perform(c->m, &active);
        while ((msg = curl_multi_info_read(c->m, &left)) != NULL) {
            CURL *e = msg->easy_handle;
            CURLcode rc = msg->data.result;
            if (msg->msg != CURLMSG_DONE)
                continue;
            check(e, rc);
            n++;
            finished++;
            curl_multi_remove_handle(c->m, e);
            in_multi--;
            if (count >= 0 ? started < count : now() < end) {
                started++;
                curl_multi_add_handle(c->m, e);
                in_multi++;
            }
        }
        if (!finished && in_multi > 0)
            curl_multi_poll(c->m, NULL, 0, 1000, NULL);
    }
    return n;
}

/* Slice mode: one slice per command on stdin, its figures on stdout. */
static void serve(Conf *c)
{
    char line[128];
    setup(c);
    while (fgets(line, sizeof line, stdin)) {
        double start, arg;
        clock_t cpu;
        long n;
        char cmd;
        if (line[0] == 'q')
            break;
        if (sscanf(line, " %c %lf", &cmd, &arg) != 2 || (cmd != 't' && cmd != 'n') || arg < 0) {
            fprintf(stderr, "c_loop: bad command: %s", line);
            exit(2);
        }
        start = now();
        cpu = clock();
        n = cmd == 't' ? run(c, start + arg, -1) : run(c, 0, (long)arg);
        printf("%ld %.6f %.6f\n", n, now() - start, (double)(clock() - cpu) / CLOCKS_PER_SEC);
        fflush(stdout);
    }
    teardown(c);
}

int main(int argc, char **argv)
{
    Conf c;
    double seconds = 0;
    long count = -1;
    int serving = 0;

    if (argc < 6 || (strcmp(argv[1], "multi") == 0 && argc < 7)) {
        fprintf(stderr, "usage: c_loop easy|multi METHOD URL BODYFILE SECONDS|nCOUNT|serve [N]\n");
        return 2;
    }
    memset(&c, 0, sizeof c);
    c.multi = strcmp(argv[1], "multi") == 0;
    c.inflight = c.multi ? atoi(argv[6]) : 1;
    if (c.inflight < 1) {
        fprintf(stderr, "c_loop: N must be at least 1\n");
        return 2;
    }
    c.method = argv[2];
    c.url = argv[3];
    c.body = slurp(argv[4], &c.body_len);
    if (strcmp(argv[5], "serve") == 0)
        serving = 1;
    else if (argv[5][0] == 'n')
        count = atol(argv[5] + 1);
    else
        seconds = atof(argv[5]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c.hdrs = curl_slist_append(NULL, "Authorization: Bearer bench-key");
    if (c.body) {
        c.hdrs = curl_slist_append(c.hdrs, "Content-Type: application/json");
        c.hdrs = curl_slist_append(c.hdrs, "Expect:");
    }

    if (serving)
        serve(&c);
    else {
        double start = now();
        clock_t cpu = clock();
        long n;
        setup(&c);
        n = run(&c, start + seconds, count);
        teardown(&c);
        printf("%ld %.6f %.6f\n", n, now() - start, (double)(clock() - cpu) / CLOCKS_PER_SEC);
    }
    curl_slist_free_all(c.hdrs);
    free(c.body);
    curl_global_cleanup();
    return 0;
}
