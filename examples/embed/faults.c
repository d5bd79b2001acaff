/*
 * faults.c - instantly.core under an allocator that fails.
 *
 * Shows what a host with a memory limit can rely on: when Lua runs out of
 * memory in the middle of a request, the caller gets a Lua error (never a
 * crash), nothing leaks, and the session keeps working. For n = 0, 1, 2,
 * ... the n-th growing allocation made during session:request (then
 * during submit/poll, then during a request whose answer the core
 * decodes) fails; afterwards, with memory back, the session
 * must still answer, and once it is closed core._stats() must show no live
 * session or transfer. It stops when a call no longer reaches its limit.
 *
 *   faults BASE_URL        exit status 0 when every round holds
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_instantly_core(lua_State *L);

typedef struct Limit {
    long countdown; /* growing allocations left; -1: no limit */
    int hit;
} Limit;

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    Limit *lim = (Limit *)ud;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    /* Lua may rely on shrinking never failing: only growth fails. */
    if (ptr == NULL || nsize > osize) {
        if (lim->countdown == 0) {
            lim->hit = 1;
            return NULL;
        }
        if (lim->countdown > 0)
            lim->countdown--;
    }
    return realloc(ptr, nsize);
}

/* Runs under the limit; the session is the global S, the URL the global URL. */
static const char *const phases[] = {
    /* a blocking request */
    "local st, body = S:request{ url = URL .. '/echo', method = 'POST', body = BODY,"
    "  headers = { ['Content-Type'] = 'application/json', ['X-Round'] = 'r' } }\n"
    "assert(st == 200, tostring(body))\n",
    /* two submitted transfers, polled to the end */
    "local a = S:submit{ url = URL .. '/hello' }\n"
    "local b = S:submit{ url = URL .. '/headers' }\n"
    "local got = 0\n"
    "for _ = 1, 200 do\n"
    "  for _, r in ipairs(S:poll(0.05)) do assert(r.status == 200); got = got + 1 end\n"
    "  if S:pending() == 0 then break end\n"
    "end\n",
    /* an answer the core decodes (decode): the value, or a memory error */
    "local d = require('instantly.core').json_decoder{ memory_error = 'return' }\n"
    "local st, v, h, decoded = S:request{ url = URL .. '/echo?back=1', method = 'POST', body = BODY,"
    "  decode = d }\n"
    "assert(st == 200 and decoded and #v.k == 3000, tostring(v))\n",
};

/* Runs with memory back: the session still works, then nothing is left. */
static const char after[] =
    "for _ = 1, 200 do S:poll(0.05); if S:pending() == 0 then break end end\n"
    "local st = S:request{ url = URL .. '/hello' }\n"
    "assert(st == 200, 'session unusable after the fault')\n"
    "S:close()\n"
    "S = nil\n"
    "collectgarbage(); collectgarbage()\n"
    "local stats = require('instantly.core')._stats()\n"
    "assert(stats.sessions == 0 and stats.transfers == 0,\n"
    "  ('leak: %d sessions, %d transfers'):format(stats.sessions, stats.transfers))\n";

static int run(lua_State *L, const char *code, const char *name)
{
    if (luaL_loadbuffer(L, code, strlen(code), name) != LUA_OK)
        return lua_status(L) == LUA_OK ? LUA_ERRSYNTAX : LUA_ERRMEM;
    return lua_pcall(L, 0, 0, 0);
}

int main(int argc, char **argv)
{
    size_t p;
    int failed = 0;
    if (argc != 2) {
        fprintf(stderr, "usage: %s BASE_URL\n", argv[0]);
        return 2;
    }
    for (p = 0; p < sizeof phases / sizeof *phases; p++) {
        long n, rounds = 0, errors = 0;
        for (n = 0; n < 100000; n++) {
            Limit lim = { -1, 0 };
            lua_State *L = lua_newstate(limited_alloc, &lim);
            int status;
            if (!L)
                return 1;
            luaL_openlibs(L);
            luaL_requiref(L, "instantly.core", luaopen_instantly_core, 1);
            lua_pop(L, 1);
            lua_pushstring(L, argv[1]);
            lua_setglobal(L, "URL");
            if (run(L, "BODY = ('{\"k\":\"' .. ('v'):rep(3000) .. '\"}')\n"
                       "S = require('instantly.core').session()\n"
                       "assert(S:request{ url = URL .. '/hello' })\n", "=setup") != LUA_OK) {
                fprintf(stderr, "faults: setup failed: %s\n", lua_tostring(L, -1));
                return 1;
            }
            lim.countdown = n;
            status = run(L, phases[p], "=phase");
            /* read by limited_alloc through the state, not seen by cppcheck */
            /* cppcheck-suppress redundantAssignment */
            lim.countdown = -1;
            rounds++;
            if (status != LUA_OK) {
                const char *msg = lua_tostring(L, -1);
                errors++;
                if (!lim.hit || !msg || !strstr(msg, "memory")) {
                    fprintf(stderr, "faults: phase %zu, n=%ld: unexpected error: %s\n", p + 1, n,
                            msg ? msg : "?");
                    failed = 1;
                }
                lua_pop(L, 1);
            }
            if (run(L, after, "=after") != LUA_OK) {
                fprintf(stderr, "faults: phase %zu, n=%ld: %s\n", p + 1, n, lua_tostring(L, -1));
                failed = 1;
            }
            lua_close(L);
            if (!lim.hit || failed)
                break;
        }
        printf("faults: phase %zu: %ld rounds, %ld ended in a memory error, %s\n", p + 1, rounds, errors,
               failed ? "FAILED" : "no crash, no leak, session still usable");
    }
    return failed;
}
