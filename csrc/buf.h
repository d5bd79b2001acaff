/*
 * buf.h - the one growable byte buffer of instantly.core.
 *
 * A buffer is C memory described by p, len, cap and the allocator it grows
 * with: a lua_Alloc (the state's, so a host that limits or counts Lua's
 * memory sees it) or, with alloc == NULL, the C library's realloc/free.
 *
 * Two ways to grow, one for each kind of caller:
 *   inst_buf_reserve(b, n)   room for n more bytes after len; returns 0, or
 *                            -1 when the memory is not there or the size
 *                            would overflow. Never raises, never touches a
 *                            lua_State: the one to use inside libcurl
 *                            callbacks and any code that must not longjmp.
 *   inst_buf_need(L, b, n)   the same, raising Lua's memory error ("not
 *                            enough memory", status LUA_ERRMEM) instead.
 * inst_buf_append and inst_buf_push add bytes the non-raising way;
 * inst_buf_free releases the memory and leaves an empty, reusable buffer.
 *
 * Who frees it: a buffer inside a C struct is freed by that struct's owner
 * (a parser's __gc, a transfer's cleanup). inst_buf_box(L, size) instead
 * pushes a userdata that starts with a buffer on the state's allocator and
 * frees it from __gc/__close, so a Lua error anywhere leaks nothing.
 *
 * Header-only (static inline): each part of the core includes it, and the
 * fuzzers and sweeps that build json.c alone need nothing more.
 */
#ifndef INSTANTLY_BUF_H
#define INSTANTLY_BUF_H

#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#define INST_BUF_MT "instantly.buffer"
#define INST_BUF_MIN 256

typedef struct inst_buf {
    char *p;
    size_t len, cap;
    lua_Alloc alloc;   /* NULL: realloc/free */
    void *ud;
} inst_buf;

/* An empty buffer on the C library's allocator (alloc NULL). */
#define INST_BUF_INIT {NULL, 0, 0, NULL, NULL}

/* The slow paths stay out of line (a part that never grows a buffer
 * does not warn about them either). */
#if defined(__GNUC__) || defined(__clang__)
#define INST_BUF_COLD static __attribute__((noinline, cold, unused))
#define INST_BUF_LIKELY(x) __builtin_expect(!!(x), 1)
#else
#define INST_BUF_COLD static inline
#define INST_BUF_LIKELY(x) (x)
#endif

/* An empty buffer growing with alloc/ud (alloc NULL: realloc/free). */
static inline void inst_buf_init(inst_buf *b, lua_Alloc alloc, void *ud)
{
    b->p = NULL;
    b->len = b->cap = 0;
    b->alloc = alloc;
    b->ud = ud;
}

/* The slow half of inst_buf_reserve: doubles until n more bytes fit. */
INST_BUF_COLD int inst_buf_grow(inst_buf *b, size_t n)
{
    size_t want = b->len + n, cap = b->cap ? b->cap : INST_BUF_MIN;
    void *np;
    if (want < b->len)
        return -1; /* overflow */
    while (cap < want)
        cap = cap > ((size_t)-1) / 2 ? want : cap * 2;
    np = b->alloc != NULL ? b->alloc(b->ud, b->p, b->cap, cap) : realloc(b->p, cap);
    if (np == NULL)
        return -1;
    b->p = (char *)np;
    b->cap = cap;
    return 0;
}

static inline int inst_buf_reserve(inst_buf *b, size_t n)
{
    if (INST_BUF_LIKELY(b->cap - b->len >= n))
        return 0;
    return inst_buf_grow(b, n);
}

static inline int inst_buf_append(inst_buf *b, const void *s, size_t n)
{
    if (n == 0)
        return 0;
    if (inst_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static inline int inst_buf_push(inst_buf *b, char c)
{
    if (inst_buf_reserve(b, 1) != 0)
        return -1;
    b->p[b->len++] = c;
    return 0;
}

static inline void inst_buf_free(inst_buf *b)
{
    if (b->p != NULL) {
        if (b->alloc != NULL)
            b->alloc(b->ud, b->p, b->cap, 0);
        else
            free(b->p);
    }
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Raises Lua's memory error. The message is the state's preallocated
 * one, so raising it allocates nothing. */
INST_BUF_COLD void inst_buf_nomem(lua_State *L)
{
    lua_pushliteral(L, "not enough memory");
    lua_error(L);
}

static inline void inst_buf_need(lua_State *L, inst_buf *b, size_t n)
{
    if (inst_buf_reserve(b, n) != 0)
        inst_buf_nomem(L);
}

static inline int inst_buf_gc(lua_State *L)
{
    inst_buf_free((inst_buf *)luaL_checkudata(L, 1, INST_BUF_MT));
    return 0;
}

/* Pushes a userdata of size bytes (at least sizeof(inst_buf); the rest,
 * zeroed, is the caller's) whose first member is an empty buffer on the
 * state's allocator, freed by __gc and __close. */
static inline inst_buf *inst_buf_box(lua_State *L, size_t size)
{
    void *ud;
    lua_Alloc alloc = lua_getallocf(L, &ud);
    inst_buf *b = (inst_buf *)lua_newuserdatauv(L, size, 0);
    memset(b, 0, size);
    inst_buf_init(b, alloc, ud);
    if (luaL_newmetatable(L, INST_BUF_MT)) {
        lua_pushcfunction(L, inst_buf_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, inst_buf_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    return b;
}

#endif
