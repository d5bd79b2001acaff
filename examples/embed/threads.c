/*
 * threads.c - two threads, each with its own Lua state, using
 * instantly.core at the same time.
 *
 * Shows that the module keeps no shared mutable state: each thread opens
 * its own state, makes requests, and meets the other at a server-side
 * barrier that answers only once both requests are in flight at once, so
 * success proves the two ran concurrently (no clock involved). Each state
 * then checks its own live counts (core._stats) are back to zero.
 *
 *   threads BASE_URL        exit status 0 when both threads succeed
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_instantly_core(lua_State *L);

#define NTHREADS 2

static const char script[] =
    "local core = require 'instantly.core'\n"
    "local base, n = ...\n"
    "local s = core.session{ timeout = 20 }\n"
    "for i = 1, 25 do\n"
    "  local status, body = s:request{ url = base .. '/hello' }\n"
    "  assert(status == 200 and body == 'hello world', 'request ' .. i .. ': ' .. tostring(body))\n"
    "end\n"
    "local status, body = s:request{ url = base .. '/barrier?name=threads&n=' .. n }\n"
    "assert(status == 200, 'barrier: ' .. tostring(status) .. ' ' .. tostring(body))\n"
    "s:close()\n"
    "local st = core._stats()\n"
    "assert(st.sessions == 0 and st.transfers == 0, 'leaked in this state')\n"
    "return body\n";

typedef struct Job {
    const char *base;
    int ok;
    char msg[256];
} Job;

static void *run(void *arg)
{
    Job *job = (Job *)arg;
    lua_State *L = luaL_newstate();
    if (!L) {
        snprintf(job->msg, sizeof job->msg, "cannot create a Lua state");
        return NULL;
    }
    luaL_openlibs(L);
    luaL_requiref(L, "instantly.core", luaopen_instantly_core, 0);
    lua_pop(L, 1);
    if (luaL_loadbuffer(L, script, sizeof script - 1, "=thread") == LUA_OK) {
        lua_pushstring(L, job->base);
        lua_pushinteger(L, NTHREADS);
        if (lua_pcall(L, 2, 1, 0) == LUA_OK)
            job->ok = 1;
    }
    snprintf(job->msg, sizeof job->msg, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_close(L);
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t th[NTHREADS];
    Job jobs[NTHREADS];
    int i, failed = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s BASE_URL\n", argv[0]);
        return 2;
    }
    for (i = 0; i < NTHREADS; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].base = argv[1];
        if (pthread_create(&th[i], NULL, run, &jobs[i]) != 0) {
            fprintf(stderr, "threads: pthread_create failed\n");
            return 1;
        }
    }
    for (i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    for (i = 0; i < NTHREADS; i++) {
        printf("thread %d: %s: %s\n", i + 1, jobs[i].ok ? "ok" : "FAILED", jobs[i].msg);
        failed |= !jobs[i].ok;
    }
    return failed;
}
