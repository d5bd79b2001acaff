/* csv.c - placeholder until its part lands; registers nothing yet. */
#include "core.h"

void inst_csv_open(lua_State *L)
{
    (void)L;
}
