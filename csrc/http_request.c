/*
 * http_request.c - request tables. Phase A validates a table completely
 * and may raise, acquiring nothing; phase B sets the transfer's options
 * and never raises until the transfer is linked into its session.
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

const char *http_opt_string(lua_State *L, int arg, const char *what, const char *name)
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
long http_opt_seconds(lua_State *L, int arg, const char *what, const char *name)
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

int http_opt_boolean(lua_State *L, int arg, const char *what, const char *name)
{
    if (lua_type(L, -1) != LUA_TBOOLEAN)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s '%s' must be a boolean, got %s",
                                              what, name, luaL_typename(L, -1)));
    return lua_toboolean(L, -1);
}

static int is_tchar(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void check_method(lua_State *L, int arg, Req *r)
{
    size_t len, i;
    const char *m = http_opt_string(L, arg, "field", "method");
    if (len = strlen(m), len == 0 || len > MAX_METHOD)
        luaL_argerror(L, arg, lua_pushfstring(L, "field 'method' is not an HTTP method: '%s'", m));
    for (i = 0; i < len; i++) {
        int c = (unsigned char)m[i];
        if (!is_tchar(c))
            luaL_argerror(L, arg, lua_pushfstring(L, "field 'method' is not an HTTP method: '%s'", m));
        r->method[i] = (char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    }
    r->method[len] = '\0';
    r->mcode = strcmp(r->method, "GET") == 0    ? M_GET
               : strcmp(r->method, "HEAD") == 0 ? M_HEAD
               : strcmp(r->method, "POST") == 0 ? M_POST
               : strcmp(r->method, "PATCH") == 0 ? M_PATCH
                                                 : M_OTHER;
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

/* The header lines of a request go to libcurl in this order: the
 * caller's headers (in table order), the User-Agent and Accept-Encoding
 * unless the caller set them, and for a request with a body the two lines
 * that stop libcurl's own Content-Type and Expect. Building that list is
 * a malloc and a copy
 * per line, and a client sends the same lines on every call; so while
 * the caller's headers are validated, each line is compared with the list
 * kept by the transfer the request will most likely run on (the first
 * idle one), and only a difference makes t_headers build a new list.
 *
 * line_is: does the next kept line read "k: v" (v NULL: k is the whole
 * line; an empty value: "k;", or "k:" when libcurl's own header of that
 * name is to go)? k and v contain no NUL (validated), so no kept line is
 * read past its terminating NUL. */
static void line_is(Req *r, const char *k, size_t kl, const char *v, size_t vl, int remove)
{
    const char *kept;
    if (r->differs)
        return;
    if (!r->cmp || strncmp(kept = r->cmp->data, k, kl) != 0)
        goto differs;
    kept += kl;
    if (!v) {
        if (*kept)
            goto differs;
    } else if (vl == 0) {
        if (kept[0] != (remove ? ':' : ';') || kept[1])
            goto differs;
    } else if (kept[0] != ':' || kept[1] != ' ' || strncmp(kept + 2, v, vl) != 0 || kept[2 + vl])
        goto differs;
    r->cmp = r->cmp->next;
    return;
differs:
    r->differs = 1;
}

/* The lines after the caller's headers; see line_is. */
static void tail_lines_are(Session *s, Req *r)
{
    if (!r->has_ua)
        line_is(r, s->ua_line, strlen(s->ua_line), NULL, 0, 0);
    if (!r->has_ae)
        line_is(r, s->ae_line, strlen(s->ae_line), NULL, 0, 0);
    if (r->fields) {
        if (!r->has_ctype)
            line_is(r, "Content-Type", 12, "", 0, 1);
        if (!r->has_expect)
            line_is(r, "Expect", 6, "", 0, 1);
    }
    if (r->cmp)
        r->differs = 1; /* the kept list has more lines */
}

static void check_headers(lua_State *L, int arg, Req *r, int tbl)
{
    if (!lua_istable(L, tbl))
        luaL_argerror(L, arg, lua_pushfstring(L, "field 'headers' must be a table, got %s", luaL_typename(L, tbl)));
    lua_pushnil(L);
    while (lua_next(L, tbl)) {
        size_t kl, vl, i;
        const char *k, *v;
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, arg, "header names must be strings");
        k = lua_tolstring(L, -2, &kl);
        if (kl == 0)
            luaL_argerror(L, arg, "header names must not be empty");
        for (i = 0; i < kl; i++)
            if (!is_tchar((unsigned char)k[i]))
                luaL_argerror(L, arg, lua_pushfstring(L, "header name '%s' is not a valid token", k));
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_argerror(L, arg, lua_pushfstring(L, "header '%s' must be a string, got %s", k,
                                                  luaL_typename(L, -1)));
        v = lua_tolstring(L, -1, &vl);
        for (i = 0; i < vl; i++)
            if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
                luaL_argerror(L, arg, lua_pushfstring(L, "header '%s' contains CR, LF or NUL", k));
        if (kl == 12 && strcasecmp(k, "content-type") == 0)
            r->has_ctype = 1;
        else if (kl == 6 && strcasecmp(k, "expect") == 0)
            r->has_expect = 1;
        else if (kl == 10 && strcasecmp(k, "user-agent") == 0)
            r->has_ua = 1;
        else if (kl == 15 && strcasecmp(k, "accept-encoding") == 0)
            r->has_ae = 1;
        line_is(r, k, kl, v, vl, 0);
        lua_pop(L, 1);
    }
    r->headers = tbl; /* stays on the stack until the request is built */
}

enum { F_UNKNOWN, F_URL, F_METHOD, F_BODY, F_HEADERS, F_TIMEOUT, F_CONNECT_TIMEOUT, F_RAW_HEADERS, F_DECODE };

/* Which request field a key names, by length first. */
static int field_of(const char *k, size_t n)
{
    switch (n) {
    case 3: return memcmp(k, "url", 3) == 0 ? F_URL : F_UNKNOWN;
    case 4: return memcmp(k, "body", 4) == 0 ? F_BODY : F_UNKNOWN;
    case 6: return memcmp(k, "method", 6) == 0 ? F_METHOD : memcmp(k, "decode", 6) == 0 ? F_DECODE : F_UNKNOWN;
    case 7: return memcmp(k, "headers", 7) == 0 ? F_HEADERS : memcmp(k, "timeout", 7) == 0 ? F_TIMEOUT : F_UNKNOWN;
    case 11: return memcmp(k, "raw_headers", 11) == 0 ? F_RAW_HEADERS : F_UNKNOWN;
    case 15: return memcmp(k, "connect_timeout", 15) == 0 ? F_CONNECT_TIMEOUT : F_UNKNOWN;
    default: return F_UNKNOWN;
    }
}

/* Phase A for a request table at idx: validates, may raise, acquires
 * nothing. Leaves two slots on the stack (the headers table or nil, the
 * decoder or nil). */
static void parse_req(lua_State *L, Session *s, int idx, Req *r)
{
    int slot;
    memset(r, 0, sizeof *r);
    strcpy(r->method, "GET");
    r->mcode = M_GET;
    r->timeout_ms = s->timeout_ms;
    r->connect_timeout_ms = s->connect_timeout_ms;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L); /* the slot for the headers field */
    slot = lua_gettop(L);
    lua_pushnil(L); /* slot + 1: the decoder */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t kl;
        const char *k;
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, idx, "field names must be strings");
        k = lua_tolstring(L, -2, &kl);
        switch (field_of(k, kl)) {
        case F_URL:
            r->url = http_opt_string(L, idx, "field", k);
            break;
        case F_METHOD:
            check_method(L, idx, r);
            break;
        case F_BODY:
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_argerror(L, idx, lua_pushfstring(L, "field 'body' must be a string, got %s",
                                                      luaL_typename(L, -1)));
            r->body = lua_tolstring(L, -1, &r->body_len);
            r->has_body = 1;
            break;
        case F_HEADERS:
            lua_pushvalue(L, -1);
            lua_replace(L, slot);
            break;
        case F_TIMEOUT:
            r->timeout_ms = http_opt_seconds(L, idx, "field", k);
            break;
        case F_CONNECT_TIMEOUT:
            r->connect_timeout_ms = http_opt_seconds(L, idx, "field", k);
            break;
        case F_RAW_HEADERS:
            r->raw_headers = http_opt_boolean(L, idx, "field", k);
            break;
        case F_DECODE:
            if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
                break; /* false: none */
            if (!inst_json_is_decoder(L, -1))
                luaL_argerror(L, idx, lua_pushfstring(L, "field 'decode' must be a decoder made by "
                                                      "json_decoder, or false, got %s", luaL_typename(L, -1)));
            lua_pushvalue(L, -1);
            lua_replace(L, slot + 1);
            r->decode = slot + 1;
            break;
        default:
            luaL_argerror(L, idx, lua_pushfstring(L, "unknown field '%s'", k));
        }
        lua_pop(L, 1);
    }
    if (!r->url)
        luaL_argerror(L, idx, "field 'url' is required");
    check_url(L, idx, r->url);
    r->url_len = strlen(r->url);
    r->fields = r->mcode != M_HEAD && (r->has_body || r->mcode == M_POST);
    r->cand = s->idle.head;
    r->epoch = s->epoch;
    r->cmp = r->cand ? r->cand->hdrs : NULL;
    r->differs = r->cmp == NULL; /* nothing kept to compare with */
    if (!lua_isnil(L, slot))
        check_headers(L, idx, r, slot);
    tail_lines_are(s, r);
}

/* One header line as libcurl takes it: "name: value"; an empty value is
 * sent as such ("name;" in libcurl's syntax) unless remove asks libcurl
 * to drop its own header of that name ("name:"); v NULL: k is the whole
 * line already. In small when it fits,
 * else malloc'd (the caller frees a result that is not small); NULL when
 * out of memory. */
static char *header_line(char *small, size_t small_len, const char *k, size_t kl, const char *v, size_t vl,
                         int remove)
{
    char *line = small;
    size_t need = kl + vl + 3;
    if (need > small_len && !(line = (char *)malloc(need)))
        return NULL;
    memcpy(line, k, kl);
    if (!v)
        line[kl] = '\0';
    else if (vl == 0) {
        line[kl] = remove ? ':' : ';';
        line[kl + 1] = '\0';
    } else {
        line[kl] = ':';
        line[kl + 1] = ' ';
        memcpy(line + kl + 2, v, vl);
        line[kl + 2 + vl] = '\0';
    }
    return line;
}

typedef struct Lines {
    struct curl_slist *out;
    int oom;
} Lines;

static void put_line(Lines *ls, const char *k, size_t kl, const char *v, size_t vl, int remove)
{
    char small[512], *line;
    struct curl_slist *n;
    if (ls->oom)
        return;
    if (!(line = header_line(small, sizeof small, k, kl, v, vl, remove))) {
        ls->oom = 1;
        return;
    }
    if ((n = curl_slist_append(ls->out, line)) != NULL)
        ls->out = n;
    else
        ls->oom = 1;
    if (line != small)
        free(line);
}

/* Makes t->hdrs the request's header list: the kept one when parse_req
 * found it the same (and t is the transfer it compared with, untouched
 * since), else a new one built in the order line_is describes. 0 when
 * out of memory (t->hdrs is then intact). */
static int t_headers(lua_State *L, Session *s, Transfer *t, const Req *r)
{
    Lines ls;
    if (!r->differs && t == r->cand && s->epoch == r->epoch + 1 && t->hdrs)
        return 1;
    memset(&ls, 0, sizeof ls);
    if (r->headers) {
        lua_pushnil(L);
        while (lua_next(L, r->headers)) {
            size_t kl, vl;
            const char *k = lua_tolstring(L, -2, &kl), *v = lua_tolstring(L, -1, &vl);
            lua_pop(L, 1);
            put_line(&ls, k, kl, v, vl, 0);
        }
    }
    if (!r->has_ua)
        put_line(&ls, s->ua_line, strlen(s->ua_line), NULL, 0, 0);
    if (!r->has_ae)
        put_line(&ls, s->ae_line, strlen(s->ae_line), NULL, 0, 0);
    if (r->fields) {
        /* libcurl would otherwise claim a form body, and wait a second for
         * "100 Continue" before sending a large one. */
        if (!r->has_ctype)
            put_line(&ls, "Content-Type", 12, "", 0, 1);
        if (!r->has_expect)
            put_line(&ls, "Expect", 6, "", 0, 1);
    }
    if (ls.oom) {
        curl_slist_free_all(ls.out);
        return 0;
    }
    curl_slist_free_all(t->hdrs);
    t->hdrs = ls.out;
    return 1;
}

enum { MODE_GET = 1, MODE_HEAD, MODE_FIELDS };

/* Phase B: per-request options. Never raises; 0 on failure (the caller
 * then forgets the option cache, t->set.valid = 0). */
static int t_prepare(lua_State *L, Session *s, Transfer *t, const Req *r)
{
    CURL *e = t->easy;
    int head = r->mcode == M_HEAD, post = r->mcode == M_POST, get = r->mcode == M_GET;
    int mode = head ? MODE_HEAD : r->fields ? MODE_FIELDS : MODE_GET;
    int follow = get || head;
    int pipewait = s->http2 && strncasecmp(r->url, "https:", 6) == 0;
    const char *custom = (head || post || (get && !r->has_body)) ? "" : r->method;
    long max_idle;
    if (!t_headers(L, s, t, r)) {
        t->setup_rc = CURLE_OUT_OF_MEMORY;
        return 0;
    }
    t->errbuf[0] = '\0';
    t->once = post || r->mcode == M_PATCH;
    t->sends = 0;
    t->max_bytes = (size_t)s->max_bytes;
    if (!t->set.valid) {
        t->set.mode = t->set.follow = t->set.pipewait = -1;
        t->set.timeout_ms = t->set.connect_ms = t->set.max_idle = -1;
        t->set.custom[0] = '\0';
        t->set.url.len = 0;
        t->set.hdrs = NULL;
        SET(CURLOPT_CUSTOMREQUEST, (char *)NULL);
        t->set.valid = 1;
    }
    if (t->set.url.len != r->url_len + 1 || memcmp(t->set.url.p, r->url, r->url_len + 1) != 0) {
        /* libcurl parses a URL given as a string for every transfer and
         * builds it back as a string (~13 k instructions): given it parsed
         * (CURLOPT_CURLU, parsed here once with the flags libcurl uses), it
         * only copies the parts; redirects and retries start from that
         * copy. The string goes in too, so that what libcurl reports as
         * the transfer's URL is this request's. A URL this parser refuses
         * goes in as a string alone, for libcurl to report as it always
         * has. */
        if (!t->uh)
            t->uh = curl_url();
        if (t->uh && curl_url_set(t->uh, CURLUPART_URL, r->url, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) ==
                         CURLUE_OK)
            SET(CURLOPT_CURLU, t->uh);
        else
            SET(CURLOPT_CURLU, (CURLU *)NULL);
        SET(CURLOPT_URL, r->url);
        t->set.url.len = 0;
        /* a failed copy only means the next request sets the URL again */
        (void)inst_buf_append(&t->set.url, r->url, r->url_len + 1);
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
    max_idle = t->once ? s->write_max_idle : REUSE_MAX_IDLE;
    if (max_idle != t->set.max_idle) {
        /* A write goes only on a connection used moments ago (see
         * write_max_idle in http.c); other methods reuse as libcurl does. */
        SET(CURLOPT_MAXAGE_CONN, max_idle);
        t->set.max_idle = max_idle;
    }
    if (t->hdrs != t->set.hdrs) {
        SET(CURLOPT_HTTPHEADER, t->hdrs);
        t->set.hdrs = t->hdrs;
    }
    return 1;
}

#undef SET

/* t's slot for the decoder at r->decode (see Session.dec_fn); the session
 * is at stack index 1. Never allocates: the anchor array has its
 * DEC_SLOTS places from the start. */
static void t_decoder(lua_State *L, Session *s, Transfer *t, const Req *r)
{
    const void *fn;
    int i, free_slot = 0;
    t->dec_slot = 0;
    if (!r->decode)
        return;
    fn = lua_topointer(L, r->decode);
    for (i = 0; i < DEC_SLOTS; i++) {
        if (s->dec_fn[i] == fn) {
            t->dec_slot = i + 1;
            s->dec_users[i]++;
            return;
        }
        if (!free_slot && s->dec_users[i] == 0)
            free_slot = i + 1;
    }
    if (!free_slot)
        return; /* all in use: this one answers with its text */
    if (lua_getiuservalue(L, 1, 3) == LUA_TTABLE) {
        lua_pushvalue(L, r->decode);
        lua_rawseti(L, -2, free_slot);
        s->dec_fn[free_slot - 1] = fn;
        s->dec_users[free_slot - 1] = 1;
        t->dec_slot = free_slot;
    }
    lua_pop(L, 1);
}

/* Validates the request at idx and starts it. Raises on misuse. */
Transfer *http_start(lua_State *L, Session *s, int idx, int sync, int tag)
{
    Req r;
    Transfer *t;
    CURLcode rc;
    CURLMcode mrc = CURLM_OK;
    int top = lua_gettop(L), anchored = 0, ref = 0;
    parse_req(L, s, idx, &r);
    if (!sync && r.has_body) {
        /* submit() returns before curl reads the body: keep it alive. */
        lua_getiuservalue(L, 1, 1);
        lua_getfield(L, idx, "body"); /* the very string r.body points into */
        lua_rawseti(L, -2, s->next_id + 1);
        lua_pop(L, 1);
        anchored = 1;
    }
    if (tag && s->multi) {
        /* The coroutine to resume, referenced until the result is handed
         * over (released without allocating: luaL_unref). */
        lua_getiuservalue(L, 1, 2);
        lua_pushvalue(L, tag);
        ref = luaL_ref(L, -2);
        lua_pop(L, 1);
    }
    if (!s->multi) {
        /* Each anchor above may allocate, and so run a finalizer that
         * closed the session (which dropped both anchor tables). */
        lua_settop(L, top);
        luaL_error(L, "attempt to use a closed session");
        return NULL;
    }
    t = s->idle.head;
    s->epoch++;
    if (t)
        http_list_unlink(&s->idle, t);
    else if (!(t = http_t_new(s, &rc))) {
        if (ref) {
            lua_getiuservalue(L, 1, 2);
            luaL_unref(L, -1, ref);
            lua_pop(L, 1);
        }
        luaL_error(L, "instantly.core: cannot set up a transfer: %s", curl_easy_strerror(rc));
        return NULL;
    }
    /* From here t is linked to the session, so the session frees it. */
    t->state = T_ACTIVE;
    http_list_push(&s->active, t);
    t->id = ++s->next_id;
    t->sync = sync;
    t->raw_head = r.raw_headers;
    t->anchored = anchored;
    t->tag = ref;
    t->owner = ref ? lua_topointer(L, tag + 1) : NULL;
    t_decoder(L, s, t, &r);
    if (!t_prepare(L, s, t, &r) || (mrc = curl_multi_add_handle(s->multi, t->easy)) != CURLM_OK) {
        /* Not in the multi handle: park it as done, then recycle. */
        const char *why = mrc != CURLM_OK ? curl_multi_strerror(mrc) : curl_easy_strerror(t->setup_rc);
        t->set.valid = 0;
        http_list_unlink(&s->active, t);
        t->state = T_DONE;
        http_list_push(&s->done, t);
        http_unanchor(L, t);
        http_t_recycle(s, t);
        lua_settop(L, top);
        luaL_error(L, "instantly.core: cannot start the request: %s", why);
    }
    lua_settop(L, top);
    return t;
}
