/*
 * json_fuzz.c - libFuzzer target for the JSON codec (tools/fuzz.sh runs it).
 *
 * Each input is decoded; whatever decodes must encode, and the canonical
 * encoding (sorted keys) must be a fixed point of decode -> encode, also
 * through the pretty printer. Every input is decoded a second time with a
 * small max_depth, which must fail cleanly or give the same result.
 * Invariant breaks trap, so they show up as crashes with the input saved.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;
static unsigned long runs;

/* Stack: [1] module table. */
static void setup(void)
{
    L = luaL_newstate();
    if (L == NULL)
        abort();
    luaL_openlibs(L);
    lua_newtable(L);
    inst_json_open(L);
}

/* Calls module[fname](arg at idx, opts table built from a spec string);
 * returns the number of results left on the stack (1 or 2). */
static int call(const char *fname, int idx, int sorted, int indent, int max_depth)
{
    int top = lua_gettop(L);
    lua_getfield(L, 1, fname);
    lua_pushvalue(L, idx);
    lua_createtable(L, 0, 3);
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
    if (lua_pcall(L, 2, 2, 0) != LUA_OK)
        __builtin_trap(); /* the codec must never raise on data */
    return lua_gettop(L) - top;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n1, n2;
    const char *canon, *again;
    if (L == NULL)
        setup();
    lua_settop(L, 1);
    lua_pushlstring(L, (const char *)data, size);           /* 2: input */

    call("json_decode", 2, 0, 0, 0);                          /* 3,4 */
    if (lua_isnil(L, 3)) {
        if (!lua_isstring(L, 4))
            __builtin_trap();
        goto done;
    }
    call("json_encode", 3, 1, 0, 0);                          /* 5,6 */
    if (!lua_isstring(L, 5))
        __builtin_trap(); /* everything decoded must encode */
    call("json_decode", 5, 0, 0, 0);                          /* 7,8 */
    if (lua_isnil(L, 7))
        __builtin_trap();
    call("json_encode", 7, 1, 0, 0);                          /* 9,10 */
    canon = lua_tolstring(L, 5, &n1);
    again = lua_tolstring(L, 9, &n2);
    if (again == NULL || n1 != n2 || memcmp(canon, again, n1) != 0)
        __builtin_trap(); /* canonical form is a fixed point */

    call("json_encode", 3, 1, 2, 0);                          /* 11,12: pretty */
    if (!lua_isstring(L, 11))
        __builtin_trap();
    call("json_decode", 11, 0, 0, 0);                         /* 13,14 */
    call("json_encode", 13, 1, 0, 0);                         /* 15,16 */
    again = lua_tolstring(L, 15, &n2);
    if (again == NULL || n1 != n2 || memcmp(canon, again, n1) != 0)
        __builtin_trap();

done:
    /* A shallow limit either fails cleanly or agrees. */
    call("json_decode", 2, 0, 0, 4);
    if (!lua_isnil(L, -2) && lua_isnil(L, 3))
        __builtin_trap();
    lua_settop(L, 1);
    if (++runs % 4096 == 0)
        lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
