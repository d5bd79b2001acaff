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

#include <ctype.h>
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
/* F_FORMAT: 0 none, else one of these (validate.lua's FORMAT_ID) */
enum { FMT_NONE, FMT_UUID, FMT_EMAIL, FMT_DATE, FMT_DATE_TIME, FMT_URI, FMT_HHMM, FMT_COUNT };

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
    return is_max ? lua_compare(L, SHAPE_REF(base, ref), v, LUA_OPLT)
                  : lua_compare(L, v, SHAPE_REF(base, ref), LUA_OPLT);
}

/* The formats, as validate.lua's Lua patterns say them, byte for byte:
 * the classes are the C library's (isdigit, isxdigit, isalpha, isalnum,
 * isspace), as in Lua's own pattern matcher, so the two agree whatever
 * the locale. */

static inline int fmt_digits(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

static inline int fmt_num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* ^(%d%d%d%d)%-(%d%d)%-(%d%d), and a day the month has */
static inline int fmt_date10(const char *s)
{
    static const int days_in[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, m, d;
    if (!fmt_digits(s, 4) || s[4] != '-' || !fmt_digits(s + 5, 2) || s[7] != '-' || !fmt_digits(s + 8, 2))
        return 0;
    y = fmt_num2(s) * 100 + fmt_num2(s + 2);
    m = fmt_num2(s + 5);
    d = fmt_num2(s + 8);
    if (m < 1 || m > 12 || d < 1 || d > days_in[m - 1])
        return 0;
    return !(m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)));
}

/* the tail of a date-time after HH:MM */
static inline int fmt_zone(const char *s, size_t n)
{
    size_t i = 0;
    if (n - i >= 3 && s[i] == ':' && s[i + 1] >= '0' && s[i + 1] <= '5' && isdigit((unsigned char)s[i + 2]))
        i += 3; /* ^:[0-5]%d */
    if (n - i >= 3 && s[i] == ':' && s[i + 1] == '6' && s[i + 2] == '0')
        i += 3; /* then ^:60 */
    if (n - i >= 2 && s[i] == '.' && isdigit((unsigned char)s[i + 1])) {
        i += 2; /* then ^%.%d+ */
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
    }
    s += i;
    n -= i;
    if (n == 0 || (n == 1 && (s[0] == 'Z' || s[0] == 'z')))
        return 1;
    /* ^[+-][01]%d:?[0-5]%d$ */
    if ((n != 5 && n != 6) || (s[0] != '+' && s[0] != '-') || (s[1] != '0' && s[1] != '1') ||
        !isdigit((unsigned char)s[2]))
        return 0;
    if (n == 6 && s[3] != ':')
        return 0;
    s += n - 2;
    return s[0] >= '0' && s[0] <= '5' && isdigit((unsigned char)s[1]);
}

static inline int shape_format_ok(lua_Integer id, const char *s, size_t n)
{
    size_t i;
    switch (id) {
    case FMT_UUID:
        if (n != 36)
            return 0;
        for (i = 0; i < 36; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
                return 0;
        }
        return 1;
    case FMT_EMAIL: {
        /* ^[^%s@]+@[^%s@]+%.[^%s@.]+$, no "..", at most 254 bytes: one
         * @ after something, no space, a dot after the @ with something
         * on both sides of the last one */
        size_t at = n, dot = n;
        if (n > 254)
            return 0;
        for (i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if (isspace(c))
                return 0;
            if (c == '@') {
                if (at != n)
                    return 0;
                at = i;
            } else if (c == '.') {
                if (i > 0 && s[i - 1] == '.')
                    return 0;
                if (at != n)
                    dot = i;
            }
        }
        return at > 0 && at < n && dot != n && dot > at + 1 && dot < n - 1;
    }
    case FMT_DATE:
        return n == 10 && fmt_date10(s);
    case FMT_DATE_TIME:
        if (n < 10 || !fmt_date10(s))
            return 0;
        if (n == 10)
            return 1;
        /* ^[Tt ](%d%d):(%d%d)(.*)$ with hours to 23, minutes to 59 */
        s += 10;
        n -= 10;
        if (n < 6 || (s[0] != 'T' && s[0] != 't' && s[0] != ' ') || !fmt_digits(s + 1, 2) || s[3] != ':' ||
            !fmt_digits(s + 4, 2) || fmt_num2(s + 1) > 23 || fmt_num2(s + 4) > 59)
            return 0;
        return fmt_zone(s + 6, n - 6);
    case FMT_URI:
        /* ^%a[%w+.-]*://[^%s/?#]+[^%s]*$ */
        if (n == 0 || !isalpha((unsigned char)s[0]))
            return 0;
        for (i = 1; i < n && (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '.' || s[i] == '-'); i++)
            ;
        if (n - i < 4 || s[i] != ':' || s[i + 1] != '/' || s[i + 2] != '/')
            return 0;
        i += 3;
        if (s[i] == '/' || s[i] == '?' || s[i] == '#')
            return 0;
        for (; i < n; i++) {
            if (isspace((unsigned char)s[i]))
                return 0;
        }
        return 1;
    case FMT_HHMM:
        return n == 5 && fmt_digits(s, 2) && s[2] == ':' && fmt_digits(s + 3, 2) && fmt_num2(s) <= 23 &&
               fmt_num2(s + 3) <= 59;
    default:
        return 0;
    }
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
        if (p[F_FORMAT]) {
            size_t n;
            const char *str = lua_tolstring(L, v, &n);
            if (!shape_format_ok(p[F_FORMAT], str, n))
                return 0;
        }
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
