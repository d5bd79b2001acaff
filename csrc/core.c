/*
 * core.c - the entry point of the C module instantly.core.
 *
 * Owns the module table, the version strings, the small clock/sleep
 * helpers the Lua layer needs for backoff and rate limiting, and
 * strip_nulls (decoded objects losing their null members). The JSON
 * codec, HTTP transport, CSV reader and the validator's shape test live
 * in their own files and register themselves here.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <time.h>

#include "core.h"

double inst_monotime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* core.monotime() -> seconds from an arbitrary start, never going back. */
static int l_monotime(lua_State *L)
{
    lua_pushnumber(L, inst_monotime());
    return 1;
}

/* core.sleep(seconds): blocks the calling thread; resumes after EINTR. */
static int l_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    struct timespec req, rem;
    if (!(s > 0)) /* also rejects NaN */
        return 0;
    if (s > 1e6)
        s = 1e6;
    req.tv_sec = (time_t)s;
    req.tv_nsec = (long)((s - floor(s)) * 1e9);
    while (nanosleep(&req, &rem) != 0 && errno == EINTR)
        req = rem;
    return 0;
}

/* core.strip_nulls(list, gone_of): for each table of the array `list`
 * (the objects json_decode's null_tables option listed), removes the
 * members whose value is core.null and records their names as an array in
 * gone_of[t]; empties `list` on the way, so one list serves every decode.
 * What the SDK's records go through: a walk in C costs a fraction of the
 * same pairs loop in Lua. Raises only when memory runs out. */
static int l_strip_nulls(lua_State *L)
{
    lua_Integer i, n;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    n = (lua_Integer)lua_rawlen(L, 1);
    for (i = 1; i <= n; i++) {
        lua_Integer ngone = 0;
        if (lua_rawgeti(L, 1, i) != LUA_TTABLE) { /* 3: the object */
            lua_pop(L, 1);
            continue;
        }
        lua_pushnil(L); /* 4: the gone list, made on the first null */
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_rawequal(L, -1, lua_upvalueindex(1))) {
                if (ngone == 0) {
                    lua_createtable(L, 2, 0);
                    lua_replace(L, 4);
                }
                lua_pushvalue(L, -2);
                lua_rawseti(L, 4, ++ngone);
                lua_pushvalue(L, -2);
                lua_pushnil(L);
                lua_rawset(L, 3); /* clearing a field during the walk is allowed */
            }
            lua_pop(L, 1);
        }
        if (ngone > 0) {
            lua_pushvalue(L, 3);
            lua_pushvalue(L, 4);
            lua_rawset(L, 2);
        }
        lua_pop(L, 2);
    }
    for (i = n; i >= 1; i--) {
        lua_pushnil(L);
        lua_rawseti(L, 1, i);
    }
    return 0;
}

static const luaL_Reg funcs[] = {
    {"monotime", l_monotime},
    {"sleep", l_sleep},
    {NULL, NULL}
};

int luaopen_instantly_core(lua_State *L);

int luaopen_instantly_core(lua_State *L)
{
    luaL_newlib(L, funcs);
    lua_pushliteral(L, INSTANTLY_VERSION);
    lua_setfield(L, -2, "VERSION");
    lua_pushstring(L, inst_curl_version());
    lua_setfield(L, -2, "curl_version");
    inst_json_open(L);
    lua_getfield(L, -1, "null");
    lua_pushcclosure(L, l_strip_nulls, 1);
    lua_setfield(L, -2, "strip_nulls");
    inst_http_open(L);
    inst_csv_open(L);
    inst_shape_open(L);
    return 1;
}
