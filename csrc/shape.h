/*
 * shape.h - the compiled shape programs of shape.c, as both of their
 * runners read them: shape.c's core.shape_test and json.c's
 * core.shape_encode (the encoder that checks while it writes).
 *
 * A program is a list of node records (see shape.c for the layout and
 * for how core.shape_new proves one safe to run). core.shape_new also
 * builds, for every object record, a small table from a field name's
 * address to the field, so a runner that walks the keys a table holds
 * finds the field of each key without hashing the name again; and for
 * every record the Lua types it takes with no further look (a plain
 * string field takes any string).
 *
 * Header-only (static inline), like buf.h: json.c builds alone for the
 * fuzzers, so what it runs must come with the header.
 */
#ifndef INSTANTLY_SHAPE_H
#define INSTANTLY_SHAPE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#define SHAPE_MT "instantly.Shape"

enum { K_NEVER, K_STRING, K_INTEGER, K_NUMBER, K_BOOLEAN, K_SCALAR, K_ARRAY, K_OBJECT, K_MAP, K_ANYOBJECT,
       K_COUNT };
enum { F_KIND, F_NULLABLE, F_ENUM, F_FORMAT, F_MIN, F_MAX, F_CHILD, F_KEYS, F_NFIELDS, F_NREQ, HEAD };
enum { REF_ARRAY_MT = 1, REF_NULL = 2 };

/* One declared field of an object record, found by its name's address. */
typedef struct ShapeSlot {
    const void *id;   /* the name string (lua_topointer); NULL: an empty slot */
    const char *name; /* its bytes, for names Lua does not intern */
    size_t len;
    lua_Integer child; /* the field's node */
    int required;
} ShapeSlot;

/* The fields of one object record, as an open-addressed table. */
typedef struct ShapeObj {
    ShapeSlot *slots;
    unsigned bits;      /* 2^bits slots, at least twice the fields */
    size_t mask;        /* 2^bits - 1 */
    int unprovable;     /* a required name is not a field: left to the walker */
    lua_Integer nreq;   /* distinct required fields */
    uint64_t lens;      /* bit i set: a name of length i (63: 63 or more) */
} ShapeObj;

typedef struct Shape {
    lua_Integer n;
    lua_Integer nrefs;
    ShapeObj **obj;      /* obj[at]: the table of the object record at `at` */
    unsigned short *accept; /* accept[at] bit t: a value of Lua type t fits
                               the record at `at` with nothing more to see
                               (a container's own test is its runner's) */
    lua_Integer code[1]; /* n of them */
} Shape;

static inline size_t shape_hash(const void *id, unsigned bits)
{
    return (size_t)(((uint64_t)(uintptr_t)id * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - bits));
}

static inline const ShapeSlot *shape_field_bytes(lua_State *L, const ShapeObj *o, int key);

/* The field of the string key at stack index `key`, whose address is
 * `id` (its bytes are read only when the address is not a field's), or
 * NULL for a key not declared.
 * Short strings are interned, so equal names have one address; a long
 * name (not interned) is found by its bytes. */
static inline const ShapeSlot *shape_field(lua_State *L, const ShapeObj *o, const void *id, int key)
{
    size_t i;
    if (id == NULL)
        return NULL;
    for (i = shape_hash(id, o->bits);; i = (i + 1) & o->mask) {
        const ShapeSlot *sl = &o->slots[i];
        if (sl->id == id)
            return sl;
        if (sl->id == NULL)
            return shape_field_bytes(L, o, key);
    }
}

/* A key not found by its address: a long name (not interned) is found by
 * its bytes, when some field has a name of that length. */
static inline const ShapeSlot *shape_field_bytes(lua_State *L, const ShapeObj *o, int key)
{
    size_t i, n;
    const char *s = lua_tolstring(L, key, &n);
    if (!(o->lens >> (n < 63 ? n : 63) & 1))
        return NULL;
    for (i = 0; i <= o->mask; i++) {
        const ShapeSlot *sl = &o->slots[i];
        if (sl->id != NULL && sl->len == n && memcmp(sl->name, s, n) == 0)
            return sl;
    }
    return NULL;
}

/* A run keeps the refs on the stack: refs[i] at base + i. */
#define SHAPE_REF(base, i) ((base) + (int)(i))

/* Is the value at v a key of the set refs[ref]? */
static inline int shape_in_set(lua_State *L, int base, lua_Integer ref, int v)
{
    int yes;
    if (lua_type(L, SHAPE_REF(base, ref)) != LUA_TTABLE)
        return 0;
    lua_pushvalue(L, v);
    lua_rawget(L, SHAPE_REF(base, ref));
    yes = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return yes;
}

/* Is the number at v outside the bound refs[ref] (below a minimum, or
 * above a maximum when `is_max`)? Not a number bound: yes, say no. */
static inline int shape_outside(lua_State *L, int base, lua_Integer ref, int v, int is_max)
{
    if (lua_type(L, SHAPE_REF(base, ref)) != LUA_TNUMBER)
        return 1;
    return is_max ? lua_compare(L, SHAPE_REF(base, ref), v, LUA_OPLT) : lua_compare(L, v, SHAPE_REF(base, ref), LUA_OPLT);
}

/* The format function refs[ref] says yes to the string at v. */
static inline int shape_format(lua_State *L, int base, lua_Integer ref, int v)
{
    int yes;
    if (lua_type(L, SHAPE_REF(base, ref)) != LUA_TFUNCTION)
        return 0;
    lua_pushvalue(L, SHAPE_REF(base, ref));
    lua_pushvalue(L, v);
    lua_call(L, 1, 1);
    yes = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return yes;
}

static inline int shape_finite(lua_Number x)
{
    return x == x && x != HUGE_VAL && x != -HUGE_VAL;
}

/* The value at v (of type t) against the scalar record p: valid, with
 * nothing to convert. Needs 2 free stack slots. */
static inline int shape_scalar(lua_State *L, const lua_Integer *p, int v, int t, int base)
{
    switch (p[F_KIND]) {
    case K_STRING:
        if (t != LUA_TSTRING)
            return 0;
        if (p[F_FORMAT] && !shape_format(L, base, p[F_FORMAT], v))
            return 0;
        break;
    case K_INTEGER:
        if (!lua_isinteger(L, v))
            return 0;
        break;
    case K_NUMBER:
        if (t != LUA_TNUMBER || !shape_finite(lua_tonumber(L, v)))
            return 0;
        break;
    case K_BOOLEAN:
        if (t != LUA_TBOOLEAN)
            return 0;
        break;
    case K_SCALAR:
        if (t != LUA_TSTRING && t != LUA_TBOOLEAN && (t != LUA_TNUMBER || !shape_finite(lua_tonumber(L, v))))
            return 0;
        break;
    default:
        return 0;
    }
    if (p[F_ENUM] && !shape_in_set(L, base, p[F_ENUM], v))
        return 0;
    if (p[F_MIN] || p[F_MAX]) {
        if (t != LUA_TNUMBER)
            return 0;
        if (p[F_MIN] && shape_outside(L, base, p[F_MIN], v, 0))
            return 0;
        if (p[F_MAX] && shape_outside(L, base, p[F_MAX], v, 1))
            return 0;
    }
    return 1;
}

/* Null where the record allows it, or a scalar that fits it; a table is
 * left to the caller, which knows containers. */
static inline int shape_value(lua_State *L, const lua_Integer *p, int v, int t, int base)
{
    if (p[F_NULLABLE] && t == LUA_TLIGHTUSERDATA && lua_touserdata(L, v) == NULL)
        return 1;
    if (p[F_KIND] < K_ARRAY)
        return shape_scalar(L, p, v, t, base);
    return t == LUA_TTABLE;
}

#endif
