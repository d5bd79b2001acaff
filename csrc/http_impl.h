/*
 * http_impl.h - what the parts of the HTTP transport share (private to
 * csrc/http*.c; not part of the module's interface).
 *
 *   http.c          core.session, the session methods, libcurl's global init
 *   http_pool.c     transfers: buffers, the easy-handle pool, the curl
 *                   callbacks, driving the multi handle
 *   http_request.c  request tables: validation (may raise, acquires
 *                   nothing), then per-request options (never raises)
 *   http_result.c   results: status, body, headers table, transport errors
 *
 * The ownership rules in http.c's header comment hold across the files.
 */
#ifndef INSTANTLY_HTTP_IMPL_H
#define INSTANTLY_HTTP_IMPL_H

#include <curl/curl.h>

#include "core.h"
#include "buf.h"

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
#define DEC_SLOTS 4                 /* decoders a session keeps (see Session) */
#define DEFAULT_TIMEOUT 60.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define DEFAULT_MAX_RESPONSE ((lua_Integer)64 * 1024 * 1024)
#define MAX_REDIRS 5L
#define DEFAULT_WRITE_MAX_IDLE 2L  /* seconds; see write_max_idle in http.c */
#define REUSE_MAX_IDLE 118L         /* libcurl's own default for CURLOPT_MAXAGE_CONN */
#define MAX_METHOD 24

typedef struct Stats {
    lua_Integer sessions, transfers;
} Stats;

/* Response bodies, header blocks and the last URL grow in the core's one
 * buffer (buf.h). Transfers are calloc'd, so a buffer starts empty on
 * plain malloc: its non-raising calls are what libcurl callbacks need. */
typedef inst_buf Buf;

enum { T_IDLE, T_ACTIVE, T_DONE };

struct Session;

typedef struct Transfer {
    struct Transfer *prev, *next;
    struct Session *s;
    CURL *easy;
    CURLU *uh;      /* the URL, parsed once for as long as it stays the same */
    struct curl_slist *hdrs;
    lua_Integer id;
    int state;
    int sync;       /* a blocking request(): never reported by poll */
    int raw_head;   /* report the header block as one string (see raw_headers) */
    int too_large;
    int anchored;   /* its body is held in the session's anchor table */
    int tag;        /* submit(req, co, token): co's reference in the session's
                     * tag table (0: none), resumed by dispatch(token) */
    const void *owner; /* that token (compared, never dereferenced) */
    CURLcode result;
    size_t max_bytes;
    Buf body, head;
    int once;       /* POST/PATCH: may be sent only once (see on_prereq) */
    int dec_slot;   /* 1..DEC_SLOTS: decode a 2xx answer with that decoder
                     * of the session (see `decode`); 0: hand the text over */
    CURLcode setup_rc; /* why the last t_setup/t_prepare failed */
    int sends;      /* times libcurl was about to send it, this request */
    /* What the easy handle was last given, so that an option that does not
     * change between two requests is not set again (see t_prepare). */
    struct {
        int mode, follow, pipewait, valid;
        long timeout_ms, connect_ms, max_idle;
        const struct curl_slist *hdrs;
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
    const char *ae_line; /* "Accept-Encoding: ...", the same (see http.c) */
    char *ca_file, *ca_path, *proxy; /* proxy NULL: libcurl picks per request */
    char *no_proxy;
    long timeout_ms, connect_timeout_ms;
    long write_max_idle; /* whole seconds: see write_max_idle in http.c */
    curl_off_t max_bytes;
    int insecure, http2, counted;
    lua_Integer next_id;
    unsigned long epoch; /* changes whenever a transfer is taken or given back */
    List active, done, idle;
    /* The transfer whose result is being pushed into Lua (see
     * http_push_result), or NULL. Lua may run a finalizer at any
     * allocation of that push: the session is then busy (check_open
     * refuses it), and a close from there leaves this transfer to the
     * pusher, which frees it once done (http_t_recycle). */
    struct Transfer *handing;
    /* Decoders of requests with `decode`, anchored in the session's third
     * user value (an array of DEC_SLOTS), with how many transfers use
     * each; a slot no transfer uses takes the next new decoder. A client
     * uses one or two, so this is never full in practice; when it is,
     * the request just answers with its text. */
    const void *dec_fn[DEC_SLOTS];
    int dec_users[DEC_SLOTS];
} Session;

enum { M_GET = 1, M_HEAD, M_POST, M_PATCH, M_OTHER };

typedef struct Req {
    const char *url;
    size_t url_len;
    const char *body;
    size_t body_len;
    int has_body;
    int fields;        /* a request body goes out (POST, or any body) */
    int headers;       /* stack index of the headers table, 0 if none */
    int has_ctype;     /* the caller set Content-Type */
    int has_expect;
    int has_ua;
    int has_ae;        /* the caller set Accept-Encoding */
    int raw_headers;   /* answer with the header block as a string */
    int decode;        /* stack index of the decoder to use, 0 if none */
    long timeout_ms, connect_timeout_ms;
    int mcode;         /* M_GET ... M_OTHER */
    char method[MAX_METHOD + 1];
    /* The header lines, compared while they are validated with those
     * kept by the transfer the request will most likely run on (see
     * t_headers in http_request.c). */
    const struct Transfer *cand;
    const struct curl_slist *cmp;
    unsigned long epoch;
    int differs;
} Req;

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

/* http_pool.c */
void http_list_push(List *l, Transfer *t);
void http_list_unlink(List *l, Transfer *t);
Transfer *http_t_new(Session *s, CURLcode *rc);
void http_t_recycle(Session *s, Transfer *t);
void http_session_release(Session *s);
void http_drive(Session *s);
void http_wait_activity(Session *s, int ms);
void http_await_done(Session *s, double wait);
void http_drop_orphans(Session *s);

/* http_request.c */
const char *http_opt_string(lua_State *L, int arg, const char *what, const char *name);
long http_opt_seconds(lua_State *L, int arg, const char *what, const char *name);
int http_opt_boolean(lua_State *L, int arg, const char *what, const char *name);
Transfer *http_start(lua_State *L, Session *s, int idx, int sync, int tag);

/* http_result.c */
int http_push_result(lua_State *L, Transfer *t);
int http_push_entry(lua_State *L, Transfer *t);
int http_parse_headers(lua_State *L);
void http_unanchor(lua_State *L, Transfer *t);

#endif
