/*
 * core.h - what the parts of instantly.core share.
 *
 * Each part (JSON codec, HTTP transport, CSV) adds its functions to the
 * module table that luaopen_instantly_core leaves on the stack top.
 */
#ifndef INSTANTLY_CORE_H
#define INSTANTLY_CORE_H

#include <lua.h>
#include <lauxlib.h>

#define INSTANTLY_VERSION "0.1.0"

/* Each registers its functions into the table at the stack top. */
void inst_json_open(lua_State *L);
void inst_http_open(lua_State *L);
void inst_csv_open(lua_State *L);
void inst_shape_open(lua_State *L);

/* The JSON decoder for the transport (json.c): is the value at idx a
 * decoder made by json_decoder; decode bytes with it (see there). */
int inst_json_is_decoder(lua_State *L, int idx);
int inst_json_decode_span(lua_State *L, int fidx, const char *p, size_t len);

/* libcurl's version string, read once under the transport's init. */
const char *inst_curl_version(void);

/* Monotonic clock in seconds (float), shared by the parts. */
double inst_monotime(void);

#endif
