/*
 * http_result.c - what a finished transfer becomes in Lua: status, body
 * and the headers table, or nil and a transport error ({kind, message,
 * curl_code}). Results are pushed while the transfer is still linked.
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

/* Names already set, for a table that started empty (see fill_headers). */
#define SEEN_MAX 48

static int seen_before(const char *const *names, const size_t *lens, int n, const char *name, size_t len)
{
    int i;
    for (i = 0; i < n; i++)
        if (lens[i] == len && strncasecmp(names[i], name, len) == 0)
            return 1;
    return 0;
}

/* Adds the header lines of p[0..len) to the table at tbl: lower-case
 * names, values trimmed, repeated headers joined with ", ", obsolete line
 * folding joined with " ", status lines skipped. When the table started
 * empty (fresh), a name is looked up in the table only if an earlier line
 * of the block had it: a response seldom repeats one, and the look-up
 * costs as much as the insertion. */
static void fill_headers(lua_State *L, const char *p, size_t len, int tbl, int fresh)
{
    const char *end = p + len, *prev = NULL;
    const char *names[SEEN_MAX];
    size_t prev_len = 0, lens[SEEN_MAX];
    int n = 0;
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
        if (fresh && n < SEEN_MAX && !seen_before(names, lens, n, prev, prev_len)) {
            names[n] = prev;
            lens[n++] = prev_len;
            lua_pushlstring(L, v, (size_t)(ve - v));
        } else {
            lua_pushvalue(L, -1);
            if (lua_rawget(L, tbl) == LUA_TSTRING) { /* repeated: join */
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, v, (size_t)(ve - v));
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, v, (size_t)(ve - v));
            }
        }
        lua_rawset(L, tbl);
    }
}

/* Room for the headers of a block, guessed from its length (a header
 * line is some 30 bytes; a hint only, so the block is not walked for
 * it), at most 64 (a huge block must not reserve a huge table). */
static int headers_hint(size_t len)
{
    return len / 24 > 64 ? 64 : (int)(len / 24);
}

/* The final response's header block: a {lower-case name = value} table,
 * or the block itself when the request asked for raw_headers (building
 * the table is a tenth of a small request's cost; the SDK parses it only
 * when something reads a header, with core.parse_headers). */
static void push_headers(lua_State *L, const Transfer *t)
{
    if (t->raw_head) {
        lua_pushlstring(L, t->head.p ? t->head.p : "", t->head.len);
        return;
    }
    lua_createtable(L, 0, headers_hint(t->head.len));
    fill_headers(L, t->head.p, t->head.len, lua_gettop(L), 1);
}

/* core.parse_headers(block [, into]) -> table: the header lines of a raw
 * block (what a raw_headers request returns) added to `into` (default: a
 * new table), exactly as a request without raw_headers reports them. */
int http_parse_headers(lua_State *L)
{
    size_t len;
    const char *p = luaL_checklstring(L, 1, &len);
    int fresh = lua_isnoneornil(L, 2);
    if (fresh)
        lua_createtable(L, 0, headers_hint(len));
    else {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_settop(L, 2);
    }
    fill_headers(L, p, len, lua_gettop(L), fresh);
    return 1;
}

/* status, body, headers -- or nil, err. Leaves t untouched. With the
 * decoder at dec (0: none), a 2xx answer with a body (not 204) is
 * decoded from the transfer's buffer: status, value, headers, true; one
 * that does not decode is handed over as text, for the caller to find
 * out why (the same decoder on the same bytes). */
static int push_values(lua_State *L, Transfer *t, int dec)
{
    long status = 0;
    if (t->result != CURLE_OK || t->too_large) {
        lua_pushnil(L);
        push_transfer_error(L, t);
        return 2;
    }
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    lua_pushinteger(L, status);
    if (dec && status >= 200 && status < 300 && status != 204 && t->body.len > 0) {
        int n = inst_json_decode_span(L, dec, t->body.p, t->body.len);
        if (n == 1) {
            push_headers(L, t);
            lua_pushboolean(L, 1);
            return 4;
        }
        lua_pop(L, n);
    }
    lua_pushlstring(L, t->body.p ? t->body.p : "", t->body.len);
    push_headers(L, t);
    return 3;
}

/* Arguments: t (light userdata), whether to make poll's entry table
 * {id =, status =, body =, headers = [, decoded = true]} or {id =, err =}
 * instead, the decoder or nil. */
static int push_protected(lua_State *L)
{
    Transfer *t = (Transfer *)lua_touserdata(L, 1);
    int entry = lua_toboolean(L, 2), dec = lua_isnil(L, 3) ? 0 : 3, n;
    if (!entry)
        return push_values(L, t, dec);
    lua_createtable(L, 0, 5); /* 4 */
    lua_pushinteger(L, t->id);
    lua_setfield(L, 4, "id");
    n = push_values(L, t, dec);
    if (n == 2) {
        lua_setfield(L, 4, "err");
        lua_pop(L, 1);
        return 1;
    }
    if (n == 4)
        lua_setfield(L, 4, "decoded");
    lua_setfield(L, 4, "headers");
    lua_setfield(L, 4, "body");
    lua_setfield(L, 4, "status");
    return 1;
}

/* The session is at stack index 1 (for its decoders).
 * Every allocation of a push may run finalizers, which may call the
 * session: meanwhile t is the session's `handing`, so that check_open
 * refuses it and a close leaves t alone (its pusher recycles it, which
 * frees it then). The push runs protected only to clear `handing` before
 * a memory error goes on; t is still linked then, so nothing is lost. */
static int push_guarded(lua_State *L, Transfer *t, int entry)
{
    Session *s = t->s;
    int top = lua_gettop(L), status;
    lua_pushcfunction(L, push_protected);
    lua_pushlightuserdata(L, t);
    lua_pushboolean(L, entry);
    if (!t->dec_slot)
        lua_pushnil(L);
    else if (lua_getiuservalue(L, 1, 3) == LUA_TTABLE) { /* the decoders */
        lua_rawgeti(L, -1, t->dec_slot);
        lua_remove(L, -2);
    } /* (else closed: the nil pushed stays) */
    s->handing = t;
    status = lua_pcall(L, 3, LUA_MULTRET, 0);
    s->handing = NULL;
    if (status != LUA_OK)
        lua_error(L);
    return lua_gettop(L) - top;
}

/* status, body, headers -- or nil, err. May raise; t stays linked. */
int http_push_result(lua_State *L, Transfer *t)
{
    return push_guarded(L, t, 0);
}

/* poll's entry for t (one table). May raise; t stays linked. */
int http_push_entry(lua_State *L, Transfer *t)
{
    return push_guarded(L, t, 1);
}

/* Lets go of what the session (at stack index 1) holds for t in Lua: its
 * anchored body and the coroutine it was submitted with. Never raises. */
void http_unanchor(lua_State *L, Transfer *t)
{
    if (t->tag) {
        if (lua_getiuservalue(L, 1, 2) == LUA_TTABLE)
            luaL_unref(L, -1, t->tag); /* existing keys: never allocates */
        lua_pop(L, 1);
        t->tag = 0;
    }
    if (!t->anchored)
        return;
    if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE) {
        lua_pushnil(L);
        lua_rawseti(L, -2, t->id); /* clearing an existing key never allocates */
    }
    lua_pop(L, 1);
}
