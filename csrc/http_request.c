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
            r->url = http_opt_string(L, idx, "field", k);
        else if (strcmp(k, "method") == 0)
            check_method(L, idx, r);
        else if (strcmp(k, "body") == 0) {
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_argerror(L, idx, lua_pushfstring(L, "field 'body' must be a string, got %s",
                                                      luaL_typename(L, -1)));
            r->body = lua_tolstring(L, -1, &r->body_len);
            r->has_body = 1;
        } else if (strcmp(k, "timeout") == 0)
            r->timeout_ms = http_opt_seconds(L, idx, "field", k);
        else if (strcmp(k, "connect_timeout") == 0)
            r->connect_timeout_ms = http_opt_seconds(L, idx, "field", k);
        else if (strcmp(k, "raw_headers") == 0)
            r->raw_headers = http_opt_boolean(L, idx, "field", k);
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

/* The header lines of a request, in the order they go to libcurl, are
 * walked twice with the same code: once comparing them with the list the
 * transfer kept from its last request (a client sends the same headers
 * every time, and building the list is a malloc and a copy per line),
 * and only on a difference once more building a new list. */
typedef struct Lines {
    struct curl_slist *cmp; /* compare mode: the next kept line (NULL: past the end) */
    struct curl_slist *out; /* build mode: the list being built */
    int build, differs, oom;
} Lines;

static void put_line(Lines *ls, const char *k, size_t kl, const char *v, size_t vl, int remove)
{
    char small[512], *line;
    if (ls->oom || (!ls->build && ls->differs))
        return;
    if (!(line = header_line(small, sizeof small, k, kl, v, vl, remove))) {
        ls->oom = 1;
        return;
    }
    if (!ls->build) {
        if (!ls->cmp || strcmp(ls->cmp->data, line) != 0)
            ls->differs = 1;
        else
            ls->cmp = ls->cmp->next;
    } else {
        struct curl_slist *n = curl_slist_append(ls->out, line);
        if (n)
            ls->out = n;
        else
            ls->oom = 1;
    }
    if (line != small)
        free(line);
}

static void put_lines(lua_State *L, Session *s, const Req *r, int fields, Lines *ls)
{
    if (r->headers) {
        lua_pushnil(L);
        while (lua_next(L, r->headers)) {
            size_t kl, vl;
            const char *k = lua_tolstring(L, -2, &kl), *v = lua_tolstring(L, -1, &vl);
            lua_pop(L, 1);
            put_line(ls, k, kl, v, vl, 0);
        }
    }
    if (!r->has_ua)
        put_line(ls, s->ua_line, strlen(s->ua_line), NULL, 0, 0);
    if (fields) {
        /* libcurl would otherwise claim a form body, and wait a second for
         * "100 Continue" before sending a large one. */
        if (!r->has_ctype)
            put_line(ls, "Content-Type", 12, "", 0, 1);
        if (!r->has_expect)
            put_line(ls, "Expect", 6, "", 0, 1);
    }
}

/* Makes t->hdrs the request's header list: the kept one when it is the
 * same, else a new one. 0 when out of memory (t->hdrs is then intact). */
static int t_headers(lua_State *L, Session *s, Transfer *t, const Req *r, int fields)
{
    Lines ls;
    memset(&ls, 0, sizeof ls);
    ls.cmp = t->hdrs;
    put_lines(L, s, r, fields, &ls);
    if (!ls.oom && !ls.differs && ls.cmp == NULL && t->hdrs)
        return 1;
    memset(&ls, 0, sizeof ls);
    ls.build = 1;
    put_lines(L, s, r, fields, &ls);
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
    int head = strcmp(r->method, "HEAD") == 0, post = strcmp(r->method, "POST") == 0;
    int get = strcmp(r->method, "GET") == 0;
    int mode = head ? MODE_HEAD : (r->has_body || post) ? MODE_FIELDS : MODE_GET;
    int follow = get || head;
    int pipewait = s->http2 && strncasecmp(r->url, "https:", 6) == 0;
    const char *custom = (head || post || (get && !r->has_body)) ? "" : r->method;
    size_t url_len = strlen(r->url);
    long max_idle;
    if (!t_headers(L, s, t, r, mode == MODE_FIELDS)) {
        t->setup_rc = CURLE_OUT_OF_MEMORY;
        return 0;
    }
    t->errbuf[0] = '\0';
    t->once = post || strcmp(r->method, "PATCH") == 0;
    t->sends = 0;
    t->max_bytes = (size_t)s->max_bytes;
    if (!t->set.valid) {
        t->set.mode = t->set.follow = t->set.pipewait = -1;
        t->set.timeout_ms = t->set.connect_ms = t->set.max_idle = -1;
        t->set.custom[0] = '\0';
        t->set.url.len = 0;
        SET(CURLOPT_CUSTOMREQUEST, (char *)NULL);
        t->set.valid = 1;
    }
    if (t->set.url.len != url_len + 1 || memcmp(t->set.url.p, r->url, url_len + 1) != 0) {
        SET(CURLOPT_URL, r->url);
        t->set.url.len = 0;
        /* a failed copy only means the next request sets the URL again */
        (void)inst_buf_append(&t->set.url, r->url, url_len + 1);
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
    SET(CURLOPT_HTTPHEADER, t->hdrs);
    return 1;
}

#undef SET

/* Validates the request at idx and starts it. Raises on misuse. */
Transfer *http_start(lua_State *L, Session *s, int idx, int sync)
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
        http_list_unlink(&s->idle, t);
    else if (!(t = http_t_new(s, &rc))) {
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
    if (!t_prepare(L, s, t, &r) || (mrc = curl_multi_add_handle(s->multi, t->easy)) != CURLM_OK) {
        /* Not in the multi handle: park it as done, then recycle. */
        const char *why = mrc != CURLM_OK ? curl_multi_strerror(mrc) : curl_easy_strerror(t->setup_rc);
        t->set.valid = 0;
        http_list_unlink(&s->active, t);
        t->state = T_DONE;
        http_list_push(&s->done, t);
        http_t_recycle(s, t);
        lua_settop(L, top);
        luaL_error(L, "instantly.core: cannot start the request: %s", why);
    }
    lua_settop(L, top);
    return t;
}
