/*
 * recipients.c - fan-out's recipient cache (see recipients.h).
 *
 * An entry is one packed block: an 11-byte header (load time, size, flags,
 * id length), the id, then the fields as LEB128 varints and bytes - 71
 * bytes for the benchmark's users (an e-mail address, a phone number and
 * one 52-character push token, "fcm-" and 48 hex digits), in the 72-byte
 * size class (it was 140 with a fixed header of 16-bit lengths and every
 * string in full; 81, the 88-byte class, with the token as six bits a
 * character). Short strings shared by many users -
 * time zones, locales, device platforms, the "@domain" of e-mail
 * addresses, preference categories - are interned in the cache's atom
 * table and stored as a one- or two-byte reference; tokens, local parts
 * and phone numbers are packed 6 or 4 bits a character when their
 * characters allow, hex tails of tokens 4 bits a digit (put_str); quiet
 * hours take 4 bytes only when set; a preference is a byte and a category
 * reference.
 *
 * Entries of up to SLAB_MAX bytes (nearly all) live in one anonymous
 * mapping carved into 8-byte size classes, each with its own free list;
 * larger ones come from malloc. The table is an array of sets of WAYS
 * tagged entry pointers; the set is chosen by the low bits of the id's
 * 32-bit hash, and each pointer carries the high 16 bits of that hash in
 * its unused top bits (user-space addresses fit in 48 bits), so a set of 8
 * is one 64-byte cache line and a lookup reads an entry only when its tag
 * matches. Two choices: an id may live in its set or in a second one
 * (alt_set: the same set with the bits above the stripe's changed by a
 * value from the hash), and an entry goes to the emptier of the two. With
 * one set, at two slots per entry about 1 % of entries conflicted out of
 * their set (8 ways; ~4 % with 4), and each of those was read from the
 * store again and again, evicting a neighbour: 0.8 % of the benchmark's
 * lookups (1M users) missed, and those misses were 12 % of fan-out's CPU
 * (a miss costs ~60 us: three index probes through the reader's page
 * cache). With two, no set overflows before the byte budget binds. A
 * lookup reads the second set's line only when the first lacks the id.
 * Sets are guarded by NSTRIPES mutexes (set % NSTRIPES, the same for both
 * of an id's sets). A reader copies a hit out under the
 * lock and unpacks its copy, so entries can be replaced by other threads at
 * any time.
 *
 * One lookup per recipient: recip_prefetch() copies every id's entry (a hit,
 * or what it read from the store) into the reader's own arena, in order;
 * recip_get() then takes the next recorded entry instead of looking the id
 * up again. The slab and the set array are mapped with MADV_HUGEPAGE: with
 * 4 KiB pages nearly every lookup of a large cache missed the TLB (measured:
 * find() fell from 17.6 % to 4.1 % of fan-out's samples with huge pages).
 * A prefetch makes its lookups ahead, in a pipeline of groups of
 * PROBE_GROUP ids (probe_sets, probe_entries: the sets' lines, then the
 * entries their tags point at), so that their cache misses overlap with
 * the copying instead of coming one after another.
 */
#include "stage/recipients.h"

#include "core/bigmem.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/varint.h"
#include "model/validate.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define WAYS 8
#define NSTRIPES 256
#define EST_ENTRY_BYTES 72      /* sizing guess per entry (one device, e-mail, phone) */
#define MAX_ENTRY_BYTES 2048    /* larger users are not cached (read on every use) */
#define PREFETCH_CHUNK 512
#define REFRESH_PAGE 256        /* users a step of the refresh reads */
#define REFRESH_CATCH_UP 4      /* pages a late step reads at most */
#define PROBE_GROUP 16          /* ids whose lookups are started together (probe_sets) */
#define ATOMS_MAX 16384         /* distinct short strings a cache interns */
#define ATOM_HASH 32768         /* open-addressing slots (power of two, > 2 * ATOMS_MAX) */
#define ATOM_LEN_MAX 255        /* longer strings are stored inline */
#define SLAB_GRAIN 8            /* size classes of the slab: multiples of 8 bytes */
#define SLAB_MAX 256            /* larger entries come from malloc */
#define SLAB_CLASSES (SLAB_MAX / SLAB_GRAIN + 1)

enum { F_KNOWN = 1, F_USED = 2, F_QUIET = 4 };

/* An atom reference (a varint): 0 is "", 1 an inline NUL-terminated string
 * that follows, k + 1 atom k of the cache's table. */
enum { REF_EMPTY = 0, REF_INLINE = 1 };

typedef struct __attribute__((packed)) rentry {
    int32_t loaded_s;           /* seconds since the cache was made */
    uint32_t size;              /* bytes of the whole entry */
    uint8_t flags;              /* F_* (F_USED: the CLOCK reference bit) */
    uint16_t idlen;
    /* then: the id (no NUL); zone ref; with F_QUIET two u16 minutes of the
     * day (start, end); locale ref; varint devices, each a platform ref
     * and the token; the phone; the e-mail address up to its last '@' and
     * a ref to the rest ("@example.com"; "" without an '@'); the webhook
     * URL; varint preferences, each a byte (channel | enabled << 7) and a
     * category ref. Strings as put_str() writes them. */
    char data[];
} rentry_t;

struct recip_cache {
    store_t *store;
    size_t max_bytes;
    int ttl_s;
    int64_t born_ms;
    uint64_t *slots;            /* nsets * WAYS tagged pointers (slot_make) */
    size_t slots_len;           /* bytes mapped for slots (0: from the heap) */
    size_t nsets;
    pthread_mutex_t stripes[NSTRIPES];
    /* Entries of up to SLAB_MAX bytes (nearly all) live in one anonymous
     * mapping, cut on demand into slots of their 8-byte size class and
     * reused through per-class free lists: the cache churns constantly, and
     * through malloc the freed and new entries of different threads
     * fragment the heap until RSS is well above the budget. */
    pthread_mutex_t slab_mu;
    char *slab;
    size_t slab_len;            /* bytes mapped (untouched pages cost nothing) */
    size_t slab_next;           /* bytes handed out so far */
    struct slab_free {
        uint32_t *v;            /* free slots, as offsets / SLAB_GRAIN */
        uint32_t n, cap;
    } slab_free[SLAB_CLASSES];
    /* Interned short strings: atom_names[id] for id 1..natoms. A name is
     * published before any entry carrying its id is built, and never
     * changes or goes away while the cache lives. */
    pthread_mutex_t atom_mu;
    _Atomic(char *) atom_names[ATOMS_MAX];
    uint16_t atom_hash[ATOM_HASH]; /* ids by name hash; 0 = empty slot */
    int natoms;
    _Atomic int64_t bytes;
    _Atomic int64_t entries;
    _Atomic int64_t lookups, loads;
    /* The refresh (refresh_step): a key-order scan of the users that reads
     * the cached ones again before their ttl runs out. */
    pthread_mutex_t scan_mu;
    char *scan_after;           /* where the next page starts (NULL: at the first user) */
    int64_t scan_next_ms;       /* when the next page is due; 0: not started */
    bool scan_off;              /* the store cannot scan users */
    _Atomic int64_t refreshed;
};

/* What one recip_prefetch() recorded: per id, in order, the offset of its
 * entry in arena (copied out of the cache or built from the store). */
typedef struct recip_list {
    const char **ids;           /* the caller's ids (borrowed until the next prefetch) */
    uint32_t *off;              /* offset of each id's entry in arena */
    int n, cap, next;           /* next: where recip_get() looks first */
    char *arena;
    size_t len, arena_cap;
} recip_list_t;

/* Prefetches may nest once (fan-out: the batch's explicit recipients, and
 * inside it an audience page), so a reader keeps the last two lists. */
#define RECIP_LISTS 2

struct recip_reader {
    recip_cache_t *c;
    uint64_t epoch;
    recip_list_t lists[RECIP_LISTS];
    int cur;                    /* the list the last prefetch filled */
    rentry_t *copy;             /* the last hit not recorded by a prefetch, copied out */
    size_t copy_cap;
    rentry_t *own;              /* an entry that was not cached */
    recipient_t view;
    char *text;                 /* the view's strings that are not in the entry */
    size_t text_cap;
    pref_t *prefs;
    int cprefs;
    int64_t lookups, loads;     /* not yet added to the cache's */
};

/* glibc's chunk for an n-byte request */
static size_t malloc_cost(size_t n) { return n + 8 <= 32 ? 32 : (n + 8 + 15) & ~(size_t)15; }

static bool in_slab(const recip_cache_t *c, const void *p)
{
    return c->slab && (const char *)p >= c->slab && (const char *)p < c->slab + c->slab_len;
}

static size_t slab_class(size_t n) { return (n + SLAB_GRAIN - 1) / SLAB_GRAIN; }

/* Memory an entry of n bytes takes in the cache. */
static size_t cost_of(size_t n) { return n <= SLAB_MAX ? slab_class(n) * SLAB_GRAIN : malloc_cost(n); }

/* A set slot: the entry's address with the high 16 bits of its hash on
 * top (0 = empty). */
#define SLOT_PTR_MASK ((UINT64_C(1) << 48) - 1)
static uint64_t slot_make(const rentry_t *e, uint32_t h) { return (uint64_t)(uintptr_t)e | ((uint64_t)(h >> 16) << 48); }
static rentry_t *slot_entry(uint64_t v) { return (rentry_t *)(uintptr_t)(v & SLOT_PTR_MASK); }
static bool slot_tag_is(uint64_t v, uint32_t h) { return v && (uint16_t)(v >> 48) == (uint16_t)(h >> 16); }

/* Storage for an n-byte entry; NULL when the slab is full. */
static void *store_alloc(recip_cache_t *c, size_t n)
{
    if (n > SLAB_MAX || !c->slab) return xmalloc(n);
    size_t k = slab_class(n), sz = k * SLAB_GRAIN;
    struct slab_free *fl = &c->slab_free[k];
    void *p = NULL;
    pthread_mutex_lock(&c->slab_mu);
    if (fl->n) {
        p = c->slab + (size_t)fl->v[--fl->n] * SLAB_GRAIN;
    } else if (c->slab_next + sz <= c->slab_len) {
        p = c->slab + c->slab_next;
        c->slab_next += sz;
    } else {
        /* the mapping is all cut up (users' sizes shifted over time): a
         * free slot of a larger class; freed, it joins this class's list */
        for (size_t j = k + 1; j < SLAB_CLASSES && !p; j++)
            if (c->slab_free[j].n) p = c->slab + (size_t)c->slab_free[j].v[--c->slab_free[j].n] * SLAB_GRAIN;
    }
    pthread_mutex_unlock(&c->slab_mu);
    return p;
}

static void store_free(recip_cache_t *c, void *p, size_t n)
{
    if (!in_slab(c, p)) {
        free(p);
        return;
    }
    struct slab_free *fl = &c->slab_free[slab_class(n)];
    pthread_mutex_lock(&c->slab_mu);
    if (fl->n == fl->cap) {
        fl->cap = fl->cap ? fl->cap * 2 : 1024;
        fl->v = xrealloc(fl->v, fl->cap * sizeof(*fl->v));
    }
    fl->v[fl->n++] = (uint32_t)(((char *)p - c->slab) / SLAB_GRAIN);
    pthread_mutex_unlock(&c->slab_mu);
}

static uint32_t id_hash(const char *id, size_t n) { return (uint32_t)fnv1a64(id, n); }

/* The id of short string s (n bytes, n > 0), interning it when new; 0 when
 * it is too long or the table is full (the caller stores it inline). */
static uint32_t atom_intern(recip_cache_t *c, const char *s, size_t n)
{
    if (n > ATOM_LEN_MAX) return 0;
    uint32_t h = id_hash(s, n);
    uint32_t id = 0;
    pthread_mutex_lock(&c->atom_mu);
    for (uint32_t i = h & (ATOM_HASH - 1);; i = (i + 1) & (ATOM_HASH - 1)) {
        uint16_t z = c->atom_hash[i];
        if (z == 0) {
            if (c->natoms + 1 >= ATOMS_MAX) break; /* full: inline from now on */
            id = (uint32_t)++c->natoms;
            char *copy = xmalloc(n + 1);
            memcpy(copy, s, n);
            copy[n] = '\0';
            atomic_store_explicit(&c->atom_names[id], copy, memory_order_release);
            c->atom_hash[i] = (uint16_t)id;
            break;
        }
        const char *name = atomic_load_explicit(&c->atom_names[z], memory_order_relaxed);
        if (strncmp(name, s, n) == 0 && name[n] == '\0') {
            id = z;
            break;
        }
    }
    pthread_mutex_unlock(&c->atom_mu);
    return id;
}

static const char *atom_name(recip_cache_t *c, uint32_t id)
{
    if (id == 0 || id >= ATOMS_MAX) return "";
    const char *s = atomic_load_explicit(&c->atom_names[id], memory_order_acquire);
    return s ? s : "";
}

/* ---- the packed form ----
 * A writer writes at p while what it writes fits in cap bytes, and counts
 * on past it (or from the start with p == NULL): an entry is built in one
 * pass into a buffer on the stack, and in a second one into memory of the
 * size the first counted only when it did not fit. */
typedef struct wr {
    char *p;
    size_t n, cap;
} wr_t;

static bool wr_fits(const wr_t *w, size_t n) { return w->p && w->n + n <= w->cap; }

static void put_bytes(wr_t *w, const void *s, size_t n)
{
    if (n && wr_fits(w, n)) memcpy(w->p + w->n, s, n);
    w->n += n;
}

static void put_var(wr_t *w, uint32_t v)
{
    unsigned char b[VARINT_MAX];
    put_bytes(w, b, varint_put(b, v));
}

static void put_u16(wr_t *w, uint16_t v) { put_bytes(w, &v, sizeof(v)); }

/* Strings are stored in one of four forms, told by the low 2 bits of
 * their varint header (length << 2 | form): raw bytes; 6 bits a character
 * when every one is in [0-9a-zA-Z_-] (ids, most local parts of e-mail
 * addresses: 3/4 of the bytes); 4 bits a character when every one is a
 * digit or one of "+-.() " (phone numbers: half); or a hex tail (PS_HEX:
 * a byte k | upper << 7, k raw bytes, then hex digits of one case, 4 bits
 * each): push tokens are hex or a short prefix and hex ("fcm-" and 48
 * digits: 30 bytes instead of 40 as six bits; an APNs token's 64 digits:
 * 34 instead of 49). The smallest form that applies is taken. */
enum { PS_RAW, PS_SIX, PS_NIBBLE, PS_HEX };
#define HEX_PREFIX_MAX 127      /* raw bytes before a hex tail at most */
static const char hex_lower[17] = "0123456789abcdef";
static const char hex_upper[17] = "0123456789ABCDEF";
static const char six_chars[65] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_";
static const char nibble_chars[17] = "0123456789+-.() ";

/* Per byte: its 6-bit code (bits 0-5) and whether it has one (CODE_SIX),
 * its 4-bit code (bits 8-11) and whether it has one (CODE_NIBBLE); made
 * from six_chars and nibble_chars once (codes_init). */
enum { CODE_SIX = 1 << 6, CODE_NIBBLE = 1 << 12 };
static uint16_t char_codes[256];
static pthread_once_t codes_once = PTHREAD_ONCE_INIT;

static void codes_make(void)
{
    for (int i = 0; i < 64; i++) char_codes[(unsigned char)six_chars[i]] |= (uint16_t)(i | CODE_SIX);
    for (int i = 0; i < 16; i++)
        char_codes[(unsigned char)nibble_chars[i]] |= (uint16_t)(i << 8 | CODE_NIBBLE);
}

static void codes_init(void) { pthread_once(&codes_once, codes_make); }

/* Bytes after the varint header of a string of n characters in form
 * (PS_HEX: k characters before the hex tail). */
static size_t packed_len(int form, size_t n, size_t k)
{
    switch (form) {
    case PS_SIX: return (n * 6 + 7) / 8;
    case PS_NIBBLE: return (n + 1) / 2;
    case PS_HEX: return 1 + k + (n - k + 1) / 2;
    default: return n;
    }
}

/* The value of hex digit ch in the case of abc (hex_lower or hex_upper);
 * -1 when it is not one. */
static int hex_val(char ch, const char *abc)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= abc[10] && ch <= abc[15]) return ch - abc[10] + 10;
    return -1;
}

/* Where s's hex tail starts (the longest suffix of hex digits of one case)
 * and the case: *upper when it holds a digit A-F. */
static size_t hex_tail(const char *s, size_t n, bool *upper)
{
    const char *abc = NULL;
    size_t i = n;
    for (; i > 0; i--) {
        char ch = s[i - 1];
        if (ch >= '0' && ch <= '9') continue;
        if (!abc) abc = ch >= 'a' && ch <= 'f' ? hex_lower : ch >= 'A' && ch <= 'F' ? hex_upper : NULL;
        if (!abc || hex_val(ch, abc) < 0) break;
    }
    *upper = abc == hex_upper;
    return i;
}

/* Packs n characters of s (every one has a code of the form) at out: 4
 * six-bit codes in 3 bytes, or 2 four-bit codes in a byte, low first. */
static unsigned char *pack_codes(unsigned char *out, const char *s, size_t n, int form, const char *hexabc)
{
    int width = form == PS_SIX ? 6 : 4, shift = form == PS_SIX ? 0 : 8;
    unsigned mask = (1u << width) - 1;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned code = hexabc ? (unsigned)hex_val(s[i], hexabc)
                               : ((unsigned)char_codes[(unsigned char)s[i]] >> shift) & mask;
        acc |= (uint32_t)code << bits;
        bits += width;
        if (bits >= 8) {
            *out++ = (unsigned char)(acc & 0xff);
            acc >>= 8;
            bits -= 8;
        }
    }
    if (bits > 0) *out++ = (unsigned char)(acc & 0xff);
    return out;
}

static void put_str(wr_t *w, const char *s, size_t n)
{
    int form = PS_RAW;
    size_t k = 0;
    bool upper = false;
    if (n >= 4 && n <= (UINT32_MAX >> 2)) {
        unsigned all = CODE_SIX | CODE_NIBBLE;
        for (size_t i = 0; i < n && all; i++) all &= char_codes[(unsigned char)s[i]];
        form = all & CODE_NIBBLE ? PS_NIBBLE : all & CODE_SIX ? PS_SIX : PS_RAW;
        if (form != PS_NIBBLE) {
            size_t t = hex_tail(s, n, &upper);
            if (t <= HEX_PREFIX_MAX && packed_len(PS_HEX, n, t) < packed_len(form, n, 0)) {
                form = PS_HEX;
                k = t;
            }
        }
    }
    put_var(w, (uint32_t)(n << 2 | (size_t)form));
    size_t len = packed_len(form, n, k);
    if (form == PS_RAW || !wr_fits(w, len)) { /* counting: the length is known */
        if (form == PS_RAW) put_bytes(w, s, n);
        else w->n += len;
        return;
    }
    unsigned char *out = (unsigned char *)w->p + w->n;
    if (form == PS_HEX) {
        *out++ = (unsigned char)(k | (upper ? 0x80u : 0));
        if (k) memcpy(out, s, k);
        out = pack_codes(out + k, s + k, n - k, form, upper ? hex_upper : hex_lower);
    } else {
        out = pack_codes(out, s, n, form, NULL);
    }
    w->n = (size_t)(out - (unsigned char *)w->p);
}

/* A short string as an atom reference (see REF_*). */
static void put_ref(recip_cache_t *c, wr_t *w, const char *s, size_t n)
{
    if (n == 0) {
        put_var(w, REF_EMPTY);
        return;
    }
    uint32_t id = atom_intern(c, s, n);
    if (id) {
        put_var(w, id + 1);
        return;
    }
    put_var(w, REF_INLINE);
    put_bytes(w, s, n);
    put_bytes(w, "", 1);
}

typedef struct rd_ {
    const unsigned char *p;
} rd_t;

static uint32_t get_var(rd_t *r)
{
    uint32_t v = 0;
    for (int shift = 0;; shift += 7) {
        unsigned char b = *r->p++;
        v |= (uint32_t)(b & 0x7f) << shift;
        if (!(b & 0x80) || shift >= 28) return v;
    }
}

static uint16_t get_u16(rd_t *r)
{
    uint16_t v;
    memcpy(&v, r->p, sizeof(v));
    r->p += sizeof(v);
    return v;
}

/* A stored string: its length n (characters), form and bytes. */
typedef struct pstr {
    const unsigned char *p;
    size_t n;
    int form;
} pstr_t;

static pstr_t get_str(rd_t *r)
{
    uint32_t h = get_var(r);
    pstr_t s = {r->p, h >> 2, (int)(h & 3)};
    r->p += packed_len(s.form, s.n, s.form == PS_HEX ? (size_t)(r->p[0] & 0x7f) : 0);
    return s;
}

/* Writes s's n characters at out; the end. */
static char *unpack(pstr_t s, char *out)
{
    if (s.n == 0) return out; /* empty, or not asked for (view_of) */
    if (s.form == PS_RAW) {
        if (s.n) memcpy(out, s.p, s.n);
        return out + s.n;
    }
    const char *abc = s.form == PS_SIX ? six_chars : nibble_chars;
    const unsigned char *p = s.p;
    if (s.form == PS_HEX) { /* the raw prefix, then its digits as nibbles */
        size_t k = p[0] & 0x7f;
        abc = p[0] & 0x80 ? hex_upper : hex_lower;
        memcpy(out, p + 1, k);
        out += k;
        p += 1 + k;
        s.n -= k;
    }
    int width = s.form == PS_SIX ? 6 : 4;
    uint32_t mask = (1u << width) - 1, acc = 0;
    int bits = 0;
    size_t i = 0;
    /* whole groups first (4 characters in 3 bytes, or 2 in 1): a push
     * token is most of a recipient's characters */
    if (s.form == PS_SIX) {
        for (; i + 4 <= s.n; i += 4, p += 3) {
            uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
            out[i] = abc[v & 63];
            out[i + 1] = abc[(v >> 6) & 63];
            out[i + 2] = abc[(v >> 12) & 63];
            out[i + 3] = abc[v >> 18];
        }
    } else {
        for (; i + 2 <= s.n; i += 2, p++) {
            out[i] = abc[*p & 15];
            out[i + 1] = abc[*p >> 4];
        }
    }
    for (; i < s.n; i++) {
        if (bits < width) {
            acc |= (uint32_t)*p++ << bits;
            bits += 8;
        }
        out[i] = abc[acc & mask];
        acc >>= width;
        bits -= width;
    }
    return out + s.n;
}

/* An atom reference: the NUL-terminated string (an atom or inline). */
static const char *get_ref(recip_cache_t *c, rd_t *r)
{
    uint32_t v = get_var(r);
    if (v == REF_EMPTY) return "";
    if (v == REF_INLINE) {
        const char *s = (const char *)r->p;
        r->p += strlen(s) + 1;
        return s;
    }
    return atom_name(c, v - 1);
}

/* Quiet hours from the user's "HH:MM" pair: both valid, or none. */
static void quiet_of(const user_t *u, int16_t *start, int16_t *end)
{
    int a, b;
    if (u->quiet_start && u->quiet_end && valid_hhmm(u->quiet_start, &a) && valid_hhmm(u->quiet_end, &b)) {
        *start = (int16_t)a;
        *end = (int16_t)b;
    } else {
        *start = *end = NOTIF_QUIET_NONE;
    }
}

recip_cache_t *recip_cache_new(store_t *store, size_t max_bytes, int ttl_ms)
{
    codes_init();
    recip_cache_t *c = xcalloc(1, sizeof(*c));
    c->store = store;
    c->max_bytes = max_bytes;
    c->ttl_s = ttl_ms > 0 ? (ttl_ms + 999) / 1000 : 0;
    c->born_ms = hclock_now_ms();
    /* about two slots per entry the budget holds (see the top) */
    size_t want = max_bytes / ((EST_ENTRY_BYTES + sizeof(void *)) * WAYS);
    c->nsets = NSTRIPES;
    while (c->nsets < want) c->nsets *= 2; /* the byte budget is what binds */
    c->slots = bigmem_alloc(c->nsets * WAYS * sizeof(*c->slots), &c->slots_len);
    atomic_store(&c->bytes, (int64_t)(c->nsets * WAYS * sizeof(*c->slots)));
    for (int i = 0; i < NSTRIPES; i++) pthread_mutex_init(&c->stripes[i], NULL);
    pthread_mutex_init(&c->slab_mu, NULL);
    pthread_mutex_init(&c->atom_mu, NULL);
    pthread_mutex_init(&c->scan_mu, NULL);
    /* offsets are kept in 32 bits of SLAB_GRAIN units */
    size_t len = max_bytes < (size_t)UINT32_MAX * SLAB_GRAIN ? max_bytes : (size_t)UINT32_MAX * SLAB_GRAIN;
    if (len >= SLAB_MAX) {
        void *m = bigmem_map(&len);
        if (m) {
            c->slab = m;
            c->slab_len = len;
        }
    }
    return c;
}

static size_t entry_size(const rentry_t *e) { return e->size; }

/* stripe lock held */
static void entry_drop(recip_cache_t *c, uint64_t *slot)
{
    if (!*slot) return;
    rentry_t *e = slot_entry(*slot);
    size_t size = entry_size(e);
    atomic_fetch_sub(&c->bytes, (int64_t)cost_of(size));
    atomic_fetch_sub(&c->entries, 1);
    store_free(c, e, size);
    __atomic_store_n(slot, 0, __ATOMIC_RELAXED); /* probe_entries reads slots unlocked */
}

static size_t set_of(const recip_cache_t *c, uint32_t h) { return h & (c->nsets - 1); }
static pthread_mutex_t *stripe(recip_cache_t *c, size_t set) { return &c->stripes[set % NSTRIPES]; }

/* The other set an id of hash h may live in (two choices, see the top):
 * set s with the bits above the stripe's changed by a value made from the
 * hash, so that both sets are under the same stripe lock; s itself when
 * the table is too small to have another. */
static size_t alt_set(const recip_cache_t *c, size_t s, uint32_t h)
{
    size_t groups = c->nsets / NSTRIPES;
    if (groups < 2) return s;
    uint32_t x = h * UINT32_C(0x9e3779b1);
    x ^= x >> 15;
    size_t v = (size_t)x & (groups - 1);
    return s ^ ((v ? v : 1) * NSTRIPES);
}

static uint64_t *find_in(uint64_t *set, const char *id, size_t idl, uint32_t h)
{
    for (int w = 0; w < WAYS; w++) {
        if (!slot_tag_is(set[w], h)) continue;
        const rentry_t *e = slot_entry(set[w]);
        if (e->idlen == idl && memcmp(e->data, id, idl) == 0) return &set[w];
    }
    return NULL;
}

/* stripe lock held */
static uint64_t *find(recip_cache_t *c, const char *id, size_t idl, uint32_t h)
{
    size_t s = set_of(c, h), s2 = alt_set(c, s, h);
    uint64_t *e = find_in(&c->slots[s * WAYS], id, idl, h);
    if (!e && s2 != s) e = find_in(&c->slots[s2 * WAYS], id, idl, h);
    return e;
}

void recip_cache_free(recip_cache_t *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->nsets * WAYS; i++)
        if (c->slots[i] && !in_slab(c, slot_entry(c->slots[i]))) free(slot_entry(c->slots[i]));
    for (int i = 0; i < NSTRIPES; i++) pthread_mutex_destroy(&c->stripes[i]);
    pthread_mutex_destroy(&c->slab_mu);
    for (int i = 1; i <= c->natoms; i++) free(atomic_load(&c->atom_names[i]));
    pthread_mutex_destroy(&c->atom_mu);
    pthread_mutex_destroy(&c->scan_mu);
    free(c->scan_after);
    if (c->slab) munmap(c->slab, c->slab_len);
    for (int i = 0; i < SLAB_CLASSES; i++) free(c->slab_free[i].v);
    bigmem_free(c->slots, c->slots_len);
    free(c);
}

static void drop_id(void *arg, const char *id)
{
    recip_cache_t *c = arg;
    size_t idl = strlen(id);
    uint32_t h = id_hash(id, idl);
    pthread_mutex_t *mu = stripe(c, set_of(c, h));
    pthread_mutex_lock(mu);
    uint64_t *e = find(c, id, idl, h);
    if (e) entry_drop(c, e);
    pthread_mutex_unlock(mu);
}

static void drop_all(recip_cache_t *c)
{
    for (size_t s = 0; s < c->nsets; s++) {
        pthread_mutex_t *mu = stripe(c, s);
        pthread_mutex_lock(mu);
        for (int w = 0; w < WAYS; w++) entry_drop(c, &c->slots[s * WAYS + w]);
        pthread_mutex_unlock(mu);
    }
}

static size_t len_of(const char *s) { return s ? strlen(s) : 0; }

/* The body of an entry (everything after the id) into w. */
static void entry_body(recip_cache_t *c, wr_t *w, bool known, const user_t *u, const pref_t *prefs,
                       int np)
{
    if (!known) {
        put_var(w, REF_EMPTY);  /* zone */
        put_ref(c, w, "en", 2); /* locale */
        /* no devices, phone, e-mail (local part and domain), webhook, preferences */
        for (int i = 0; i < 6; i++) put_var(w, 0);
        return;
    }
    put_ref(c, w, u->timezone, len_of(u->timezone));
    int16_t qs, qe;
    quiet_of(u, &qs, &qe);
    if (qs != NOTIF_QUIET_NONE) {
        put_u16(w, (uint16_t)qs);
        put_u16(w, (uint16_t)qe);
    }
    if (u->locale && u->locale[0]) put_ref(c, w, u->locale, strlen(u->locale));
    else put_ref(c, w, "en", 2);
    put_var(w, (uint32_t)u->ndevices);
    for (int d = 0; d < u->ndevices; d++) {
        put_ref(c, w, u->devices[d].platform, len_of(u->devices[d].platform));
        put_str(w, u->devices[d].token ? u->devices[d].token : "", len_of(u->devices[d].token));
    }
    put_str(w, u->phone ? u->phone : "", len_of(u->phone));
    const char *em = u->email ? u->email : "";
    const char *at = strrchr(em, '@');
    size_t local = at ? (size_t)(at - em) : strlen(em);
    put_str(w, em, local);
    put_ref(c, w, em + local, strlen(em + local));
    put_str(w, u->webhook_url ? u->webhook_url : "", len_of(u->webhook_url));
    put_var(w, (uint32_t)np);
    for (int i = 0; i < np; i++) {
        unsigned char b = (unsigned char)((prefs[i].channel & 0x7f) | (prefs[i].enabled ? 0x80 : 0));
        put_bytes(w, &b, 1);
        put_ref(c, w, prefs[i].category ? prefs[i].category : "", len_of(prefs[i].category));
    }
}

/* Packs an entry from what the store returned (u and prefs are borrowed)
 * into buf (cap bytes, at least a header's); its size, larger than cap
 * when it did not fit (buf then holds nothing of use). The API's limits
 * (ids, e-mails, URLs, 128-byte categories) keep every length far within
 * the fields. */
static size_t entry_pack(recip_cache_t *c, const char *id, bool known, const user_t *u,
                         const pref_t *prefs, int np, void *buf, size_t cap)
{
    size_t idl = strlen(id);
    if (idl > UINT16_MAX) idl = UINT16_MAX; /* beyond any API limit */
    rentry_t *e = buf;
    memset(e, 0, sizeof(*e));
    e->idlen = (uint16_t)idl;
    e->flags = known ? F_KNOWN : 0;
    int16_t qs, qe;
    if (known) {
        quiet_of(u, &qs, &qe);
        if (qs != NOTIF_QUIET_NONE) e->flags |= F_QUIET;
    }
    wr_t w = {buf, sizeof(rentry_t), cap};
    put_bytes(&w, id, idl);
    entry_body(c, &w, known, u, prefs, np);
    if (w.n <= cap) e->size = (uint32_t)w.n;
    return w.n;
}

/* The same in memory of its own (the caller frees it). */
static rentry_t *entry_build(recip_cache_t *c, const char *id, bool known, const user_t *u,
                             const pref_t *prefs, int np)
{
    char tmp[512];
    size_t n = entry_pack(c, id, known, u, prefs, np, tmp, sizeof(tmp));
    rentry_t *e = xmalloc(n);
    if (n <= sizeof(tmp)) {
        memcpy(e, tmp, n);
        return e;
    }
    /* the second pass writes no more than the first counted: an atom,
     * once interned, stays */
    entry_pack(c, id, known, u, prefs, np, e, n);
    return e;
}

/* Room for n bytes of the view's text. */
static char *text_room(recip_reader_t *rd, size_t n)
{
    if (n > rd->text_cap) {
        rd->text_cap = n < 512 ? 512 : n * 2;
        free(rd->text);
        rd->text = xmalloc(rd->text_cap);
    }
    return rd->text;
}

/* Unpacks e (the reader's own memory) into the reader's view: the
 * addresses of the channels in mask (1 << channel), the others read as
 * none. The push list ("platform:token,..."), the e-mail address and the
 * other addresses are put together, NUL-terminated, in the reader's text. */
static const recipient_t *view_of(recip_reader_t *rd, const rentry_t *e, unsigned mask)
{
    recip_cache_t *c = rd->c;
    recipient_t *r = &rd->view;
    rd_t in = {(const unsigned char *)e->data + e->idlen};
    r->timezone = get_ref(c, &in);
    r->quiet_start_min = r->quiet_end_min = NOTIF_QUIET_NONE;
    if (e->flags & F_QUIET) {
        r->quiet_start_min = (int16_t)get_u16(&in);
        r->quiet_end_min = (int16_t)get_u16(&in);
    }
    r->locale = get_ref(c, &in);
    int ndev = (int)get_var(&in);
    if (ndev > STORE_MAX_DEVICES) ndev = STORE_MAX_DEVICES; /* never: entry_build's input */
    const char *plat[STORE_MAX_DEVICES];
    pstr_t tok[STORE_MAX_DEVICES];
    size_t push_len = 0;
    for (int d = 0; d < ndev; d++) {
        plat[d] = get_ref(c, &in);
        tok[d] = get_str(&in);
        push_len += (d ? 1 : 0) + strlen(plat[d]) + 1 + tok[d].n;
    }
    pstr_t phone = get_str(&in), local = get_str(&in);
    const char *domain = get_ref(c, &in);
    size_t dl = strlen(domain);
    pstr_t hook = get_str(&in);
    /* only what the caller reads is unpacked (a push token is most of it) */
    r->platform = ndev ? plat[0] : "";
    if (!(mask & (1u << CH_PUSH))) {
        ndev = 0;
        push_len = 0;
    }
    if (!(mask & (1u << CH_SMS))) phone.n = 0;
    if (!(mask & (1u << CH_EMAIL))) local.n = dl = 0;
    if (!(mask & (1u << CH_WEBHOOK))) hook.n = 0;
    /* text: id, push list, phone, e-mail, webhook, each with a NUL */
    char *t = text_room(rd, e->idlen + push_len + phone.n + local.n + dl + hook.n + 5);
    r->user_id = t;
    memcpy(t, e->data, e->idlen);
    t += e->idlen;
    *t++ = '\0';
    r->addr[CH_PUSH] = t;
    r->addr_len[CH_PUSH] = push_len;
    for (int d = 0; d < ndev; d++) {
        if (d) *t++ = ',';
        size_t pl = strlen(plat[d]);
        memcpy(t, plat[d], pl);
        t += pl;
        *t++ = ':';
        t = unpack(tok[d], t);
    }
    *t++ = '\0';
    r->addr[CH_SMS] = t;
    r->addr_len[CH_SMS] = phone.n;
    t = unpack(phone, t);
    *t++ = '\0';
    r->addr[CH_EMAIL] = t;
    r->addr_len[CH_EMAIL] = local.n + dl;
    t = unpack(local, t);
    memcpy(t, domain, dl);
    t += dl;
    *t++ = '\0';
    r->addr[CH_WEBHOOK] = t;
    r->addr_len[CH_WEBHOOK] = hook.n;
    t = unpack(hook, t);
    *t = '\0';
    r->known = (e->flags & F_KNOWN) != 0;
    r->addr[CH_INAPP] = r->known ? r->user_id : "";
    r->addr_len[CH_INAPP] = r->known ? e->idlen : 0;
    int np = (int)get_var(&in);
    if (np > rd->cprefs) {
        rd->cprefs = np;
        rd->prefs = xrealloc(rd->prefs, (size_t)rd->cprefs * sizeof(*rd->prefs));
    }
    for (int i = 0; i < np; i++) {
        unsigned char b = *in.p++;
        rd->prefs[i].channel = (channel_t)(b & 0x7f);
        rd->prefs[i].enabled = (b & 0x80) != 0;
        rd->prefs[i].category = (char *)get_ref(c, &in);
    }
    r->prefs = np ? rd->prefs : NULL;
    r->nprefs = np;
    return r;
}

static int32_t age_now(const recip_cache_t *c) { return (int32_t)((hclock_now_ms() - c->born_ms) / 1000); }

static bool fresh(const recip_cache_t *c, const rentry_t *e, int32_t now_s)
{
    return c->ttl_s <= 0 || now_s - e->loaded_s < c->ttl_s;
}

/* Puts a copy of e in the cache; false when it should not be cached. The
 * caller keeps e. */
static bool insert(recip_cache_t *c, rentry_t *e, int32_t now_s)
{
    size_t size = entry_size(e), cost = cost_of(size);
    if (cost > MAX_ENTRY_BYTES) return false;
    e->loaded_s = now_s;
    e->flags &= (uint8_t)~F_USED;
    uint32_t h = id_hash(e->data, e->idlen);
    size_t s = set_of(c, h);
    pthread_mutex_t *mu = stripe(c, s);
    pthread_mutex_lock(mu);
    uint64_t *old = find(c, e->data, e->idlen, h);
    if (old) entry_drop(c, old);
    /* the id's first set while it has two free ways or more (so that
     * nearly every entry is in its first set and a lookup seldom reads a
     * second line), else the emptier of the two */
    size_t s2 = alt_set(c, s, h);
    uint64_t *ways[2 * WAYS];
    int nways = 0, empty[2] = {0, 0};
    for (int k = 0; k < (s2 != s ? 2 : 1); k++)
        for (int w = 0; w < WAYS; w++) {
            uint64_t *v = &c->slots[(k ? s2 : s) * WAYS + w];
            ways[nways++] = v;
            empty[k] += !*v;
        }
    uint64_t *victim = NULL;
    int from = empty[0] < 2 && empty[1] > empty[0] ? WAYS : 0;
    for (int w = from; w < from + WAYS && !victim; w++)
        if (!*ways[w]) victim = ways[w];
    /* CLOCK over both sets: the first way not used since the last sweep */
    for (int pass = 0; pass < 2 && !victim; pass++)
        for (int w = 0; w < nways && !victim; w++) {
            rentry_t *x = slot_entry(*ways[w]);
            if (!(x->flags & F_USED)) victim = ways[w];
            else x->flags &= (uint8_t)~F_USED;
        }
    if (!victim) victim = ways[0];
    int64_t freed = *victim ? (int64_t)cost_of(entry_size(slot_entry(*victim))) : 0;
    bool ok = atomic_load(&c->bytes) - freed + (int64_t)cost <= (int64_t)c->max_bytes;
    if (ok) {
        entry_drop(c, victim);
        rentry_t *copy = store_alloc(c, size);
        ok = copy != NULL;
        if (ok) {
            memcpy(copy, e, size);
            __atomic_store_n(victim, slot_make(copy, h), __ATOMIC_RELAXED); /* probe_entries */
            atomic_fetch_add(&c->bytes, (int64_t)cost);
            atomic_fetch_add(&c->entries, 1);
        }
    }
    pthread_mutex_unlock(mu);
    return ok;
}

#define OFF_NONE UINT32_MAX     /* nothing recorded for this id */

/* Appends a copy of entry e (size bytes) to list l; its offset. */
static uint32_t list_put(recip_list_t *l, const rentry_t *e, size_t size)
{
    if (l->len + size > l->arena_cap) {
        l->arena_cap = l->arena_cap ? l->arena_cap * 2 : 64 * 1024;
        while (l->len + size > l->arena_cap) l->arena_cap *= 2;
        l->arena = xrealloc(l->arena, l->arena_cap);
    }
    uint32_t off = (uint32_t)l->len;
    memcpy(l->arena + l->len, e, size);
    l->len += size;
    return off;
}

/* Reads ids from the store and caches them. With l, each entry is also
 * recorded in l at position at[i]; with last, the entry of the last id is
 * left in the reader's own memory (a copy when it was cached) in *last. */
static hr_t load(recip_reader_t *rd, const char *const *ids, int n, recip_list_t *l, const int *at,
                 const rentry_t **last)
{
    recip_cache_t *c = rd->c;
    user_t *u = xcalloc((size_t)n, sizeof(*u));
    hr_t *found = xcalloc((size_t)n, sizeof(*found));
    pref_t **prefs = xcalloc((size_t)n, sizeof(*prefs));
    int *np = xcalloc((size_t)n, sizeof(*np));
    /* cache only what no concurrent change can have made stale */
    uint64_t e0 = store_users_epoch(c->store);
    hr_t r = store_users_get_batch(c->store, ids, n, u, found, prefs, np);
    bool cacheable = store_users_epoch(c->store) == e0;
    rd->loads += n;
    int32_t now_s = age_now(c);
    for (int i = 0; i < n && r == HR_OK; i++) {
        bool known = found[i] == HR_OK;
        rentry_t *e = entry_build(c, ids[i], known, &u[i], prefs[i], np[i]);
        if (cacheable) insert(c, e, now_s);
        if (l) l->off[at[i]] = list_put(l, e, entry_size(e));
        if (last && i == n - 1) { /* the caller reads this one */
            free(rd->own);
            rd->own = e;
            *last = e;
        } else {
            free(e);
        }
        if (known) {
            user_clear(&u[i]);
            prefs_free(prefs[i], np[i]);
        }
    }
    free(u);
    free(found);
    free(prefs);
    free(np);
    return r;
}

hr_t recip_cache_prime(recip_cache_t *c, int64_t *loaded)
{
    enum { PAGE = 1000 };
    user_t *u = xcalloc(PAGE, sizeof(*u));
    pref_t **prefs = xcalloc(PAGE, sizeof(*prefs));
    int *np = xcalloc(PAGE, sizeof(*np));
    char *after = NULL;
    hr_t r = HR_OK;
    *loaded = 0;
    int32_t now_s = age_now(c);
    while (atomic_load(&c->bytes) < (int64_t)(c->max_bytes / 100 * 95)) {
        int n = 0;
        r = store_users_scan(c->store, after, PAGE, u, prefs, np, &n);
        if (r != HR_OK) break;
        for (int i = 0; i < n; i++) {
            rentry_t *e = entry_build(c, u[i].user_id, true, &u[i], prefs[i], np[i]);
            insert(c, e, now_s);
            free(e);
        }
        *loaded += n;
        free(after);
        after = n ? xstrdup(u[n - 1].user_id) : NULL;
        for (int i = 0; i < n; i++) {
            user_clear(&u[i]);
            prefs_free(prefs[i], np[i]);
        }
        if (n < PAGE) break;
    }
    free(after);
    free(u);
    free(prefs);
    free(np);
    return r == HR_DECLINED ? HR_OK : r;
}

recip_reader_t *recip_reader_new(recip_cache_t *c)
{
    recip_reader_t *rd = xcalloc(1, sizeof(*rd));
    rd->c = c;
    rd->epoch = store_users_epoch(c->store);
    return rd;
}

static void flush_counts(recip_reader_t *rd)
{
    atomic_fetch_add(&rd->c->lookups, rd->lookups);
    atomic_fetch_add(&rd->c->loads, rd->loads);
    rd->lookups = rd->loads = 0;
}

void recip_reader_free(recip_reader_t *rd)
{
    if (!rd) return;
    flush_counts(rd);
    for (int i = 0; i < RECIP_LISTS; i++) {
        free(rd->lists[i].off);
        free(rd->lists[i].arena);
    }
    free(rd->copy);
    free(rd->own);
    free(rd->text);
    free(rd->prefs);
    free(rd);
}

/* The refresh of one user (e, packed from what the store has now): when
 * its id is cached (fresh or not) and was loaded before old_s, its entry
 * is loaded again at now_s - in place when the store returned what it
 * holds (the common case: only the load time changes), else replaced by e
 * (insert). Whether it was refreshed. */
static bool refresh_one(recip_cache_t *c, rentry_t *e, int32_t old_s, int32_t now_s)
{
    uint32_t h = id_hash(e->data, e->idlen);
    pthread_mutex_t *mu = stripe(c, set_of(c, h));
    pthread_mutex_lock(mu);
    uint64_t *slot = find(c, e->data, e->idlen, h);
    rentry_t *x = slot ? slot_entry(*slot) : NULL;
    if (!x || x->loaded_s > old_s) {
        pthread_mutex_unlock(mu);
        return false;
    }
    size_t hdr = offsetof(rentry_t, data);
    bool same = x->size == e->size && x->flags == (e->flags | (x->flags & F_USED)) &&
                memcmp(x->data, e->data, e->size - hdr) == 0;
    if (same) { /* as insert() leaves a copy of e: not used since */
        x->loaded_s = now_s;
        x->flags &= (uint8_t)~F_USED;
    }
    pthread_mutex_unlock(mu);
    return same || insert(c, e, now_s);
}

/* Whether the user is cached and loaded at or before old_s (refresh_one
 * would read it again): asked before a user is packed, so that users the
 * cache does not hold (more users than fit) or loaded lately are neither
 * packed nor interned. */
static bool refresh_due(recip_cache_t *c, const char *id, int32_t old_s)
{
    size_t idl = strlen(id);
    uint32_t h = id_hash(id, idl);
    pthread_mutex_t *mu = stripe(c, set_of(c, h));
    pthread_mutex_lock(mu);
    uint64_t *slot = find(c, id, idl, h);
    bool due = slot && slot_entry(*slot)->loaded_s <= old_s;
    pthread_mutex_unlock(mu);
    return due;
}

/* The next page of the refresh's scan: the users of it that are cached
 * are read again (in one snapshot, cached only if no user changed
 * meanwhile, as load() does). scan_mu held. */
static void refresh_page(recip_cache_t *c)
{
    user_t *u = xcalloc(REFRESH_PAGE, sizeof(*u));
    pref_t **prefs = xcalloc(REFRESH_PAGE, sizeof(*prefs));
    int *np = xcalloc(REFRESH_PAGE, sizeof(*np));
    int n = 0;
    uint64_t e0 = store_users_epoch(c->store);
    hr_t r = store_users_scan(c->store, c->scan_after, REFRESH_PAGE, u, prefs, np, &n);
    if (r == HR_DECLINED) {
        c->scan_off = true;
    } else if (r != HR_OK) {
        log_debug("recipients", "refresh: reading users failed: %s", hr_str(r));
        n = 0;
    } else {
        bool cacheable = store_users_epoch(c->store) == e0;
        int32_t now_s = age_now(c);
        int64_t done = 0;
        for (int i = 0; i < n && cacheable; i++) {
            /* only what the cache holds, and only what would age out
             * before the scan comes back (3/4 of the ttl) */
            union {
                rentry_t e;
                char b[512];
            } tmp;
            if (!refresh_due(c, u[i].user_id, now_s - c->ttl_s / 4)) continue;
            rentry_t *e = &tmp.e;
            size_t size = entry_pack(c, u[i].user_id, true, &u[i], prefs[i], np[i], tmp.b, sizeof(tmp.b));
            if (size > sizeof(tmp.b)) e = entry_build(c, u[i].user_id, true, &u[i], prefs[i], np[i]);
            done += refresh_one(c, e, now_s - c->ttl_s / 4, now_s);
            if (e != &tmp.e) free(e);
        }
        atomic_fetch_add(&c->refreshed, done);
        free(c->scan_after);
        c->scan_after = n == REFRESH_PAGE ? xstrdup(u[n - 1].user_id) : NULL; /* at the end: again */
    }
    for (int i = 0; i < n; i++) {
        user_clear(&u[i]);
        prefs_free(prefs[i], np[i]);
    }
    free(u);
    free(prefs);
    free(np);
}

/* A step of the refresh, run by whichever reader syncs when a page is due
 * (the others go on). Entries older than the ttl are read again one by one
 * as they are used, ~15-60 us each (three index probes through the
 * reader's page cache); with 1M users at 30k notifications/s that was a
 * third of the lookups once the primed entries had aged (fan-out 2.2 ->
 * 5.6 CPU-us per notification after the first minute). The scan reads the
 * users in key order, ~1 us each, and paces itself so that every cached
 * user is read again within 3/4 of the ttl: the entries of a busy cache
 * never age out. When fan-out is idle the scan waits, and entries expire
 * and are read again on use, as before. */
static void refresh_step(recip_cache_t *c)
{
    if (c->ttl_s <= 0 || pthread_mutex_trylock(&c->scan_mu) != 0) return;
    int64_t now = hclock_now_ms();
    if (!c->scan_off && now >= c->scan_next_ms) {
        int64_t entries = atomic_load(&c->entries);
        if (entries < REFRESH_PAGE) entries = REFRESH_PAGE;
        int64_t every_ms = (int64_t)c->ttl_s * 750 * REFRESH_PAGE / entries;
        if (every_ms < 1) every_ms = 1;
        if (!c->scan_next_ms) c->scan_next_ms = now;
        for (int k = 0; k < REFRESH_CATCH_UP && !c->scan_off && now >= c->scan_next_ms; k++) {
            refresh_page(c);
            c->scan_next_ms += every_ms;
        }
        if (now >= c->scan_next_ms) c->scan_next_ms = now + every_ms; /* behind: let the rest age */
    }
    pthread_mutex_unlock(&c->scan_mu);
}

void recip_sync(recip_reader_t *rd)
{
    flush_counts(rd);
    /* what the last batch's prefetches recorded may be stale from now on */
    for (int i = 0; i < RECIP_LISTS; i++) rd->lists[i].n = rd->lists[i].next = 0;
    recip_cache_t *c = rd->c;
    uint64_t now = store_users_epoch(c->store);
    if (now != rd->epoch) {
        if (store_users_changed(c->store, rd->epoch, &now, drop_id, c) != HR_OK) drop_all(c);
        rd->epoch = now;
    }
    /* after the changes: one made while a page is read again is dropped
     * by this reader's next sync */
    refresh_step(c);
}

/* Copies id (idl bytes, hash h) 's entry into l when it is cached and
 * fresh (marking it used); its offset, or OFF_NONE. */
static uint32_t copy_hit(recip_cache_t *c, const char *id, size_t idl, uint32_t h, int32_t now_s,
                         recip_list_t *l)
{
    pthread_mutex_t *mu = stripe(c, set_of(c, h));
    uint32_t off = OFF_NONE;
    pthread_mutex_lock(mu);
    uint64_t *e = find(c, id, idl, h);
    if (e && fresh(c, slot_entry(*e), now_s)) {
        rentry_t *x = slot_entry(*e);
        x->flags |= F_USED;
        off = list_put(l, x, entry_size(x));
    }
    pthread_mutex_unlock(mu);
    return off;
}

/* The lookups of a prefetch are made ahead, a group of PROBE_GROUP ids
 * at a time, in a pipeline: while group g is copied out under the locks,
 * the entries of group g + 1 (their sets' lines loaded meanwhile) and the
 * sets' lines of group g + 2 are on their way. A large cache's sets and
 * entries are nearly all cache (and TLB) misses: this way they overlap
 * with the copying instead of coming one after another. The sets are read
 * here without their locks, as hints for the prefetch only (an entry
 * replaced meanwhile costs a useless prefetch, never a fault: a prefetch
 * does not fault); the lookups themselves are made under the lock. */
typedef struct probe {
    uint32_t h[PROBE_GROUP];
    size_t len[PROBE_GROUP];    /* 0: no id */
} probe_t;

/* Group g of ids (n in all): the hash of each id into p, and a prefetch
 * of its first set's line. */
static void probe_sets(recip_cache_t *c, const char *const *ids, int n, int g, probe_t *p)
{
    for (int k = 0, i = g * PROBE_GROUP; k < PROBE_GROUP && i < n; k++, i++) {
        p->len[k] = ids[i] ? strlen(ids[i]) : 0;
        p->h[k] = p->len[k] ? id_hash(ids[i], p->len[k]) : 0;
        if (p->len[k]) __builtin_prefetch(&c->slots[set_of(c, p->h[k]) * WAYS]);
    }
}

/* Group g (after probe_sets): a prefetch of the entries whose tags match
 * in the first set, else of the second set's line (rare: see insert). */
static void probe_entries(recip_cache_t *c, int n, int g, const probe_t *p)
{
    for (int k = 0, i = g * PROBE_GROUP; k < PROBE_GROUP && i < n; k++, i++) {
        if (!p->len[k]) continue;
        size_t s = set_of(c, p->h[k]);
        bool tagged = false;
        for (int w = 0; w < WAYS; w++) {
            uint64_t x = __atomic_load_n(&c->slots[s * WAYS + w], __ATOMIC_RELAXED);
            if (!slot_tag_is(x, p->h[k])) continue;
            const char *e = (const char *)slot_entry(x);
            __builtin_prefetch(e);
            __builtin_prefetch(e + 64); /* entries are ~90 bytes, not line-aligned */
            tagged = true;
        }
        if (!tagged) __builtin_prefetch(&c->slots[alt_set(c, s, p->h[k]) * WAYS]);
    }
}

/* The list a new prefetch fills: one whose entries were all taken, else
 * the older one. */
static recip_list_t *list_for_prefetch(recip_reader_t *rd)
{
    int k = (rd->cur + 1) % RECIP_LISTS;
    for (int i = 0; i < RECIP_LISTS; i++)
        if (rd->lists[i].next >= rd->lists[i].n) k = i;
    rd->cur = k;
    recip_list_t *l = &rd->lists[k];
    if (l->arena_cap > (size_t)16 << 20) { /* one huge audience: do not keep its memory */
        free(l->arena);
        l->arena = NULL;
        l->arena_cap = 0;
    }
    l->n = l->next = 0;
    l->len = 0;
    return l;
}

hr_t recip_prefetch(recip_reader_t *rd, const char *const *ids, int n)
{
    const char *miss[PREFETCH_CHUNK];
    int at[PREFETCH_CHUNK];
    int nm = 0;
    int (*dups)[2] = NULL; /* (position, position of the same id's load) */
    size_t ndups = 0, cdups = 0;
    hr_t r = HR_OK;
    recip_list_t *l = list_for_prefetch(rd);
    if (n > l->cap) {
        l->cap = n;
        l->off = xrealloc(l->off, (size_t)n * sizeof(*l->off));
    }
    recip_cache_t *c = rd->c;
    int32_t now_s = age_now(c);
    probe_t pr[3]; /* groups g, g + 1, g + 2 at pr[g % 3] ... */
    probe_sets(c, ids, n, 0, &pr[0]);
    probe_sets(c, ids, n, 1, &pr[1]);
    probe_entries(c, n, 0, &pr[0]);
    for (int i = 0; i < n && r == HR_OK; i++) {
        int g = i / PROBE_GROUP, at_g = i % PROBE_GROUP;
        if (at_g == 0) {
            probe_sets(c, ids, n, g + 2, &pr[(g + 2) % 3]);
            probe_entries(c, n, g + 1, &pr[(g + 1) % 3]);
        }
        const probe_t *p = &pr[g % 3];
        l->off[i] = OFF_NONE;
        if (!p->len[at_g]) continue;
        if ((l->off[i] = copy_hit(c, ids[i], p->len[at_g], p->h[at_g], now_s, l)) != OFF_NONE) continue;
        int dup = -1; /* the same id close together: load it once */
        for (int k = nm - 1; k >= 0 && k >= nm - 8 && dup < 0; k--)
            if (strcmp(miss[k], ids[i]) == 0) dup = k;
        if (dup >= 0) { /* recorded like the first one once that is read */
            if (ndups == cdups) {
                cdups = cdups ? cdups * 2 : 16;
                dups = xrealloc(dups, cdups * sizeof(*dups));
            }
            dups[ndups][0] = i;
            dups[ndups++][1] = at[dup];
            continue;
        }
        miss[nm] = ids[i];
        at[nm++] = i;
        if (nm == PREFETCH_CHUNK) {
            r = load(rd, miss, nm, l, at, NULL);
            nm = 0;
        }
    }
    if (r == HR_OK && nm) r = load(rd, miss, nm, l, at, NULL);
    for (size_t k = 0; k < ndups; k++) l->off[dups[k][0]] = l->off[dups[k][1]];
    free(dups);
    l->n = r == HR_OK ? n : 0;
    return r;
}

/* The entry a prefetch recorded for id: looked for from where the last
 * one was taken, a few ids ahead (fan-out takes them in order, skipping
 * the audiences of events it drops). */
static const rentry_t *recorded(recip_reader_t *rd, const char *id, size_t idl)
{
    for (int t = 0; t < RECIP_LISTS; t++) {
        recip_list_t *l = &rd->lists[(rd->cur + RECIP_LISTS - t) % RECIP_LISTS];
        int end = l->next + 16 < l->n ? l->next + 16 : l->n;
        for (int k = l->next; k < end; k++) {
            if (l->off[k] == OFF_NONE) continue;
            const rentry_t *e = (const rentry_t *)(l->arena + l->off[k]);
            if (e->idlen == idl && memcmp(e->data, id, idl) == 0) {
                l->next = k + 1;
                return e;
            }
        }
    }
    return NULL;
}

const recipient_t *recip_get(recip_reader_t *rd, const char *id, hr_t *err)
{
    return recip_get_for(rd, id, ~0u, err);
}

const recipient_t *recip_get_for(recip_reader_t *rd, const char *id, unsigned mask, hr_t *err)
{
    recip_cache_t *c = rd->c;
    *err = HR_OK;
    rd->lookups++;
    size_t idl = strlen(id);
    const rentry_t *pre = recorded(rd, id, idl);
    if (pre) return view_of(rd, pre, mask);
    uint32_t h = id_hash(id, idl);
    pthread_mutex_t *mu = stripe(c, set_of(c, h));
    pthread_mutex_lock(mu);
    uint64_t *e = find(c, id, idl, h);
    if (e && fresh(c, slot_entry(*e), age_now(c))) {
        rentry_t *x = slot_entry(*e);
        x->flags |= F_USED;
        size_t sz = entry_size(x);
        if (sz > rd->copy_cap) {
            rd->copy_cap = sz < 256 ? 256 : sz;
            free(rd->copy);
            rd->copy = xmalloc(rd->copy_cap);
        }
        memcpy(rd->copy, x, sz);
        pthread_mutex_unlock(mu);
        return view_of(rd, rd->copy, mask);
    }
    pthread_mutex_unlock(mu);
    const rentry_t *got = NULL;
    const char *ids[1] = {id};
    hr_t r = load(rd, ids, 1, NULL, NULL, &got);
    if (r == HR_OK && got) return view_of(rd, got, mask);
    *err = r != HR_OK ? r : HR_ERR;
    return NULL;
}

void recip_cache_stats(recip_cache_t *c, recip_stats_t *out)
{
    out->lookups = atomic_load(&c->lookups);
    out->loads = atomic_load(&c->loads);
    out->entries = atomic_load(&c->entries);
    out->bytes = atomic_load(&c->bytes);
    out->refreshed = atomic_load(&c->refreshed);
}
