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
 *   - A push allocates, so finalizers may run in it: the session is busy
 *     meanwhile (check_open refuses it) and a close leaves the transfer
 *     being pushed to its pusher (Session.handing, http_push_result).
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
#include <sys/select.h>

#include "http_impl.h"

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
static char accept_encoding[64];

/* The Accept-Encoding line libcurl would build for CURLOPT_ACCEPT_ENCODING
 * "" (every decoder it has, in its own order), sent by the core as one of
 * the request's header lines instead: libcurl formats its own line afresh
 * for every request and then copies it once more into the request, byte
 * by byte through its printf, which costs about 3.5 k instructions a
 * request (more than all of request()'s own work). The decoders are still
 * enabled by CURLOPT_ACCEPT_ENCODING, so what comes back is decoded. */
static void set_accept_encoding(long features)
{
    char *p = accept_encoding, *end = accept_encoding + sizeof accept_encoding;
    p += snprintf(p, (size_t)(end - p), "Accept-Encoding: ");
    if (features & CURL_VERSION_LIBZ)
        p += snprintf(p, (size_t)(end - p), "deflate, gzip, ");
#ifdef CURL_VERSION_BROTLI
    if (features & CURL_VERSION_BROTLI)
        p += snprintf(p, (size_t)(end - p), "br, ");
#endif
#ifdef CURL_VERSION_ZSTD
    if (features & CURL_VERSION_ZSTD)
        p += snprintf(p, (size_t)(end - p), "zstd, ");
#endif
    if (p[-1] == ' ')
        p[-2] = '\0';
    else
        snprintf(p, (size_t)(end - p), "identity");
}

static void global_init(void)
{
    curl_version_info_data *ci;
    init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
    ci = curl_version_info(CURLVERSION_NOW);
    curl_num = ci->version_num;
    curl_too_old = curl_num < MIN_CURL_NUM;
    curl_http2 = (ci->features & CURL_VERSION_HTTP2) != 0;
    snprintf(curl_ver, sizeof curl_ver, "%s", ci->version);
    set_accept_encoding((long)ci->features);
}

/* The libcurl version string, read once: safe from any thread. */
const char *inst_curl_version(void)
{
    pthread_once(&init_once, global_init);
    return curl_ver;
}

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
/* Lua-facing helpers                                                  */

/* The session methods carry the metatable as their upvalue: comparing
 * with it is what luaL_checkudata does, without looking the metatable up
 * by name in the registry on every call (a tenth of a small request's own
 * cost in the core, for a submit/take loop making four calls a request). */
static Session *check_open(lua_State *L)
{
    Session *s = (Session *)lua_touserdata(L, 1);
    if (lua_type(L, 1) != LUA_TUSERDATA || !lua_getmetatable(L, 1))
        luaL_typeerror(L, 1, SESSION_MT);
    if (!lua_rawequal(L, -1, lua_upvalueindex(1)))
        luaL_typeerror(L, 1, SESSION_MT);
    lua_pop(L, 1);
    if (!s->multi)
        luaL_error(L, "attempt to use a closed session");
    if (s->handing)
        luaL_error(L, "instantly.core: the session is busy handing over a result "
                      "(called from a finalizer)");
    return s;
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

/* A proxy variable as libcurl reads it: the lower-case name, then the
 * upper-case one if given; an empty value counts as unset. */
static const char *env_var(const char *lower, const char *upper)
{
    const char *v = getenv(lower);
    if ((!v || !*v) && upper)
        v = getenv(upper);
    return v && *v ? v : NULL;
}

/* The proxy environment is read once, when the session is made: left to
 * itself, libcurl reads it for every request (five getenv calls, ~1.7 k
 * instructions, a tenth of what request() costs on top of libcurl). The
 * rules are libcurl's (7.88, url.c: detect_proxy and its no_proxy check):
 * http:// URLs use http_proxy (never HTTP_PROXY, which a CGI client may
 * have set from a request header), https:// ones https_proxy or
 * HTTPS_PROXY, both fall back to all_proxy or ALL_PROXY, and no_proxy or
 * NO_PROXY lists hosts that go direct, even with the proxy option. The
 * session's proxy is "" (none) when no variable names one, the value when
 * both schemes get the same one; only when they differ is the choice
 * left to libcurl, per request, as before. */
static const char *env_proxy(void)
{
    const char *all = env_var("all_proxy", "ALL_PROXY");
    const char *http = env_var("http_proxy", NULL), *https = env_var("https_proxy", "HTTPS_PROXY");
    if (!http)
        http = all;
    if (!https)
        https = all;
    if (!http && !https)
        return "";
    if (http && https && strcmp(http, https) == 0)
        return http;
    return NULL;
}

/* core.session([opts]) -> Session
 *
 * write_max_idle: a POST or PATCH reuses a kept-alive connection only if
 * it has been idle at most this many whole seconds (libcurl counts idle
 * time in whole seconds, so 2 means "under 3 s"). A server closes idle
 * connections on its own clock (Node 5 s, nginx 75 s, load balancers
 * 60 s); a request sent as the close goes out is lost, and a write must
 * not be sent again (see on_prereq), so it fails. A connection used
 * moments ago is not about to be closed. Other methods reuse connections
 * idle up to libcurl's default 118 s: they may be retried. */
static int l_session(lua_State *L)
{
    const char *ua = NULL, *ca_file = NULL, *ca_path = NULL, *proxy = NULL, *no_proxy;
    long timeout_ms = (long)(DEFAULT_TIMEOUT * 1000), connect_ms = (long)(DEFAULT_CONNECT_TIMEOUT * 1000);
    long write_max_idle = DEFAULT_WRITE_MAX_IDLE;
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
                ua = http_opt_string(L, 1, "option", k);
                if (*ua == '\0' || strpbrk(ua, "\r\n"))
                    luaL_argerror(L, 1, "option 'user_agent' must be non-empty, without CR or LF");
            }
            else if (strcmp(k, "ca_file") == 0)
                ca_file = http_opt_string(L, 1, "option", k);
            else if (strcmp(k, "ca_path") == 0)
                ca_path = http_opt_string(L, 1, "option", k);
            else if (strcmp(k, "proxy") == 0)
                proxy = http_opt_string(L, 1, "option", k);
            else if (strcmp(k, "timeout") == 0)
                timeout_ms = http_opt_seconds(L, 1, "option", k);
            else if (strcmp(k, "connect_timeout") == 0)
                connect_ms = http_opt_seconds(L, 1, "option", k);
            else if (strcmp(k, "insecure") == 0)
                insecure = http_opt_boolean(L, 1, "option", k);
            else if (strcmp(k, "http2") == 0)
                http2 = http_opt_boolean(L, 1, "option", k);
            else if (strcmp(k, "max_response_bytes") == 0) {
                if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) <= 0)
                    luaL_argerror(L, 1, "option 'max_response_bytes' must be a positive integer");
                max_bytes = lua_tointeger(L, -1);
            } else if (strcmp(k, "write_max_idle") == 0) {
                if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > REUSE_MAX_IDLE)
                    luaL_argerror(L, 1, "option 'write_max_idle' must be an integer from 0 to 118");
                write_max_idle = (long)lua_tointeger(L, -1);
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
    if (!proxy)
        proxy = env_proxy();
    no_proxy = env_var("no_proxy", "NO_PROXY");
    if (!ua) {
        snprintf(default_ua, sizeof default_ua, "instantly-lua/%s libcurl/%s", INSTANTLY_VERSION, curl_ver);
        ua = default_ua;
    }

    /* Phase B: a closed handle with its metatable first, then acquire. */
    s = (Session *)lua_newuserdatauv(L, sizeof *s, 3);
    memset(s, 0, sizeof *s);
    luaL_setmetatable(L, SESSION_MT);
    lua_newtable(L); /* anchors: id -> body string of submitted requests */
    lua_setiuservalue(L, -2, 1);
    lua_newtable(L); /* tags: luaL_ref -> coroutine of a submit(req, co, token) */
    lua_setiuservalue(L, -2, 2);
    lua_createtable(L, DEC_SLOTS, 0); /* decoders of requests with `decode` */
    lua_setiuservalue(L, -2, 3);
    s->stats = get_stats(L);
    s->ae_line = accept_encoding;
    s->timeout_ms = timeout_ms;
    s->connect_timeout_ms = connect_ms;
    s->write_max_idle = write_max_idle;
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
    s->no_proxy = dupstr(no_proxy ? no_proxy : "");
    if (!s->ua_line || (ca_file && !s->ca_file) || (ca_path && !s->ca_path) || (proxy && !s->proxy) ||
        !s->no_proxy)
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
        http_session_release(s);
        return luaL_error(L, "instantly.core: not enough memory for a session");
    }
    s->stats->sessions++;
    s->counted = 1;
    return 1;
}

/* session:request(req) -> status, body, headers | nil, err */
static int l_request(lua_State *L)
{
    Session *s = check_open(L);
    Transfer *t;
    http_drop_orphans(s);
    t = http_start(L, s, 2, 1, 0);
    int n;
    http_drive(s);
    while (t->state != T_DONE) {
        http_wait_activity(s, 1000);
        http_drive(s);
    }
    n = http_push_result(L, t);
    http_t_recycle(s, t);
    return n;
}

/* session:submit(req [, token]) -> id
 * With a token (a table, compared by identity), the transfer belongs to
 * the calling coroutine: dispatch(token) resumes it with the result. */
static int l_submit(lua_State *L)
{
    Session *s = check_open(L);
    Transfer *t;
    int tag = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_settop(L, 3);
        if (lua_pushthread(L)) /* 4: the coroutine, 5: the token */
            return luaL_error(L, "submit with a token outside a coroutine");
        lua_pushvalue(L, 3);
        tag = 4;
    }
    t = http_start(L, s, 2, 0, tag);
    lua_pushinteger(L, t->id);
    return 1;
}

/* session:take([timeout]) -> id, status, body, headers | id, nil, err | nothing
 * One finished transfer at a time, as plain values: what poll reports
 * without a table per result (the scheduler of client:gather uses it).
 * With a timeout (0 included) it first runs the transfers, waiting up to
 * that long for one to finish; without one it only hands over what is
 * already finished, so draining after a take(t) costs no extra run. */
static int l_take(lua_State *L)
{
    Session *s = check_open(L);
    int drive = !lua_isnoneornil(L, 2);
    double wait = luaL_optnumber(L, 2, 0);
    Transfer *t;
    int n;
    luaL_argcheck(L, wait >= 0, 2, "timeout must be a non-negative number of seconds");
    http_drop_orphans(s);
    if (s->done.n == 0 && drive)
        http_await_done(s, wait);
    if ((t = s->done.head) == NULL)
        return 0;
    lua_pushinteger(L, t->id);
    n = http_push_result(L, t);
    http_unanchor(L, t);
    http_t_recycle(s, t);
    return n + 1;
}

/* The first finished transfer submitted with `owner`'s token, or NULL. */
static Transfer *done_of(const Session *s, const void *owner)
{
    Transfer *t;
    for (t = s->done.head; t; t = t->next)
        if (t->tag && t->owner == owner)
            return t;
    return NULL;
}

/* How many transfers submitted with `owner`'s token are pending. */
static lua_Integer owned(const Session *s, const void *owner)
{
    const Transfer *t;
    lua_Integer n = 0;
    for (t = s->done.head; t; t = t->next)
        n += t->tag && t->owner == owner;
    for (t = s->active.head; t; t = t->next)
        n += t->tag && t->owner == owner;
    return n;
}

/* session:dispatch(token [, timeout]) -> pending [, co, ok, ...]
 * The hot loop of client:gather's scheduler. Runs the transfers as
 * take(timeout) does (without a timeout: only hands over what is
 * finished), then for each finished transfer submitted with this token
 * (submit(req, token)) resumes its coroutine with what take returns after
 * the id (status, body, headers or nil, err), the transfer released
 * first. A coroutine that yields exactly one value, the token, has done
 * what the caller expects of it (submitted its next transfer, say) and
 * the loop goes on; anything else (a return, an error, other values)
 * stops it. Returns how many transfers with this token are still
 * pending, then, if a coroutine stopped the loop, that coroutine and what
 * coroutine.resume returned. Other transfers are left alone. */
static int l_dispatch(lua_State *L)
{
    Session *s = check_open(L);
    int drive = !lua_isnoneornil(L, 3);
    double wait = luaL_optnumber(L, 3, 0);
    const void *owner;
    Transfer *t;
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_argcheck(L, wait >= 0, 3, "timeout must be a non-negative number of seconds");
    owner = lua_topointer(L, 2);
    lua_settop(L, 3);
    lua_getiuservalue(L, 1, 2); /* 4: the tags */
    http_drop_orphans(s);
    if (drive) {
        /* As http_await_done, but what counts is a transfer of ours: one
         * of another owner waiting in the done list must not make this a
         * busy loop. The clock is read only when there is a wait. */
        double deadline = 0;
        http_drive(s);
        while (!done_of(s, owner) && owned(s, owner) > 0 && wait > 0) {
            double now = inst_monotime(), rest;
            if (deadline == 0)
                deadline = now + (wait > 1e9 ? 1e9 : wait);
            rest = deadline - now;
            if (rest <= 0)
                break;
            http_wait_activity(s, rest > 1.0 ? 1000 : (int)ceil(rest * 1000.0));
            http_drive(s);
        }
    }
    while ((t = done_of(s, owner)) != NULL) {
        lua_State *co;
        int nargs, status, nres;
        lua_rawgeti(L, 4, t->tag); /* 5: the coroutine */
        co = lua_tothread(L, 5);
        nargs = http_push_result(L, t); /* 6..: may raise; t is still linked */
        http_unanchor(L, t);
        http_t_recycle(s, t);
        if (!co || lua_status(co) != LUA_YIELD || !lua_checkstack(co, nargs)) {
            /* (not suspended in a yield: running, normal or dead) */
            lua_settop(L, 5);
            lua_pushinteger(L, owned(s, owner));
            lua_insert(L, 5);
            lua_pushboolean(L, 0);
            lua_pushliteral(L, "cannot resume non-suspended coroutine");
            return 4;
        }
        lua_xmove(L, co, nargs);
        status = lua_resume(co, L, nargs, &nres);
        if (status == LUA_YIELD && nres == 1) {
            lua_xmove(co, L, 1); /* 6 */
            if (lua_rawequal(L, 6, 2)) {
                lua_settop(L, 4);
                continue;
            }
            lua_pushinteger(L, owned(s, owner));
            lua_pushvalue(L, 5);
            lua_pushboolean(L, 1);
            lua_rotate(L, 6, -1); /* left, co, true, value */
            return 4;
        }
        if (status != LUA_OK && status != LUA_YIELD) {
            lua_pushinteger(L, owned(s, owner));
            lua_pushvalue(L, 5);
            lua_pushboolean(L, 0);
            lua_xmove(co, L, 1); /* the error value */
            return 4;
        }
        if (!lua_checkstack(L, nres + 3)) {
            lua_pop(co, nres);
            return luaL_error(L, "too many results to resume");
        }
        lua_pushinteger(L, owned(s, owner));
        lua_pushvalue(L, 5);
        lua_pushboolean(L, 1);
        lua_xmove(co, L, nres);
        return 3 + nres;
    }
    lua_pushinteger(L, owned(s, owner));
    return 1;
}

/* session:poll([timeout]) -> { {id=, status=, body=, headers=} | {id=, err=} ... } */
static int l_poll(lua_State *L)
{
    Session *s = check_open(L);
    double wait = luaL_optnumber(L, 2, 0);
    Transfer *t;
    int i, n;
    luaL_argcheck(L, wait >= 0, 2, "timeout must be a non-negative number of seconds");
    http_drop_orphans(s);
    http_await_done(s, wait);
    lua_createtable(L, s->done.n, 0); /* may run finalizers: n is read after */
    n = s->done.n;
    /* Only pushes between here and the release loop allocate (a close
     * from a finalizer there leaves the done list with the transfer being
     * pushed alone, see http_push_entry); the array holds n entries. */
    for (i = 1, t = s->done.head; t && i <= n; t = t->next, i++) {
        http_push_entry(L, t);
        lua_rawseti(L, -2, i);
    }
    /* Everything is in Lua now: release the transfers. */
    while ((t = s->done.head) != NULL && n-- > 0) {
        http_unanchor(L, t);
        http_t_recycle(s, t);
    }
    return 1;
}

/* session:pending() -> submitted transfers not yet returned by poll */
static int l_pending(lua_State *L)
{
    Session *s = check_open(L);
    http_drop_orphans(s);
    lua_pushinteger(L, (lua_Integer)s->active.n + s->done.n);
    return 1;
}

/* session:cancel(id) -> true if it was pending (it will not be reported)
 * session:cancel(token) -> how many pending transfers submitted with that
 * token (submit(req, co, token)) were stopped */
static int l_cancel(lua_State *L)
{
    Session *s = check_open(L);
    const void *owner = lua_type(L, 2) == LUA_TTABLE ? lua_topointer(L, 2) : NULL;
    lua_Integer id = owner ? 0 : luaL_checkinteger(L, 2), n = 0;
    List *lists[2];
    int i;
    lists[0] = &s->active;
    lists[1] = &s->done;
    for (i = 0; i < 2; i++) {
        Transfer *t, *next;
        for (t = lists[i]->head; t; t = next) {
            next = t->next;
            if (owner ? (t->tag && t->owner == owner) : (t->id == id && !t->sync)) {
                http_unanchor(L, t);
                http_t_recycle(s, t);
                if (!owner) {
                    lua_pushboolean(L, 1);
                    return 1;
                }
                n++;
            }
        }
    }
    if (owner)
        lua_pushinteger(L, n);
    else
        lua_pushboolean(L, 0);
    return 1;
}

/* session:close(); also __gc and __close. Idempotent. */
static int l_close(lua_State *L)
{
    Session *s = (Session *)luaL_checkudata(L, 1, SESSION_MT);
    http_session_release(s);
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 1); /* drop the anchored bodies now */
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 2); /* and the coroutines of pending transfers */
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 3); /* and the decoders */
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

/* core.wait_sessions({session, ...}, timeout): blocks until any of the
 * sessions has socket activity or a libcurl timer due, or `timeout`
 * seconds pass; returns nothing. One curl_multi_poll waits on one multi
 * handle only; a loop driving several sessions (client:gather across
 * clients) waits here on all of them at once, then runs each. Sessions
 * with nothing in flight are skipped; a session whose sockets libcurl
 * cannot report yet (resolving a name) shortens the wait to 50 ms. */
static int l_wait_sessions(lua_State *L)
{
    fd_set r, w, x;
    struct timeval tv;
    int maxfd = -1, i, n;
    double wait = luaL_checknumber(L, 2);
    long ms;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argcheck(L, wait >= 0, 2, "timeout must be a non-negative number of seconds");
    ms = wait > 1e6 ? 1000000000L : (long)ceil(wait * 1000.0);
    n = (int)luaL_len(L, 1);
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_ZERO(&x);
    for (i = 1; i <= n; i++) {
        Session *s;
        int mfd = -1;
        long t = -1;
        lua_rawgeti(L, 1, i);
        s = (Session *)luaL_testudata(L, -1, SESSION_MT);
        if (!s)
            return luaL_argerror(L, 1, lua_pushfstring(L, "item %d is not a session", i));
        if (!s->multi)
            return luaL_argerror(L, 1, lua_pushfstring(L, "session %d is closed", i));
        lua_pop(L, 1);
        if (s->active.n == 0)
            continue;
        if (s->done.n > 0) /* something to collect already: do not wait */
            ms = 0;
        if (curl_multi_fdset(s->multi, &r, &w, &x, &mfd) != CURLM_OK || mfd < 0)
            ms = ms > 50 ? 50 : ms;
        else if (mfd > maxfd)
            maxfd = mfd;
        if (curl_multi_timeout(s->multi, &t) == CURLM_OK && t >= 0 && t < ms)
            ms = t;
    }
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    /* An interrupted or failed select is a short wait; the caller re-checks. */
    (void)select(maxfd + 1, &r, &w, &x, &tv);
    return 0;
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
    {"dispatch", l_dispatch},
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
    {"parse_headers", http_parse_headers},
    {"wait_sessions", l_wait_sessions},
    {NULL, NULL}
};

void inst_http_open(lua_State *L)
{
    pthread_once(&init_once, global_init);
    if (luaL_newmetatable(L, SESSION_MT)) {
        luaL_setfuncs(L, metamethods, 0);
        luaL_newlibtable(L, methods);
        lua_pushvalue(L, -2);
        luaL_setfuncs(L, methods, 1); /* the metatable, for check_open */
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
