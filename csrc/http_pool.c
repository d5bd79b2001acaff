/*
 * http_pool.c - the transfers of a session (their buffers are buf.h), the pool of
 * idle easy handles, the libcurl callbacks (plain C, never the Lua API)
 * and driving the multi handle. Nothing here raises.
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_impl.h"

void http_list_push(List *l, Transfer *t)
{
    t->next = NULL;
    t->prev = l->tail;
    if (l->tail)
        l->tail->next = t;
    else
        l->head = t;
    l->tail = t;
    l->n++;
}

void http_list_unlink(List *l, Transfer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        l->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        l->tail = t->prev;
    t->prev = t->next = NULL;
    l->n--;
}

static List *list_of(Session *s, Transfer *t)
{
    switch (t->state) {
    case T_ACTIVE: return &s->active;
    case T_DONE: return &s->done;
    default: return &s->idle;
    }
}

/* curl callbacks: plain C, never the Lua API */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    Transfer *t = (Transfer *)ud;
    size_t len = size * n;
    if (len > t->max_bytes - t->body.len) {
        t->too_large = 1;
        inst_buf_free(&t->body); /* what was read is of no use any more */
        return 0;           /* curl stops with CURLE_WRITE_ERROR */
    }
    if (t->body.cap == 0) {
        /* Size the buffer once when the server announced a length. */
        curl_off_t cl = -1;
        if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
            cl > (curl_off_t)len && (curl_off_t)t->max_bytes >= cl)
            (void)inst_buf_reserve(&t->body, (size_t)cl);
    }
    if (inst_buf_append(&t->body, p, len) != 0)
        return 0;
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    Transfer *t = (Transfer *)ud;
    size_t len = size * n;
    /* Each response (redirect, 100 Continue, final) starts with a status
     * line; only the final response's headers are kept. */
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
        t->head.len = 0;
    if (len > t->max_bytes - t->head.len) {
        t->too_large = 1;
        return 0;
    }
    if (inst_buf_append(&t->head, p, len) != 0)
        return 0;
    return len;
}

static void t_free(Session *s, Transfer *t)
{
    if (t->easy)
        curl_easy_cleanup(t->easy);
    curl_url_cleanup(t->uh); /* after the easy handle that points to it */
    curl_slist_free_all(t->hdrs);
    inst_buf_free(&t->body);
    inst_buf_free(&t->head);
    inst_buf_free(&t->set.url);
    free(t);
    s->stats->transfers--;
}

/* libcurl silently sends a request again on a fresh connection when a
 * reused one dies before the answer, even though the server may already
 * have acted on it. For POST and PATCH (this API has no idempotency keys)
 * that is a duplicate write, so the second send is refused here: the
 * transfer fails with kind "aborted" and the caller, which knows the
 * request may have reached the server, decides. Called before every
 * send, retries included; we follow no redirects for these methods. */
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    Transfer *t = ud;
    (void)primary_ip;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    if (t->sends++ > 0 && t->once)
        return CURL_PREREQFUNC_ABORT;
    return CURL_PREREQFUNC_OK;
}

/* Options that hold for every request of the session. */
static int t_setup(Session *s, Transfer *t)
{
    CURL *e = t->easy;
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PRIVATE, (void *)t);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)t);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)t);
    SET(CURLOPT_ERRORBUFFER, t->errbuf);
    SET(CURLOPT_PREREQFUNCTION, on_prereq);
    SET(CURLOPT_PREREQDATA, (void *)t);
    SET(CURLOPT_SHARE, s->share);
    /* The User-Agent goes in as a request header (t_prepare): libcurl
     * formats CURLOPT_USERAGENT anew for every request, which costs more. */
    SET(CURLOPT_ACCEPT_ENCODING, ""); /* every encoding libcurl can decode */
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SET(CURLOPT_MAXREDIRS, MAX_REDIRS);
    SET(CURLOPT_SSL_VERIFYPEER, s->insecure ? 0L : 1L);
    SET(CURLOPT_SSL_VERIFYHOST, s->insecure ? 0L : 2L);
    if (s->ca_file)
        SET(CURLOPT_CAINFO, s->ca_file);
    if (s->ca_path)
        SET(CURLOPT_CAPATH, s->ca_path);
    /* Both set, libcurl reads no proxy variable per request (env_proxy in
     * http.c); a NULL proxy leaves the choice per scheme to libcurl. */
    if (s->proxy)
        SET(CURLOPT_PROXY, s->proxy);
    SET(CURLOPT_NOPROXY, s->no_proxy);
    if (s->http2) {
        SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    } else {
        SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    }
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    SET(CURLOPT_MAXFILESIZE_LARGE, s->max_bytes);
    return 1;
}

/* A new transfer, or NULL with *rc saying why. */
Transfer *http_t_new(Session *s, CURLcode *rc)
{
    Transfer *t = (Transfer *)calloc(1, sizeof *t);
    *rc = CURLE_OUT_OF_MEMORY;
    if (!t)
        return NULL;
    s->stats->transfers++;
    t->s = s;
    t->easy = curl_easy_init();
    if (!t->easy || !t_setup(s, t)) {
        if (t->easy)
            *rc = t->setup_rc;
        t_free(s, t);
        return NULL;
    }
    return t;
}

/* Finished with t: back to the idle pool, or freed when the pool is full
 * or the session closed (while t's result was pushed: see handing). */
void http_t_recycle(Session *s, Transfer *t)
{
    if (t->state == T_ACTIVE && s->multi)
        curl_multi_remove_handle(s->multi, t->easy);
    http_list_unlink(list_of(s, t), t);
    s->epoch++;
    if (t->dec_slot) {
        s->dec_users[t->dec_slot - 1]--;
        t->dec_slot = 0;
    }
    if (!s->multi) {
        t_free(s, t);
        return;
    }
    /* t->hdrs stays: the next request on t most likely sends the same
     * headers (see t_headers); t_free frees it. */
    t->body.len = t->head.len = 0;
    if (t->body.cap > KEEP_BUF)
        inst_buf_free(&t->body);
    if (t->head.cap > KEEP_BUF)
        inst_buf_free(&t->head);
    t->too_large = t->sync = t->anchored = 0;
    t->result = CURLE_OK;
    t->state = T_IDLE;
    if (s->idle.n < POOL_MAX)
        http_list_push(&s->idle, t);
    else
        t_free(s, t);
}

/* Frees what the session holds; a close from a finalizer while a result
 * is pushed leaves that one transfer linked (see handing). Idempotent. */
void http_session_release(Session *s)
{
    Transfer *t, *next;
    s->epoch++;
    while ((t = s->active.head) != NULL) {
        curl_multi_remove_handle(s->multi, t->easy);
        http_list_unlink(&s->active, t);
        t_free(s, t);
    }
    for (t = s->done.head; t; t = next) {
        next = t->next;
        if (t == s->handing) {
            /* its pusher frees it (http_t_recycle); the share goes now */
            curl_easy_setopt(t->easy, CURLOPT_SHARE, (CURLSH *)NULL);
            continue;
        }
        http_list_unlink(&s->done, t);
        t_free(s, t);
    }
    while ((t = s->idle.head) != NULL) {
        http_list_unlink(&s->idle, t);
        t_free(s, t);
    }
    if (s->multi)
        curl_multi_cleanup(s->multi);
    if (s->share)
        curl_share_cleanup(s->share);
    s->multi = NULL;
    s->share = NULL;
    free(s->ua_line);
    free(s->ca_file);
    free(s->ca_path);
    free(s->proxy);
    free(s->no_proxy);
    s->ua_line = s->ca_file = s->ca_path = s->proxy = s->no_proxy = NULL;
    if (s->counted) {
        s->stats->sessions--;
        s->counted = 0;
    }
}

/* Runs libcurl and moves finished transfers to the done list. */
void http_drive(Session *s)
{
    int running, left;
    CURLMsg *m;
    curl_multi_perform(s->multi, &running);
    while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
        Transfer *t = NULL;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&t);
        if (!t || t->state != T_ACTIVE)
            continue;
        curl_multi_remove_handle(s->multi, e); /* m is invalid from here */
        http_list_unlink(&s->active, t);
        t->result = rc;
        t->state = T_DONE;
        http_list_push(&s->done, t);
    }
}

/* Waits for socket activity or curl's next timer, at most ms. */
void http_wait_activity(Session *s, int ms)
{
    int numfds = 0;
    curl_multi_poll(s->multi, NULL, 0, ms, &numfds);
}

/* A blocking request() whose results could not be pushed (a memory error)
 * leaves its transfer on the done list; nobody will collect it, and no
 * blocking request is running whenever this is called. */
void http_drop_orphans(Session *s)
{
    Transfer *t, *next;
    for (t = s->done.head; t; t = next) {
        next = t->next;
        if (t->sync)
            http_t_recycle(s, t);
    }
}

/* Runs the transfers until one is done, none is active, or `wait`
 * seconds have passed. The clock is read only when there is a wait. */
void http_await_done(Session *s, double wait)
{
    double deadline;
    http_drive(s);
    if (s->done.n > 0 || s->active.n == 0 || !(wait > 0))
        return;
    deadline = inst_monotime() + (wait > 1e9 ? 1e9 : wait);
    while (s->done.n == 0 && s->active.n > 0) {
        double left = deadline - inst_monotime();
        if (left <= 0)
            break;
        http_wait_activity(s, left > 1.0 ? 1000 : (int)ceil(left * 1000.0));
        http_drive(s);
    }
}
