/*
 * json_fuzz.c - libFuzzer target for the JSON codec (tools/fuzz.sh runs it).
 *
 * Each input is decoded; whatever decodes must encode, and the canonical
 * encoding (sorted keys) must be a fixed point of decode -> encode, also
 * through the pretty printer. Every input is decoded a second time with a
 * small max_depth, which must fail cleanly or give the same result.
 * Inputs starting with byte 0x01 are instead a small program that builds
 * Lua values (tables with any keys, cycles, NaN, bad UTF-8, functions) for
 * the encoder: it must return text or nil and a message, never raise, and
 * whatever text it returns must decode and re-encode to the same bytes.
 * Invariant breaks trap, so they show up as crashes with the input saved.
 *
 * The memory oracle (docs/json.md states the bound): every decode runs
 * under a counting allocator with the collector stopped, so the bytes a
 * decode leaves allocated are its result plus its garbage, nothing freed
 * by chance. Ours may exceed lua-cjson's on the same text (result plus
 * its rehash garbage) by 10 bytes per input byte (repeated object keys)
 * plus the Lua stack the waiting values took (MEM_STACK_PER_BYTE); and
 * whether the text decodes or not, never MEM_PEAK_PER_BYTE per input byte
 * plus a fixed allowance. Breaking either is a finding, like a crash.
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

/* The counting allocator: bytes in use and the high-water mark. */
static size_t mem_used, mem_peak;

static void *count_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    size_t old = ptr != NULL ? osize : 0;
    void *p;
    (void)ud;
    if (nsize == 0) {
        free(ptr);
        mem_used -= old;
        return NULL;
    }
    p = realloc(ptr, nsize);
    if (p == NULL)
        return NULL;
    mem_used = mem_used - old + nsize;
    if (mem_used > mem_peak)
        mem_peak = mem_used;
    return p;
}

#define MEM_HELD_PER_BYTE 10     /* over lua-cjson's, for repeated keys */
#define MEM_STACK_PER_BYTE 32    /* waiting values on the Lua stack */
#define MEM_PEAK_PER_BYTE 128
#define MEM_ALLOWANCE (64 * 1024)
#define MEM_MIN_INPUT 64         /* below this the allowance covers all */

static int has_cjson;

/* Stack: [1] module table (plus cjson_decode when lua-cjson loads). */
static void setup(void)
{
    L = lua_newstate(count_alloc, NULL);
    if (L == NULL)
        abort();
    luaL_openlibs(L);
    lua_newtable(L);
    inst_json_open(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
        lua_getfield(L, -1, "decode");
        lua_setfield(L, 1, "cjson_decode");
        has_cjson = 1;
    }
    lua_settop(L, 1);
}

/* One full cycle: decoding makes no finalizers that a second would run. */
/* Bytes lua-cjson's decode of the string at idx leaves allocated (the
 * collector is stopped), or (size_t)-1 when it refuses the text. */
static size_t cjson_bytes(int idx)
{
    size_t base = mem_used, bytes = (size_t)-1;
    int top = lua_gettop(L);
    if (!has_cjson)
        return bytes;
    lua_getfield(L, 1, "cjson_decode");
    lua_pushvalue(L, idx);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK)
        bytes = mem_used - base;
    lua_settop(L, top);
    return bytes;
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

/* Builder mode: a stack machine over the input bytes. Slot 2 holds the
 * root; values are built above it. */
static void build_and_encode(const uint8_t *data, size_t size)
{
    size_t i = 0;
    int base = lua_gettop(L);
    lua_newtable(L); /* the root */
    while (i < size && lua_gettop(L) < base + 200) {
        uint8_t op = data[i++];
        if (!lua_checkstack(L, 16))
            abort();
        switch (op % 12) {
        case 0:
            lua_newtable(L);
            break;
        case 1:
            lua_newtable(L);
            lua_getfield(L, 1, "array_mt");
            lua_setmetatable(L, -2);
            break;
        case 2: {
            int64_t v = 0;
            size_t k = size - i < 8 ? size - i : 8;
            memcpy(&v, data + i, k);
            i += k;
            lua_pushinteger(L, (lua_Integer)v);
            break;
        }
        case 3: {
            double v = 0;
            size_t k = size - i < 8 ? size - i : 8;
            memcpy(&v, data + i, k);
            i += k;
            lua_pushnumber(L, v);
            break;
        }
        case 4: {
            size_t k = i < size ? data[i++] % 24 : 0;
            if (k > size - i)
                k = size - i;
            lua_pushlstring(L, (const char *)data + i, k);
            i += k;
            break;
        }
        case 5:
            lua_pushinteger(L, i < size ? data[i++] % 8 : 1); /* small integer keys */
            break;
        case 6:
            if (op & 0x10)
                lua_pushboolean(L, op & 0x20);
            else
                lua_pushlightuserdata(L, NULL);
            break;
        case 7: /* t[k] = v: t, k, v on top */
            if (lua_gettop(L) >= base + 3 && lua_istable(L, -3) && !lua_isnil(L, -2)
                && !(lua_type(L, -2) == LUA_TNUMBER && lua_tonumber(L, -2) != lua_tonumber(L, -2)))
                lua_rawset(L, -3);
            else if (lua_gettop(L) > base + 1) /* the root stays */
                lua_pop(L, 1);
            break;
        case 8: /* append v to t: t, v on top */
            if (lua_gettop(L) >= base + 2 && lua_istable(L, -2))
                lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
            else if (lua_gettop(L) > base + 1)
                lua_pop(L, 1);
            break;
        case 9: { /* copy of an earlier slot: sharing and cycles */
            int n = lua_gettop(L) - base;
            int k = i < size ? data[i++] % n : 0;
            lua_pushvalue(L, base + 1 + k);
            break;
        }
        case 10:
            if (op & 0x10)
                lua_getglobal(L, "print");
            else
                lua_newuserdatauv(L, 1, 0);
            break;
        default:
            if (lua_gettop(L) > base + 1)
                lua_pop(L, 1);
        }
    }
    lua_settop(L, base + 1);
    {
        int sorted = size > 1 && (data[1] & 1), indent = size > 1 ? (data[1] >> 1) % 4 : 0;
        int top = lua_gettop(L);
        size_t n1, n2;
        const char *a, *b;
        /* A small max_depth keeps cycles cheap to run into. */
        int max_depth = size > 2 && (data[2] & 1) ? 3 : 40;
        call("json_encode", top, sorted, indent, max_depth);
        if (lua_isnil(L, top + 1)) {
            if (!lua_isstring(L, top + 2))
                __builtin_trap();
            return;
        }
        call("json_encode", top, 1, 0, max_depth);          /* canonical */
        if (!lua_isstring(L, top + 3))
            __builtin_trap();
        call("json_decode", top + 1, 0, 0, 0);
        if (lua_isnil(L, top + 5))
            __builtin_trap();
        call("json_encode", top + 5, 1, 0, 0);
        a = lua_tolstring(L, top + 3, &n1);
        b = lua_tolstring(L, top + 7, &n2);
        if (b == NULL || n1 != n2 || memcmp(a, b, n1) != 0)
            __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n1, n2;
    const char *canon, *again;
    if (L == NULL)
        setup();
    lua_settop(L, 1);
    if (!lua_checkstack(L, 40)) /* beyond LUA_MINSTACK: we are not inside a C function */
        abort();
    if (size > 0 && data[0] == 0x01) {
        build_and_encode(data + 1, size - 1);
        goto out;
    }
    lua_pushlstring(L, (const char *)data, size);           /* 2: input */

    if (size >= MEM_MIN_INPUT) {
        size_t theirs, base, ours;
        lua_gc(L, LUA_GCSTOP);
        theirs = cjson_bytes(2);
        base = mem_used;
        mem_peak = mem_used;
        call("json_decode", 2, 0, 0, 0);                      /* 3,4 */
        ours = mem_used - base;
        lua_gc(L, LUA_GCRESTART);
        if (mem_peak - base > MEM_PEAK_PER_BYTE * size + MEM_ALLOWANCE)
            __builtin_trap(); /* peak while decoding out of bounds */
        if (!lua_isnil(L, 3) && theirs != (size_t)-1
            && ours > theirs + theirs / 20 + (MEM_HELD_PER_BYTE + MEM_STACK_PER_BYTE) * size + 4096)
            __builtin_trap(); /* holds more than lua-cjson allows */
    } else {
        call("json_decode", 2, 0, 0, 0);                      /* 3,4 */
    }
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
    /* Option nulls: fails exactly when the plain decode fails, and leaves
     * no null member in any object (its canonical text, decoded with
     * null_tables, lists no object). */
    {
        int top = lua_gettop(L);
        lua_getfield(L, 1, "json_decode");
        lua_pushvalue(L, 2);
        lua_createtable(L, 0, 1);
        lua_newtable(L);
        lua_setfield(L, -2, "nulls");
        if (lua_pcall(L, 2, 2, 0) != LUA_OK)
            __builtin_trap();
        if (lua_isnil(L, top + 1) != lua_isnil(L, 3))
            __builtin_trap();
        if (!lua_isnil(L, top + 1)) {
            call("json_encode", top + 1, 1, 0, 0);
            if (!lua_isstring(L, top + 3))
                __builtin_trap();
            lua_getfield(L, 1, "json_decode");
            lua_pushvalue(L, top + 3);
            lua_createtable(L, 0, 1);
            lua_newtable(L);
            lua_pushvalue(L, -1);
            lua_replace(L, top + 4); /* the list */
            lua_setfield(L, -2, "null_tables");
            if (lua_pcall(L, 2, 2, 0) != LUA_OK || lua_isnil(L, -2) || lua_rawlen(L, top + 4) != 0)
                __builtin_trap();
        }
        lua_settop(L, top);
    }
    /* A shallow limit either fails cleanly or agrees. */
    call("json_decode", 2, 0, 0, 4);
    if (!lua_isnil(L, -2) && lua_isnil(L, 3))
        __builtin_trap();
out:
    lua_settop(L, 1);
    /* The oracle stopped the collector for a while: collect now, so an
     * input does not end with more blocks allocated than it began with
     * (libFuzzer would then run a leak scan of the whole heap). */
    if (size >= MEM_MIN_INPUT || ++runs % 4096 == 0)
        lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
