/*
 * shape.c - a fast yes-or-don't-know test of a Lua value against a JSON
 * shape, for instantly.request.validate.
 *
 * The validator walks its schema in Lua and words every problem; walking
 * it for every value of a 1000-lead body costs more than encoding it. So
 * the Lua side flattens each schema node once into a program (integers,
 * plus a table of the Lua values they refer to: field names, enum sets,
 * bounds) and this file runs the program (core.shape_test; json.c's
 * core.shape_encode runs it while encoding). It answers only "valid,
 * nothing to convert" (true) or false, which means "let the walker
 * decide": anything unusual (a metatable, a float where an integer goes,
 * a sequence whose keys do not come in order) is false. It knows nothing
 * about the API; the Lua side owns the schema.
 *
 * A program: node records, each starting with HEAD integers
 *   kind, nullable, enum_ref, format, min_ref, max_ref, child,
 *   keys_ref, nfields, nrequired
 * then nfields pairs (name_ref, node offset) and nrequired name_refs.
 * Offsets are 0-based into the program; a child always lies after its
 * parent, so running a checked program ends. A ref indexes the table;
 * refs 1 and 2 are the array metatable and the null sentinel. A format is
 * one of shape.h's FMT_ numbers, checked in C (no Lua call per value).
 */
#include <math.h>
#include <string.h>

#include "core.h"
#include "shape.h"

#define MAX_PROGRAM ((size_t)1 << 24)
#define MAX_REFS ((size_t)1 << 16) /* all pushed on the stack for a run */

/* One run of a program: the refs are pushed once, refs[i] at base + i, so
 * a field name, an enum set or a bound is one stack slot away. */
typedef struct Run {
    lua_State *L;
    const lua_Integer *code;
    int base;
    int depth; /* containers entered; the catalog nests a few levels */
} Run;

#define REF(r, i) SHAPE_REF((r)->base, i)

#define MAX_DEPTH 100

static int test(Run *r, lua_Integer at, int v);
static int test_typed(Run *r, lua_Integer at, int v, int t);

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
        int ok = !p[F_KEYS] || shape_in_set(L, r->base, p[F_KEYS], key);
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
    if (t != LUA_TTABLE || p[F_KIND] < K_ARRAY)
        return shape_value(L, p, v, t, r->base);
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
        if (bad_ref(c[at + F_ENUM], nrefs) || c[at + F_FORMAT] < 0 || c[at + F_FORMAT] >= FMT_COUNT ||
            bad_ref(c[at + F_MIN], nrefs) ||
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

/* The slot of the name refs[ref] (stack index refs) in o, by address or
 * by bytes; NULL when it is not a field. */
static ShapeSlot *find_name(lua_State *L, const ShapeObj *o, int refs, lua_Integer ref)
{
    size_t mask = o->mask;
    ShapeSlot *found = NULL;
    if (lua_rawgeti(L, refs, ref) == LUA_TSTRING) {
        size_t i, n;
        const char *name = lua_tolstring(L, -1, &n);
        for (i = 0; i <= mask; i++) {
            ShapeSlot *sl = &o->slots[i];
            if (sl->id != NULL && sl->len == n && memcmp(sl->name, name, n) == 0)
                found = sl;
        }
    }
    lua_pop(L, 1);
    return found;
}

/* The Lua types the record p takes without a further look: a lone
 * lightuserdata can only be null (any other fails to encode). */
static unsigned short accepted_types(const lua_Integer *p)
{
    unsigned short m = p[F_NULLABLE] ? 1u << LUA_TLIGHTUSERDATA : 0;
    int bare = !p[F_FORMAT] && !p[F_ENUM] && !p[F_MIN] && !p[F_MAX];
    switch (p[F_KIND]) {
    case K_STRING:
        return m | (bare ? 1u << LUA_TSTRING : 0);
    case K_BOOLEAN:
        return m | (bare ? 1u << LUA_TBOOLEAN : 0);
    case K_SCALAR:
        return m | (bare ? 1u << LUA_TSTRING | 1u << LUA_TBOOLEAN : 0);
    case K_ARRAY:
    case K_OBJECT:
    case K_MAP:
    case K_ANYOBJECT:
        return m | 1u << LUA_TTABLE;
    default:
        return m;
    }
}

/* Builds the field table of every object record and the accepted types
 * of every record (see shape.h) in a userdata pushed on the stack; refs
 * is the shape's own refs table, which keeps every name (so every address
 * in a table) alive with the shape. */
static void index_program(lua_State *L, Shape *s, int refs)
{
    const lua_Integer *c = s->code;
    lua_Integer at, nobj = 0, nslots = 0;
    size_t size;
    ShapeObj *objs;
    ShapeSlot *slots;
    for (at = 0; at < s->n; at += HEAD + 2 * c[at + F_NFIELDS] + c[at + F_NREQ]) {
        unsigned bits = 1;
        if (c[at + F_KIND] != K_OBJECT)
            continue;
        while (((lua_Integer)1 << bits) < 2 * c[at + F_NFIELDS])
            bits++;
        nobj++;
        nslots += (lua_Integer)1 << bits;
    }
    size = (size_t)s->n * sizeof(ShapeObj *) + (size_t)nobj * sizeof(ShapeObj) +
           (size_t)nslots * sizeof(ShapeSlot) + (size_t)s->n * sizeof(unsigned short);
    s->obj = (ShapeObj **)lua_newuserdatauv(L, size, 0);
    memset(s->obj, 0, size);
    objs = (ShapeObj *)(void *)(s->obj + s->n);
    slots = (ShapeSlot *)(void *)(objs + nobj);
    s->accept = (unsigned short *)(void *)(slots + nslots);
    for (at = 0; at < s->n; at += HEAD + 2 * c[at + F_NFIELDS] + c[at + F_NREQ]) {
        const lua_Integer *f = c + at + HEAD;
        ShapeObj *o;
        lua_Integer k;
        s->accept[at] = accepted_types(c + at);
        if (c[at + F_KIND] != K_OBJECT)
            continue;
        o = objs++;
        s->obj[at] = o;
        o->slots = slots;
        o->bits = 1;
        while (((lua_Integer)1 << o->bits) < 2 * c[at + F_NFIELDS])
            o->bits++;
        o->mask = ((size_t)1 << o->bits) - 1;
        slots += (size_t)1 << o->bits;
        for (k = 0; k < c[at + F_NFIELDS]; k++) {
            size_t mask = o->mask, i, n;
            const char *name;
            const void *id;
            if (lua_rawgeti(L, refs, f[2 * k]) != LUA_TSTRING || find_name(L, o, refs, f[2 * k]) != NULL) {
                /* a name that is not a string, or twice: not a program the
                 * validator builds, so objects of it go to the walker */
                o->unprovable = 1;
                lua_pop(L, 1);
                continue;
            }
            name = lua_tolstring(L, -1, &n);
            id = lua_topointer(L, -1);
            lua_pop(L, 1); /* still held by refs */
            for (i = shape_hash(id, o->bits); o->slots[i].id != NULL; i = (i + 1) & mask)
                ;
            o->slots[i].id = id;
            o->slots[i].name = name;
            o->slots[i].len = n;
            o->slots[i].child = f[2 * k + 1];
            o->lens |= (uint64_t)1 << (n < 63 ? n : 63);
        }
        for (k = 0; k < c[at + F_NREQ]; k++) {
            ShapeSlot *sl = find_name(L, o, refs, f[2 * c[at + F_NFIELDS] + k]);
            if (sl == NULL)
                o->unprovable = 1;
            else if (!sl->required) {
                sl->required = 1;
                o->nreq++;
            }
        }
    }
}

/* core.shape_new(code, refs) -> shape: code is a sequence of integers (the
 * program above), refs the table its refs index (refs[1] core.array_mt,
 * refs[2] core.null). The shape keeps a copy of refs. */
static int l_shape_new(lua_State *L)
{
    lua_Integer n, i;
    size_t len, nrefs;
    Shape *s;
    unsigned char *start;
    const char *bad;
    int ok;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    len = lua_rawlen(L, 1);
    /* a schema node's program is a few hundred integers */
    if (len < HEAD || len > MAX_PROGRAM)
        return luaL_argerror(L, 1, "program size out of range");
    n = (lua_Integer)len;
    nrefs = lua_rawlen(L, 2);
    if (nrefs < 2 || nrefs > MAX_REFS)
        return luaL_argerror(L, 2, "refs size out of range");
    lua_rawgeti(L, 2, REF_ARRAY_MT);
    luaL_getmetatable(L, "instantly.array");
    ok = lua_rawequal(L, -1, -2) && lua_rawgeti(L, 2, REF_NULL) == LUA_TLIGHTUSERDATA &&
         lua_touserdata(L, -1) == NULL;
    lua_settop(L, 2);
    if (!ok)
        return luaL_argerror(L, 2, "refs[1] must be core.array_mt and refs[2] core.null");
    s = (Shape *)lua_newuserdatauv(L, sizeof(Shape) + len * sizeof(lua_Integer), 2); /* 3 */
    s->n = n;
    s->obj = NULL;
    s->accept = NULL;
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
    /* its own copy of refs: the caller may change theirs */
    lua_createtable(L, (int)nrefs, 0); /* 4 */
    for (i = 1; i <= (lua_Integer)nrefs; i++) {
        lua_rawgeti(L, 2, i);
        lua_rawseti(L, 4, i);
    }
    index_program(L, s, 4); /* 5 */
    lua_setiuservalue(L, 3, 2);
    lua_setiuservalue(L, 3, 1);
    luaL_setmetatable(L, SHAPE_MT);
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
