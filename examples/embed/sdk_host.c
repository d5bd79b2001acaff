/*
 * sdk_host.c - embedding the whole SDK, not just its core, in a C program.
 *
 * The C core is linked in statically and registered with luaL_requiref;
 * the Lua layer (lua/instantly/...) is read from one folder the host
 * names. package.path is set to that folder alone and package.cpath is
 * emptied, so `require "instantly"` can only find the SDK the host chose
 * and the core it linked in: nothing from the system's Lua paths.
 *
 *   sdk_host LUA_DIR SCRIPT [ARG...]   runs SCRIPT with ARGs as `...`;
 *                                      exit status 0 when it returns
 */
#include <stdio.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_instantly_core(lua_State *L);

static int traceback(lua_State *L)
{
    luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
}

/* package[field] = value */
static void set_package_field(lua_State *L, const char *field, const char *value)
{
    lua_getglobal(L, "package");
    lua_pushstring(L, value);
    lua_setfield(L, -2, field);
    lua_pop(L, 1);
}

int main(int argc, char **argv)
{
    lua_State *L;
    int i, status;

    if (argc < 3) {
        fprintf(stderr, "usage: %s LUA_DIR SCRIPT [ARG...]\n", argv[0]);
        return 2;
    }
    L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "sdk_host: cannot create a Lua state\n");
        return 1;
    }
    luaL_openlibs(L);
    luaL_requiref(L, "instantly.core", luaopen_instantly_core, 0);
    lua_pop(L, 1);

    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", argv[1], argv[1]);
    set_package_field(L, "path", lua_tostring(L, -1));
    lua_pop(L, 1);
    set_package_field(L, "cpath", "");

    lua_pushcfunction(L, traceback);
    if (luaL_loadfile(L, argv[2]) != LUA_OK) {
        fprintf(stderr, "sdk_host: %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    for (i = 3; i < argc; i++)
        lua_pushstring(L, argv[i]);
    status = lua_pcall(L, argc - 3, 0, 1);
    if (status != LUA_OK)
        fprintf(stderr, "sdk_host: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return status == LUA_OK ? 0 : 1;
}
