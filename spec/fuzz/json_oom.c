/*
 * json_oom.c - allocation-failure sweep for the JSON codec.
 *
 * Runs decode and encode (plain, sorted, indented, and failing halfway)
 * with an allocator that refuses the k-th growth, for every k until a run
 * completes without a refusal. Each run must end in a result, nil plus a
 * message, or a memory error, and once the state is closed every byte it
 * allocated must be back: proof that no failure path leaks. Built and run
 * by spec/json_spec.lua (and by tools/fuzz.sh under the sanitizers).
 *   cc -Icsrc $(pkg-config --cflags lua5.4) spec/fuzz/json_oom.c csrc/json.c $(pkg-config --libs lua5.4)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "core.h"

typedef struct ctl {
    size_t used;     /* bytes currently allocated */
    long growths;    /* growing calls so far */
    long fail_at;    /* refuse growth number fail_at (counted from 1); 0 = never */
    long fail_from;  /* refuse every growth from this number on; 0 = never */
    int refused;
} ctl;

static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    ctl *c = (ctl *)ud;
    size_t old = ptr != NULL ? osize : 0;
    void *p;
    if (nsize == 0) {
        free(ptr);
        c->used -= old;
        return NULL;
    }
    /* Lua requires that shrinking never fails. */
    if (nsize > old && (c->fail_at > 0 || c->fail_from > 0)) {
        ++c->growths;
        if (c->growths == c->fail_at || (c->fail_from > 0 && c->growths >= c->fail_from)) {
            c->refused = 1;
            return NULL;
        }
    }
    p = realloc(ptr, nsize);
    if (p == NULL)
        return NULL;
    c->used = c->used - old + nsize;
    return p;
}

static const char *DOC =
    "{\"items\":[{\"id\":\"c0ffee\",\"name\":\"Q3 \\u00e9 \\ud83d\\ude00 outreach\","
    "\"status\":1,\"daily_limit\":50,\"open_rate\":0.4375,\"big\":9007199254740993,"
    "\"f\":1e300,\"neg\":-0.0,\"n\":null,\"t\":true,\"e\":[],\"o\":{},"
    "\"campaign_schedule\":{\"schedules\":[{\"days\":{\"1\":true,\"2\":false},"
    "\"timing\":{\"from\":\"09:00\",\"to\":\"17:30\"}}]},"
    "\"sequences\":[{\"steps\":[{\"variants\":[{\"subject\":\"Hi\\n\\\"x\\\"\","
    "\"body\":\"<p>line</p>\\n<p>\\u00fcber</p>\"}]}]}]}],\"next\":null}";

/* Option nulls: both of its paths (an object that repeats a key, one
 * that does not), at two depths. */
static const char *NULLS = "{\"a\":null,\"a\":1,\"b\":2,\"b\":null,\"c\":{\"d\":null,\"e\":"
    "[null,{\"f\":null,\"g\":\"long enough to allocate a string\"}]},\"h\":null}";

static const char *BAD = "{\"a\":[1,2,{\"b\":\"\\u00e9 long enough to allocate\",\"c\":[1,2,3,}]}";

/* Calls core[fname](value at idx, opts) in protected mode (max_depth -1:
 * the decoder's option nulls instead). Returns 0 if the outcome is
 * acceptable. */
static int try_call(lua_State *L, const char *fname, int idx, int sorted, int indent, int max_depth)
{
    int status, top = lua_gettop(L);
    lua_getfield(L, 1, fname);
    lua_pushvalue(L, idx);
    lua_createtable(L, 0, 3);
    if (max_depth < 0) {
        lua_newtable(L);
        lua_setfield(L, -2, "nulls");
        max_depth = 0;
    }
    if (sorted) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "sort_keys");
    }
    if (indent) {
        lua_pushinteger(L, indent);
        lua_setfield(L, -2, "indent");
    }
    if (max_depth) {
        lua_pushinteger(L, max_depth);
        lua_setfield(L, -2, "max_depth");
    }
    status = lua_pcall(L, 2, 2, 0);
    if (status == LUA_ERRMEM) {
        lua_settop(L, top);
        return 0;
    }
    if (status != LUA_OK) {
        fprintf(stderr, "%s raised: %s\n", fname, lua_tostring(L, -1));
        return 1;
    }
    if (!lua_isnil(L, -2) || lua_isstring(L, -1)) {
        lua_settop(L, top);
        return 0;
    }
    fprintf(stderr, "%s: neither a result nor nil, message\n", fname);
    return 1;
}

/* Builds a value with a cycle deep inside, for the encoder's error path. */
static void push_cyclic(lua_State *L)
{
    int i;
    lua_newtable(L);
    for (i = 1; i <= 20; i++) {
        lua_newtable(L);
        lua_pushstring(L, "some text to copy");
        lua_setfield(L, -2, "s");
        lua_rawseti(L, -2, i);
    }
    lua_rawgeti(L, -1, 20);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "back"); /* t[20].back = t */
    lua_pop(L, 1);
}

/* A decoder made by json_decoder{nulls = {}, memory_error = "return"}
 * when memory runs out for good at its growth number k (Lua's emergency
 * collection absorbs a single refusal, so this refuses every growth from
 * k on): its call must end in a value, nil plus a message, or nil, "not
 * enough memory", true, never in a raised error, and every byte must
 * come back. Returns 0 if so; *refused tells whether growth k happened,
 * *soft counts the nil, "not enough memory", true outcomes. */
static int run_bound(long k, int *refused, long *soft)
{
    ctl c = {0, 0, 0, 0, 0};
    lua_State *L = lua_newstate(alloc, &c);
    int status, bad = 0;
    if (L == NULL)
        return 1;
    lua_newtable(L);
    inst_json_open(L);
    lua_getfield(L, 1, "json_decoder");
    lua_createtable(L, 0, 2);
    lua_newtable(L);
    lua_setfield(L, -2, "nulls");
    lua_pushliteral(L, "return");
    lua_setfield(L, -2, "memory_error");
    lua_call(L, 1, 1);                /* 2: the decoder */
    lua_pushstring(L, DOC);           /* 3 */
    lua_pushvalue(L, 2);              /* a first call: what the call itself needs exists */
    lua_pushstring(L, NULLS);
    lua_call(L, 1, 0);
    c.growths = 0;
    c.fail_from = k;
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    status = lua_pcall(L, 1, 3, 0);
    c.fail_from = 0;
    *refused = c.refused;
    if (status != LUA_OK) {
        fprintf(stderr, "bound decoder raised: %s\n", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
        bad = 1;
    } else if (lua_isnil(L, -3) && lua_toboolean(L, -1)) {
        if (strcmp(lua_tostring(L, -2), "not enough memory") != 0) {
            fprintf(stderr, "bound decoder: nil, %s, true\n", lua_tostring(L, -2));
            bad = 1;
        }
        ++*soft;
    } else if (lua_isnil(L, -3)) {
        fprintf(stderr, "bound decoder: nil, %s on a valid document\n", lua_tostring(L, -2));
        bad = 1;
    }
    lua_close(L);
    if (c.used != 0) {
        fprintf(stderr, "bound decoder, refusing from growth %ld: %lu bytes not released\n", k,
                (unsigned long)c.used);
        bad = 1;
    }
    return bad;
}

/* One run with growth number fail_at refused (0: none). */
static int run(long fail_at, int *refused)
{
    ctl c = {0, 0, 0, 0, 0};
    lua_State *L = lua_newstate(alloc, &c);
    int bad = 0;
    if (L == NULL)
        return 1;
    lua_newtable(L);                  /* 1: module */
    inst_json_open(L);
    lua_pushstring(L, DOC);           /* 2 */
    lua_pushstring(L, BAD);           /* 3 */
    push_cyclic(L);                   /* 4 */
    lua_pushstring(L, NULLS);         /* 5 */
    lua_getfield(L, 1, "json_decode");
    lua_pushvalue(L, 2);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "setup decode failed\n");
        return 1;
    }                                 /* 6: decoded DOC */
    c.fail_at = fail_at;
    bad |= try_call(L, "json_decode", 2, 0, 0, 0);
    bad |= try_call(L, "json_decode", 3, 0, 0, 0);
    bad |= try_call(L, "json_decode", 2, 0, 0, -1);
    bad |= try_call(L, "json_decode", 5, 0, 0, -1);
    bad |= try_call(L, "json_encode", 6, 0, 0, 0);
    bad |= try_call(L, "json_encode", 6, 1, 0, 0);
    bad |= try_call(L, "json_encode", 6, 1, 2, 0);
    /* the cycle: found at the depth limit, kept small to keep this quick */
    bad |= try_call(L, "json_encode", 4, 0, 0, 80);
    bad |= try_call(L, "json_encode", 4, 1, 0, 80);
    c.fail_at = 0;
    *refused = c.refused;
    lua_close(L);
    if (c.used != 0) {
        fprintf(stderr, "refusing growth %ld: %lu bytes not released\n", fail_at, (unsigned long)c.used);
        bad = 1;
    }
    return bad;
}

int main(void)
{
    long k;
    int refused = 1;
    for (k = 1; refused; k++) {
        if (run(k, &refused) != 0) {
            fprintf(stderr, "json_oom: failed when refusing growth %ld\n", k);
            return 1;
        }
    }
    {
        long j, soft = 0;
        refused = 1;
        for (j = 1; refused; j++) {
            if (run_bound(j, &refused, &soft) != 0) {
                fprintf(stderr, "json_oom: bound decoder failed when refusing from growth %ld\n", j);
                return 1;
            }
        }
        if (soft == 0) {
            fprintf(stderr, "json_oom: the bound decoder never returned a memory failure\n");
            return 1;
        }
        k += j - 1;
    }
    printf("json_oom: %ld allocation-failure points, all clean\n", k - 1);
    return 0;
}
