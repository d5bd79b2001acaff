/*
 * csv.c - the RFC 4180 CSV reader and row formatter of instantly.core.
 *
 * Owns core.csv_parser(opts) -> a push parser fed chunks of any size (a
 * record, a quoted field, a doubled quote or a CRLF may straddle chunks),
 * and core.csv_format(row [, n [, sep]]) -> one formatted line without its
 * end of line. Line splitting, quoting, the UTF-8 BOM and error positions
 * live here; what a column means (lead fields) is the Lua layer's business
 * (lua/instantly/workflows/csv.lua).
 *
 * The partial record between two feeds is kept in buffers (buf.h, on the
 * state's allocator) owned by the parser userdata and freed by its
 * __gc/__close, so a Lua error raised while pushing results (out of
 * memory) leaks nothing.
 *
 * A feed or finish pushes records, and any allocation may run a finalizer
 * that uses the same parser. While one runs the parser is busy: a feed or
 * finish from a finalizer raises (a warning, in Lua 5.4) instead of mixing
 * its bytes into the record being pushed, and a close waits until the call
 * is over, so the call's records come back whole and the parser is closed
 * right after (see call_busy).
 *
 * max_record_bytes bounds what one record costs, not just its text: each
 * field counts its bytes plus FIELD_COST (its end offset kept here and its
 * slot in the record's Lua table), so a line of 32 MB of commas is refused
 * like 32 MB of text instead of becoming 33 million empty fields.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "core.h"

#define PARSER_MT "instantly.CsvParser"
#define DEFAULT_MAX_RECORD (64u * 1024u * 1024u)
#define FIELD_COST 24 /* an offset (8) and a table slot (16) */

enum state {
    FIELD_START,     /* nothing of the current field seen yet */
    UNQUOTED,        /* inside a field that did not start with a quote */
    QUOTED,          /* inside a quoted field */
    QUOTE_IN_QUOTED  /* saw a quote inside a quoted field: "" or the end */
};

typedef struct {
    int open;
    int busy;             /* a feed or finish is running (call_busy) */
    int closing;          /* closed while busy: freed when the call ends */
    enum state st;
    char sep, quote;
    int lazy_quotes;      /* accept stray quotes as data instead of failing */
    int skip_blank;       /* drop records that are one empty unquoted field */
    int skip_lf;          /* last byte ended a record on CR: swallow one LF */
    int rec_active;       /* some byte of the current record was consumed */
    int field_quoted;     /* the current record's only field so far was quoted */
    int bom_done;         /* the start of the stream was checked for a BOM */
    unsigned char bom[3]; /* stream prefix held back while deciding */
    size_t bom_len;
    size_t max_record;    /* what one record may cost: bytes + FIELD_COST per field */
    size_t cost;          /* the current record's cost so far */

    long long line;       /* line being read, 1-based */
    long long rec_line;   /* line the current record started on */
    long long quote_line; /* line the open quoted field started on */

    inst_buf text;        /* field bytes of the current record, back to back */
    inst_buf ends;        /* size_t end offset in text of each finished field */
    size_t nfields;

    char *err;            /* sticky error message after a syntax error */
    long long err_line;
} parser;

/* ---------------------------------------------------------------- buffers */

/* Counts extra bytes against max_record_bytes. */
static int charge(parser *p, size_t extra)
{
    if (extra > p->max_record || p->cost > p->max_record - extra)
        return 0;
    p->cost += extra;
    return 1;
}

static int fail(parser *p, long long line, const char *msg);

/* Adds field bytes. Returns 0 (with the error recorded) when the record
 * would cost more than max_record_bytes or memory runs out. */
static int buf_append(parser *p, const char *s, size_t n)
{
    if (n == 0)
        return 1;
    if (!charge(p, n))
        return fail(p, p->rec_line, "record is larger than max_record_bytes");
    if (inst_buf_append(&p->text, s, n) != 0)
        return fail(p, p->rec_line, "out of memory");
    return 1;
}

/* Ends the current field, with the same failures as buf_append. */
static int end_field(parser *p)
{
    size_t end = p->text.len;
    if (!charge(p, FIELD_COST))
        return fail(p, p->rec_line, "record is larger than max_record_bytes");
    if (inst_buf_append(&p->ends, &end, sizeof end) != 0)
        return fail(p, p->rec_line, "out of memory");
    p->nfields++;
    return 1;
}

static size_t field_end(const parser *p, size_t i)
{
    size_t end;
    memcpy(&end, p->ends.p + i * sizeof end, sizeof end);
    return end;
}

static void reset_record(parser *p)
{
    p->text.len = 0;
    p->ends.len = 0;
    p->nfields = 0;
    p->cost = 0;
    p->rec_active = 0;
    p->field_quoted = 0;
    p->st = FIELD_START;
}

static void free_parser(parser *p)
{
    inst_buf_free(&p->text);
    inst_buf_free(&p->ends);
    free(p->err);
    p->err = NULL;
    p->nfields = 0;
    p->open = 0;
}

/* Records the first syntax error; the parser stays failed afterwards so a
 * caller that ignores one error cannot read garbage after it. */
static int fail(parser *p, long long line, const char *msg)
{
    size_t n = strlen(msg);
    free(p->err);
    p->err = malloc(n + 1);
    if (p->err)
        memcpy(p->err, msg, n + 1);
    p->err_line = line;
    return 0;
}

static int push_error(lua_State *L, parser *p)
{
    lua_pushnil(L);
    lua_pushstring(L, p->err ? p->err : "out of memory");
    lua_pushinteger(L, (lua_Integer)p->err_line);
    return 3;
}

/* ---------------------------------------------------------------- parsing */

/* Moves the finished record into the results table at the stack top
 * (records at -2, lines at -1). */
static void emit_record(lua_State *L, parser *p, lua_Integer *count)
{
    size_t i, start = 0;
    if (p->skip_blank && p->nfields == 1 && field_end(p, 0) == 0 && !p->field_quoted) {
        reset_record(p);
        return;
    }
    lua_createtable(L, (int)p->nfields, 0);
    for (i = 0; i < p->nfields; i++) {
        size_t end = field_end(p, i);
        lua_pushlstring(L, p->text.p + start, end - start);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
        start = end;
    }
    ++*count;
    lua_rawseti(L, -3, *count);
    lua_pushinteger(L, (lua_Integer)p->rec_line);
    lua_rawseti(L, -2, *count);
    reset_record(p);
}

static int end_record(lua_State *L, parser *p, lua_Integer *count)
{
    if (!end_field(p))
        return 0;
    emit_record(L, p, count);
    return 1;
}

/* Runs bytes through the state machine. Returns 0 on a syntax error (the
 * message is in p->err). */
static int run(lua_State *L, parser *p, const char *s, size_t n, lua_Integer *count)
{
    size_t i = 0;
    const char sep = p->sep, quote = p->quote;
    while (i < n) {
        char c = s[i];
        if (p->skip_lf) {
            p->skip_lf = 0;
            if (c == '\n') {
                i++;
                continue;
            }
        }
        if (!p->rec_active) {
            p->rec_active = 1;
            p->rec_line = p->line;
        }
        switch (p->st) {
        case FIELD_START:
            if (c == quote) {
                p->st = QUOTED;
                p->quote_line = p->line;
                if (p->nfields == 0)
                    p->field_quoted = 1;
                i++;
                continue;
            }
            /* The byte belongs to an unquoted field. */
            p->st = UNQUOTED;
            /* fall through */
        case UNQUOTED: {
            /* Fast path: copy the run of plain bytes in one go. */
            size_t j = i;
            while (j < n && s[j] != sep && s[j] != '\n' && s[j] != '\r' && s[j] != quote)
                j++;
            if (!buf_append(p, s + i, j - i))
                return 0;
            i = j;
            if (i == n)
                return 1;
            c = s[i++];
            if (c == sep) {
                if (!end_field(p))
                    return 0;
                p->st = FIELD_START;
            } else if (c == '\n' || c == '\r') {
                p->line++;
                p->skip_lf = (c == '\r');
                if (!end_record(L, p, count))
                    return 0;
            } else if (p->lazy_quotes) {
                if (!buf_append(p, &c, 1))
                    return 0;
            } else {
                return fail(p, p->line, "quote inside an unquoted field (quote the whole field and double the quote)");
            }
            break;
        }
        case QUOTED: {
            size_t j = i;
            while (j < n && s[j] != quote && s[j] != '\n')
                j++;
            if (!buf_append(p, s + i, j - i))
                return 0;
            i = j;
            if (i == n)
                return 1;
            c = s[i++];
            if (c == '\n') {
                p->line++;
                if (!buf_append(p, &c, 1))
                    return 0;
            } else {
                p->st = QUOTE_IN_QUOTED;
            }
            break;
        }
        case QUOTE_IN_QUOTED:
            i++;
            if (c == quote) {
                if (!buf_append(p, &c, 1))
                    return 0;
                p->st = QUOTED;
            } else if (c == sep) {
                if (!end_field(p))
                    return 0;
                p->st = FIELD_START;
            } else if (c == '\n' || c == '\r') {
                p->line++;
                p->skip_lf = (c == '\r');
                if (!end_record(L, p, count))
                    return 0;
            } else if (p->lazy_quotes) {
                char two[2];
                two[0] = quote;
                two[1] = c;
                if (!buf_append(p, two, 2))
                    return 0;
                p->st = QUOTED;
            } else if (p->quote_line != p->line) {
                /* Most often an unterminated quote far above: say where. */
                char msg[96];
                snprintf(msg, sizeof msg, "unexpected character after a closing quote "
                         "(the quoted field opened on line %lld)", p->quote_line);
                return fail(p, p->line, msg);
            } else {
                return fail(p, p->line, "unexpected character after a closing quote");
            }
            break;
        }
    }
    return 1;
}

/* Holds back the first bytes of the stream until it is known whether they
 * are a UTF-8 byte order mark, so a BOM split across chunks is still seen. */
static int feed_bytes(lua_State *L, parser *p, const char *s, size_t n, lua_Integer *count)
{
    static const unsigned char BOM[3] = {0xEF, 0xBB, 0xBF};
    while (!p->bom_done && n > 0) {
        p->bom[p->bom_len++] = (unsigned char)*s++;
        n--;
        if (memcmp(p->bom, BOM, p->bom_len) != 0) {
            p->bom_done = 1;
            if (!run(L, p, (const char *)p->bom, p->bom_len, count))
                return 0;
        } else if (p->bom_len == 3) {
            p->bom_done = 1; /* a BOM: dropped */
        }
    }
    if (!p->bom_done)
        return 1;
    return run(L, p, s, n, count);
}

/* ---------------------------------------------------------------- methods */

static parser *check_parser(lua_State *L)
{
    parser *p = (parser *)luaL_checkudata(L, 1, PARSER_MT);
    if (!p->open)
        luaL_error(L, "attempt to use a closed CSV parser");
    return p;
}

/* After a syntax error: the records completed before it, then the error. */
static int records_then_error(lua_State *L, parser *p)
{
    lua_pushstring(L, p->err ? p->err : "out of memory");
    lua_pushinteger(L, (lua_Integer)p->err_line);
    return 4;
}

/* Runs work(parser, args...) with the parser busy, for a feed or finish:
 * their pushes allocate, so a finalizer may run in the middle and call
 * this parser. Its feed or finish then raises (p_feed), and its close
 * only marks the parser closed (p_close): the record being pushed reads
 * the buffers the close would free, and the rest of the chunk would be
 * parsed into buffers of a closed parser. The close happens here, once
 * the call's records are complete. The work runs under lua_pcall so that
 * running out of memory midway leaves the parser idle, not busy for good.
 * The parser stays at index 1 (anchored) until the end. */
static int call_busy(lua_State *L, parser *p, lua_CFunction work)
{
    int n = lua_gettop(L), i, status;
    lua_pushcfunction(L, work);
    lua_pushlightuserdata(L, p);
    for (i = 2; i <= n; i++)
        lua_pushvalue(L, i);
    p->busy = 1;
    status = lua_pcall(L, n, LUA_MULTRET, 0);
    p->busy = 0;
    if (p->closing)
        free_parser(p);
    if (status != LUA_OK)
        return lua_error(L);
    return lua_gettop(L) - n;
}

static parser *check_idle(lua_State *L)
{
    parser *p = check_parser(L);
    if (p->busy)
        luaL_error(L, "attempt to use a busy CSV parser (a feed or finish is running)");
    return p;
}

/* call_busy's work for p_feed: (parser, chunk). */
static int feed_work(lua_State *L)
{
    parser *p = (parser *)lua_touserdata(L, 1);
    size_t n;
    const char *s = lua_tolstring(L, 2, &n);
    lua_Integer count = 0;
    lua_newtable(L);
    lua_newtable(L);
    if (!feed_bytes(L, p, s, n, &count))
        return records_then_error(L, p);
    return 2;
}

/* p:feed(chunk) -> records, lines [, message, line] | nil, message, line
 * records is an array of arrays of strings; lines[i] is the line on which
 * records[i] starts. Both are empty when the chunk ends mid-record. When
 * the chunk holds a syntax error, the records before it come back with the
 * error after them; later calls return nil and the same error. */
static int p_feed(lua_State *L)
{
    parser *p = check_idle(L);
    luaL_checkstring(L, 2);
    if (p->err)
        return push_error(L, p);
    lua_settop(L, 2);
    return call_busy(L, p, feed_work);
}

/* call_busy's work for p_finish: (parser). */
static int finish_work(lua_State *L)
{
    parser *p = (parser *)lua_touserdata(L, 1);
    lua_Integer count = 0;
    lua_newtable(L);
    lua_newtable(L);
    if (!p->bom_done) {
        p->bom_done = 1;
        if (!run(L, p, (const char *)p->bom, p->bom_len, &count))
            return records_then_error(L, p);
    }
    if (p->st == QUOTED) {
        fail(p, p->quote_line, "unterminated quoted field");
        return records_then_error(L, p);
    }
    if (p->rec_active && !end_record(L, p, &count))
        return records_then_error(L, p);
    return 2;
}

/* p:finish() -> records, lines [, message, line] | nil, message, line
 * Ends the stream: a last record without a line break is returned, an open
 * quoted field is an error naming the line where its quote opened. */
static int p_finish(lua_State *L)
{
    parser *p = check_idle(L);
    if (p->err)
        return push_error(L, p);
    lua_settop(L, 1);
    return call_busy(L, p, finish_work);
}

/* p:line() -> the line number the parser has reached */
static int p_line(lua_State *L)
{
    parser *p = check_parser(L);
    lua_pushinteger(L, (lua_Integer)p->line);
    return 1;
}

/* p:close(): idempotent; while a feed or finish runs (a finalizer closing
 * the parser) it is closed at once but freed when that call ends. */
static int p_close(lua_State *L)
{
    parser *p = (parser *)luaL_checkudata(L, 1, PARSER_MT);
    if (p->busy) {
        p->open = 0;
        p->closing = 1;
        return 0;
    }
    free_parser(p);
    return 0;
}

/* __gc: nothing runs on a parser being collected (a running call keeps
 * its parser on the stack), so whatever it holds goes now. */
static int p_gc(lua_State *L)
{
    free_parser((parser *)luaL_checkudata(L, 1, PARSER_MT));
    return 0;
}

static int p_tostring(lua_State *L)
{
    parser *p = (parser *)luaL_checkudata(L, 1, PARSER_MT);
    if (p->open)
        lua_pushfstring(L, "instantly.CsvParser (line %I)", (lua_Integer)p->line);
    else
        lua_pushliteral(L, "instantly.CsvParser (closed)");
    return 1;
}

/* Option checks raise the way http.c's and json.c's do: luaL_argerror on
 * the options argument, naming the option. */
static char opt_char(lua_State *L, int idx, const char *key, char dflt)
{
    size_t n;
    const char *s;
    char c;
    if (lua_getfield(L, idx, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return dflt;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must be a string, got %s", key,
                                              luaL_typename(L, -1)));
    s = lua_tolstring(L, -1, &n);
    if (n != 1 || s[0] == '\r' || s[0] == '\n')
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must be one byte other than CR or LF", key));
    c = s[0];
    lua_pop(L, 1);
    return c;
}

static int opt_bool(lua_State *L, int idx, const char *key, int dflt)
{
    int v;
    if (lua_getfield(L, idx, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return dflt;
    }
    if (!lua_isboolean(L, -1))
        luaL_argerror(L, idx, lua_pushfstring(L, "option '%s' must be a boolean, got %s", key,
                                              luaL_typename(L, -1)));
    v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* core.csv_parser([opts]) -> parser
 * opts: sep (one byte, default ","), quote (default '"'), lazy_quotes
 * (default false), skip_blank_lines (default true), max_record_bytes
 * (default 64 MiB; each field counts FIELD_COST bytes beyond its text).
 * Unknown keys are an error. */
static int l_csv_parser(lua_State *L)
{
    parser *p;
    lua_Alloc alloc;
    void *ud;
    static const char *const known[] = {"sep", "quote", "lazy_quotes", "skip_blank_lines",
                                        "max_record_bytes", NULL};
    lua_settop(L, 1);
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 1)) {
            int i;
            if (lua_type(L, -2) != LUA_TSTRING)
                luaL_argerror(L, 1, lua_pushfstring(L, "unknown option key (a %s)", luaL_typename(L, -2)));
            for (i = 0; known[i] && strcmp(lua_tostring(L, -2), known[i]) != 0; i++)
                ;
            if (!known[i])
                luaL_argerror(L, 1, lua_pushfstring(L, "unknown option '%s'", lua_tostring(L, -2)));
            lua_pop(L, 1);
        }
    }
    p = (parser *)lua_newuserdatauv(L, sizeof(parser), 0);
    memset(p, 0, sizeof(*p));
    alloc = lua_getallocf(L, &ud);
    inst_buf_init(&p->text, alloc, ud);
    inst_buf_init(&p->ends, alloc, ud);
    luaL_setmetatable(L, PARSER_MT);
    p->sep = ',';
    p->quote = '"';
    p->skip_blank = 1;
    p->max_record = DEFAULT_MAX_RECORD;
    p->line = 1;
    p->rec_line = 1;
    if (!lua_isnil(L, 1)) {
        p->sep = opt_char(L, 1, "sep", ',');
        p->quote = opt_char(L, 1, "quote", '"');
        if (p->sep == p->quote)
            luaL_argerror(L, 1, "options 'sep' and 'quote' must be different bytes");
        p->lazy_quotes = opt_bool(L, 1, "lazy_quotes", 0);
        p->skip_blank = opt_bool(L, 1, "skip_blank_lines", 1);
        if (lua_getfield(L, 1, "max_record_bytes") != LUA_TNIL) {
            int isint;
            lua_Integer m = lua_tointegerx(L, -1, &isint);
            if (lua_type(L, -1) != LUA_TNUMBER || !isint || m < 1)
                luaL_argerror(L, 1, "option 'max_record_bytes' must be a positive integer");
            p->max_record = (size_t)m;
        }
        lua_pop(L, 1);
    }
    p->open = 1;
    return 1;
}

/* ---------------------------------------------------------------- writing */

/* core.csv_format(row [, n [, sep]]) -> line (no end of line)
 * row[1..n] (n defaults to #row) may hold strings, numbers, booleans, nil
 * (an empty field) or values with a __tostring; anything else is an error. A field is quoted when it holds the separator, a quote, CR or LF,
 * or starts or ends with a space or tab (so lenient readers keep them). */
static int l_csv_format(lua_State *L)
{
    luaL_Buffer b;
    lua_Integer i, n;
    char sep = ',';
    luaL_checktype(L, 1, LUA_TTABLE);
    n = luaL_opt(L, luaL_checkinteger, 2, (lua_Integer)luaL_len(L, 1));
    if (!lua_isnoneornil(L, 3)) {
        size_t sl;
        const char *s = luaL_checklstring(L, 3, &sl);
        if (sl != 1 || s[0] == '"' || s[0] == '\r' || s[0] == '\n')
            return luaL_argerror(L, 3, "one byte other than a quote, CR or LF expected");
        sep = s[0];
    }
    lua_settop(L, 3);
    luaL_buffinit(L, &b);
    for (i = 1; i <= n; i++) {
        size_t len, k;
        const char *s;
        int t, needs = 0;
        if (i > 1)
            luaL_addchar(&b, sep);
        t = lua_geti(L, 1, i);
        if (t == LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN) {
            if (luaL_getmetafield(L, -1, "__tostring") == LUA_TNIL)
                return luaL_error(L, "bad field %I to 'csv_format' (%s cannot be a CSV field)", i,
                                  luaL_typename(L, -1));
            lua_pop(L, 1);
        }
        /* The text is pushed above the value, which is then dropped: the
         * string stays anchored on the stack until the buffer takes it. */
        s = luaL_tolstring(L, -1, &len);
        lua_remove(L, -2);
        if (len > 0 && (s[0] == ' ' || s[0] == '\t' || s[len - 1] == ' ' || s[len - 1] == '\t'))
            needs = 1;
        for (k = 0; k < len && !needs; k++)
            if (s[k] == sep || s[k] == '"' || s[k] == '\r' || s[k] == '\n')
                needs = 1;
        if (!needs) {
            luaL_addvalue(&b);
            continue;
        }
        {
            /* Quote into a scratch buffer so the text stays anchored. */
            luaL_Buffer q;
            size_t from = 0;
            luaL_buffinit(L, &q);
            luaL_addchar(&q, '"');
            for (k = 0; k < len; k++) {
                if (s[k] == '"') {
                    luaL_addlstring(&q, s + from, k + 1 - from);
                    luaL_addchar(&q, '"');
                    from = k + 1;
                }
            }
            luaL_addlstring(&q, s + from, len - from);
            luaL_addchar(&q, '"');
            luaL_pushresult(&q);
            lua_remove(L, -2); /* the unquoted text */
            luaL_addvalue(&b);
        }
    }
    luaL_pushresult(&b);
    return 1;
}

static const luaL_Reg parser_methods[] = {
    {"feed", p_feed},
    {"finish", p_finish},
    {"line", p_line},
    {"close", p_close},
    {NULL, NULL}
};

static const luaL_Reg parser_meta[] = {
    {"__gc", p_gc},
    {"__close", p_close},
    {"__tostring", p_tostring},
    {NULL, NULL}
};

static const luaL_Reg funcs[] = {
    {"csv_parser", l_csv_parser},
    {"csv_format", l_csv_format},
    {NULL, NULL}
};

void inst_csv_open(lua_State *L)
{
    luaL_newmetatable(L, PARSER_MT);
    luaL_setfuncs(L, parser_meta, 0);
    luaL_newlib(L, parser_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaL_setfuncs(L, funcs, 0);
}
