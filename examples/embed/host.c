/*
 * host.c - embedding instantly.core in a C program.
 *
 * Shows the smallest useful host: it creates a lua_State, links the core
 * statically and registers it with luaL_requiref (no .so on any search
 * path is involved), then runs a Lua script that makes requests.
 *
 *   host SCRIPT [ARG...]    runs SCRIPT with ARGs as `...`; exit status 0
 *                           when the script returns without error
 */
#include <stdio.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_instantly_core(lua_State *L);

/* Adds a traceback to errors raised by the script. */
static int traceback(lua_State *L)
{
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L;
    int i, status;

    if (argc < 2) {
        fprintf(stderr, "usage: %s SCRIPT [ARG...]\n", argv[0]);
        return 2;
    }
    L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "host: cannot create a Lua state\n");
        return 1;
    }
    luaL_openlibs(L);
    /* package.loaded["instantly.core"] = luaopen_instantly_core() */
    luaL_requiref(L, "instantly.core", luaopen_instantly_core, 0);
    lua_pop(L, 1);

    lua_pushcfunction(L, traceback);
    if (luaL_loadfile(L, argv[1]) != LUA_OK) {
        fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    for (i = 2; i < argc; i++)
        lua_pushstring(L, argv[i]);
    status = lua_pcall(L, argc - 2, 0, 1);
    if (status != LUA_OK)
        fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    lua_close(L); /* collects the script's sessions */
    return status == LUA_OK ? 0 : 1;
}
