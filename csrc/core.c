/*
 * core.c - the entry point of the C module instantly.core.
 *
 * Owns the module table, the version strings and the small clock/sleep
 * helpers the Lua layer needs for backoff and rate limiting. The JSON
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
    inst_http_open(L);
    inst_csv_open(L);
    inst_shape_open(L);
    return 1;
}
