/* http.c - placeholder until its part lands; registers nothing yet. */
#include "core.h"

void inst_http_open(lua_State *L)
{
    (void)L;
}
