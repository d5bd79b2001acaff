/*
 * shape.c - a fast yes-or-don't-know test of a Lua value against a JSON
 * shape, for instantly.request.validate.
 *
 * The validator walks its schema in Lua and words every problem; walking
 * it for every value of a 1000-lead body costs more than encoding it. So
 * the Lua side flattens each schema node once into a program (integers,
 * plus a table of the Lua values they refer to: field names, enum sets,
 * format functions, bounds) and this file runs the program. It answers
 * only "valid, nothing to convert" (true) or false, which means "let the
 * walker decide": anything unusual (a metatable, a float where an integer
 * goes, a sequence whose keys do not come in order) is false. It knows
 * nothing about the API; the Lua side owns the schema.
 *
 * A program: node records, each starting with HEAD integers
 *   kind, nullable, enum_ref, format_ref, min_ref, max_ref, child,
 *   keys_ref, nfields, nrequired
 * then nfields pairs (name_ref, node offset) and nrequired name_refs.
 * Offsets are 0-based into the program; a child always lies after its
 * parent, so running a checked program ends. A ref indexes the table;
 * refs 1 and 2 are the array metatable and the null sentinel.
 */
#include <math.h>
#include <string.h>

#include "core.h"

#define SHAPE_MT "instantly.Shape"
#define MAX_PROGRAM ((size_t)1 << 24)
#define MAX_REFS ((size_t)1 << 16) /* all pushed on the stack for a run */

enum { K_NEVER, K_STRING, K_INTEGER, K_NUMBER, K_BOOLEAN, K_SCALAR, K_ARRAY, K_OBJECT, K_MAP, K_ANYOBJECT,
       K_COUNT };
enum { F_KIND, F_NULLABLE, F_ENUM, F_FORMAT, F_MIN, F_MAX, F_CHILD, F_KEYS, F_NFIELDS, F_NREQ, HEAD };
enum { REF_ARRAY_MT = 1, REF_NULL = 2 };

typedef struct Shape {
    lua_Integer n;
    lua_Integer nrefs;
    lua_Integer code[1]; /* n of them */
} Shape;

/* One run of a program: the refs are pushed once, refs[i] at base + i, so
 * a field name, an enum set or a bound is one stack slot away. */
typedef struct Run {
    lua_State *L;
    const lua_Integer *code;
    int base;
    int depth; /* containers entered; the catalog nests a few levels */
} Run;

#define MAX_DEPTH 100

#define REF(r, i) ((r)->base + (int)(i))

static int finite(lua_Number x)
{
    return x == x && x != HUGE_VAL && x != -HUGE_VAL;
}

/* Is the value at v a key of the set refs[ref]? */
static int in_set(const Run *r, lua_Integer ref, int v)
{
    lua_State *L = r->L;
    int yes;
    if (lua_type(L, REF(r, ref)) != LUA_TTABLE)
        return 0;
    lua_pushvalue(L, v);
    lua_rawget(L, REF(r, ref));
    yes = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return yes;
}

/* Is the number at v outside the bound refs[ref] (below a minimum, or
 * above a maximum when `is_max`)? Not a number bound: yes, say no. */
static int outside(const Run *r, lua_Integer ref, int v, int is_max)
{
    lua_State *L = r->L;
    if (lua_type(L, REF(r, ref)) != LUA_TNUMBER)
        return 1;
    return is_max ? lua_compare(L, REF(r, ref), v, LUA_OPLT) : lua_compare(L, v, REF(r, ref), LUA_OPLT);
}

/* The format function refs[ref] says yes to the string at v. */
static int format_ok(const Run *r, lua_Integer ref, int v)
{
    lua_State *L = r->L;
    int yes;
    if (lua_type(L, REF(r, ref)) != LUA_TFUNCTION)
        return 0;
    lua_pushvalue(L, REF(r, ref));
    lua_pushvalue(L, v);
    lua_call(L, 1, 1);
    yes = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return yes;
}

static int test(Run *r, lua_Integer at, int v);
static int test_typed(Run *r, lua_Integer at, int v, int t);

static int test_scalar(const Run *r, const lua_Integer *p, int v, int t)
{
    lua_State *L = r->L;
    switch (p[F_KIND]) {
    case K_STRING:
        if (t != LUA_TSTRING)
            return 0;
        if (p[F_FORMAT] && !format_ok(r, p[F_FORMAT], v))
            return 0;
        break;
    case K_INTEGER:
        if (!lua_isinteger(L, v))
            return 0;
        break;
    case K_NUMBER:
        if (t != LUA_TNUMBER || !finite(lua_tonumber(L, v)))
            return 0;
        break;
    case K_BOOLEAN:
        if (t != LUA_TBOOLEAN)
            return 0;
        break;
    case K_SCALAR:
        if (t != LUA_TSTRING && t != LUA_TBOOLEAN && (t != LUA_TNUMBER || !finite(lua_tonumber(L, v))))
            return 0;
        break;
    default:
        return 0;
    }
    if (p[F_ENUM] && !in_set(r, p[F_ENUM], v))
        return 0;
    if (p[F_MIN] || p[F_MAX]) {
        if (t != LUA_TNUMBER)
            return 0;
        if (p[F_MIN] && outside(r, p[F_MIN], v, 0))
            return 0;
        if (p[F_MAX] && outside(r, p[F_MAX], v, 1))
            return 0;
    }
    return 1;
}

/* A string, or scalar, with no format, enum or bound takes any string. */
static int plain_string(const lua_Integer *p)
{
    return (p[F_KIND] == K_STRING || p[F_KIND] == K_SCALAR) && !p[F_FORMAT] && !p[F_ENUM] && !p[F_MIN] &&
           !p[F_MAX];
}

/* A table with no metatable, not starting like a sequence: an object. */
static int plain_object(lua_State *L, int v)
{
    int first;
    if (lua_type(L, v) != LUA_TTABLE)
        return 0;
    if (lua_getmetatable(L, v)) {
        lua_pop(L, 1);
        return 0;
    }
    if (lua_rawlen(L, v) == 0) /* t[1] ~= nil would make #t at least 1 */
        return 1;
    first = lua_rawgeti(L, v, 1);
    lua_pop(L, 1);
    return first == LUA_TNIL;
}

/* Keys 1, 2, ... in traversal order prove a sequence with no holes. */
static int test_array(Run *r, const lua_Integer *p, int v)
{
    lua_State *L = r->L;
    lua_Integer i = 0;
    int marked = 0, key;
    if (lua_type(L, v) != LUA_TTABLE)
        return 0;
    if (lua_getmetatable(L, v)) {
        marked = lua_rawequal(L, -1, REF(r, REF_ARRAY_MT));
        lua_pop(L, 1);
        if (!marked)
            return 0;
    }
    key = lua_gettop(L) + 1; /* and the value above it */
    lua_pushnil(L);
    while (lua_next(L, v)) {
        i++;
        if (!lua_isinteger(L, key) || lua_tointeger(L, key) != i ||
            (p[F_CHILD] >= 0 && !test(r, p[F_CHILD], key + 1))) {
            lua_pop(L, 2);
            return 0;
        }
        lua_pop(L, 1);
    }
    return i > 0 || marked; /* an empty one is sent marked: a copy unless it is */
}

static int test_fields(Run *r, const lua_Integer *p, int v)
{
    lua_State *L = r->L;
    const lua_Integer *f = p + HEAD;
    lua_Integer k;
    int slot, ok = 1;
    /* one slot on top: each name is copied in and looked up in place */
    lua_pushnil(L);
    slot = lua_gettop(L);
    for (k = 0; ok && k < p[F_NFIELDS]; k++) {
        int t;
        lua_copy(L, REF(r, f[2 * k]), slot);
        t = lua_rawget(L, v);
        if (t == LUA_TSTRING && plain_string(r->code + f[2 * k + 1]))
            continue; /* the usual field, settled here */
        if (t != LUA_TNIL)
            ok = test_typed(r, f[2 * k + 1], slot, t);
    }
    f += 2 * p[F_NFIELDS];
    for (k = 0; ok && k < p[F_NREQ]; k++) {
        lua_copy(L, REF(r, f[k]), slot);
        ok = lua_rawget(L, v) != LUA_TNIL;
    }
    lua_pop(L, 1);
    return ok;
}

static int test_map(Run *r, const lua_Integer *p, int v)
{
    lua_State *L = r->L;
    const lua_Integer *child = p[F_CHILD] >= 0 ? r->code + p[F_CHILD] : NULL;
    int key = lua_gettop(L) + 1; /* and the value above it */
    lua_pushnil(L);
    while (lua_next(L, v)) {
        int ok = !p[F_KEYS] || in_set(r, p[F_KEYS], key);
        if (ok && child) {
            int t = lua_type(L, key + 1);
            ok = (t == LUA_TSTRING && plain_string(child)) || test_typed(r, p[F_CHILD], key + 1, t);
        }
        if (!ok) {
            lua_pop(L, 2);
            return 0;
        }
        lua_pop(L, 1);
    }
    return 1;
}

/* The value at v, of type t, against the record at `at`. */
static int test_typed(Run *r, lua_Integer at, int v, int t)
{
    lua_State *L = r->L;
    const lua_Integer *p = r->code + at;
    int ok;
    if (p[F_NULLABLE] && (t == LUA_TUSERDATA || t == LUA_TLIGHTUSERDATA) && lua_rawequal(L, v, REF(r, REF_NULL)))
        return 1;
    if (p[F_KIND] < K_ARRAY)
        return test_scalar(r, p, v, t);
    /* each level holds a key, a value and one more; a program nested
     * deeper than any schema (only a hand-made one) is simply said no to */
    if (r->depth >= MAX_DEPTH || !lua_checkstack(L, 4))
        return 0;
    r->depth++;
    switch (p[F_KIND]) {
    case K_ARRAY:
        ok = test_array(r, p, v);
        break;
    case K_OBJECT:
        ok = plain_object(L, v) && test_fields(r, p, v);
        break;
    case K_MAP:
        ok = plain_object(L, v) && test_map(r, p, v);
        break;
    case K_ANYOBJECT:
        ok = plain_object(L, v);
        break;
    default:
        ok = 0;
    }
    r->depth--;
    return ok;
}

static int test(Run *r, lua_Integer at, int v)
{
    return test_typed(r, at, v, lua_type(r->L, v));
}

/* core.shape_test(shape, value) -> true when the value fits, else false. */
static int l_shape_test(lua_State *L)
{
    const Shape *s = (const Shape *)luaL_checkudata(L, 1, SHAPE_MT);
    Run r;
    lua_Integer i, nrefs;
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    lua_getiuservalue(L, 1, 1);
    nrefs = s->nrefs;
    luaL_checkstack(L, (int)nrefs + 8, "shape refs");
    r.L = L;
    r.code = s->code;
    r.base = 3;
    r.depth = 0;
    for (i = 1; i <= nrefs; i++)
        lua_rawgeti(L, 3, i);
    lua_pushboolean(L, test(&r, 0, 2));
    return 1;
}

/* Every record in bounds, every child a record after its parent, every
 * kind known: then running the program reads only its own integers and
 * ends. `start` (n bytes, zeroed) marks where records begin. */
static int bad_ref(lua_Integer ref, lua_Integer nrefs)
{
    return ref < 0 || ref > nrefs;
}

static const char *check_program(const lua_Integer *c, lua_Integer n, lua_Integer nrefs, unsigned char *start)
{
    lua_Integer at = 0;
    while (at < n) {
        lua_Integer nf;
        if (n - at < HEAD)
            return "truncated record";
        nf = c[at + F_NFIELDS];
        if (c[at + F_KIND] < 0 || c[at + F_KIND] >= K_COUNT || nf < 0 || c[at + F_NREQ] < 0 ||
            nf > (n - at - HEAD) / 2 || c[at + F_NREQ] > n - at - HEAD - 2 * nf)
            return "bad record";
        start[at] = 1;
        at += HEAD + 2 * nf + c[at + F_NREQ];
    }
    at = 0;
    while (at < n) {
        lua_Integer nf, k, end;
        nf = c[at + F_NFIELDS];
        end = at + HEAD + 2 * nf + c[at + F_NREQ];
        if (c[at + F_CHILD] != -1 && (c[at + F_CHILD] < end || c[at + F_CHILD] >= n || !start[c[at + F_CHILD]]))
            return "bad child offset";
        if (bad_ref(c[at + F_ENUM], nrefs) || bad_ref(c[at + F_FORMAT], nrefs) || bad_ref(c[at + F_MIN], nrefs) ||
            bad_ref(c[at + F_MAX], nrefs) || bad_ref(c[at + F_KEYS], nrefs) || c[at + F_NULLABLE] < 0 ||
            c[at + F_NULLABLE] > 1)
            return "bad ref";
        for (k = 0; k < nf; k++) {
            lua_Integer child = c[at + HEAD + 2 * k + 1];
            if (child < end || child >= n || !start[child])
                return "bad field offset";
            if (bad_ref(c[at + HEAD + 2 * k], nrefs) || c[at + HEAD + 2 * k] == 0)
                return "bad ref";
        }
        for (k = end - c[at + F_NREQ]; k < end; k++) {
            if (bad_ref(c[k], nrefs) || c[k] == 0)
                return "bad ref";
        }
        at = end;
    }
    return NULL;
}

/* core.shape_new(code, refs) -> shape: code is a sequence of integers (the
 * program above), refs the table its refs index. */
static int l_shape_new(lua_State *L)
{
    lua_Integer n, i;
    size_t len, nrefs;
    Shape *s;
    unsigned char *start;
    const char *bad;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    len = lua_rawlen(L, 1);
    /* a schema node's program is a few hundred integers */
    if (len < HEAD || len > MAX_PROGRAM)
        return luaL_argerror(L, 1, "program size out of range");
    n = (lua_Integer)len;
    nrefs = lua_rawlen(L, 2);
    if (nrefs < 2 || nrefs > MAX_REFS)
        return luaL_argerror(L, 2, "refs size out of range");
    s = (Shape *)lua_newuserdatauv(L, sizeof(Shape) + len * sizeof(lua_Integer), 1);
    s->n = n;
    for (i = 0; i < n; i++) {
        int isint;
        lua_rawgeti(L, 1, i + 1);
        isint = lua_isinteger(L, -1);
        s->code[i] = lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (!isint)
            return luaL_argerror(L, 1, "program holds a non-integer");
    }
    start = (unsigned char *)lua_newuserdatauv(L, len, 0);
    memset(start, 0, len);
    s->nrefs = (lua_Integer)nrefs;
    bad = check_program(s->code, n, s->nrefs, start);
    lua_pop(L, 1);
    if (bad)
        return luaL_argerror(L, 1, bad);
    luaL_setmetatable(L, SHAPE_MT);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"shape_new", l_shape_new},
    {"shape_test", l_shape_test},
    {NULL, NULL}
};

void inst_shape_open(lua_State *L)
{
    luaL_newmetatable(L, SHAPE_MT);
    lua_pop(L, 1);
    luaL_setfuncs(L, funcs, 0);
}
