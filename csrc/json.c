/*
 * json.c - the JSON codec of instantly.core.
 *
 * Owns core.json_decode, core.json_encode, core.null, core.array_mt and
 * core.array. The rules (see README "JSON"):
 *   - integers are exact over int64 both ways; other numbers are floats and
 *     every finite float round-trips bit-exactly;
 *   - JSON null is core.null (lightuserdata NULL, the same value as
 *     cjson.null); decoded arrays carry core.array_mt;
 *   - strict RFC 8259 input, valid UTF-8 both ways;
 *   - expected failures return nil, message (byte offset for decode, path
 *     for encode); misuse of the functions themselves raises.
 *
 * Memory: every temporary is owned by Lua. The decoder only creates Lua
 * values plus one scratch box; the encoder writes into a box whose __gc
 * frees it, and the caller frees it eagerly once the call is over. Parse
 * and encode errors unwind with lua_error inside a lua_pcall, so nothing
 * is hand-freed on the error path; running out of memory raises the
 * usual Lua memory error ("not enough memory") to the caller.
 *
 * The decoder's bound: no table is sized from a guess. A container's
 * values wait on the Lua stack until it closes (or DEC_CHUNK slots are
 * waiting), then its table is created at exactly their count. So a decoded
 * value holds what lua-cjson's decode of the same text holds (whose tables
 * grow to the same or larger powers of two), except that an object with
 * repeated keys keeps a hash node per repetition: at most 48 bytes for
 * each repeated member, itself at least 5 bytes of input. While decoding,
 * the waiting values add at most 16 bytes per value (twice that while the
 * stack grows) and never more than DEC_STACK_MAX slots plus three per
 * open container; the scratch box for escaped strings is at most the
 * input's size.
 *
 * Nesting is limited by max_depth (default 1000, at most JSON_DEPTH_CAP)
 * in both directions. Neither walker recurses in C: open containers are
 * frames in a Lua-owned array and their tables sit on the Lua stack, so
 * depth never costs C stack (coroutines and small thread stacks are safe).
 * No mutable static data: two states in two threads do not interact.
 */
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "core.h"
#include "shape.h"

/* x86-64 always has SSE2: the string scanners use it there. */
#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#include <emmintrin.h>
#define JSON_SSE2 1
#endif

#define JSON_DEFAULT_DEPTH 1000
#define JSON_DEPTH_CAP 10000
#define JSON_INDENT_CAP 32
#define ARRAY_MT "instantly.array"

#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define JSON_EXACT_DOUBLE 1
#else
#define JSON_EXACT_DOUBLE 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define JSON_NOINLINE __attribute__((noinline))
#define JSON_INLINE static inline __attribute__((always_inline))
#define JSON_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define JSON_NOINLINE
#define JSON_INLINE static inline
#define JSON_UNLIKELY(x) (x)
#endif

/* ======================================================================
 * The per-state buffers: a buf.h box plus a busy flag
 * ==================================================================== */

typedef struct jbox {
    inst_buf b;  /* first: the box's __gc frees it */
    int busy;    /* in use by a call (re-entry from a finalizer) */
} jbox;

/* What a per-state buffer may keep between calls. */
#define JBUF_KEEP (1u << 20)

/* The buffer of this call: the state's own (upvalue 1) unless a call
 * made from a finalizer finds it busy, then a fresh box on the stack. */
static jbox *jbox_acquire(lua_State *L)
{
    jbox *x = (jbox *)lua_touserdata(L, lua_upvalueindex(1));
    if (x->busy)
        x = (jbox *)inst_buf_box(L, sizeof(jbox));
    x->busy = 1;
    x->b.len = 0;
    return x;
}

static void jbox_release(jbox *x)
{
    x->busy = 0;
    x->b.len = 0;
    if (x->b.cap > JBUF_KEEP)
        inst_buf_free(&x->b);
}

/* ======================================================================
 * Shared tables
 * ==================================================================== */

/* Byte classes for the string scanners: 0 plain ASCII, 1 quote,
 * 2 backslash, 3 control, 4 high (UTF-8 lead or continuation). */
enum { C_PLAIN = 0, C_QUOTE, C_BSLASH, C_CTRL, C_HIGH };
static const unsigned char byte_class[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};
/* Encode escapes: 0 none, 'u' for \u00XX, else the short form. */
static const char esc_short[256] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
    0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* Length of the valid UTF-8 sequence at s (0 if invalid): no overlongs,
 * no surrogates, nothing above U+10FFFF. */
static inline size_t utf8_seq(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0];
    size_t avail = (size_t)(end - s);
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        if (avail < 2 || (s[1] & 0xC0) != 0x80)
            return 0;
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
        if (avail < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80)
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
        if (avail < 4 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80
            || (s[3] & 0xC0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

/* Skips plain ASCII (no quote, backslash, control or high byte), eight
 * bytes at a time while it can: strings are mostly such runs. */
#define LO8 0x0101010101010101u
#define HI8 0x8080808080808080u
/* Nonzero when any of the 8 bytes is a quote, backslash, control or high
 * byte (the classic "has zero byte" and "has byte less than" tricks). */
static uint64_t special8(uint64_t x)
{
    uint64_t q = x ^ (LO8 * '"'), b = x ^ (LO8 * '\\');
    return (((q - LO8) & ~q) | ((b - LO8) & ~b) | ((x - LO8 * 0x20) & ~x) | x) & HI8;
}

JSON_INLINE const unsigned char *skip_plain(const unsigned char *p,
                                                   const unsigned char *end)
{
#ifdef JSON_SSE2
    /* Sixteen bytes a step: a byte is special when it is a quote, a
     * backslash, or (as a signed byte) below 0x20, which takes in the
     * controls and every byte from 0x80 up. */
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        int m = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote),
                                                            _mm_cmpeq_epi8(x, bslash)),
                                               _mm_cmplt_epi8(x, space)));
        if (m != 0)
            return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
#endif
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        if (special8(x))
            break;
        p += 8;
    }
    while (p < end && byte_class[*p] == C_PLAIN)
        p++;
    return p;
}

/* Checks option table at idx against the allowed names, raising on misuse. */
typedef struct jopts {
    int max_depth;
    int sort_keys;
    int indent;
    int null_tables; /* decode: the option was given (a table) */
    int nulls;       /* decode: the option was given (a table) */
    int memory_return; /* decode: memory_error = "return" */
} jopts;

static void read_opts(lua_State *L, int idx, int for_encode, jopts *o)
{
    o->max_depth = JSON_DEFAULT_DEPTH;
    o->sort_keys = 0;
    o->indent = 0;
    o->null_tables = 0;
    o->nulls = 0;
    o->memory_return = 0;
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (k != NULL && strcmp(k, "max_depth") == 0) {
            lua_Integer v;
            int isint;
            v = lua_tointegerx(L, -1, &isint);
            if (lua_type(L, -1) != LUA_TNUMBER || !isint || v < 1 || v > JSON_DEPTH_CAP)
                luaL_argerror(L, idx, lua_pushfstring(L,
                    "option 'max_depth' must be an integer from 1 to %d", JSON_DEPTH_CAP));
            o->max_depth = (int)v;
        } else if (for_encode && k != NULL && strcmp(k, "sort_keys") == 0) {
            if (!lua_isboolean(L, -1))
                luaL_argerror(L, idx, "option 'sort_keys' must be a boolean");
            o->sort_keys = lua_toboolean(L, -1);
        } else if (!for_encode && k != NULL && strcmp(k, "null_tables") == 0) {
            if (!lua_istable(L, -1))
                luaL_argerror(L, idx, "option 'null_tables' must be a table");
            o->null_tables = 1;
        } else if (!for_encode && k != NULL && strcmp(k, "nulls") == 0) {
            if (!lua_istable(L, -1))
                luaL_argerror(L, idx, "option 'nulls' must be a table");
            o->nulls = 1;
        } else if (!for_encode && k != NULL && strcmp(k, "memory_error") == 0) {
            const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
            if (strcmp(v, "return") != 0 && strcmp(v, "raise") != 0)
                luaL_argerror(L, idx, "option 'memory_error' must be \"raise\" or \"return\"");
            o->memory_return = v[1] == 'e';
        } else if (for_encode && k != NULL && strcmp(k, "indent") == 0) {
            lua_Integer v;
            int isint;
            v = lua_tointegerx(L, -1, &isint);
            if (lua_type(L, -1) != LUA_TNUMBER || !isint || v < 0 || v > JSON_INDENT_CAP)
                luaL_argerror(L, idx, lua_pushfstring(L,
                    "option 'indent' must be an integer from 0 to %d", JSON_INDENT_CAP));
            o->indent = (int)v;
        } else {
            if (k != NULL)
                luaL_argerror(L, idx, lua_pushfstring(L, "unknown option '%s'", k));
            luaL_argerror(L, idx, lua_pushfstring(L, "unknown option key (a %s)",
                                                  luaL_typename(L, -2)));
        }
        lua_pop(L, 1);
    }
    if (o->nulls && o->null_tables)
        luaL_argerror(L, idx, "options 'nulls' and 'null_tables' exclude each other");
}

/* ======================================================================
 * Decoder
 * ==================================================================== */

#define DEC_LOCAL_FRAMES 64
/* Values a container keeps on the Lua stack before they move into its
 * table, and the stack height above which the innermost container moves
 * its values at once whatever their number (deep documents). */
#define DEC_CHUNK 4096
#define DEC_STACK_MAX (1 << 17)

/* An open container. Its slot (tidx) on the Lua stack holds nil until
 * its table exists; the values read since sit above it (an object's as
 * key, value pairs). n counts the values already moved into the table. */
typedef struct dframe {
    lua_Integer n;
    uint64_t serial; /* an object's number in the state (see kcache) */
    int tidx;
    int lim;         /* the stack height from which the close loop must look
                      * closer: a chunk to move or stack to grow (dec_lim) */
    int is_obj;
    int null_listed; /* this object is in the null_tables list already */
    int has_null;    /* a null was read into this container */
    int nnull;       /* option nulls: null members waiting on the stack */
    uint64_t nullbits; /* and which of the first 64 waiting pairs they are */
    int maybe_dup;   /* an object key may repeat (see kcache) */
    int kprev;       /* cache slot of the object's last key, or -1 */
    int owner;       /* cache slot of the key this container is the value of
                      * (through arrays), or -1; OWNER_ROOT at the top
                      * (see kcache.root_child) */
} dframe;

typedef struct dec {
    lua_State *L;
    const char *start, *p, *end;
    inst_buf *scratch;
    int max_depth;
    int failed;     /* set when the error is ours, not a memory error */
    int room;       /* stack height lua_checkstack has granted */
    struct kcache *kc; /* the per-state string cache (keys and values) */
    dframe *fr;     /* open containers, innermost last */
    int null_tables; /* list each object holding a null (slot DEC_NULLS) */
    int nulls;       /* leave null members out, naming them in slot DEC_NULLS */
    int depth, cap;
    dframe local[DEC_LOCAL_FRAMES];
} dec;

/* Stack slots inside decode_protected. */
#define DEC_ARRAY_MT 2
#define DEC_KEYS 3
#define DEC_NULLS 4
#define DEC_FRAMES 5
#define DEC_GONE 6 /* option nulls: the names of the object being moved */

/* The string cache: object keys repeat from record to record, and so do
 * many short values ("email", "America/Chicago"); making a Lua string of
 * one means hashing it and walking Lua's string table. Each state keeps
 * up to STR_SLOTS plain keys and as many plain values of at most STR_MAX
 * bytes (Lua's interned short strings), anchored in a table (slot
 * DEC_KEYS, the cache userdata's user value: keys in 1..STR_SLOTS, values
 * after) that the entries' pointers read from: a repeated string costs a
 * cheap hash, two word compares and a table read. Each string may sit in
 * one of two slots (two hashes), so a few keys that share one slot do not
 * push each other out in turn; a miss replaces the least recently used of
 * the two. A value is only kept the second time it is seen (`seen`), so
 * that unique strings (ids, timestamps) cost a miss and nothing more. At
 * most 512 strings of 40 bytes stay alive between calls. */
#define KEY_CACHE 256 /* the encoder's cache */
#define STR_BITS 9
#define STR_SLOTS (1 << STR_BITS)
#define STR_MAX 40
/* The length of a free slot: no input span is that long (entry_at). */
#define KENTRY_EMPTY (SIZE_MAX / 2)

typedef struct kentry {
    const char *s;  /* the bytes of the string in its slot of the table */
    uint64_t a, b;  /* its first and last 8 bytes */
    uint64_t mask;  /* the bytes of the first word that belong to it */
    uint64_t stamp; /* keys: serial of the object that used it last; values: tick */
    size_t n;       /* its length; KENTRY_EMPTY in a free slot */
    unsigned alt;   /* the string's other slot */
    unsigned next;  /* key: slot of the key that followed it last time */
    unsigned next2; /* key: the one that followed it before, if another */
    unsigned child; /* key: slot of the first key of an object under it */
} kentry;

/* The cache also tells an object whether a key may repeat in it, so that
 * most objects move their members into the table from the stack top down
 * (lua_rawset pops them, no copies), which would let the first of
 * repeated keys win; objects that may repeat one go in input order. Each
 * object gets the next serial of the state; a key's entry is stamped
 * with the serial of the object using it. A key used in object O
 * (serial s) sets its entry's stamp to s, and every later use of the
 * entry while O is open comes from O or from an object opened after it
 * (a nested decode from a finalizer too): so its stamp stays >= s until
 * the entry is evicted, and an eviction records the evicted stamp in
 * `evicted`. Hence a key that repeats in O finds either its entry
 * stamped >= s, or evicted >= s when O closes; both mark O. Keys that
 * bypass the cache mark their object too. False alarms only cost the
 * copies. */
typedef struct kcache {
    uint64_t serial;  /* the last serial given to an object */
    uint64_t evicted; /* the highest stamp an eviction has removed */
    uint64_t tick;    /* value uses, for least recently used */
    kentry key[STR_SLOTS];
    kentry val[STR_SLOTS];
    uint32_t seen[STR_SLOTS]; /* tag of the last value missed, per slot */
    unsigned root_child; /* slot of the first key of the last object at the
                          * top (the document, or an item of a top array) */
} kcache;

/* The owner of a container at the top of the document. */
#define OWNER_ROOT (-2)

static void dec_fail_at(dec *d, const char *at, const char *what)
{
    lua_pushfstring(d->L, "%s at byte %I", what, (lua_Integer)(at - d->start) + 1);
    d->failed = 1;
    lua_error(d->L);
}

static JSON_NOINLINE void dec_unexpected(dec *d, const char *at)
{
    char what[48];
    if (at >= d->end)
        dec_fail_at(d, at, "unexpected end of input");
    if (*at > 0x20 && *at < 0x7F)
        snprintf(what, sizeof what, "unexpected '%c'", *at);
    else
        snprintf(what, sizeof what, "unexpected byte 0x%02X", (unsigned)(unsigned char)*at);
    dec_fail_at(d, at, what);
}

JSON_INLINE const char *skip_ws(const char *p, const char *end)
{
    /* most text is compact: one compare leaves at anything above ' ' */
    while (p < end && (unsigned char)*p <= ' '
           && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads 4 hex digits after "\u" at p (p points at the backslash). */
static long read_u4(dec *d, const char *p)
{
    long v = 0;
    int i;
    if (d->end - p < 6)
        dec_fail_at(d, p, "invalid \\u escape");
    for (i = 2; i < 6; i++) {
        int h = hexval((unsigned char)p[i]);
        if (h < 0)
            dec_fail_at(d, p, "invalid \\u escape");
        v = v * 16 + h;
    }
    return v;
}

static char *put_utf8(char *o, unsigned long cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* The slow half of string decoding: escapes present. s is just after the
 * opening quote, p at the first backslash. Output never exceeds the input
 * span, so the scratch box is sized once from the remaining input. */
static JSON_NOINLINE void parse_string_escaped(dec *d, const char *s, const char *p)
{
    lua_State *L = d->L;
    inst_buf *b = d->scratch;
    char *o;
    size_t room = (size_t)(d->end - s);
    b->len = 0;
    inst_buf_need(L, b, room);
    memcpy(b->p, s, (size_t)(p - s));
    o = b->p + (p - s);
    for (;;) {
        unsigned char c;
        if (p >= d->end)
            dec_unexpected(d, p);
        c = (unsigned char)*p;
        switch (byte_class[c]) {
        case C_PLAIN: {
            const char *run = p;
            p = (const char *)skip_plain((const unsigned char *)p, (const unsigned char *)d->end);
            memcpy(o, run, (size_t)(p - run));
            o += p - run;
            break;
        }
        case C_QUOTE:
            lua_pushlstring(L, b->p, (size_t)(o - b->p));
            d->p = p + 1;
            return;
        case C_CTRL: {
            char what[64];
            snprintf(what, sizeof what, "unescaped control character 0x%02X in string", c);
            dec_fail_at(d, p, what);
            break;
        }
        case C_HIGH: {
            size_t n = utf8_seq((const unsigned char *)p, (const unsigned char *)d->end);
            if (n == 0)
                dec_fail_at(d, p, "invalid UTF-8");
            o[0] = p[0]; /* 2 to 4 bytes: no call */
            o[1] = p[1];
            if (n > 2) {
                o[2] = p[2];
                if (n > 3)
                    o[3] = p[3];
            }
            o += n;
            p += n;
            break;
        }
        default: /* backslash */
            if (p + 1 >= d->end)
                dec_unexpected(d, p + 1);
            switch (p[1]) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '/': *o++ = '/'; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            case 'u': {
                long cp = read_u4(d, p);
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    dec_fail_at(d, p, "unpaired surrogate in \\u escape");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    long lo;
                    if (d->end - p < 12 || p[6] != '\\' || p[7] != 'u')
                        dec_fail_at(d, p, "unpaired surrogate in \\u escape");
                    lo = read_u4(d, p + 6);
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        dec_fail_at(d, p, "unpaired surrogate in \\u escape");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
                o = put_utf8(o, (unsigned long)cp);
                p += 4; /* plus the 2 below */
                break;
            }
            default: {
                char what[48];
                unsigned char e = (unsigned char)p[1];
                if (e > 0x20 && e < 0x7F)
                    snprintf(what, sizeof what, "invalid escape '\\%c'", e);
                else
                    snprintf(what, sizeof what, "invalid escape '\\' + byte 0x%02X", e);
                dec_fail_at(d, p, what);
            }
            }
            p += 2;
        }
    }
}

/* Whether the cached string k holds s[0..n), 16 < n <= STR_MAX, given
 * that its first and last 8 bytes and its length already match: the
 * words at 8, 16 and 24 that lie before the last 8 bytes, unrolled (no
 * call, no loop). */
#if STR_MAX > 40
#error "key_middle_eq compares at most 40 bytes"
#endif
JSON_INLINE int key_middle_eq(const char *k, const char *s, size_t n)
{
    uint64_t x, y, diff;
    memcpy(&x, k + 8, 8);
    memcpy(&y, s + 8, 8);
    diff = x ^ y;
    if (n > 24) {
        memcpy(&x, k + 16, 8);
        memcpy(&y, s + 16, 8);
        diff |= x ^ y;
        if (n > 32) {
            memcpy(&x, k + 24, 8);
            memcpy(&y, s + 24, 8);
            diff |= x ^ y;
        }
    }
    return diff == 0;
}

/* A string's place in the cache: its first and last 8 bytes (fewer:
 * zero-padded), which are the whole string up to 16 bytes, its hash (of
 * those and, past 16 bytes, of bytes 8 to 15 too) and its two slots. */
typedef struct kslot {
    uint64_t a, b, x;
    unsigned i1, i2; /* i2 only once kslot_alt has run */
    uint32_t tag;
} kslot;

JSON_INLINE void kslot_of(kslot *k, const char *s, size_t n, const char *end)
{
    uint64_t a = 0, b = 0, x;
    if (n >= 8) {
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
    } else {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (end - s >= 8) { /* one load; the string is its low bytes */
            memcpy(&a, s, 8);
            a &= ((uint64_t)1 << (8 * n)) - 1;
        } else
#endif
            memcpy(&a, s, n);
    }
    x = a ^ ((b << 29) | (b >> 35)) ^ n;
    if (n > 16) {
        /* and the second word: strings of one shape often differ only
         * in the middle ("2025-07-17T12:30:00.000Z"), and would all
         * share the same two slots */
        uint64_t m;
        memcpy(&m, s + 8, 8);
        x ^= (m << 47) | (m >> 17);
    }
    k->a = a;
    k->b = b;
    k->x = x;
    k->i1 = (unsigned)((x * 0x9E3779B97F4A7C15u) >> (64 - STR_BITS));
    k->tag = (uint32_t)(x * 0x9E3779B97F4A7C15u) | 1;
}

/* The string's other slot: only needed when the first does not hold it. */
JSON_INLINE unsigned kslot_alt(kslot *k)
{
    k->i2 = (unsigned)((k->x * 0xC2B2AE3D27D4EB4Fu) >> (64 - STR_BITS));
    if (k->i2 == k->i1)
        k->i2 ^= 1;
    return k->i2;
}

JSON_INLINE int entry_is(const kentry *e, const kslot *k, const char *s, size_t n)
{
    return e->a == k->a && e->b == k->b && e->n == n
           && (n <= 16 || key_middle_eq(e->s, s, n));
}

/* entry_at within 8 bytes of the end of the input (the last key of a
 * document often is): reading nothing past the end, and asking for the
 * two bytes after the quote that any valid text has there (a colon and
 * a value), which parse_key reads unchecked. */
static JSON_NOINLINE int entry_at_end(const kentry *e, const char *s, const char *end)
{
    size_t n = e->n;
    return e->s != NULL && (size_t)(end - s) > n + 2 && s[n] == '"'
           && memcmp(e->s, s, n) == 0;
}

/* Whether the input at s holds the cached string e followed by its
 * closing quote: the check of a predicted key. */
JSON_INLINE int entry_at(const kentry *e, const char *s, const char *end)
{
    size_t n = e->n;
    uint64_t a = 0;
    if (JSON_UNLIKELY((size_t)(end - s) <= n + 8)) /* also a free slot */
        return entry_at_end(e, s, end);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&a, s, 8);
    a &= e->mask;
#else
    memcpy(&a, s, n < 8 ? n : 8);
#endif
    if (a != e->a || s[n] != '"')
        return 0;
    if (n > 8) {
        uint64_t b;
        memcpy(&b, s + n - 8, 8);
        if (b != e->b || (n > 16 && !key_middle_eq(e->s, s, n)))
            return 0;
    }
    return 1;
}

/* Moves the entry in slot `from` to its other slot, if that one is
 * free, and frees `from`. */
static int cache_move(lua_State *L, kentry *tab, int base, unsigned from)
{
    unsigned to = tab[from].alt;
    if (tab[to].s != NULL)
        return 0;
    lua_rawgeti(L, DEC_KEYS, (lua_Integer)(base + from + 1));
    lua_rawseti(L, DEC_KEYS, (lua_Integer)(base + to + 1));
    tab[to] = tab[from];
    tab[to].alt = from;
    tab[from].s = NULL;
    tab[from].n = KENTRY_EMPTY;
    return 1;
}

/* Stores the string on the stack top in one of its two slots (in the
 * table at `base`): a free one, else one whose occupant can move to its
 * own other slot (one step of cuckoo hashing), else the least recently
 * used; returns the entry, with the stamp it evicted in *old (0 if none).
 * Called after the string exists, so a decode from a finalizer only ever
 * sees consistent pairs: nothing here allocates (every slot is in the
 * table's array part). */
static kentry *cache_store(dec *d, kentry *tab, int base, const kslot *k, size_t n,
                           uint64_t *old)
{
    lua_State *L = d->L;
    kentry *e;
    unsigned i;
    if (tab[k->i1].s == NULL || cache_move(L, tab, base, k->i1))
        i = k->i1;
    else if (tab[k->i2].s == NULL || cache_move(L, tab, base, k->i2))
        i = k->i2;
    else
        i = tab[k->i1].stamp <= tab[k->i2].stamp ? k->i1 : k->i2;
    e = &tab[i];
    lua_pushvalue(L, -1);
    lua_rawseti(L, DEC_KEYS, (lua_Integer)(base + i + 1));
    *old = e->s != NULL ? e->stamp : 0;
    e->s = lua_tostring(L, -1);
    e->n = n;
    e->mask = n < 8 ? ((uint64_t)1 << (8 * n)) - 1 : ~(uint64_t)0;
    e->a = k->a;
    e->b = k->b;
    e->alt = i == k->i1 ? k->i2 : k->i1;
    return e;
}

/* Pushes the key s[0..n), plain ASCII, through the cache; returns its
 * slot, or -1 if it is not cached. Nothing between the lookup and the
 * push can run a finalizer (no allocation). */
static int push_key(dec *d, dframe *f, const char *s, size_t n)
{
    lua_State *L = d->L;
    kcache *kc = d->kc;
    kentry *e;
    kslot k;
    uint64_t old;
    unsigned i;
    if (n > STR_MAX) {
        f->maybe_dup = 1;
        lua_pushlstring(L, s, n);
        return -1;
    }
    kslot_of(&k, s, n, d->end);
    i = k.i1;
    e = &kc->key[i];
    if (entry_is(e, &k, s, n) || (i = kslot_alt(&k), e = &kc->key[i], entry_is(e, &k, s, n))) {
        f->maybe_dup |= e->stamp >= f->serial;
        e->stamp = f->serial;
        lua_rawgeti(L, DEC_KEYS, (lua_Integer)i + 1);
        return (int)i;
    }
    lua_pushlstring(L, s, n);
    e = cache_store(d, kc->key, 0, &k, n, &old);
    if (old > kc->evicted)
        kc->evicted = old;
    e->stamp = f->serial;
    return (int)(e - kc->key);
}

/* Pushes the value string s[0..n) (no escapes, at most STR_MAX bytes)
 * through the cache. */
static void push_value(dec *d, const char *s, size_t n)
{
    lua_State *L = d->L;
    kcache *kc = d->kc;
    kentry *e;
    kslot k;
    uint64_t old;
    unsigned i;
    kslot_of(&k, s, n, d->end);
    i = k.i1;
    e = &kc->val[i];
    if (entry_is(e, &k, s, n) || (i = kslot_alt(&k), e = &kc->val[i], entry_is(e, &k, s, n))) {
        e->stamp = ++kc->tick;
        lua_rawgeti(L, DEC_KEYS, (lua_Integer)(STR_SLOTS + i + 1));
        return;
    }
    lua_pushlstring(L, s, n);
    if (kc->seen[k.i1] != k.tag) { /* first sight: only remembered */
        kc->seen[k.i1] = k.tag;
        return;
    }
    e = cache_store(d, kc->val, STR_SLOTS, &k, n, &old);
    e->stamp = ++kc->tick;
}

static JSON_NOINLINE void dec_control(dec *d, const char *at)
{
    char what[64];
    snprintf(what, sizeof what, "unescaped control character 0x%02X in string",
             (unsigned)(unsigned char)*at);
    dec_fail_at(d, at, what);
}

/* d->p is just after the opening quote; pushes the string. */
static void parse_string(dec *d)
{
    const char *s = d->p, *p = s, *end = d->end;
    for (;;) {
        /* The hot loop: plain ASCII runs, most often up to the quote. */
        p = (const char *)skip_plain((const unsigned char *)p, (const unsigned char *)end);
        if (p < end && *p == '"') {
            if ((size_t)(p - s) <= STR_MAX)
                push_value(d, s, (size_t)(p - s));
            else
                lua_pushlstring(d->L, s, (size_t)(p - s));
            d->p = p + 1;
            return;
        }
        if (JSON_UNLIKELY(p >= end))
            dec_unexpected(d, p);
        switch (byte_class[(unsigned char)*p]) {
        case C_HIGH: {
            size_t n = utf8_seq((const unsigned char *)p, (const unsigned char *)end);
            if (n == 0)
                dec_fail_at(d, p, "invalid UTF-8");
            p += n;
            break;
        }
        case C_BSLASH:
            parse_string_escaped(d, s, p);
            return;
        default:
            dec_control(d, p);
        }
    }
}

static const double pow10_exact[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/* Hands a validated number span to Lua's own converter (locale-safe). */
static JSON_NOINLINE void number_slow(dec *d, const char *s, const char *p)
{
    lua_State *L = d->L;
    size_t n = (size_t)(p - s);
    char small[64];
    const char *text;
    if (n < sizeof small) {
        memcpy(small, s, n);
        small[n] = '\0';
        text = small;
    } else {
        lua_pushlstring(L, s, n);
        text = lua_tostring(L, -1);
    }
    if (lua_stringtonumber(L, text) == 0)
        dec_fail_at(d, s, "invalid number");
    if (text != small)
        lua_remove(L, -2);
    if (lua_isinteger(L, -1)) {
        /* Only spans without fraction/exponent get here as integers, and
         * those that fit were handled by the caller: keep float semantics. */
        lua_Number v = (lua_Number)lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_pushnumber(L, v);
    }
    if (isinf(lua_tonumber(L, -1)))
        dec_fail_at(d, s, "number out of range");
}

/* d->p at '-' or a digit. Grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static void parse_number(dec *d)
{
    const char *s = d->p, *p = s, *end = d->end;
    int neg = 0, isfloat = 0, mdigits = 0, fracdigits = 0;
    uint64_t m = 0;
    long exp10 = 0;
    if (*p >= '1' && *p <= '9') {
        /* most numbers: a positive integer of up to 18 digits */
        const char *q = p + 1;
        m = (uint64_t)(*p - '0');
        while (q < end && (unsigned)(*q - '0') < 10 && q - p < 18)
            m = m * 10 + (uint64_t)(*q++ - '0');
        if (q >= end || (*q != '.' && *q != 'e' && *q != 'E' && (unsigned)(*q - '0') >= 10)) {
            d->p = q;
            lua_pushinteger(d->L, (lua_Integer)m);
            return;
        }
        m = 0;
    }
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9')
        dec_fail_at(d, s, "invalid number");
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9')
            dec_fail_at(d, s, "invalid number");
    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            if (mdigits < 19)
                m = m * 10 + (uint64_t)(*p - '0');
            mdigits++;
            p++;
        }
    }
    if (p < end && *p == '.') {
        isfloat = 1;
        p++;
        if (p >= end || *p < '0' || *p > '9')
            dec_fail_at(d, s, "invalid number");
        while (p < end && *p >= '0' && *p <= '9') {
            if (m == 0 && *p == '0') {
                fracdigits++; /* leading zeros scale, they do not count */
            } else {
                if (mdigits < 19)
                    m = m * 10 + (uint64_t)(*p - '0');
                mdigits++;
                fracdigits++;
            }
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        int eneg = 0;
        long e = 0;
        isfloat = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }
        if (p >= end || *p < '0' || *p > '9')
            dec_fail_at(d, s, "invalid number");
        while (p < end && *p >= '0' && *p <= '9') {
            if (e < 100000)
                e = e * 10 + (*p - '0');
            p++;
        }
        exp10 = eneg ? -e : e;
    }
    d->p = p;
    if (!isfloat) {
        if (mdigits < 19 || (mdigits == 19 &&
                             m <= (uint64_t)INT64_MAX + (uint64_t)neg)) {
            lua_Integer v = neg ? (lua_Integer)(0 - m) : (lua_Integer)m;
            if (neg && m == (uint64_t)INT64_MAX + 1)
                v = LUA_MININTEGER;
            lua_pushinteger(d->L, v);
            return;
        }
        number_slow(d, s, p); /* beyond int64: a float */
        return;
    }
    /* Clinger's fast path: an exact mantissa and an exact power of ten make
     * one correctly rounded IEEE operation (when doubles are evaluated as
     * doubles, not in x87 extended precision). */
    exp10 -= fracdigits;
    if (JSON_EXACT_DOUBLE && mdigits <= 19 && m <= ((uint64_t)1 << 53)
        && exp10 >= -22 && exp10 <= 22) {
        double v = (double)m;
        v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
        lua_pushnumber(d->L, (lua_Number)(neg ? -v : v));
        return;
    }
    number_slow(d, s, p);
}

static JSON_NOINLINE void dec_too_deep(dec *d, const char *at)
{
    lua_pushfstring(d->L, "nesting deeper than max_depth (%d) at byte %I", d->max_depth,
                    (lua_Integer)(at - d->start) + 1);
    d->failed = 1;
    lua_error(d->L);
}

/* Makes room for one more open container; frames live in C memory owned
 * by Lua (a userdata in slot DEC_FRAMES once the local ones run out). */
static dframe *dec_push_frame(dec *d)
{
    if (d->depth == d->cap) {
        int ncap = d->cap * 4 < d->max_depth ? d->cap * 4 : d->max_depth;
        dframe *nf = (dframe *)lua_newuserdatauv(d->L, (size_t)ncap * sizeof *nf, 0);
        memcpy(nf, d->fr, (size_t)d->cap * sizeof *nf);
        lua_replace(d->L, DEC_FRAMES);
        d->fr = nf;
        d->cap = ncap;
    }
    return &d->fr[d->depth++];
}

/* Between two checks the parser pushes at most a key, a value and the
 * temporary of number_slow, or one container slot. */
#define DEC_SLACK 4
#define DEC_STACK_STEP 128

static JSON_NOINLINE void dec_grow_stack(dec *d, int top)
{
    if (!lua_checkstack(d->L, DEC_STACK_STEP))
        dec_fail_at(d, d->p, "out of Lua stack");
    d->room = top + DEC_STACK_STEP;
}

#define dec_ensure(d, top) \
    do { if (JSON_UNLIKELY((top) + DEC_SLACK > (d)->room)) dec_grow_stack((d), (top)); } while (0)

/* The lowest stack height at which the innermost container f must move
 * a chunk (DEC_CHUNK values waiting, or the stack past DEC_STACK_MAX) or
 * the stack must grow: the close loop compares one number per value.
 * The room only grows, so a limit computed earlier is never too high. */
static int dec_lim(const dec *d, const dframe *f)
{
    int lim = f->tidx + DEC_CHUNK;
    if (lim > DEC_STACK_MAX + 1)
        lim = DEC_STACK_MAX + 1;
    if (lim > d->room - DEC_SLACK + 1)
        lim = d->room - DEC_SLACK + 1;
    return lim;
}

/* Option nulls, the general case (an object whose keys may repeat, or
 * that was moved in several steps): its null members went into the
 * table like any value, so the last of repeated keys wins; now that it
 * is complete they come out, and their names go to nulls[t]. */
static JSON_NOINLINE void dec_strip_table(dec *d, int t)
{
    lua_State *L = d->L;
    lua_Integer ngone = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -1) == LUA_TLIGHTUSERDATA) { /* the decoder's only one */
            if (ngone == 0) { /* the first name waits alone in DEC_GONE */
                lua_pushvalue(L, -2);
                lua_replace(L, DEC_GONE);
            } else {
                if (ngone == 1) { /* a second one: now a list */
                    lua_createtable(L, 2, 0);
                    lua_pushvalue(L, DEC_GONE);
                    lua_rawseti(L, -2, 1);
                    lua_replace(L, DEC_GONE);
                }
                lua_pushvalue(L, -2);
                lua_rawseti(L, DEC_GONE, ngone + 1);
            }
            ngone++;
            lua_pushvalue(L, -2);
            lua_pushnil(L);
            lua_rawset(L, t); /* clearing a field during the walk is allowed */
        }
        lua_pop(L, 1);
    }
    if (ngone > 0) {
        lua_pushvalue(L, t);
        lua_pushvalue(L, DEC_GONE);
        lua_rawset(L, DEC_NULLS);
        lua_pushnil(L);
        lua_replace(L, DEC_GONE);
    }
}

/* Option nulls, the common case: an object that closes in one move and
 * repeats no key. Its table is made for the members that have a value;
 * the null ones leave their names, nulls[t], in the same pass from the
 * stack top down: the name itself when there is one (most objects that
 * hold a null hold one; no list to make), else a list in input order.
 * The first 64 pairs are known from nullbits; a null beyond them is told
 * by its type. */
static void dec_flush_nulls(dec *d, dframe *f, int top)
{
    lua_State *L = d->L;
    int t = f->tidx, j = (top - t) / 2;
    lua_Integer ngone = f->nnull;
    lua_createtable(L, 0, j - f->nnull);
    lua_replace(L, t);
    if (ngone == 1) {
        while (j-- > 0) {
            if (j < 64 ? (int)((f->nullbits >> j) & 1) : lua_type(L, -1) == LUA_TLIGHTUSERDATA) {
                lua_copy(L, -2, -1); /* name, null -> t, name */
                lua_copy(L, t, -2);
                lua_rawset(L, DEC_NULLS); /* nulls[t] = the name */
            } else {
                lua_rawset(L, t);
            }
        }
        return;
    }
    lua_createtable(L, f->nnull, 0);
    lua_replace(L, DEC_GONE);
    while (j-- > 0) {
        if (j < 64 ? (int)((f->nullbits >> j) & 1) : lua_type(L, -1) == LUA_TLIGHTUSERDATA) {
            lua_pop(L, 1);
            lua_rawseti(L, DEC_GONE, ngone--);
        } else {
            lua_rawset(L, t);
        }
    }
    lua_pushvalue(L, t);
    lua_pushvalue(L, DEC_GONE);
    lua_rawset(L, DEC_NULLS);
    lua_pushnil(L);
    lua_replace(L, DEC_GONE); /* the list lives in nulls now */
}

/* Moves the values waiting above the container's slot (top is the stack
 * height) into its table; last is true when the container closes. The first move creates the table at exactly
 * their count, so a container that closes in one move (up to DEC_CHUNK
 * stack slots) gets a table of its final size with no guessing and no
 * regrowth; a longer one then grows the way Lua grows any table. */
static void dec_flush(dec *d, dframe *f, int top, int last)
{
    lua_State *L = d->L;
    int t = f->tidx, cnt = top - t, i;
    if (f->is_obj) {
        if (f->nnull > 0) { /* option nulls */
            if (last && f->n == 0 && !f->maybe_dup && d->kc->evicted < f->serial) {
                dec_flush_nulls(d, f, top);
                return;
            }
            f->nnull = 0; /* the general case: the bits are per move */
            f->nullbits = 0;
        }
        if (f->n == 0) { /* the first move: every move has values to move */
            lua_createtable(L, 0, cnt / 2);
            lua_replace(L, t);
        }
        f->n += cnt / 2;
        /* null_tables: the caller learns which objects hold a null
         * without walking the document (one entry per object). Each goes
         * after what the list holds now, not after a count kept since the
         * start: a decode from a finalizer may have appended to the same
         * list in between, and its entries must stay. */
        if (d->null_tables && f->has_null && !f->null_listed) {
            f->null_listed = 1;
            lua_pushvalue(L, t);
            lua_rawseti(L, DEC_NULLS, (lua_Integer)lua_rawlen(L, DEC_NULLS) + 1);
        }
        if (!f->maybe_dup && d->kc->evicted < f->serial) {
            /* No key repeats: from the top down, popping each pair. */
            for (i = top - 1; i > t; i -= 2)
                lua_rawset(L, t);
            if (last && d->nulls && f->has_null) /* moved in several steps */
                dec_strip_table(d, t);
            return;
        }
        /* In input order, so the last of repeated keys wins. */
        for (i = t + 1; i < top; i += 2) {
            lua_pushvalue(L, i);
            lua_pushvalue(L, i + 1);
            lua_rawset(L, t);
        }
        lua_settop(L, t);
        if (last && d->nulls && f->has_null)
            dec_strip_table(d, t);
    } else if (f->n == 0) {
        lua_createtable(L, cnt, 0);
        lua_pushvalue(L, DEC_ARRAY_MT);
        lua_setmetatable(L, -2);
        lua_replace(L, t);
        for (i = cnt; i >= 1; i--)      /* pops from the top: no copies */
            lua_rawseti(L, t, i);
        f->n = cnt;
    } else {
        for (i = 1; i <= cnt; i++) {
            lua_pushvalue(L, t + i);
            lua_rawseti(L, t, f->n + i);
        }
        f->n += cnt;
        lua_settop(L, t);
    }
}

JSON_INLINE void parse_literal(dec *d, const char *word, size_t n)
{
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        dec_fail_at(d, d->p, "invalid literal");
    d->p += n;
}

/* The key at s (after its quote) when it is not the predicted one: the
 * key that followed the previous one the time before (a key that objects
 * of two kinds share, such as "name", is followed by one key in one kind
 * and another in the other), else scanned, then through the cache or the
 * general path. Returns the byte after its closing quote. */
static JSON_NOINLINE const char *parse_key_scan(dec *d, dframe *f, const char *s)
{
    kcache *kc = d->kc;
    const char *q;
    int slot;
    if (f->kprev >= 0) {
        kentry *e = &kc->key[kc->key[f->kprev].next2];
        if (entry_at(e, s, d->end)) {
            slot = (int)(e - kc->key);
            f->maybe_dup |= e->stamp >= f->serial;
            e->stamp = f->serial;
            f->kprev = slot;
            lua_rawgeti(d->L, DEC_KEYS, (lua_Integer)slot + 1);
            return s + e->n + 1;
        }
    }
    q = (const char *)skip_plain((const unsigned char *)s, (const unsigned char *)d->end);
    if (JSON_UNLIKELY(q >= d->end || *q != '"')) {
        d->p = s; /* escapes, UTF-8 or an error: the general path */
        f->maybe_dup = 1;
        parse_string(d);
        f->kprev = -1;
        return d->p;
    }
    slot = push_key(d, f, s, (size_t)(q - s));
    if (slot >= 0) {
        if (f->kprev >= 0) {
            kentry *pe = &kc->key[f->kprev];
            if (pe->next != (unsigned)slot) {
                pe->next2 = pe->next;
                pe->next = (unsigned)slot;
            }
        } else if (f->owner >= 0)
            kc->key[f->owner].child = (unsigned)slot;
        else if (f->owner == OWNER_ROOT)
            kc->root_child = (unsigned)slot;
    }
    f->kprev = slot;
    return q + 1;
}

/* Expects '"' at p: reads a key and its ':' and leaves d->p at the value.
 * Objects of one kind list their keys in the same order, so each cached
 * key remembers the key that followed it (and the first key of an object
 * under it): the predicted key is checked in place, with no scan and no
 * hash. */
JSON_INLINE void parse_key(dec *d, dframe *f, const char *p)
{
    kcache *kc = d->kc;
    const char *s, *q;
    kentry *e;
    int slot;
    if (JSON_UNLIKELY(p >= d->end || *p != '"')) {
        p = skip_ws(p, d->end); /* callers leave the white space to us */
        if (p >= d->end || *p != '"')
            dec_unexpected(d, p);
    }
    s = p + 1;
    slot = f->kprev >= 0 ? (int)kc->key[f->kprev].next
         : f->owner >= 0 ? (int)kc->key[f->owner].child
         : f->owner == OWNER_ROOT ? (int)kc->root_child : -1;
    if (slot >= 0 && entry_at(e = &kc->key[slot], s, d->end)) {
        f->maybe_dup |= e->stamp >= f->serial;
        e->stamp = f->serial;
        f->kprev = slot;
        lua_rawgeti(d->L, DEC_KEYS, (lua_Integer)slot + 1);
        q = s + e->n + 1;
        /* entry_at saw two more bytes at least: no bound to check */
        if (*q == ':' && (unsigned char)q[1] > ' ') {
            d->p = q + 1;
            return;
        }
    } else {
        q = parse_key_scan(d, f, s);
    }
    /* compact text: the colon, then the value */
    if (q + 1 < d->end && *q == ':' && (unsigned char)q[1] > ' ') {
        d->p = q + 1;
        return;
    }
    p = skip_ws(q, d->end);
    if (JSON_UNLIKELY(p >= d->end || *p != ':'))
        dec_unexpected(d, p);
    d->p = skip_ws(p + 1, d->end);
}

/* What the first byte of a value other than a string starts (strings,
 * the most common, are told by one compare first): a dense switch (one
 * table read and one jump) rather than a tree of compares. */
enum { V_BAD = 0, V_OPEN, V_TRUE, V_FALSE, V_NULL, V_NUMBER };
static const unsigned char value_class[256] = {
    ['{'] = V_OPEN, ['['] = V_OPEN, ['t'] = V_TRUE, ['f'] = V_FALSE,
    ['n'] = V_NULL, ['-'] = V_NUMBER, ['0'] = V_NUMBER, ['1'] = V_NUMBER, ['2'] = V_NUMBER,
    ['3'] = V_NUMBER, ['4'] = V_NUMBER, ['5'] = V_NUMBER, ['6'] = V_NUMBER, ['7'] = V_NUMBER,
    ['8'] = V_NUMBER, ['9'] = V_NUMBER,
};

/* The whole document, without C recursion: open containers are frames;
 * their slots and the values read into them sit on the Lua stack. top is
 * the stack height, kept here from then on (one value or key pushed, one
 * more). */
static void parse_document(dec *d, int top)
{
    lua_State *L = d->L;
    const char *p;
    for (;;) {
        /* one value at d->p */
        p = d->p;
        if (JSON_UNLIKELY(p >= d->end))
            dec_unexpected(d, p);
        if (*p == '"') { /* the most common value: no dispatch */
            d->p = p + 1;
            parse_string(d);
        } else switch (value_class[(unsigned char)*p]) {
        case V_OPEN: {
            dframe *f;
            int is_obj = *p == '{';
            if (JSON_UNLIKELY(d->depth >= d->max_depth))
                dec_too_deep(d, p);
            p = skip_ws(p + 1, d->end);
            if (p < d->end && *p == (is_obj ? '}' : ']')) {
                lua_createtable(L, 0, 0);
                if (!is_obj) {
                    lua_pushvalue(L, DEC_ARRAY_MT);
                    lua_setmetatable(L, -2);
                }
                d->p = p + 1;
                break;
            }
            f = dec_push_frame(d);
            f->is_obj = is_obj;
            f->null_listed = 0;
            f->has_null = 0;
            f->nnull = 0;
            f->nullbits = 0;
            f->maybe_dup = 0;
            f->n = 0;
            f->kprev = -1;
            f->owner = OWNER_ROOT;
            if (d->depth > 1) {
                const dframe *up = f - 1;
                f->owner = up->is_obj ? up->kprev : up->owner;
            }
            lua_pushnil(L); /* the table's slot, filled by dec_flush */
            f->tidx = ++top;
            dec_ensure(d, top);
            f->lim = dec_lim(d, f);
            if (is_obj) {
                f->serial = ++d->kc->serial;
                parse_key(d, f, p);
                top++;
            } else {
                d->p = p;
            }
            continue; /* to the first value */
        }
        case V_TRUE:
            parse_literal(d, "true", 4);
            lua_pushboolean(L, 1);
            break;
        case V_FALSE:
            parse_literal(d, "false", 5);
            lua_pushboolean(L, 0);
            break;
        case V_NULL:
            parse_literal(d, "null", 4);
            lua_pushlightuserdata(L, NULL);
            if (d->depth > 0) {
                dframe *f = &d->fr[d->depth - 1];
                f->has_null = 1;
                if (d->nulls && f->is_obj) {
                    /* the key is on the top: pair number j of this move */
                    int j = (top - f->tidx - 1) / 2;
                    if (j < 64)
                        f->nullbits |= (uint64_t)1 << j;
                    f->nnull++;
                }
            }
            break;
        case V_NUMBER:
            parse_number(d);
            break;
        default: {
            const char *w = skip_ws(p, d->end);
            if (w != p) { /* after a comma: white space is rare */
                d->p = w;
                continue;
            }
            dec_unexpected(d, p);
        }
        }
        top++;

        /* A complete value is on the stack top, waiting in its container:
         * close every container that ends here. */
        for (;;) {
            dframe *f;
            if (d->depth == 0)
                return;
            f = &d->fr[d->depth - 1];
            if (JSON_UNLIKELY(top >= f->lim)) {
                if (top - f->tidx >= DEC_CHUNK || top > DEC_STACK_MAX) {
                    dec_flush(d, f, top, 0);
                    top = f->tidx;
                }
                dec_ensure(d, top);
                f->lim = dec_lim(d, f);
            }
            p = skip_ws(d->p, d->end);
            if (p < d->end && *p == ',') {
                if (f->is_obj) {
                    parse_key(d, f, p + 1);
                    top++;
                } else
                    d->p = p + 1;
                break;
            }
            if (JSON_UNLIKELY(p >= d->end || *p != (f->is_obj ? '}' : ']')))
                dec_unexpected(d, p);
            dec_flush(d, f, top, 1);
            top = f->tidx; /* the container is a value of its parent now */
            d->p = p + 1;
            d->depth--;
        }
    }
}

/* Arguments: the dec (light userdata), array_mt (DEC_ARRAY_MT), the key
 * cache's table (DEC_KEYS), the null_tables list, the nulls table or nil
 * (DEC_NULLS): exactly these four (decode_call). */
static int decode_protected(lua_State *L)
{
    dec *d = (dec *)lua_touserdata(L, 1);
    int top = DEC_GONE;
    lua_pushnil(L);                 /* DEC_FRAMES, until the local ones run out */
    lua_pushnil(L);                 /* DEC_GONE */
    if (d->scratch == NULL) {
        /* The state's scratch box is busy (a decode from a finalizer):
         * a fresh one, slot DEC_GONE + 1, freed by its __gc. Made here,
         * so that running out of memory for it is a decode's failure. */
        jbox *x = (jbox *)inst_buf_box(L, sizeof(jbox));
        x->busy = 1;
        d->scratch = &x->b;
        top++;
    }
    dec_ensure(d, top);
    d->p = skip_ws(d->p, d->end);
    parse_document(d, top);
    d->p = skip_ws(d->p, d->end);
    if (d->p < d->end)
        dec_unexpected(d, d->p);
    return 1;
}

/* What a decode needs besides the text: its options, the state's scratch
 * box and string cache (the upvalues of json_decode, which every decoder
 * shares), and the stack indices of array_mt, of the cache's table and of
 * the table of option nulls or null_tables (0: none). */
typedef struct dsetup {
    jopts o;
    jbox *box;
    kcache *kc;
} dsetup;

/* The decode of text[0..len): bytes that stay put until it returns (a
 * string on the stack, or a buffer its owner keeps, see
 * inst_json_decode_span). */
static int decode_call(lua_State *L, const dsetup *ds, int mt, int keys, int nulls, const char *text, size_t len)
{
    dec d;
    jbox *own = ds->box;
    int status;
    d.start = d.p = text;
    d.end = d.start + len;
    d.L = L;
    d.max_depth = ds->o.max_depth;
    d.failed = 0;
    d.fr = d.local;
    d.depth = 0;
    d.cap = DEC_LOCAL_FRAMES;
    d.room = 0;
    d.null_tables = ds->o.null_tables;
    d.nulls = ds->o.nulls;
    /* The state's scratch box for escaped strings, unless a finalizer
     * decodes while it is in use: then decode_protected makes one. */
    if (own->busy) {
        own = NULL;
        d.scratch = NULL;
    } else {
        own->busy = 1;
        own->b.len = 0;
        d.scratch = &own->b;
    }
    d.kc = ds->kc;
    lua_pushcfunction(L, decode_protected);
    lua_pushlightuserdata(L, &d);
    lua_pushvalue(L, mt);
    lua_pushvalue(L, keys);
    if (nulls)
        lua_pushvalue(L, nulls);
    else
        lua_pushnil(L);
    status = lua_pcall(L, 4, 1, 0);
    if (own)
        jbox_release(own);
    if (status == LUA_OK)
        return 1;
    if (!d.failed && !(status == LUA_ERRMEM && ds->o.memory_return))
        return lua_error(L); /* memory errors and the like propagate */
    /* nil, message (and true when memory ran out: nothing allocates here) */
    lua_pushnil(L);
    lua_insert(L, -2);
    if (d.failed)
        return 2;
    lua_pushboolean(L, 1);
    return 3;
}

/* core.json_decode(text [, opts]) -> value | nil, message */
static int l_json_decode(lua_State *L)
{
    dsetup ds;
    const char *text;
    size_t len;
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_typeerror(L, 1, "string");
    text = lua_tolstring(L, 1, &len);
    read_opts(L, 2, 0, &ds.o);
    lua_settop(L, 2);
    ds.box = (jbox *)lua_touserdata(L, lua_upvalueindex(1));
    ds.kc = (kcache *)lua_touserdata(L, lua_upvalueindex(3));
    lua_getiuservalue(L, lua_upvalueindex(3), 1); /* 3: the cache's table */
    if (ds.o.null_tables || ds.o.nulls) {
        if (ds.o.null_tables)
            lua_pushliteral(L, "null_tables");
        else
            lua_pushliteral(L, "nulls");
        lua_rawget(L, 2);
        return decode_call(L, &ds, lua_upvalueindex(2), 3, 4, text, len);
    }
    return decode_call(L, &ds, lua_upvalueindex(2), 3, 0, text, len);
}

/* A decoder made by json_decoder. Upvalues: 1 its dsetup, 2 array_mt,
 * 3 the cache's table, 4 the nulls or null_tables table (or nil), then
 * what the dsetup points to, anchored: 5 the scratch box, 6 the cache. */
static int l_json_bound(lua_State *L)
{
    const dsetup *ds = (const dsetup *)lua_touserdata(L, lua_upvalueindex(1));
    const char *text;
    size_t len;
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_typeerror(L, 1, "string");
    if (lua_gettop(L) != 1)
        lua_settop(L, 1);
    text = lua_tolstring(L, 1, &len);
    return decode_call(L, ds, lua_upvalueindex(2), lua_upvalueindex(3),
                       ds->o.nulls || ds->o.null_tables ? lua_upvalueindex(4) : 0, text, len);
}

int inst_json_is_decoder(lua_State *L, int idx)
{
    return lua_tocfunction(L, idx) == l_json_bound;
}

/* The decoder at fidx (inst_json_is_decoder) applied to p[0..len), bytes
 * that must stay put meanwhile (finalizers may run): pushes what the
 * decoder returns (the value, or nil, message [, true]) and returns how
 * many. Used by the transport to decode an answer from its own buffer,
 * without a Lua string of the body. */
int inst_json_decode_span(lua_State *L, int fidx, const char *p, size_t len)
{
    const dsetup *ds;
    int base, n;
    fidx = lua_absindex(L, fidx);
    luaL_checkstack(L, 8, "decoding"); /* (the decoder at fidx keeps what ds points to) */
    base = lua_gettop(L);
    lua_getupvalue(L, fidx, 1);
    ds = (const dsetup *)lua_touserdata(L, base + 1);
    lua_getupvalue(L, fidx, 2); /* base + 2: array_mt */
    lua_getupvalue(L, fidx, 3); /* base + 3: the cache's table */
    lua_getupvalue(L, fidx, 4); /* base + 4: nulls or null_tables, or nil */
    n = decode_call(L, ds, base + 2, base + 3, ds->o.nulls || ds->o.null_tables ? base + 4 : 0, p, len);
    if (n == 1) /* the value in the first slot, the others dropped */
        lua_replace(L, base + 1);
    else
        lua_rotate(L, base + 1, n);
    lua_settop(L, base + n);
    return n;
}

/* core.json_decoder([opts]) -> function(text): json_decode with these
 * options, read once (a change to the table afterwards does nothing). */
static int l_json_decoder(lua_State *L)
{
    dsetup *ds;
    jopts o;
    read_opts(L, 1, 0, &o);
    lua_settop(L, 1);
    ds = (dsetup *)lua_newuserdatauv(L, sizeof *ds, 0);
    ds->o = o;
    ds->box = (jbox *)lua_touserdata(L, lua_upvalueindex(1));
    ds->kc = (kcache *)lua_touserdata(L, lua_upvalueindex(3));
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_getiuservalue(L, lua_upvalueindex(3), 1);
    if (o.null_tables || o.nulls) {
        if (o.null_tables)
            lua_pushliteral(L, "null_tables");
        else
            lua_pushliteral(L, "nulls");
        lua_rawget(L, 1);
    } else {
        lua_pushnil(L);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, lua_upvalueindex(3));
    lua_pushcclosure(L, l_json_bound, 6);
    return 1;
}

/* ======================================================================
 * Encoder
 * ==================================================================== */

/* An open container. Its table is at tidx on the Lua stack; an unsorted
 * object keeps its lua_next key above it, a sorted one its key list
 * (keysidx) and current key. keyidx/i name the member being written, for
 * error paths. */
enum { F_ARRAY, F_OBJECT, F_SORTED };

typedef struct eframe {
    int tidx, kind, keyidx, keysidx;
    lua_Integer i, n;    /* array: position, length; sorted: next key, count */
    lua_Integer node;    /* shape_encode: the table's record, -1 unchecked */
    const ShapeObj *obj; /* and its fields, when it is an object record */
    lua_Integer seen;    /* shape_encode: required fields met so far */
    int bynext;          /* shape_encode: an array walked with lua_next */
} eframe;

#define ENC_LOCAL_FRAMES 64

typedef struct enc {
    lua_State *L;
    inst_buf *b;
    int max_depth, sort_keys, indent;
    char decpoint;
    int failed;
    const Shape *shape;  /* shape_encode: the program checked, else NULL */
    const lua_Integer *code;        /* and its records */
    const unsigned short *accept;   /* and its accept[] */
    int base;            /* its refs on the stack: refs[i] at base + i */
    int refuted;         /* the value does not fit the shape */
    struct ekey *keys;   /* the per-state key cache (KEY_CACHE entries) */
    eframe *fr;          /* open containers, innermost last */
    int depth, cap;
    int stack_ok;        /* lua_checkstack made room up to this index */
    int keys_told;       /* enc_fail: the open objects' keys looked at */
    eframe local[ENC_LOCAL_FRAMES];
} enc;

/* Stack slots inside encode_protected. */
#define ENC_VALUE 2
#define ENC_ARRAY_MT 3
#define ENC_KEYS 4
#define ENC_REFS 5
#define ENC_FRAMES 6

/* The encoder's key cache: the same keys come back in every record, and
 * each would be scanned and quoted again. Each state keeps the quoted,
 * escaped form of the last KEY_CACHE keys whose form fits EKEY_OUT bytes,
 * found by the key string's own address (lua_topointer), two ways per
 * set. The key strings are anchored
 * in a table (slot ENC_KEYS, the cache userdata's user value), so an
 * address in the cache is always that of a live string with those bytes:
 * no string can be freed and another made at its address while cached,
 * whatever finalizers do in between, within a call or across calls. */
#define EKEY_OUT 54

typedef struct ekey {
    char out[EKEY_OUT];   /* first: a short key is one 16-byte load */
    unsigned char n;
    unsigned char victim; /* first way of a set: the next miss fills way 2 */
    const void *s;  /* the string in slot i + 1 of the table (lua_topointer) */
} ekey;

static int is_ident(const char *s, size_t n)
{
    size_t i;
    if (n == 0 || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return 0;
    for (i = 1; i < n; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

/* One path step: .key, ["odd key"] or [i]. */
static void path_step(lua_State *L, luaL_Buffer *B, const eframe *f, int first)
{
    if (f->kind != F_ARRAY) {
        size_t n;
        const char *k = lua_tolstring(L, f->keyidx, &n);
        if (is_ident(k, n)) {
            if (!first)
                luaL_addchar(B, '.');
            luaL_addlstring(B, k, n);
        } else {
            size_t i;
            luaL_addstring(B, "[\"");
            for (i = 0; i < n && i < 64;) {
                unsigned char c = (unsigned char)k[i];
                size_t u = c >= 0x80 ? utf8_seq((const unsigned char *)k + i,
                                                (const unsigned char *)k + n) : 0;
                if (c == '"' || c == '\\') {
                    luaL_addchar(B, '\\');
                    luaL_addchar(B, (char)c);
                } else if (u > 0) { /* readable text stays readable */
                    luaL_addlstring(B, k + i, u);
                    i += u;
                    continue;
                } else if (c < 0x20 || c >= 0x7F) {
                    char hex[8];
                    snprintf(hex, sizeof hex, "\\x%02X", c);
                    luaL_addstring(B, hex);
                } else {
                    luaL_addchar(B, (char)c);
                }
                i++;
            }
            if (n > 64)
                luaL_addstring(B, "...");
            luaL_addstring(B, "\"]");
        }
    } else {
        char num[32];
        snprintf(num, sizeof num, "[%lld]", (long long)f->i);
        luaL_addstring(B, num);
    }
}

/* Raises "<path>: <what>" for the path through the first nframes open
 * containers; a long path keeps its two ends. */
static JSON_NOINLINE void bad_keys(enc *e, int idx, int nframes);

static JSON_NOINLINE void enc_fail(enc *e, int nframes, const char *what)
{
    lua_State *L = e->L;
    luaL_Buffer B;
    int i;
    /* An object is opened on its first key, a string, without asking for
     * its length; one that also holds integer keys (a length) is refused
     * by its keys, before anything inside it, as if that had been seen
     * when it was opened: the outermost such object speaks first. */
    if (!e->keys_told && lua_checkstack(L, 4)) {
        e->keys_told = 1;
        for (i = 0; i < e->depth; i++) {
            if (e->fr[i].kind == F_OBJECT && lua_rawlen(L, e->fr[i].tidx) > 0)
                bad_keys(e, e->fr[i].tidx, i);
        }
    }
    luaL_buffinit(L, &B);
    if (nframes == 0)
        luaL_addstring(&B, "(root)");
    for (i = 0; i < nframes; i++) {
        if (nframes > 24 && i == 10) {
            luaL_addstring(&B, "...");
            i = nframes - 10;
        }
        path_step(L, &B, &e->fr[i], i == 0);
    }
    luaL_addstring(&B, ": ");
    luaL_addstring(&B, what);
    luaL_pushresult(&B);
    e->failed = 1;
    lua_error(L);
}

static inline void put_lit(lua_State *L, inst_buf *b, const char *s, size_t n)
{
    inst_buf_need(L, b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static inline void put_char(enc *e, char c)
{
    inst_buf_need(e->L, e->b, 1);
    e->b->p[e->b->len++] = c;
}

static void put_newline(enc *e, int depth)
{
    size_t n = (size_t)e->indent * (size_t)depth;
    inst_buf_need(e->L, e->b, n + 1);
    e->b->p[e->b->len++] = '\n';
    memset(e->b->p + e->b->len, ' ', n);
    e->b->len += n;
}

/* Input bytes encode_string escapes per reservation: the output of a
 * chunk is at most 6 bytes per byte (\u00XX), plus the 16 bytes a vector
 * store may overshoot and the 3 of a UTF-8 sequence that crosses the
 * chunk's end; so the loop below checks no room per byte, and a long
 * string never reserves more than about 25 KB ahead. */
#define ENC_STR_CHUNK 4096
#define ENC_STR_SLACK 24

/* The byte at p needs care: a UTF-8 sequence is checked and copied, an
 * ASCII byte escaped. Returns the new output position; p advances. */
static inline char *encode_special(enc *e, const unsigned char **pp, const unsigned char *end,
                                   char *o)
{
    const unsigned char *p = *pp;
    unsigned c = *p;
    if (c >= 0x80) {
        size_t k = utf8_seq(p, end);
        if (JSON_UNLIKELY(k == 0)) {
            e->b->len = (size_t)(o - e->b->p);
            enc_fail(e, e->depth, "invalid UTF-8 in string");
        }
        o[0] = (char)p[0];
        o[1] = (char)p[1];
        if (k > 2) {
            o[2] = (char)p[2];
            if (k > 3)
                o[3] = (char)p[3];
        }
        *pp = p + k;
        return o + k;
    } else {
        static const char hex[] = "0123456789abcdef";
        char ch = esc_short[c];
        o[0] = '\\';
        if (ch == 'u') {
            o[1] = 'u';
            o[2] = '0';
            o[3] = '0';
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        } else {
            o[1] = ch;
            o += 2;
        }
        *pp = p + 1;
        return o;
    }
}

/* The n < 16 bytes at p copied to o when none of them needs care
 * (returns 1); else 0, and o holds nothing that counts. Fixed-size loads
 * and stores that overlap: no call, nothing touched past p + n or o + n. */
JSON_INLINE int short_plain(const unsigned char *p, size_t n, char *o)
{
#ifdef JSON_SSE2
    if (n >= 4) {
        /* two halves that overlap, in one vector: special bytes as in
         * encode_string's loop */
        const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
        __m128i x;
        if (n >= 8) {
            x = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)(const void *)p),
                                   _mm_loadl_epi64((const __m128i *)(const void *)(p + n - 8)));
        } else {
            int lo, hi; /* 4 bytes wherever SSE2 is */
            memcpy(&lo, p, 4);
            memcpy(&hi, p + n - 4, 4);
            x = _mm_unpacklo_epi32(_mm_cvtsi32_si128(lo), _mm_cvtsi32_si128(hi));
            x = _mm_unpacklo_epi64(x, _mm_set1_epi8('a'));
        }
        if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)),
                                           _mm_cmplt_epi8(x, space))) != 0)
            return 0;
        if (n >= 8) {
            _mm_storel_epi64((__m128i *)(void *)o, x);
            _mm_storel_epi64((__m128i *)(void *)(o + n - 8), _mm_unpackhi_epi64(x, x));
        } else {
            memcpy(o, p, 4);
            memcpy(o + n - 4, p + n - 4, 4);
        }
        return 1;
    }
#else
    if (n >= 8) {
        uint64_t x, y;
        memcpy(&x, p, 8);
        memcpy(&y, p + n - 8, 8);
        if (special8(x) | special8(y))
            return 0;
        memcpy(o, &x, 8);
        memcpy(o + n - 8, &y, 8);
        return 1;
    }
    if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, p, 4);
        memcpy(&y, p + n - 4, 4);
        if (special8((uint64_t)x | (uint64_t)y << 32))
            return 0;
        memcpy(o, &x, 4);
        memcpy(o + n - 4, &y, 4);
        return 1;
    }
#endif
    {
        size_t i;
        for (i = 0; i < n; i++) {
            if (byte_class[p[i]] != C_PLAIN)
                return 0;
            o[i] = (char)p[i];
        }
    }
    return 1;
}

static JSON_NOINLINE void encode_string_long(enc *e, const unsigned char *p, const unsigned char *end,
                                             char *o);

#ifdef JSON_SSE2
/* The 16 <= n <= 48 bytes at p copied to o when none of them needs care
 * (returns 1): two or three blocks of 16, the last one ending at p + n
 * (so it may overlap the one before). */
JSON_INLINE int medium_plain(const unsigned char *p, size_t n, char *o)
{
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p),
            y = _mm_loadu_si128((const __m128i *)(const void *)(p + (n > 32 ? 16 : 0))),
            z = _mm_loadu_si128((const __m128i *)(const void *)(p + n - 16));
    __m128i q = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(y, quote)),
                             _mm_cmpeq_epi8(z, quote));
    __m128i k = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, bslash), _mm_cmpeq_epi8(y, bslash)),
                             _mm_cmpeq_epi8(z, bslash));
    __m128i c = _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(x, space), _mm_cmplt_epi8(y, space)),
                             _mm_cmplt_epi8(z, space));
    if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(q, k), c)) != 0)
        return 0;
    _mm_storeu_si128((__m128i *)(void *)o, x);
    _mm_storeu_si128((__m128i *)(void *)(o + (n > 32 ? 16 : 0)), y);
    _mm_storeu_si128((__m128i *)(void *)(o + n - 16), z);
    return 1;
}
#endif

/* Most strings of a body are short and plain: one check, one copy, no
 * call; the rest goes through encode_string_long. */
JSON_INLINE void encode_string(enc *e, const char *s, size_t n)
{
    inst_buf *b = e->b;
    size_t chunk = n < ENC_STR_CHUNK ? n : ENC_STR_CHUNK;
    char *o;
    inst_buf_need(e->L, b, 6 * chunk + ENC_STR_SLACK);
    o = b->p + b->len;
    *o++ = '"';
    if (n < 16 ? short_plain((const unsigned char *)s, n, o)
#ifdef JSON_SSE2
               : n <= 48 && medium_plain((const unsigned char *)s, n, o)
#else
               : 0
#endif
    ) {
        o[n] = '"';
        b->len += n + 2;
        return;
    }
    encode_string_long(e, (const unsigned char *)s, (const unsigned char *)s + n, o);
}

/* The string from p to end, its opening quote written and room made for
 * its first chunk at o. */
static JSON_NOINLINE void encode_string_long(enc *e, const unsigned char *p, const unsigned char *end,
                                             char *o)
{
    lua_State *L = e->L;
    inst_buf *b = e->b;
    size_t chunk;
    for (;;) {
        const unsigned char *stop = end - p > ENC_STR_CHUNK ? p + ENC_STR_CHUNK : end;
        while (p < stop) {
            size_t left = (size_t)(stop - p);
            if (left < 16) {
                /* the short rest: plain as a whole, or byte by byte up to
                 * the one that needs care */
                if (short_plain(p, left, o)) {
                    p += left;
                    o += left;
                    break;
                }
            }
#ifdef JSON_SSE2
            else {
                /* Sixteen bytes a step, copied before they are looked at:
                 * a byte is special when it is a quote, a backslash, or
                 * (as a signed byte) below 0x20, which takes in the
                 * controls and every byte from 0x80 up. */
                const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                              space = _mm_set1_epi8(0x20);
                __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
                unsigned m;
                _mm_storeu_si128((__m128i *)(void *)o, x);
                m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote),
                                                                         _mm_cmpeq_epi8(x, bslash)),
                                                            _mm_cmplt_epi8(x, space)));
                if (m == 0) {
                    p += 16;
                    o += 16;
                    continue;
                }
                m = (unsigned)__builtin_ctz(m);
                p += m;
                o += m;
                o = encode_special(e, &p, end, o);
                continue;
            }
#endif
            while (p < stop && byte_class[*p] == C_PLAIN)
                *o++ = (char)*p++;
            if (p < stop)
                o = encode_special(e, &p, end, o);
        }
        b->len = (size_t)(o - b->p);
        if (p >= end)
            break;
        chunk = (size_t)(end - p) < ENC_STR_CHUNK ? (size_t)(end - p) : ENC_STR_CHUNK;
        inst_buf_need(L, b, 6 * chunk + ENC_STR_SLACK);
        o = b->p + b->len;
    }
    b->p[b->len++] = '"';
}

/* Digits straight into the buffer, two at a time from a table, no
 * printf: integers are most of what an API body holds besides text. */
static const char digit_pairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static void encode_integer(enc *e, lua_Integer v)
{
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, t;
    size_t nd = 1;
    char *o;
    for (t = u; t >= 10; t /= 10)
        nd++;
    inst_buf_need(e->L, e->b, nd + 1);
    o = e->b->p + e->b->len;
    if (v < 0)
        *o++ = '-';
    e->b->len = (size_t)(o + nd - e->b->p);
    o += nd;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        *--o = digit_pairs[2 * r + 1];
        *--o = digit_pairs[2 * r];
    }
    if (u >= 10) {
        *--o = digit_pairs[2 * u + 1];
        *--o = digit_pairs[2 * u];
    } else {
        *--o = (char)('0' + u);
    }
}

/* Fixed-point digits for the common floats (prices, scores, rates): the
 * fewest decimals k such that r = round(|v| * 10^k) below 2^53 gives back
 * v as r / 10^k. Both are exact doubles, so that division is correctly
 * rounded, which is exactly what a reader's strtod does with the digits.
 * Returns the length written, or 0 to fall back to printf. */
static int float_fixed(char *out, double v)
{
    double a = fabs(v);
    int k;
    if (!(a >= 1e-4 && a < 1e15))
        return 0;
    for (k = 0; k <= 17; k++) {
        double m = a * pow10_exact[k], r;
        if (m >= 9007199254740992.0)
            return 0;
        r = floor(m + 0.5);
        if (r / pow10_exact[k] == a) {
            char digits[24];
            int nd = 0, n = 0;
            uint64_t u = (uint64_t)r;
            do {
                digits[nd++] = (char)('0' + u % 10);
                u /= 10;
            } while (u != 0);
            if (v < 0)
                out[n++] = '-';
            if (nd <= k) { /* 0.000ddd */
                int i;
                out[n++] = '0';
                out[n++] = '.';
                for (i = nd; i < k; i++)
                    out[n++] = '0';
                while (nd > 0)
                    out[n++] = digits[--nd];
                return n;
            }
            while (nd > k)
                out[n++] = digits[--nd];
            out[n++] = '.';
            if (k == 0)
                out[n++] = '0';
            while (nd > 0)
                out[n++] = digits[--nd];
            return n;
        }
    }
    return 0;
}

static void encode_float(enc *e, lua_Number v)
{
    char tmp[40];
    int n = 0, prec, i, plain = 1;
    if (isnan(v))
        enc_fail(e, e->depth, "cannot encode NaN");
    if (isinf(v))
        enc_fail(e, e->depth, v > 0 ? "cannot encode inf" : "cannot encode -inf");
    n = float_fixed(tmp, (double)v);
    if (n > 0) {
        put_lit(e->L, e->b, tmp, (size_t)n);
        return;
    }
    for (prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, (double)v);
        if (prec == 17 || strtod(tmp, NULL) == (double)v)
            break;
    }
    for (i = 0; i < n; i++) {
        if (tmp[i] == e->decpoint) {
            tmp[i] = '.';
            plain = 0;
        } else if (tmp[i] == 'e') {
            plain = 0;
        }
    }
    if (plain) { /* integral float: keep it a float on the way back */
        tmp[n++] = '.';
        tmp[n++] = '0';
    }
    put_lit(e->L, e->b, tmp, (size_t)n);
}

/* Opening a container deeper than max_depth: a cycle always ends here,
 * so first look for a container that is its own ancestor and report the
 * path where it comes back. */
static JSON_NOINLINE void enc_too_deep(enc *e, int idx)
{
    lua_State *L = e->L;
    int j;
    char what[64];
    lua_createtable(L, 0, e->depth + 1);
    for (j = 0; j <= e->depth; j++) {
        /* every open container's table is still on the stack */
        const void *t = lua_topointer(L, j < e->depth ? e->fr[j].tidx : idx);
        lua_pushlightuserdata(L, (void *)(uintptr_t)t);
        if (lua_rawget(L, -2) != LUA_TNIL)
            enc_fail(e, j, "circular reference");
        lua_pop(L, 1);
        lua_pushlightuserdata(L, (void *)(uintptr_t)t);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }
    snprintf(what, sizeof what, "nesting deeper than max_depth (%d)", e->max_depth);
    enc_fail(e, e->depth, what);
}

/* The keys of the table at idx are not a valid set: says why, naming the
 * path to the table (its first nframes containers). */
static JSON_NOINLINE void bad_keys(enc *e, int idx, int nframes)
{
    lua_State *L = e->L;
    int strings = 0, ints = 0, other = 0;
    const char *othertype = NULL;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            strings = 1;
        } else if (lua_isinteger(L, -1)) {
            ints = 1;
        } else if (!other) {
            other = 1;
            othertype = lua_type(L, -1) == LUA_TNUMBER ? "non-integer number" : luaL_typename(L, -1);
        }
    }
    if (other) {
        char what[80];
        snprintf(what, sizeof what, "unsupported key type (%s)", othertype);
        enc_fail(e, nframes, what);
    }
    if (strings && ints)
        enc_fail(e, nframes, "mixed array/object keys");
    enc_fail(e, nframes, "sparse array (keys are not 1..n)");
}

/* Returns the array length if the keys of the table at idx are exactly
 * 1..n, -1 if its first key is a string (the rest are checked while
 * writing; that key and its value are left on the stack, the object's
 * first member), raises otherwise. Empty tables give 0. `checked`: the
 * table is an object on its first key being a string, without asking for
 * an array length (a hash look-up of key 1): any other key it holds is
 * refused when put_key meets it, and enc_fail puts that refusal before
 * any other error inside the object, as when it was made here. `checked`:
 * the table is checked against a record (shape_encode), where a raise and
 * a refusal give the same answer (false), so a first key 1 makes it an
 * array of lua_rawlen's n, to be walked with lua_next (*bynext set; key 1
 * and its value left on the stack): the keys must come 1 to n in that
 * order and nothing after, else it is refused, and the walker decides. */
static lua_Integer table_shape(enc *e, int idx, int checked, int *bynext)
{
    lua_State *L = e->L;
    lua_Integer n, count = 0;
    lua_pushnil(L);
    if (lua_next(L, idx) == 0)
        return 0;
    if (lua_type(L, -2) == LUA_TSTRING)
        return -1;
    if (checked && lua_isinteger(L, -2) && lua_tointeger(L, -2) == 1) {
        *bynext = 1;
        return (lua_Integer)lua_rawlen(L, idx); /* t[1] is not nil: n >= 1 */
    }
    lua_settop(L, idx);
    n = (lua_Integer)lua_rawlen(L, idx);
    if (n == 0) /* its first key is not a string */
        bad_keys(e, idx, e->depth);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_Integer k;
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || (k = lua_tointeger(L, -1)) < 1 || k > n) {
            lua_pop(L, 1);
            bad_keys(e, idx, e->depth);
        }
        count++;
    }
    if (count != n)
        bad_keys(e, idx, e->depth);
    return n;
}

typedef struct skey {
    const char *s;
    size_t n;
} skey;

static int skey_cmp(const void *a, const void *b)
{
    const skey *x = (const skey *)a, *y = (const skey *)b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, n);
    if (c != 0)
        return c;
    return x->n < y->n ? -1 : x->n > y->n;
}

static eframe *enc_push_frame(enc *e, int idx, int kind)
{
    eframe *f;
    if (e->depth == e->cap) {
        int ncap = e->cap * 4 < e->max_depth ? e->cap * 4 : e->max_depth;
        eframe *nf = (eframe *)lua_newuserdatauv(e->L, (size_t)ncap * sizeof *nf, 0);
        memcpy(nf, e->fr, (size_t)e->cap * sizeof *nf);
        lua_replace(e->L, ENC_FRAMES);
        e->fr = nf;
        e->cap = ncap;
    }
    f = &e->fr[e->depth++];
    f->tidx = idx;
    f->kind = kind;
    f->keyidx = f->keysidx = 0;
    f->i = f->n = 0;
    f->node = -1;
    f->obj = NULL;
    f->seen = 0;
    f->bynext = 0;
    return f;
}

/* shape_encode: the value does not fit its shape. The walker decides. */
static JSON_NOINLINE void enc_refute(enc *e)
{
    e->refuted = 1;
    lua_pushboolean(e->L, 0);
    lua_error(e->L);
}

/* shape_encode: does the table at idx, with no metatable but array_mt
 * (`marked`) and table_shape's n, fit the container record at `node`?
 * What the walker would refuse or convert is a no: a table with another
 * metatable (it may have __pairs), an array where an object goes or the
 * reverse, an empty array not marked (the walker sends a marked copy), an
 * empty object that lacks a required field. */
static int table_fits(enc *e, lua_Integer node, lua_Integer n, int marked)
{
    const lua_Integer *p = e->shape->code + node;
    const ShapeObj *o;
    switch (p[F_KIND]) {
    case K_ARRAY:
        return n > 0 || (n == 0 && marked);
    case K_OBJECT:
        o = e->shape->obj[node];
        if (o->unprovable)
            return 0;
        return !marked && (n < 0 || (n == 0 && o->nreq == 0));
    case K_MAP:
    case K_ANYOBJECT:
        return !marked && n <= 0;
    default:
        return 0;
    }
}

/* Starts the table at idx (checked against the record at `node` unless it
 * is -1): writes it whole if empty, else opens a frame (and pushes its
 * iteration state). Returns whether a frame was opened. */
static int open_table(enc *e, int idx, lua_Integer node)
{
    lua_State *L = e->L;
    lua_Integer n;
    int marked = 0, bynext = 0;
    if (e->depth >= e->max_depth)
        enc_too_deep(e, idx);
    /* room for this level's key, value and checks; a stack never shrinks
     * below what a running C function asked for, so each depth asks once */
    if (idx + 8 > e->stack_ok) {
        if (!lua_checkstack(L, 8))
            enc_fail(e, e->depth, "out of Lua stack");
        e->stack_ok = idx + 8;
    }
    if (lua_getmetatable(L, idx)) {
        marked = lua_rawequal(L, -1, ENC_ARRAY_MT);
        lua_pop(L, 1);
        if (node >= 0 && !marked)
            enc_refute(e);
    }
    n = table_shape(e, idx, node >= 0, &bynext);
    if (node >= 0 && !table_fits(e, node, n, marked))
        enc_refute(e);
    if (n > 0) {
        eframe *f = enc_push_frame(e, idx, F_ARRAY);
        f->n = n;
        f->node = node;
        f->bynext = bynext;
        put_char(e, '[');
        return 1;
    }
    if (n == 0) {
        put_lit(L, e->b, marked ? "[]" : "{}", 2);
        return 0;
    }
    if (marked) {
        if (lua_rawlen(L, idx) > 0) { /* as a length would have told */
            lua_settop(L, idx);
            bad_keys(e, idx, e->depth);
        }
        enc_fail(e, e->depth, "mixed array/object keys");
    }
    if (!e->sort_keys) {
        /* the lua_next key and value of the first member are at idx + 1
         * and idx + 2 */
        eframe *f = enc_push_frame(e, idx, F_OBJECT);
        f->keyidx = idx + 1;
        f->node = node;
        if (node >= 0)
            f->obj = e->shape->obj[node];
    } else {
        size_t count = 0, i = 0;
        skey *keys;
        eframe *f;
        lua_settop(L, idx);
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING) {
                lua_pop(L, 1);
                bad_keys(e, idx, e->depth);
            }
            count++;
        }
        keys = (skey *)lua_newuserdatauv(L, count * sizeof *keys, 0);
        /* The key strings get their own anchor: the table alone would not
         * keep them alive if a finalizer emptied it mid-encode. */
        lua_createtable(L, (int)(count < INT32_MAX ? count : 0), 0);
        lua_pushnil(L);
        while (i < count && lua_next(L, idx) != 0) {
            lua_pop(L, 1);
            keys[i].s = lua_tolstring(L, -1, &keys[i].n);
            lua_pushvalue(L, -1);
            lua_rawseti(L, idx + 2, (lua_Integer)++i);
        }
        lua_settop(L, idx + 2);
        qsort(keys, count, sizeof *keys, skey_cmp);
        f = enc_push_frame(e, idx, F_SORTED);
        f->keysidx = idx + 1; /* and its anchor at idx + 2 */
        f->keyidx = idx + 3;
        f->n = (lua_Integer)count;
    }
    put_char(e, '{');
    return 1;
}

/* Writes the scalar at idx (of type t), or opens the table there; checks
 * it against the record at `node` first unless that is -1. Returns whether
 * a frame was opened (the value then stays on the stack as its table). */
JSON_INLINE int begin_value(enc *e, int idx, int t, lua_Integer node)
{
    lua_State *L = e->L;
    if (node >= 0 && !(e->accept[node] >> t & 1) && !shape_value(L, e->code + node, idx, t, e->base))
        enc_refute(e);
    switch (t) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        encode_string(e, s, n);
        return 0;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            encode_integer(e, lua_tointeger(L, idx));
        else
            encode_float(e, lua_tonumber(L, idx));
        return 0;
    case LUA_TTABLE:
        return open_table(e, idx, node);
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            put_lit(L, e->b, "true", 4);
        else
            put_lit(L, e->b, "false", 5);
        return 0;
    case LUA_TNIL:
        put_lit(L, e->b, "null", 4);
        return 0;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            put_lit(L, e->b, "null", 4);
            return 0;
        }
        enc_fail(e, e->depth, "cannot encode lightuserdata");
        return 0;
    default: {
        char what[64];
        snprintf(what, sizeof what, "cannot encode %s", luaL_typename(L, idx));
        enc_fail(e, e->depth, what);
        return 0;
    }
    }
}

/* Writes ,"key": for the key at keyidx (f->keyidx, set when the frame
 * was opened) of the innermost object, through
 * the key cache. Nothing between the lookup and the copy can run a
 * finalizer, and a miss fills entry and table slot together once the key
 * is written, so a call from a finalizer only ever sees consistent pairs. */
JSON_INLINE void put_key(enc *e, eframe *f, int keyidx, const void *id, int first)
{
    lua_State *L = e->L;
    inst_buf *b = e->b;
    /* two ways per set, so two keys that share a set both stay */
    uintptr_t h = (((uintptr_t)id * (uintptr_t)0x9E3779B97F4A7C15u) >> (sizeof(uintptr_t) * 8 - 7)) * 2;
    ekey *c = &e->keys[h];
    if (c->s != id && c[1].s == id) {
        c++;
        h++;
    }
    if (c->s == id && id != NULL && !e->indent) {
        /* the usual member: comma, key and colon in one reservation */
        char *o;
        inst_buf_need(L, b, sizeof c->out + 2);
        o = b->p + b->len;
        *o = ',';
        o += !first;
#ifdef JSON_SSE2
        if (c->n <= 16)
            _mm_storeu_si128((__m128i *)(void *)o, _mm_loadu_si128((const __m128i *)(const void *)c->out));
        else
#endif
            memcpy(o, c->out, sizeof c->out);
        o[c->n] = ':';
        b->len = (size_t)(o - b->p) + c->n + 1;
        return;
    }
    if (!first)
        put_char(e, ',');
    if (e->indent)
        put_newline(e, e->depth);
    if (c->s == id && id != NULL) {
        /* a fixed-size copy: the whole entry, then count what counts */
        inst_buf_need(L, b, sizeof c->out + 2);
        memcpy(b->p + b->len, c->out, sizeof c->out);
        b->len += c->n;
    } else {
        size_t kn, at = b->len;
        const char *k;
        if (JSON_UNLIKELY(lua_type(L, keyidx) != LUA_TSTRING)) {
            lua_settop(L, f->tidx);
            bad_keys(e, f->tidx, e->depth - 1);
        }
        k = lua_tolstring(L, keyidx, &kn);
        encode_string(e, k, kn);
        if (c->victim) { /* the set's ways are filled in turn */
            c->victim = 0;
            c++;
            h++;
        } else {
            c->victim = 1;
        }
        if (b->len - at <= EKEY_OUT) {
            c->s = id;
            c->n = (unsigned char)(b->len - at);
            memcpy(c->out, b->p + at, c->n);
            lua_pushvalue(L, keyidx);
            lua_rawseti(L, ENC_KEYS, (lua_Integer)h + 1); /* in the array part: no allocation */
        }
        inst_buf_need(L, b, 2);
    }
    if (e->indent) {
        b->p[b->len++] = ':';
        b->p[b->len++] = ' ';
    } else {
        b->p[b->len++] = ':';
    }
}

/* shape_encode: the record of the member whose key is at `key` (a
 * string: put_key refuses other keys), -1 for a key the object does not
 * declare (let through unchecked, as the walker does). */
JSON_INLINE lua_Integer member_node(enc *e, eframe *f, int key, const void *id)
{
    lua_State *L = e->L;
    const lua_Integer *p;
    if (f->obj != NULL) {
        const ShapeSlot *sl = shape_field(L, f->obj, id, key);
        if (sl == NULL)
            return -1;
        f->seen += sl->required;
        return sl->child;
    }
    p = e->code + f->node;
    if (p[F_KIND] == K_MAP) {
        if (p[F_KEYS] && !shape_in_set(L, e->base, p[F_KEYS], key))
            enc_refute(e);
        return p[F_CHILD];
    }
    return -1;
}

/* The whole value, without C recursion: open containers are frames. */
static void encode_document(enc *e)
{
    lua_State *L = e->L;
    /* Values are always opened on the stack top, the root as well. */
    lua_pushvalue(L, ENC_VALUE);
    if (!begin_value(e, lua_gettop(L), lua_type(L, ENC_VALUE), e->shape != NULL ? 0 : -1))
        return;
    while (e->depth > 0) {
        eframe *f = &e->fr[e->depth - 1];
        int vidx, t;
        lua_Integer node = -1;
        if (f->kind == F_ARRAY) {
            if (f->i == f->n) {
                if (f->bynext && lua_next(L, f->tidx) != 0)
                    enc_refute(e); /* a key past n */
                goto close;
            }
            if (f->i++ > 0)
                put_char(e, ',');
            if (e->indent)
                put_newline(e, e->depth);
            if (f->bynext) {
                /* element 1 is on the stack already (table_shape); the
                 * key of the one before stays under each */
                if (f->i > 1 && (lua_next(L, f->tidx) == 0 || !lua_isinteger(L, -2) ||
                                 lua_tointeger(L, -2) != f->i))
                    enc_refute(e);
                vidx = f->tidx + 2;
                t = lua_type(L, vidx);
            } else {
                t = lua_rawgeti(L, f->tidx, f->i);
                vidx = f->tidx + 1;
            }
            if (f->node >= 0)
                node = e->code[f->node + F_CHILD];
        } else if (f->kind == F_OBJECT) {
            const void *id;
            /* the first member is on the stack already (table_shape) */
            if (f->i > 0 && lua_next(L, f->tidx) == 0)
                goto close;
            vidx = f->tidx + 2;
            /* A string's lua_topointer is its address; other keys give
             * NULL or an address no cached (live) string can have. */
            id = lua_topointer(L, vidx - 1);
            put_key(e, f, vidx - 1, id, f->i++ == 0);
            if (f->node >= 0)
                node = member_node(e, f, vidx - 1, id);
            t = lua_type(L, vidx);
        } else {
            const skey *k;
            if (f->i == f->n)
                goto close;
            k = (const skey *)lua_touserdata(L, f->keysidx) + f->i;
            lua_settop(L, f->keysidx + 1); /* drops the previous key */
            lua_pushlstring(L, k->s, k->n);
            lua_pushvalue(L, -1);
            t = lua_rawget(L, f->tidx);
            vidx = lua_gettop(L);
            put_key(e, f, vidx - 1, lua_topointer(L, vidx - 1), f->i++ == 0);
        }
        if (!begin_value(e, vidx, t, node))
            lua_pop(L, 1); /* the value, at the top: lua_settop's short way */
        continue;
    close:
        if (f->obj != NULL && f->seen != f->obj->nreq)
            enc_refute(e); /* a required field missing */
        /* frames are never empty: empty tables were written whole */
        if (e->indent)
            put_newline(e, e->depth - 1);
        put_char(e, f->kind == F_ARRAY ? ']' : '}');
        lua_settop(L, f->tidx - 1);
        e->depth--;
    }
}

/* Arguments: the enc (light userdata), the value (ENC_VALUE), array_mt
 * (ENC_ARRAY_MT), the key cache's table (ENC_KEYS), the shape's refs
 * (ENC_REFS, a table for shape_encode). */
static int encode_protected(lua_State *L)
{
    enc *e = (enc *)lua_touserdata(L, 1);
    lua_settop(L, ENC_REFS);
    lua_pushnil(L);                 /* ENC_FRAMES, until the local ones run out */
    if (e->shape != NULL) {
        /* refs[i] at base + i, one stack slot away while checking */
        lua_Integer i;
        luaL_checkstack(L, (int)e->shape->nrefs + 8, "shape refs");
        e->base = lua_gettop(L);
        for (i = 1; i <= e->shape->nrefs; i++)
            lua_rawgeti(L, ENC_REFS, i);
    }
    encode_document(e);
    return 0;
}

/* Encodes the value at index v with json_encode's options o, checked
 * against the shape at index `si` unless that is 0: pushes the text and
 * returns LUA_OK, or leaves the error (e->failed: an encode error;
 * e->refuted: the value does not fit) and returns the pcall's status. */
static int encode_call(lua_State *L, enc *e, const jopts *o, int v, int si)
{
    const Shape *shape = si ? (const Shape *)luaL_checkudata(L, si, SHAPE_MT) : NULL;
    jbox *out;
    int status;
    e->L = L;
    e->max_depth = o->max_depth;
    e->sort_keys = o->sort_keys;
    e->indent = o->indent;
    e->decpoint = localeconv()->decimal_point[0];
    e->failed = 0;
    e->shape = shape;
    e->code = shape != NULL ? shape->code : NULL;
    e->accept = shape != NULL ? shape->accept : NULL;
    e->base = 0;
    e->refuted = 0;
    e->fr = e->local;
    e->depth = 0;
    e->cap = ENC_LOCAL_FRAMES;
    e->stack_ok = 0;
    e->keys_told = 0;
    /* The state's own buffer keeps its capacity from call to call; a call
     * made while it is busy (from a finalizer) gets a fresh one. */
    out = jbox_acquire(L); /* a fresh one goes on the stack */
    e->b = &out->b;
    e->keys = (ekey *)lua_touserdata(L, lua_upvalueindex(3));
    lua_pushcfunction(L, encode_protected);
    lua_pushlightuserdata(L, e);
    lua_pushvalue(L, v);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_getiuservalue(L, lua_upvalueindex(3), 1);
    if (shape != NULL)
        lua_getiuservalue(L, si, 1);
    else
        lua_pushnil(L);
    status = lua_pcall(L, 5, 0, 0);
    if (status == LUA_OK)
        lua_pushlstring(L, e->b->p, e->b->len);
    jbox_release(out);
    return status;
}

/* core.json_encode(value [, opts]) -> text | nil, message */
static int l_json_encode(lua_State *L)
{
    enc e;
    jopts o;
    luaL_checkany(L, 1);
    read_opts(L, 2, 1, &o);
    lua_settop(L, 2);
    if (encode_call(L, &e, &o, 1, 0) == LUA_OK)
        return 1;
    if (!e.failed)
        return lua_error(L);
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

/* core.shape_encode(shape, value) -> text | false: json_encode(value)
 * when the value fits the shape (shape.c) as core.shape_test would have
 * it, valid with nothing to convert; false for anything else, a value
 * json_encode would refuse included. One walk does both: the SDK checks
 * and encodes a body in the time encoding alone took. */
static int l_shape_encode(lua_State *L)
{
    enc e;
    jopts o;
    luaL_checkudata(L, 1, SHAPE_MT);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    read_opts(L, 3, 1, &o); /* the defaults */
    if (encode_call(L, &e, &o, 2, 1) == LUA_OK)
        return 1;
    if (!e.failed && !e.refuted)
        return lua_error(L);
    lua_pushboolean(L, 0);
    return 1;
}

/* core.array(t) -> t, marked so that it encodes as a JSON array. */
static int l_array(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, ARRAY_MT);
        if (!lua_rawequal(L, -1, -2))
            return luaL_argerror(L, 1, "table already has a metatable");
        lua_settop(L, 1);
        return 1;
    }
    luaL_setmetatable(L, ARRAY_MT);
    lua_settop(L, 1);
    return 1;
}

static const luaL_Reg json_funcs[] = {
    {"array", l_array},
    {NULL, NULL}
};

void inst_json_open(lua_State *L)
{
    kcache *kc;
    int i;
    luaL_newmetatable(L, ARRAY_MT); /* __name = "instantly.array" */
    lua_setfield(L, -2, "array_mt");
    /* Each codec function keeps its per-state buffer, array_mt and its
     * key cache as upvalues. */
    inst_buf_box(L, sizeof(jbox));
    luaL_getmetatable(L, ARRAY_MT);
    kc = (kcache *)lua_newuserdatauv(L, sizeof(kcache), 1);
    memset(kc, 0, sizeof(kcache));
    for (i = 0; i < STR_SLOTS; i++)
        kc->key[i].n = kc->val[i].n = KENTRY_EMPTY;
    lua_createtable(L, 2 * STR_SLOTS, 0);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -3);
    lua_pushvalue(L, -3);
    lua_pushvalue(L, -3);
    lua_pushcclosure(L, l_json_decoder, 3);
    lua_setfield(L, -5, "json_decoder");
    lua_pushcclosure(L, l_json_decode, 3);
    lua_setfield(L, -2, "json_decode");
    inst_buf_box(L, sizeof(jbox));
    luaL_getmetatable(L, ARRAY_MT);
    memset(lua_newuserdatauv(L, KEY_CACHE * sizeof(ekey), 1), 0, KEY_CACHE * sizeof(ekey));
    lua_createtable(L, KEY_CACHE, 0);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -3);
    lua_pushvalue(L, -3);
    lua_pushvalue(L, -3);
    lua_pushcclosure(L, l_json_encode, 3);
    lua_setfield(L, -5, "json_encode");
    /* the same buffer and key cache: the keys of bodies are the keys of
     * bodies, whichever of the two writes them */
    lua_pushcclosure(L, l_shape_encode, 3);
    lua_setfield(L, -2, "shape_encode");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    luaL_setfuncs(L, json_funcs, 0);
}
