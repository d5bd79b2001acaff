/*
 * http.c - the HTTP transport of instantly.core: sessions over libcurl.
 *
 * Owns core.session, core._stats and the "instantly.Session" userdata.
 * A session owns one curl multi handle (its connection pool), one share
 * handle (DNS and TLS session caches) and a small pool of easy handles.
 * Every request, blocking or not, is a Transfer driven by that multi
 * handle, so request() and submit()/poll() share the same connections.
 *
 * Memory and errors:
 *   - No Lua error crosses libcurl: the callbacks only append to C
 *     buffers, and the Lua API is used only after curl has returned.
 *   - A request table is validated completely (phase A, may raise) before
 *     anything is acquired; building the transfer (phase B) never raises
 *     until the transfer is linked into its session, and the session's
 *     __gc frees whatever is linked. So no raise can leak.
 *   - Results are pushed while the transfer is still linked and recycled
 *     only afterwards, so a memory error while pushing loses nothing.
 *   - The only process-wide state is libcurl's global init, run once
 *     through pthread_once. Live counts for core._stats are per Lua state
 *     (a userdata in the registry), so two states in two threads never
 *     share anything mutable.
 */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "core.h"

/* The newest thing used is CURLOPT_PREREQFUNCTION (7.80.0, the guard
 * against resending a POST); curl_multi_poll is 7.66.0. Checked once at
 * build time against the headers and once at run time (global_init)
 * against the library actually loaded. */
#define MIN_CURL_NUM 0x075000
#define MIN_CURL_STR "7.80.0"
#if LIBCURL_VERSION_NUM < MIN_CURL_NUM
#error "instantly.core needs libcurl 7.80.0 or newer"
#endif

#define SESSION_MT "instantly.Session"
#define ERROR_MT "instantly.TransportError"

#define POOL_MAX 16                 /* idle easy handles kept per session */
#define KEEP_BUF (256 * 1024)       /* larger buffers are freed on recycle */
#define DEFAULT_TIMEOUT 60.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define DEFAULT_MAX_RESPONSE ((lua_Integer)64 * 1024 * 1024)
#define MAX_REDIRS 5L
#define MAX_METHOD 24

/* ------------------------------------------------------------------ */
/* process-wide: libcurl's global init, exactly once                   */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Written once, under init_once, and only read afterwards. What we need
 * from curl_version_info is copied here because that function rewrites
 * static buffers on every call, which is not safe from two threads. */
static CURLcode init_result = CURLE_FAILED_INIT;
static unsigned int curl_num;
static int curl_too_old;
static int curl_http2;
static char curl_ver[32];

static void global_init(void)
{
    curl_version_info_data *ci;
    init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
    ci = curl_version_info(CURLVERSION_NOW);
    curl_num = ci->version_num;
    curl_too_old = curl_num < MIN_CURL_NUM;
    curl_http2 = (ci->features & CURL_VERSION_HTTP2) != 0;
    snprintf(curl_ver, sizeof curl_ver, "%s", ci->version);
}

/* The libcurl version string, read once: safe from any thread. */
const char *inst_curl_version(void)
{
    pthread_once(&init_once, global_init);
    return curl_ver;
}

/* ------------------------------------------------------------------ */
/* per-state live counts                                               */

typedef struct Stats {
    lua_Integer sessions, transfers;
} Stats;

static const char stats_key = 0; /* its address keys the registry entry */

static Stats *get_stats(lua_State *L)
{
    Stats *st;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &stats_key) == LUA_TUSERDATA) {
        st = (Stats *)lua_touserdata(L, -1);
        lua_pop(L, 1);
        return st;
    }
    lua_pop(L, 1);
    st = (Stats *)lua_newuserdatauv(L, sizeof *st, 0);
    st->sessions = st->transfers = 0;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &stats_key);
    return st;
}

/* ------------------------------------------------------------------ */
/* growable byte buffers, filled from curl callbacks                   */

typedef struct Buf {
    char *p;
    size_t len, cap;
} Buf;

static int buf_reserve(Buf *b, size_t need)
{
    size_t cap;
    char *p;
    if (need <= b->cap)
        return 1;
    cap = b->cap ? b->cap : 1024;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    p = (char *)realloc(b->p, cap);
    if (!p)
        return 0;
    b->p = p;
    b->cap = cap;
    return 1;
}

static void buf_free(Buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------------------ */
/* sessions and transfers                                              */

enum { T_IDLE, T_ACTIVE, T_DONE };

struct Session;

typedef struct Transfer {
    struct Transfer *prev, *next;
    struct Session *s;
    CURL *easy;
    struct curl_slist *hdrs;
    lua_Integer id;
    int state;
    int sync;       /* a blocking request(): never reported by poll */
    int too_large;
    int anchored;   /* its body is held in the session's anchor table */
    CURLcode result;
    size_t max_bytes;
    Buf body, head;
    int once;       /* POST/PATCH: may be sent only once (see on_prereq) */
    CURLcode setup_rc; /* why the last t_setup/t_prepare failed */
    int sends;      /* times libcurl was about to send it, this request */
    /* What the easy handle was last given, so that an option that does not
     * change between two requests is not set again (see t_prepare). */
    struct {
        int mode, follow, pipewait, valid;
        long timeout_ms, connect_ms;
        char custom[MAX_METHOD + 1];
        Buf url;
    } set;
    char errbuf[CURL_ERROR_SIZE];
} Transfer;

typedef struct List {
    Transfer *head, *tail;
    int n;
} List;

typedef struct Session {
    CURLM *multi; /* NULL: closed (or never opened) */
    CURLSH *share;
    Stats *stats;
    char *ua_line; /* "User-Agent: ...", sent unless a request sets its own */
    char *ca_file, *ca_path, *proxy;
    long timeout_ms, connect_timeout_ms;
    curl_off_t max_bytes;
    int insecure, http2, counted;
    lua_Integer next_id;
    List active, done, idle;
} Session;

static void list_push(List *l, Transfer *t)
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

static void list_unlink(List *l, Transfer *t)
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
        buf_free(&t->body); /* what was read is of no use any more */
        return 0;           /* curl stops with CURLE_WRITE_ERROR */
    }
    if (t->body.cap == 0) {
        /* Size the buffer once when the server announced a length. */
        curl_off_t cl = -1;
        if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
            cl > (curl_off_t)len && (curl_off_t)t->max_bytes >= cl)
            (void)buf_reserve(&t->body, (size_t)cl);
    }
    if (!buf_reserve(&t->body, t->body.len + len))
        return 0;
    memcpy(t->body.p + t->body.len, p, len);
    t->body.len += len;
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
    if (!buf_reserve(&t->head, t->head.len + len))
        return 0;
    memcpy(t->head.p + t->head.len, p, len);
    t->head.len += len;
    return len;
}

static void t_free(Session *s, Transfer *t)
{
    if (t->easy)
        curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->hdrs);
    buf_free(&t->body);
    buf_free(&t->head);
    buf_free(&t->set.url);
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

/* Sets an option; on failure keeps libcurl's code for the error message
 * (an option this libcurl lacks is not "not enough memory"). */
#define SET(opt, val) \
    do { \
        CURLcode rc_ = curl_easy_setopt(e, opt, val); \
        if (rc_ != CURLE_OK) { \
            t->setup_rc = rc_; \
            return 0; \
        } \
    } while (0)

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
    if (s->proxy) /* otherwise libcurl reads http_proxy, https_proxy, no_proxy */
        SET(CURLOPT_PROXY, s->proxy);
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
static Transfer *t_new(Session *s, CURLcode *rc)
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

/* Finished with t: back to the idle pool, or freed when the pool is full. */
static void t_recycle(Session *s, Transfer *t)
{
    if (t->state == T_ACTIVE)
        curl_multi_remove_handle(s->multi, t->easy);
    list_unlink(list_of(s, t), t);
    curl_slist_free_all(t->hdrs);
    t->hdrs = NULL;
    t->body.len = t->head.len = 0;
    if (t->body.cap > KEEP_BUF)
        buf_free(&t->body);
    if (t->head.cap > KEEP_BUF)
        buf_free(&t->head);
    t->too_large = t->sync = t->anchored = 0;
    t->result = CURLE_OK;
    t->state = T_IDLE;
    if (s->idle.n < POOL_MAX)
        list_push(&s->idle, t);
    else
        t_free(s, t);
}

static void session_release(Session *s)
{
    Transfer *t;
    while ((t = s->active.head) != NULL) {
        curl_multi_remove_handle(s->multi, t->easy);
        list_unlink(&s->active, t);
        t_free(s, t);
    }
    while ((t = s->done.head) != NULL) {
        list_unlink(&s->done, t);
        t_free(s, t);
    }
    while ((t = s->idle.head) != NULL) {
        list_unlink(&s->idle, t);
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
    s->ua_line = s->ca_file = s->ca_path = s->proxy = NULL;
    if (s->counted) {
        s->stats->sessions--;
        s->counted = 0;
    }
}

/* Runs libcurl and moves finished transfers to the done list. */
static void drive(Session *s)
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
        list_unlink(&s->active, t);
        t->result = rc;
        t->state = T_DONE;
        list_push(&s->done, t);
    }
}

/* Waits for socket activity or curl's next timer, at most ms. */
static void wait_activity(Session *s, int ms)
{
    int numfds = 0;
    curl_multi_poll(s->multi, NULL, 0, ms, &numfds);
}

/* ------------------------------------------------------------------ */
/* Lua-facing helpers                                                  */

static Session *check_open(lua_State *L)
{
    Session *s = (Session *)luaL_checkudata(L, 1, SESSION_MT);
    if (!s->multi)
        luaL_error(L, "attempt to use a closed session");
    return s;
}

static const char *opt_string(lua_State *L, int arg, const char *what, const char *name)
{
    size_t len;
    const char *v;
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s '%s' must be a string, got %s",
                                              what, name, luaL_typename(L, -1)));
    v = lua_tolstring(L, -1, &len);
    if (strlen(v) != len)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s '%s' contains a NUL byte", what, name));
    return v;
}

/* Seconds (float) to libcurl milliseconds; math.huge means no limit (0). */
static long opt_seconds(lua_State *L, int arg, const char *what, const char *name)
{
    double v;
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s '%s' must be a number of seconds, got %s",
                                              what, name, luaL_typename(L, -1)));
    v = lua_tonumber(L, -1);
    if (!(v > 0))
        luaL_argerror(L, arg, lua_pushfstring(L, "%s '%s' must be positive", what, name));
    if (v >= 1e9) /* ~31 years, including math.huge: no limit */
        return 0;
    v = ceil(v * 1000.0);
    return v < 1 ? 1 : (long)v;
}

static int opt_boolean(lua_State *L, int arg, const char *what, const char *name)
{
    if (lua_type(L, -1) != LUA_TBOOLEAN)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s '%s' must be a boolean, got %s",
                                              what, name, luaL_typename(L, -1)));
    return lua_toboolean(L, -1);
}

static char *dupstr(const char *v)
{
    size_t n;
    char *p;
    if (!v)
        return NULL;
    n = strlen(v) + 1;
    p = (char *)malloc(n);
    if (p)
        memcpy(p, v, n);
    return p;
}

/* core.session([opts]) -> Session */
static int l_session(lua_State *L)
{
    const char *ua = NULL, *ca_file = NULL, *ca_path = NULL, *proxy = NULL;
    long timeout_ms = (long)(DEFAULT_TIMEOUT * 1000), connect_ms = (long)(DEFAULT_CONNECT_TIMEOUT * 1000);
    lua_Integer max_bytes = DEFAULT_MAX_RESPONSE, max_conns = 0;
    int insecure = 0, http2 = 1, fail = 0;
    char default_ua[128];
    Session *s;

    pthread_once(&init_once, global_init);
    if (init_result != CURLE_OK)
        return luaL_error(L, "instantly.core: curl_global_init failed: %s", curl_easy_strerror(init_result));
    if (curl_too_old)
        return luaL_error(L, "instantly.core: needs libcurl " MIN_CURL_STR " or newer, found %s", curl_ver);

    /* Phase A: validate everything; Lua strings stay alive in opts. */
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 1)) {
            const char *k;
            if (lua_type(L, -2) != LUA_TSTRING)
                luaL_argerror(L, 1, "option names must be strings");
            k = lua_tostring(L, -2);
            if (strcmp(k, "user_agent") == 0) {
                ua = opt_string(L, 1, "option", k);
                if (*ua == '\0' || strpbrk(ua, "\r\n"))
                    luaL_argerror(L, 1, "option 'user_agent' must be non-empty, without CR or LF");
            }
            else if (strcmp(k, "ca_file") == 0)
                ca_file = opt_string(L, 1, "option", k);
            else if (strcmp(k, "ca_path") == 0)
                ca_path = opt_string(L, 1, "option", k);
            else if (strcmp(k, "proxy") == 0)
                proxy = opt_string(L, 1, "option", k);
            else if (strcmp(k, "timeout") == 0)
                timeout_ms = opt_seconds(L, 1, "option", k);
            else if (strcmp(k, "connect_timeout") == 0)
                connect_ms = opt_seconds(L, 1, "option", k);
            else if (strcmp(k, "insecure") == 0)
                insecure = opt_boolean(L, 1, "option", k);
            else if (strcmp(k, "http2") == 0)
                http2 = opt_boolean(L, 1, "option", k);
            else if (strcmp(k, "max_response_bytes") == 0) {
                if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) <= 0)
                    luaL_argerror(L, 1, "option 'max_response_bytes' must be a positive integer");
                max_bytes = lua_tointeger(L, -1);
            } else if (strcmp(k, "max_connections") == 0) {
                if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) <= 0 || lua_tointeger(L, -1) > INT_MAX)
                    luaL_argerror(L, 1, "option 'max_connections' must be a positive integer");
                max_conns = lua_tointeger(L, -1);
            } else
                luaL_argerror(L, 1, lua_pushfstring(L, "unknown option '%s'", k));
            lua_pop(L, 1);
        }
    }
    if (!curl_http2)
        http2 = 0;
    if (!ua) {
        snprintf(default_ua, sizeof default_ua, "instantly-lua/%s libcurl/%s", INSTANTLY_VERSION, curl_ver);
        ua = default_ua;
    }

    /* Phase B: a closed handle with its metatable first, then acquire. */
    s = (Session *)lua_newuserdatauv(L, sizeof *s, 1);
    memset(s, 0, sizeof *s);
    luaL_setmetatable(L, SESSION_MT);
    lua_newtable(L); /* anchors: id -> body string of submitted requests */
    lua_setiuservalue(L, -2, 1);
    s->stats = get_stats(L);
    s->timeout_ms = timeout_ms;
    s->connect_timeout_ms = connect_ms;
    s->max_bytes = (curl_off_t)max_bytes;
    s->insecure = insecure;
    s->http2 = http2;
    s->ua_line = (char *)malloc(strlen(ua) + sizeof "User-Agent: ");
    if (s->ua_line) {
        memcpy(s->ua_line, "User-Agent: ", 12);
        strcpy(s->ua_line + 12, ua);
    }
    s->ca_file = dupstr(ca_file);
    s->ca_path = dupstr(ca_path);
    s->proxy = dupstr(proxy);
    if (!s->ua_line || (ca_file && !s->ca_file) || (ca_path && !s->ca_path) || (proxy && !s->proxy))
        fail = 1;
    if (!fail) {
        s->share = curl_share_init();
        fail = !s->share ||
               curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
               curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK;
    }
    if (!fail) {
        s->multi = curl_multi_init();
        fail = !s->multi;
        /* Beyond the limit, libcurl queues transfers until a connection
         * is free; HTTP/2 streams share a connection and count once. */
        if (!fail && max_conns > 0)
            fail = curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)max_conns) != CURLM_OK;
    }
    if (fail) {
        session_release(s);
        return luaL_error(L, "instantly.core: not enough memory for a session");
    }
    s->stats->sessions++;
    s->counted = 1;
    return 1;
}

/* ------------------------------------------------------------------ */
/* request tables                                                      */

typedef struct Req {
    const char *url;
    const char *body;
    size_t body_len;
    int has_body;
    int headers;       /* stack index of the headers table, 0 if none */
    int has_ctype;     /* the caller set Content-Type */
    int has_expect;
    int has_ua;
    long timeout_ms, connect_timeout_ms;
    char method[MAX_METHOD + 1];
} Req;

static int is_tchar(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void check_method(lua_State *L, int arg, Req *r)
{
    size_t len, i;
    const char *m = opt_string(L, arg, "field", "method");
    if (len = strlen(m), len == 0 || len > MAX_METHOD)
        luaL_argerror(L, arg, lua_pushfstring(L, "field 'method' is not an HTTP method: '%s'", m));
    for (i = 0; i < len; i++) {
        int c = (unsigned char)m[i];
        if (!is_tchar(c))
            luaL_argerror(L, arg, lua_pushfstring(L, "field 'method' is not an HTTP method: '%s'", m));
        r->method[i] = (char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    }
    r->method[len] = '\0';
}

/* A cheap shape check (libcurl parses the URL again anyway, and a full
 * curl_url() parse here costs about as much as the rest of the request
 * set-up): http or https, a host part, no whitespace or control bytes. */
static void check_url(lua_State *L, int arg, const char *url)
{
    const char *p, *rest;
    for (p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            luaL_argerror(L, arg, "field 'url' contains whitespace or control characters");
    if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        rest = url + 8;
    else
        rest = NULL;
    if (!rest || *rest == '\0' || *rest == '/' || *rest == '?' || *rest == '#')
        luaL_argerror(L, arg, lua_pushfstring(L, "field 'url' is not an http(s) URL: '%s'", url));
}

static void check_headers(lua_State *L, int arg, Req *r)
{
    int tbl = lua_gettop(L);
    if (!lua_istable(L, tbl))
        luaL_argerror(L, arg, lua_pushfstring(L, "field 'headers' must be a table, got %s", luaL_typename(L, tbl)));
    lua_pushnil(L);
    while (lua_next(L, tbl)) {
        size_t len, i;
        const char *k, *v;
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, arg, "header names must be strings");
        k = lua_tolstring(L, -2, &len);
        if (len == 0)
            luaL_argerror(L, arg, "header names must not be empty");
        for (i = 0; i < len; i++)
            if (!is_tchar((unsigned char)k[i]))
                luaL_argerror(L, arg, lua_pushfstring(L, "header name '%s' is not a valid token", k));
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_argerror(L, arg, lua_pushfstring(L, "header '%s' must be a string, got %s", k,
                                                  luaL_typename(L, -1)));
        v = lua_tolstring(L, -1, &len);
        for (i = 0; i < len; i++)
            if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
                luaL_argerror(L, arg, lua_pushfstring(L, "header '%s' contains CR, LF or NUL", k));
        if (strcasecmp(k, "content-type") == 0)
            r->has_ctype = 1;
        else if (strcasecmp(k, "expect") == 0)
            r->has_expect = 1;
        else if (strcasecmp(k, "user-agent") == 0)
            r->has_ua = 1;
        lua_pop(L, 1);
    }
    r->headers = tbl; /* stays on the stack until the request is built */
}

/* Phase A for a request table at idx: validates, may raise, acquires nothing. */
static void parse_req(lua_State *L, Session *s, int idx, Req *r)
{
    memset(r, 0, sizeof *r);
    strcpy(r->method, "GET");
    r->timeout_ms = s->timeout_ms;
    r->connect_timeout_ms = s->connect_timeout_ms;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        const char *k;
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, idx, "field names must be strings");
        k = lua_tostring(L, -2);
        if (strcmp(k, "url") == 0)
            r->url = opt_string(L, idx, "field", k);
        else if (strcmp(k, "method") == 0)
            check_method(L, idx, r);
        else if (strcmp(k, "body") == 0) {
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_argerror(L, idx, lua_pushfstring(L, "field 'body' must be a string, got %s",
                                                      luaL_typename(L, -1)));
            r->body = lua_tolstring(L, -1, &r->body_len);
            r->has_body = 1;
        } else if (strcmp(k, "timeout") == 0)
            r->timeout_ms = opt_seconds(L, idx, "field", k);
        else if (strcmp(k, "connect_timeout") == 0)
            r->connect_timeout_ms = opt_seconds(L, idx, "field", k);
        else if (strcmp(k, "headers") != 0)
            luaL_argerror(L, idx, lua_pushfstring(L, "unknown field '%s'", k));
        lua_pop(L, 1);
    }
    if (!r->url)
        luaL_argerror(L, idx, "field 'url' is required");
    check_url(L, idx, r->url);
    if (lua_getfield(L, idx, "headers") != LUA_TNIL)
        check_headers(L, idx, r); /* leaves the table on the stack */
    else
        lua_pop(L, 1);
}

/* Appends "name: value" to the list; an empty value is sent as such
 * ("name;" in libcurl's syntax) unless remove asks libcurl to drop its own
 * header of that name ("name:"). */
static int add_header(struct curl_slist **list, const char *k, size_t kl, const char *v, size_t vl,
                      int remove)
{
    char small[512], *line = small;
    struct curl_slist *n;
    size_t need = kl + vl + 3;
    if (need > sizeof small && !(line = (char *)malloc(need)))
        return 0;
    memcpy(line, k, kl);
    if (vl == 0) {
        line[kl] = remove ? ':' : ';';
        line[kl + 1] = '\0';
    } else {
        line[kl] = ':';
        line[kl + 1] = ' ';
        memcpy(line + kl + 2, v, vl);
        line[kl + 2 + vl] = '\0';
    }
    n = curl_slist_append(*list, line);
    if (line != small)
        free(line);
    if (!n)
        return 0;
    *list = n;
    return 1;
}

enum { MODE_GET = 1, MODE_HEAD, MODE_FIELDS };

/* Phase B: per-request options. Never raises; 0 on failure (the caller
 * then forgets the option cache, t->set.valid = 0). */
static int t_prepare(lua_State *L, Session *s, Transfer *t, const Req *r)
{
    CURL *e = t->easy;
    int head = strcmp(r->method, "HEAD") == 0, post = strcmp(r->method, "POST") == 0;
    int get = strcmp(r->method, "GET") == 0;
    int mode = head ? MODE_HEAD : (r->has_body || post) ? MODE_FIELDS : MODE_GET;
    int follow = get || head;
    int pipewait = s->http2 && strncasecmp(r->url, "https:", 6) == 0;
    const char *custom = (head || post || (get && !r->has_body)) ? "" : r->method;
    size_t url_len = strlen(r->url);
    if (r->headers) {
        lua_pushnil(L);
        while (lua_next(L, r->headers)) {
            size_t kl, vl;
            const char *k = lua_tolstring(L, -2, &kl), *v = lua_tolstring(L, -1, &vl);
            lua_pop(L, 1);
            if (!add_header(&t->hdrs, k, kl, v, vl, 0)) {
                lua_pop(L, 1);
                t->setup_rc = CURLE_OUT_OF_MEMORY;
                return 0;
            }
        }
    }
    if (!r->has_ua) {
        struct curl_slist *n = curl_slist_append(t->hdrs, s->ua_line);
        if (!n) {
            t->setup_rc = CURLE_OUT_OF_MEMORY;
            return 0;
        }
        t->hdrs = n;
    }
    if (mode == MODE_FIELDS) {
        /* libcurl would otherwise claim a form body, and wait a second for
         * "100 Continue" before sending a large one. */
        if ((!r->has_ctype && !add_header(&t->hdrs, "Content-Type", 12, "", 0, 1)) ||
            (!r->has_expect && !add_header(&t->hdrs, "Expect", 6, "", 0, 1))) {
            t->setup_rc = CURLE_OUT_OF_MEMORY;
            return 0;
        }
    }
    t->errbuf[0] = '\0';
    t->once = post || strcmp(r->method, "PATCH") == 0;
    t->sends = 0;
    t->max_bytes = (size_t)s->max_bytes;
    if (!t->set.valid) {
        t->set.mode = t->set.follow = t->set.pipewait = -1;
        t->set.timeout_ms = t->set.connect_ms = -1;
        t->set.custom[0] = '\0';
        t->set.url.len = 0;
        SET(CURLOPT_CUSTOMREQUEST, (char *)NULL);
        t->set.valid = 1;
    }
    if (t->set.url.len != url_len + 1 || memcmp(t->set.url.p, r->url, url_len + 1) != 0) {
        SET(CURLOPT_URL, r->url);
        t->set.url.len = 0;
        if (buf_reserve(&t->set.url, url_len + 1)) {
            memcpy(t->set.url.p, r->url, url_len + 1);
            t->set.url.len = url_len + 1;
        }
    }
    if (mode != t->set.mode) {
        SET(CURLOPT_NOBODY, head ? 1L : 0L);
        if (mode == MODE_GET)
            SET(CURLOPT_HTTPGET, 1L);
        t->set.mode = mode;
    }
    if (mode == MODE_FIELDS) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(r->has_body ? r->body_len : 0));
        SET(CURLOPT_POSTFIELDS, r->has_body ? r->body : "");
    }
    if (strcmp(custom, t->set.custom) != 0) {
        SET(CURLOPT_CUSTOMREQUEST, custom[0] ? custom : (char *)NULL);
        strcpy(t->set.custom, custom);
    }
    if (follow != t->set.follow) {
        SET(CURLOPT_FOLLOWLOCATION, (long)follow);
        t->set.follow = follow;
    }
    if (pipewait != t->set.pipewait) {
        /* Over TLS, concurrent transfers wait to share one h2 connection
         * rather than open one each; plain http:// is never multiplexed,
         * and waiting there would serialize them. */
        SET(CURLOPT_PIPEWAIT, (long)pipewait);
        t->set.pipewait = pipewait;
    }
    if (r->timeout_ms != t->set.timeout_ms) {
        SET(CURLOPT_TIMEOUT_MS, r->timeout_ms);
        t->set.timeout_ms = r->timeout_ms;
    }
    if (r->connect_timeout_ms != t->set.connect_ms) {
        SET(CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms);
        t->set.connect_ms = r->connect_timeout_ms;
    }
    SET(CURLOPT_HTTPHEADER, t->hdrs);
    return 1;
}

#undef SET

/* Validates the request at idx and starts it. Raises on misuse. */
static Transfer *start(lua_State *L, Session *s, int idx, int sync)
{
    Req r;
    Transfer *t;
    CURLcode rc;
    CURLMcode mrc = CURLM_OK;
    int top = lua_gettop(L), anchored = 0;
    parse_req(L, s, idx, &r);
    if (!sync && r.has_body) {
        /* submit() returns before curl reads the body: keep it alive. */
        lua_getiuservalue(L, 1, 1);
        lua_getfield(L, idx, "body"); /* the very string r.body points into */
        lua_rawseti(L, -2, s->next_id + 1);
        lua_pop(L, 1);
        anchored = 1;
    }
    t = s->idle.head;
    if (t)
        list_unlink(&s->idle, t);
    else if (!(t = t_new(s, &rc))) {
        luaL_error(L, "instantly.core: cannot set up a transfer: %s", curl_easy_strerror(rc));
        return NULL;
    }
    /* From here t is linked to the session, so the session frees it. */
    t->state = T_ACTIVE;
    list_push(&s->active, t);
    t->id = ++s->next_id;
    t->sync = sync;
    t->anchored = anchored;
    if (!t_prepare(L, s, t, &r) || (mrc = curl_multi_add_handle(s->multi, t->easy)) != CURLM_OK) {
        /* Not in the multi handle: park it as done, then recycle. */
        const char *why = mrc != CURLM_OK ? curl_multi_strerror(mrc) : curl_easy_strerror(t->setup_rc);
        t->set.valid = 0;
        list_unlink(&s->active, t);
        t->state = T_DONE;
        list_push(&s->done, t);
        t_recycle(s, t);
        lua_settop(L, top);
        luaL_error(L, "instantly.core: cannot start the request: %s", why);
    }
    lua_settop(L, top);
    return t;
}

/* ------------------------------------------------------------------ */
/* results                                                             */

static int never_sent(Transfer *t)
{
    long sent = 0;
    return curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &sent) == CURLE_OK && sent == 0;
}

static const char *error_kind(Transfer *t)
{
    if (t->too_large)
        return "too_large";
    switch (t->result) {
    case CURLE_FILESIZE_EXCEEDED:
        return "too_large";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return "dns";
    case CURLE_COULDNT_CONNECT:
        return "connect";
    case CURLE_OPERATION_TIMEDOUT:
        /* A timeout before any byte of the request left is a failure to
         * connect: the server provably never saw the request. */
        return never_sent(t) ? "connect" : "timeout";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return "tls";
    case CURLE_ABORTED_BY_CALLBACK:
        return "aborted";
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: {
        /* After a redirect these are the server's doing (a Location to
         * ftp:, a broken URL); before one, an HTTP/0.9 or non-HTTP reply
         * is too, while a URL that passed check_url yet fails libcurl's
         * parser is ours to report as internal. */
        long redirects = 0;
        curl_easy_getinfo(t->easy, CURLINFO_REDIRECT_COUNT, &redirects);
        return (redirects > 0 || t->result == CURLE_UNSUPPORTED_PROTOCOL) ? "protocol" : "internal";
    }
    case CURLE_OUT_OF_MEMORY:
    case CURLE_FAILED_INIT:
    case CURLE_WRITE_ERROR:
    case CURLE_READ_ERROR:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_NOT_BUILT_IN:
        return "internal";
    default:
        return "protocol";
    }
}

static void push_error(lua_State *L, const char *kind, const char *message, lua_Integer code)
{
    lua_createtable(L, 0, 3);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    lua_pushinteger(L, code);
    lua_setfield(L, -2, "curl_code");
    luaL_setmetatable(L, ERROR_MT);
}

static void push_transfer_error(lua_State *L, Transfer *t)
{
    const char *kind = error_kind(t);
    if (strcmp(kind, "too_large") == 0)
        lua_pushfstring(L, "response larger than max_response_bytes (%I bytes)",
                        (lua_Integer)t->max_bytes);
    else if (t->result == CURLE_ABORTED_BY_CALLBACK && t->once && t->sends > 1)
        lua_pushfstring(L, "connection closed before the answer; %s not sent again "
                        "(the server may have acted on it)", t->set.custom[0] ? t->set.custom : "POST");
    else if (t->errbuf[0]) {
        size_t n = strlen(t->errbuf);
        lua_pushlstring(L, t->errbuf, n && t->errbuf[n - 1] == '\n' ? n - 1 : n);
    } else
        lua_pushstring(L, curl_easy_strerror(t->result));
    push_error(L, kind, lua_tostring(L, -1), (lua_Integer)t->result);
    lua_remove(L, -2);
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Pushes the lower-cased header name. */
static void push_lower(lua_State *L, const char *name, size_t n)
{
    char small[256], *dst;
    luaL_Buffer b;
    size_t i;
    dst = n <= sizeof small ? small : luaL_buffinitsize(L, &b, n);
    for (i = 0; i < n; i++)
        dst[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] - 'A' + 'a' : name[i]);
    if (dst == small)
        lua_pushlstring(L, small, n);
    else
        luaL_pushresultsize(&b, n);
}

/* The final response's header block to {lower-case name = value}. */
static void push_headers(lua_State *L, const Buf *h)
{
    const char *p = h->p, *end = h->p + h->len, *prev = NULL;
    size_t prev_len = 0;
    int tbl;
    lua_createtable(L, 0, 12);
    tbl = lua_gettop(L);
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p)), *line = p, *lend, *colon, *v, *ve;
        lend = eol ? eol : end;
        p = eol ? eol + 1 : end;
        if (lend > line && lend[-1] == '\r')
            lend--;
        if (lend == line || (lend - line >= 5 && memcmp(line, "HTTP/", 5) == 0))
            continue;
        if (is_ows(*line)) { /* obsolete line folding: continues the previous value */
            if (!prev)
                continue;
            v = line;
            while (v < lend && is_ows(*v))
                v++;
            push_lower(L, prev, prev_len);
            lua_pushvalue(L, -1);
            lua_rawget(L, tbl);
            lua_pushliteral(L, " ");
            lua_pushlstring(L, v, (size_t)(lend - v));
            lua_concat(L, 3);
            lua_rawset(L, tbl);
            continue;
        }
        colon = memchr(line, ':', (size_t)(lend - line));
        if (!colon || colon == line)
            continue;
        prev = line;
        prev_len = (size_t)(colon - line);
        v = colon + 1;
        ve = lend;
        while (v < ve && is_ows(*v))
            v++;
        while (ve > v && is_ows(ve[-1]))
            ve--;
        push_lower(L, prev, prev_len);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, tbl) == LUA_TSTRING) { /* repeated: join */
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, v, (size_t)(ve - v));
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, v, (size_t)(ve - v));
        }
        lua_rawset(L, tbl);
    }
}

/* status, body, headers -- or nil, err. Leaves t untouched. */
static int push_result(lua_State *L, Transfer *t)
{
    long status = 0;
    if (t->result != CURLE_OK || t->too_large) {
        lua_pushnil(L);
        push_transfer_error(L, t);
        return 2;
    }
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    lua_pushinteger(L, status);
    lua_pushlstring(L, t->body.p ? t->body.p : "", t->body.len);
    push_headers(L, &t->head);
    return 3;
}

static void unanchor(lua_State *L, const Transfer *t)
{
    if (!t->anchored)
        return;
    if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE) {
        lua_pushnil(L);
        lua_rawseti(L, -2, t->id); /* clearing an existing key never allocates */
    }
    lua_pop(L, 1);
}

/* ------------------------------------------------------------------ */
/* methods                                                             */

/* A blocking request() whose results could not be pushed (a memory error)
 * leaves its transfer on the done list; nobody will collect it, and no
 * blocking request is running whenever this is called. */
static void drop_orphans(Session *s)
{
    Transfer *t, *next;
    for (t = s->done.head; t; t = next) {
        next = t->next;
        if (t->sync)
            t_recycle(s, t);
    }
}

/* session:request(req) -> status, body, headers | nil, err */
static int l_request(lua_State *L)
{
    Session *s = check_open(L);
    Transfer *t;
    drop_orphans(s);
    t = start(L, s, 2, 1);
    int n;
    drive(s);
    while (t->state != T_DONE) {
        wait_activity(s, 1000);
        drive(s);
    }
    n = push_result(L, t);
    t_recycle(s, t);
    return n;
}

/* session:submit(req) -> id */
static int l_submit(lua_State *L)
{
    Session *s = check_open(L);
    Transfer *t = start(L, s, 2, 0);
    lua_pushinteger(L, t->id);
    return 1;
}

/* Runs the transfers until one is done, none is active, or `wait`
 * seconds have passed. The clock is read only when there is a wait. */
static void await_done(Session *s, double wait)
{
    double deadline;
    drive(s);
    if (s->done.n > 0 || s->active.n == 0 || !(wait > 0))
        return;
    deadline = inst_monotime() + (wait > 1e9 ? 1e9 : wait);
    while (s->done.n == 0 && s->active.n > 0) {
        double left = deadline - inst_monotime();
        if (left <= 0)
            break;
        wait_activity(s, left > 1.0 ? 1000 : (int)ceil(left * 1000.0));
        drive(s);
    }
}

/* session:take([timeout]) -> id, status, body, headers | id, nil, err | nothing
 * One finished transfer at a time, as plain values: what poll reports
 * without a table per result (the scheduler of client:gather uses it). */
static int l_take(lua_State *L)
{
    Session *s = check_open(L);
    double wait = luaL_optnumber(L, 2, 0);
    Transfer *t;
    int n;
    luaL_argcheck(L, wait >= 0, 2, "timeout must be a non-negative number of seconds");
    drop_orphans(s);
    if (s->done.n == 0)
        await_done(s, wait);
    if ((t = s->done.head) == NULL)
        return 0;
    lua_pushinteger(L, t->id);
    n = push_result(L, t);
    unanchor(L, t);
    t_recycle(s, t);
    return n + 1;
}

/* session:poll([timeout]) -> { {id=, status=, body=, headers=} | {id=, err=} ... } */
static int l_poll(lua_State *L)
{
    Session *s = check_open(L);
    double wait = luaL_optnumber(L, 2, 0);
    Transfer *t;
    int i, n;
    luaL_argcheck(L, wait >= 0, 2, "timeout must be a non-negative number of seconds");
    drop_orphans(s);
    await_done(s, wait);
    n = s->done.n;
    lua_createtable(L, n, 0);
    for (i = 1, t = s->done.head; t; t = t->next, i++) {
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, t->id);
        lua_setfield(L, -2, "id");
        if (push_result(L, t) == 2) {
            lua_setfield(L, -3, "err");
            lua_pop(L, 1);
        } else {
            lua_setfield(L, -4, "headers");
            lua_setfield(L, -3, "body");
            lua_setfield(L, -2, "status");
        }
        lua_rawseti(L, -2, i);
    }
    /* Everything is in Lua now: release the transfers. */
    while ((t = s->done.head) != NULL && n-- > 0) {
        unanchor(L, t);
        t_recycle(s, t);
    }
    return 1;
}

/* session:pending() -> submitted transfers not yet returned by poll */
static int l_pending(lua_State *L)
{
    Session *s = check_open(L);
    drop_orphans(s);
    lua_pushinteger(L, (lua_Integer)s->active.n + s->done.n);
    return 1;
}

/* session:cancel(id) -> true if it was pending (it will not be reported) */
static int l_cancel(lua_State *L)
{
    Session *s = check_open(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    List *lists[2];
    int i;
    lists[0] = &s->active;
    lists[1] = &s->done;
    for (i = 0; i < 2; i++) {
        Transfer *t;
        for (t = lists[i]->head; t; t = t->next) {
            if (t->id == id && !t->sync) {
                unanchor(L, t);
                t_recycle(s, t);
                lua_pushboolean(L, 1);
                return 1;
            }
        }
    }
    lua_pushboolean(L, 0);
    return 1;
}

/* session:close(); also __gc and __close. Idempotent. */
static int l_close(lua_State *L)
{
    Session *s = (Session *)luaL_checkudata(L, 1, SESSION_MT);
    session_release(s);
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 1); /* drop the anchored bodies now */
    return 0;
}

static int l_tostring(lua_State *L)
{
    Session *s = (Session *)luaL_checkudata(L, 1, SESSION_MT);
    if (s->multi)
        lua_pushfstring(L, SESSION_MT " (open, %d pending): %p", s->active.n + s->done.n, (void *)s);
    else
        lua_pushfstring(L, SESSION_MT " (closed): %p", (void *)s);
    return 1;
}

static int l_error_tostring(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "kind");
    lua_getfield(L, 1, "message");
    lua_pushfstring(L, "%s error: %s", luaL_optstring(L, -2, "?"), luaL_optstring(L, -1, "?"));
    return 1;
}

/* core._stats() -> {sessions=, transfers=} live in this Lua state */
static int l_stats(lua_State *L)
{
    Stats *st = get_stats(L);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, st->sessions);
    lua_setfield(L, -2, "sessions");
    lua_pushinteger(L, st->transfers);
    lua_setfield(L, -2, "transfers");
    return 1;
}

static const luaL_Reg methods[] = {
    {"request", l_request},
    {"submit", l_submit},
    {"poll", l_poll},
    {"take", l_take},
    {"pending", l_pending},
    {"cancel", l_cancel},
    {"close", l_close},
    {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
    {"__gc", l_close},
    {"__close", l_close},
    {"__tostring", l_tostring},
    {NULL, NULL}
};

static const luaL_Reg funcs[] = {
    {"session", l_session},
    {"_stats", l_stats},
    {NULL, NULL}
};

void inst_http_open(lua_State *L)
{
    pthread_once(&init_once, global_init);
    if (luaL_newmetatable(L, SESSION_MT)) {
        luaL_setfuncs(L, metamethods, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, ERROR_MT)) {
        lua_pushcfunction(L, l_error_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    (void)get_stats(L);
    luaL_setfuncs(L, funcs, 0);
}
