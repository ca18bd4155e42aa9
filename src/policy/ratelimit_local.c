/*
 * ratelimit_local.c - the local rate-limit backend: sliding windows held
 * by the dispatcher that owns the input partition (ratelimit.h).
 *
 * DESIGN. Per partition a hash table of users; per user a ring of the send
 * times still in the window, at most `limit` of them (a sliding log,
 * bounded by the limit). A check drops the times that left the window
 * and allows when fewer than `limit` remain. The log is conservative, not
 * exact: a time is held rounded up to a unit (1 ms for windows up to
 * 43.7 s, 83 ms for an hour; entry_t), so a send leaves the window up to
 * a unit late and never early: a user never gets more than `limit` sends
 * in any window, and a send the exact log would allow is refused only
 * within a unit of the moment the exact log would start to allow it. Users whose ring empties are
 * forgotten by ratelimit_tick's sweep, so memory follows the users active
 * in the last window (plus at most an eighth of a window: the sweep walks
 * every user, so it runs every max(snapshot_ms, window_ms / 8)).
 *
 * Cost: a check is one probe of an open-addressing table whose slots carry
 * 16 bits of the user's hash next to the entry's address (an entry of
 * another user is read once in 65,536 probes) and one entry,
 * which holds the user id next to its header and the send times after it
 * (one cache line for most users). An allowed check also appends a record
 * of the send (user id, time) to the partition's next journal block.
 *
 * Memory: an entry holds a 4-byte header (12 for limits above 255), the
 * user id and its send times as 16-bit units after a per-partition epoch,
 * in a ring that starts small and grows with the user's sends (entry_t
 * below); the files hold absolute times in ms (the base as held, the
 * journal as sent). A table slot is 8 bytes (slot_t below), at most 3/4
 * full: 10.7 to 21.3 bytes a user. Entries come from a pool of 8-byte
 * size classes (pool_t), not one malloc each: no allocator header, no
 * rounding to 16 bytes; a free entry of a bigger class serves a smaller
 * request (with a bigger ring) before new memory is carved. With the 8-byte ids of the 1M-user
 * benchmark an entry is 16 bytes with up to 2 sends, 32 with 10 (32 and
 * 64 with 32-bit times and a 12-byte header).
 *
 * Persistence, per (channel, partition), in <state_dir>:
 *  - <channel>-<partition>.rl, the base: every user with sends in the
 *    window (temporary file, rename);
 *  - <channel>-<partition>.rlj, the journal: every snapshot_ms,
 *    ratelimit_tick appends the sends since the last write as one block
 *    (a CRC-32C each) of records of one send each (user id, time), made by
 *    the checks while the entry was in the cache; a check that makes the
 *    block RL_JOURNAL_MAX long writes it at once (its memory stays bounded
 *    in a burst). Only the sends are written, not every user of the window
 *    (the base alone, rewritten every snapshot_ms, was tens of MB per 10 s
 *    with a million users). Version 1 journals held each changed user's
 *    whole ring, written from a list of the users (a cache miss each at the
 *    write); they are still read, and compacted at the next write.
 * A compaction rewrites the base (one pass over the users, which also
 * sweeps) and removes the journal: when the journal has grown past the
 * base's size (and 64 KiB), on revoke and on close (those two fsync it),
 * when the partition has no base yet, and after a failed write. The journal
 * names the base it extends (its length and CRC): a journal left behind by
 * a crash between a compaction's rename and its unlink is stale and
 * ignored (the new base holds everything it had).
 * Recovery, on assign (or the partition's first check): the base, then the
 * journal's blocks in order, each send appended to its user's ring (as
 * the check did; a version 1 block's entries replace the users' rings);
 * the first block that is short or fails its CRC ends the journal (a torn
 * tail), and the file is cut back there so later appends stay readable.
 *
 * Crash consistency: a crash (kill -9) loses the sends since the last
 * journal append, at most snapshot_ms of them (10 s by default), and a
 * torn tail block holds only sends of that last period: after it those
 * users may receive up to `limit` more in that window. Neither the
 * appends nor the periodic compactions are fsynced (they run on the
 * dispatcher's thread, where an fsync behind the status store's writes can
 * take hundreds of milliseconds); the page cache has them after a process
 * crash, and a power cut can lose what the kernel had not written yet, as
 * before the journal. A damaged base (bad magic, length or CRC) is ignored
 * with a warning, with its journal, and the partition starts empty (fail
 * open, like a Redis outage).
 */
#include "policy/ratelimit_int.h"

#include "core/bigmem.h"
#include "core/crc32c.h"
#include "core/hash.h"
#include "core/log.h"
#include "model/event.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* One user: the header, the user id (not NUL-terminated), then the ring
 * of send times at ts_of(): ts[head], ... n of them, oldest first, in a
 * ring of cap slots. The ring starts with the slots that fit in the
 * allocation's size class (2 or more) and doubles, up to the limit, when a
 * user sends more (grow()): most users send one to three notifications an
 * hour against a limit of 10 or 20.
 *
 * A send time is held in 16 bits: the units (local_t.unit ms) since its
 * partition's epoch (part_t.epoch), rounded UP: a time t is held as
 * epoch + ceil((t - epoch) / unit) * unit, so it leaves the window at most
 * unit - 1 ms after it would have, never before (a conservative log: a
 * check never allows a send the exact log would refuse; it may refuse one
 * for less than a unit after the exact log would allow it). The unit is
 * the smallest that makes 65,535 units cover a window and a half
 * (unit_of()): 1 ms (exact) for windows up to 43.7 s, 83 ms for an hour,
 * 66 s for the longest window (30 days, config.c). The sweep moves the
 * epoch forward by whole units (shift()), so the times it keeps are
 * re-expressed exactly; a check that finds the epoch more than 65,535
 * units behind (no sweep for half a window) does the same first
 * (rebase()). A time before the epoch is held as the epoch (later:
 * conservative), see t_units().
 *
 * Two header layouts, chosen per limiter by its limit (local_t.wide):
 * narrow (limit <= NARROW_MAX, the usual case): 4 bytes, the ring's head,
 * count and capacity and the user id's length one byte each (a longer
 * user id, which herald does not accept, is not limited); wide (limit up
 * to RL_LIMIT_MAX): 12 bytes of bit fields. The accessors below choose
 * (one predictable branch). With the benchmark's 8-byte user ids a narrow
 * entry is 16 bytes with 2 send times, 32 with 10 and 56 with 20 (32, 64
 * and 104 with the 12-byte header and 32-bit milliseconds before). */
typedef struct entry entry_t; /* narrow_t or wide_t, by the limiter */

typedef struct narrow {
    uint8_t head, n, cap, user_len; /* head, n <= cap <= limit <= NARROW_MAX */
    char user[];
} narrow_t;

typedef struct wide {
    uint32_t head : 20;         /* head, n <= cap <= limit <= RL_LIMIT_MAX */
    uint32_t user_len : 12;     /* <= ENTRY_USER_MAX */
    uint32_t n : 20;
    uint32_t spare_lo : 12;     /* unused */
    uint32_t cap : 20;
    uint32_t spare_hi : 12;
    char user[];
} wide_t;

/* The longest user id an entry holds (herald's are at most 200 bytes,
 * model/event.h); a longer one is not limited (local_check). */
#define ENTRY_USER_MAX 4095
/* The largest limit (and the longest user id) of a narrow entry. */
#define NARROW_MAX 255
_Static_assert(sizeof(wide_t) == 12 && sizeof(narrow_t) == 4, "entry headers: 12 and 4 bytes");
_Static_assert(RL_LIMIT_MAX < 1 << 20, "wide_t.head, n and cap hold up to the limit");
_Static_assert(EVENT_ID_MAX <= NARROW_MAX, "a narrow entry holds every user id herald accepts");

/* A table slot: the entry's address in the low 48 bits and the top 16
 * bits of the user's hash (fnv1a64) above them, so that a probe compares
 * hashes without reading the entry; 0 = empty. Half the size of a 64-bit
 * hash next to a pointer (that was 32-64 bytes a user with a million
 * users). The home slot comes from the hash's low bits, so a rebuild
 * (rehash) hashes each entry's user id again.
 * Addresses on x86-64 and arm64 Linux fit 48 bits (the kernel maps above
 * 2^47 only when asked to). Should malloc ever return one that does not
 * (tagged memory, wider address spaces), the limiter turns to whole
 * pointers in its slots (pmask = all ones: every probe then reads the
 * entry), see fit_slot(). */
typedef uint64_t slot_t;

#define SLOT_ADDR_MASK ((UINT64_C(1) << 48) - 1)

/* Entries come from a pool per limiter (one dispatcher thread uses it):
 * size classes of 8 bytes up to POOL_MAX, carved from POOL_CHUNK blocks,
 * each class with a free list threaded through its free entries; bigger
 * entries (rings of more than ~120 times) come from malloc. An entry
 * takes its size rounded up to 8 bytes, where malloc took it plus its
 * 8-byte header rounded up to 16 (the burst of the 1M-user benchmark holds
 * ~2.5M entries). A freed entry's memory goes back to its class, not to
 * malloc: the pool keeps the most entries the limiter held at once, as
 * malloc's arenas did. A ring that grows leaves its smaller entry behind;
 * a request takes a free entry of its class or else of the smallest
 * bigger class that does not hold more times than the limit (pool_alloc),
 * before it carves a new one: the users that come next reuse what the
 * rings left, with a ring as big as the entry holds. */
#define POOL_MAX 256
#define POOL_CHUNK ((size_t)64 << 10)
/* Past POOL_SMALL_BYTES of small blocks the pool carves from huge pages
 * (core/bigmem.h) of BIGMEM_MIN bytes each. The entries are read at random
 * (a check's user): with a million users on 4 KiB pages nearly every
 * check's entry missed the TLB, and the entry's prefetch in local_check
 * stalled on its page walk (half of local_check's samples at 100k
 * notifications/s, on a guest whose walks are nested). A small limiter (a
 * quiet channel) stays on 64 KiB blocks: a huge page is RSS from its first
 * touch, and at most one is partly used. */
#define POOL_SMALL_BYTES BIGMEM_MIN

typedef struct pool {
    void *free[POOL_MAX / 8 + 1];  /* by size / 8 */
    char *cur;                  /* the carving block's unused rest */
    size_t left;
    char **blocks;
    size_t *block_map;          /* bigmem_free's length; 0: malloc'd (POOL_CHUNK) */
    size_t nblocks, cblocks;
    size_t bytes;               /* the blocks' bytes */
    size_t live;                /* the bytes of the classes' entries in use */
} pool_t;

/* At least size bytes, at most most (>= size) rounded up to 8, for as
 * long as the caller likes; *got: how many (what pool_free wants back). A
 * free entry of a bigger class, up to most's, is taken before a new one is
 * carved:
 * the rings that grew leave their smaller entries behind, and the new
 * users (and the rings that grow next) take them, with a ring as big as
 * they hold (see entry_alloc). */
static void *pool_alloc(pool_t *pl, size_t size, size_t most, size_t *got)
{
    size_t c = (size + 7) / 8;
    if (c > POOL_MAX / 8) {
        void *big = xmalloc(size);
        *got = malloc_usable_size(big);
        return big;
    }
    size_t top = (most + 7) / 8 < POOL_MAX / 8 ? (most + 7) / 8 : POOL_MAX / 8;
    for (size_t k = c; k <= top; k++) {
        void *e = pl->free[k];
        if (e) {
            memcpy(&pl->free[k], e, sizeof(void *));
            pl->live += k * 8;
            *got = k * 8;
            return e;
        }
    }
    pl->live += c * 8;
    *got = c * 8;
    void *e;
    if (pl->left < c * 8) {
        if (pl->nblocks == pl->cblocks) {
            pl->cblocks = pl->cblocks ? pl->cblocks * 2 : 16;
            pl->blocks = xrealloc(pl->blocks, pl->cblocks * sizeof(*pl->blocks));
            pl->block_map = xrealloc(pl->block_map, pl->cblocks * sizeof(*pl->block_map));
        }
        size_t len = BIGMEM_MIN;
        char *b = pl->bytes >= POOL_SMALL_BYTES ? bigmem_map(&len) : NULL;
        if (!b) { /* small yet, or no mapping: the heap */
            b = xmalloc(POOL_CHUNK);
            len = 0;
        }
        pl->block_map[pl->nblocks] = len;
        pl->cur = pl->blocks[pl->nblocks++] = b;
        pl->left = len ? len : POOL_CHUNK;
        pl->bytes += pl->left;
    }
    e = pl->cur;
    pl->cur += c * 8;
    pl->left -= c * 8;
    return e;
}

/* size: what pool_alloc gave (*got), or less within the same 8 bytes */
static void pool_free(pool_t *pl, void *e, size_t size)
{
    if (!e) return;
    size_t c = (size + 7) / 8;
    if (c > POOL_MAX / 8) {
        free(e);
        return;
    }
    pl->live -= c * 8;
    memcpy(e, &pl->free[c], sizeof(void *));
    pl->free[c] = e;
}

static void pool_release(pool_t *pl)
{
    for (size_t i = 0; i < pl->nblocks; i++) bigmem_free(pl->blocks[i], pl->block_map[i]);
    free(pl->blocks);
    free(pl->block_map);
    memset(pl, 0, sizeof(*pl));
}

/* Invariants: jbuf holds a block being filled: JBLOCK_HEAD bytes (written
 * with the block) then one record per allowed send since the last write,
 * in the order of the checks (jused = JBLOCK_HEAD: none; jbuf NULL before
 * the first); `dirty` is set when a send was counted since the last
 * write. Records are kept only when journals are written (l->journal). */
typedef struct part {
    int32_t id;
    int64_t epoch;              /* the entries' times are ms after it (0 .. UINT32_MAX) */
    slot_t *slots;              /* linear probing, at most 3/4 full (fits()) */
    uint64_t pmask;             /* a slot's address bits (the local_t's) */
    size_t nslots, count;
    size_t slots_map;           /* core/bigmem.h: the table's mapping (0: malloc'd) */
    bool dirty;                 /* changed since the last snapshot */
    bool has_base;              /* the base file holds this partition (a journal may extend it) */
    bool need_compact;          /* the next write is a compaction (a write failed) */
    char *jbuf;                 /* the journal's next block (JREC records) */
    size_t jused, jcap;
    uint64_t base_len;          /* the base file's length and CRC, named by the journal */
    uint32_t base_crc;
    uint64_t jlen;              /* the journal's length; 0 = none for this base */
    int64_t last_sweep;
    /* the checks' times in units (check_units()): for now_ms at epoch */
    int64_t units_now, units_epoch;
    int64_t cut;                /* cut_units() */
    uint16_t d;                 /* t_units() */
} part_t;

typedef struct local {
    ratelimit_t base;
    char *dir;                  /* NULL = not kept */
    int64_t snapshot_ms, last_snapshot;
    bool journal;               /* dir and snapshot_ms > 0: sends are recorded for the journal */
    part_t **parts;             /* by partition id; NULL = not held */
    int32_t nparts;
    uint64_t pmask;             /* SLOT_ADDR_MASK, or all ones (whole pointers, see slot_t) */
    pool_t pool;                /* the entries */
    bool wide;                  /* entries are wide_t (limit > NARROW_MAX), else narrow_t */
    int64_t unit;               /* ms per unit of the entries' times (unit_of()) */
} local_t;

/* ---- the entries' fields, by the limiter's layout */

#define NARROW(e) ((narrow_t *)(void *)(e))
#define WIDE(e) ((wide_t *)(void *)(e))

static inline uint32_t e_head(const local_t *l, const entry_t *e) { return l->wide ? WIDE(e)->head : NARROW(e)->head; }
static inline uint32_t e_n(const local_t *l, const entry_t *e) { return l->wide ? WIDE(e)->n : NARROW(e)->n; }
static inline uint32_t e_cap(const local_t *l, const entry_t *e) { return l->wide ? WIDE(e)->cap : NARROW(e)->cap; }
static inline size_t e_user_len(const local_t *l, const entry_t *e)
{
    return l->wide ? WIDE(e)->user_len : NARROW(e)->user_len;
}
static inline char *e_user(const local_t *l, entry_t *e) { return l->wide ? WIDE(e)->user : NARROW(e)->user; }

/* Setters: v fits (head, n <= cap <= limit; a length <= user_max()). */
static inline void e_set_head(const local_t *l, entry_t *e, uint32_t v)
{
    if (l->wide) WIDE(e)->head = v & RL_LIMIT_MAX;
    else NARROW(e)->head = (uint8_t)v;
}

static inline void e_set_n(const local_t *l, entry_t *e, uint32_t v)
{
    if (l->wide) WIDE(e)->n = v & RL_LIMIT_MAX;
    else NARROW(e)->n = (uint8_t)v;
}

static inline void e_set_cap(const local_t *l, entry_t *e, uint32_t v)
{
    if (l->wide) WIDE(e)->cap = v & RL_LIMIT_MAX;
    else NARROW(e)->cap = (uint8_t)v;
}

static inline void e_set_user_len(const local_t *l, entry_t *e, size_t v)
{
    if (l->wide) WIDE(e)->user_len = v & ENTRY_USER_MAX;
    else NARROW(e)->user_len = (uint8_t)v;
}

/* The longest user id l's entries hold. */
static inline size_t user_max(const local_t *l) { return l->wide ? ENTRY_USER_MAX : NARROW_MAX; }

/* Where the send times start after a header and user_len bytes of id. */
static inline size_t ts_offset(const local_t *l, size_t user_len)
{
    return ((l->wide ? sizeof(wide_t) : sizeof(narrow_t)) + user_len + 1) & ~(size_t)1;
}

static inline uint16_t *ts_of(const local_t *l, entry_t *e)
{
    return (uint16_t *)(void *)((char *)e + ts_offset(l, e_user_len(l, e)));
}

/* The ring slot after j in a ring of cap. */
static inline uint32_t ring_next(uint32_t cap, uint32_t j) { return j + 1 == cap ? 0 : j + 1; }

/* The bytes of e (its ring's whole capacity). */
static inline size_t entry_size(const local_t *l, const entry_t *e)
{
    return ts_offset(l, e_user_len(l, e)) + (size_t)e_cap(l, e) * sizeof(uint16_t);
}

/* The unit of the send times for a window: the fewest ms of which 65,535
 * cover a window and a half (at least 1), see entry_t. */
static int64_t unit_of(int64_t window_ms)
{
    int64_t span = window_ms + window_ms / 2;
    int64_t u = (span + UINT16_MAX - 1) / UINT16_MAX;
    return u > 0 ? u : 1;
}

static const char MAGIC[8] = {'H', 'R', 'L', 'S', 'N', 'A', 'P', '1'};
/* The journal's versions: 1 held whole rings (read, never written: a
 * partition that loads one compacts at its next write), 2 one record per
 * send. */
static const char JMAGIC1[8] = {'H', 'R', 'L', 'J', 'R', 'N', 'L', '1'};
static const char JMAGIC2[8] = {'H', 'R', 'L', 'J', 'R', 'N', 'L', '2'};

/* The journal's header: JMAGIC | u64 base length | u32 base CRC | u32 CRC of the 20 bytes before */
enum { JHEAD = 24, JBLOCK_HEAD = 8, COMPACT_MIN = 65536 };

static inline entry_t *slot_entry(const part_t *p, slot_t s) { return (entry_t *)(uintptr_t)(s & p->pmask); }

/* Whether s holds an entry whose user's hash may be h. */
static inline bool slot_may_be(const part_t *p, slot_t s, uint64_t h) { return s && ((s ^ h) & ~p->pmask) == 0; }

static inline slot_t slot_make(const part_t *p, entry_t *e, uint64_t h)
{
    return (h & ~p->pmask) | (uint64_t)(uintptr_t)e;
}

/* s with entry e instead (the same user, moved). */
static inline slot_t slot_moved(const part_t *p, slot_t s, entry_t *e)
{
    return (s & ~p->pmask) | (uint64_t)(uintptr_t)e;
}

static void entry_free(local_t *l, entry_t *e)
{
    if (e) pool_free(&l->pool, e, entry_size(l, e));
}

static void part_free(local_t *l, part_t *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->nslots; i++) entry_free(l, slot_entry(p, p->slots[i]));
    bigmem_free(p->slots, p->slots_map);
    free(p->jbuf);
    free(p);
}

static part_t *part_new(int32_t id, uint64_t pmask)
{
    part_t *p = xcalloc(1, sizeof(*p));
    p->id = id;
    p->pmask = pmask;
    p->nslots = 64;
    p->slots = xcalloc(p->nslots, sizeof(*p->slots));
    p->units_now = INT64_MIN; /* none yet (check_units) */
    return p;
}

/* Whether n entries fit a table of `size` slots: at most 3/4 full. The
 * probes compare the tags in the slots (8 of them a cache line), so the
 * longer runs of linear probing at 3/4 (8.5 slots for a user not there,
 * 2.5 for one there, against 2.5 and 1.5 at 1/2) cost little next to the
 * entry read, and the table is a third smaller. */
static inline bool fits(size_t n, size_t size) { return 4 * n <= 3 * size; }

/* The passes over every user (sweep, snapshot, rehash) read the entries in
 * slot order, each one a cache miss (scattered): the entry AHEAD slots on
 * is fetched meanwhile. The callers prefetch ahead_entry(): GCC finds a
 * helper whose only effect is a __builtin_prefetch free of side effects
 * and drops its calls (the sweep's and the compaction's prefetches were
 * not in the binary). */
enum { AHEAD = 16 };

static inline const void *ahead_entry(const slot_t *slots, size_t nslots, uint64_t pmask, size_t i)
{
    return i + AHEAD < nslots ? (const void *)(uintptr_t)(slots[i + AHEAD] & pmask) : NULL;
}

/* Rebuilds p's table with `size` slots from the entries kept. */
static void rehash(const local_t *l, part_t *p, size_t size)
{
    size_t map;
    slot_t *s = bigmem_alloc(size * sizeof(*s), &map); /* probed at random: huge pages */
    for (size_t i = 0; i < p->nslots; i++) {
        __builtin_prefetch(ahead_entry(p->slots, p->nslots, p->pmask, i));
        if (!p->slots[i]) continue;
        entry_t *e = slot_entry(p, p->slots[i]);
        uint64_t h = fnv1a64(e_user(l, e), e_user_len(l, e));
        size_t j = (size_t)h & (size - 1);
        while (s[j]) j = (j + 1) & (size - 1);
        s[j] = slot_make(p, e, h);
    }
    bigmem_free(p->slots, p->slots_map);
    p->slots = s;
    p->slots_map = map;
    p->nslots = size;
}

/* Turns l's slots to whole pointers (in place: a slot's position depends
 * on the hash only). */
static void whole_pointers(local_t *l)
{
    l->pmask = ~UINT64_C(0);
    for (int32_t k = 0; k < l->nparts; k++) {
        part_t *p = l->parts[k];
        if (!p) continue;
        for (size_t i = 0; i < p->nslots; i++)
            if (p->slots[i]) p->slots[i] &= p->pmask;
        p->pmask = l->pmask;
    }
}

/* Makes sure e's address fits l's slots: the first one that does not
 * turns every table to whole pointers. */
static void fit_slot(local_t *l, const entry_t *e)
{
    if (((uint64_t)(uintptr_t)e & ~l->pmask) == 0) return;
    log_warn("ratelimit", "an address beyond the slots' bits: the %s limiter's tables hold whole pointers "
                          "from now on", channel_name(l->base.ch));
    whole_pointers(l);
}

size_t ratelimit_local_pending(ratelimit_t *rl, int32_t partition)
{
    if (!rl || rl->ops != &ratelimit_local_ops) return 0;
    const local_t *l = (const local_t *)rl;
    if (partition < 0 || partition >= l->nparts || !l->parts[partition]) return 0;
    const part_t *p = l->parts[partition];
    return p->jused > JBLOCK_HEAD ? p->jused - JBLOCK_HEAD : 0;
}

void ratelimit_local_memory(ratelimit_t *rl, ratelimit_local_mem_t *m)
{
    memset(m, 0, sizeof(*m));
    if (!rl || rl->ops != &ratelimit_local_ops) return;
    const local_t *l = (const local_t *)rl;
    m->pool_bytes = l->pool.bytes;
    m->pool_live = l->pool.live;
    for (int32_t i = 0; i < l->nparts; i++) {
        const part_t *p = l->parts[i];
        if (!p) continue;
        m->entries += p->count;
        m->table_bytes += p->nslots * sizeof(slot_t);
    }
}

int64_t ratelimit_local_unit(ratelimit_t *rl)
{
    return rl && rl->ops == &ratelimit_local_ops ? ((const local_t *)rl)->unit : 0;
}

void ratelimit_local_whole_pointers(ratelimit_t *rl)
{
    if (rl && rl->ops == &ratelimit_local_ops) whole_pointers((local_t *)rl);
}

/* An entry for len bytes of user id with room for at least `want` send
 * times (and at most `limit`): the ring takes whatever its pool entry (of
 * its class, or a free one of a bigger class, or for a big one malloc's
 * size class, malloc_usable_size) leaves after the header, so the first
 * growth comes as late as it can without costing a byte. entry_size() of
 * the result stays in the class it was taken from. */
static entry_t *entry_alloc(local_t *l, size_t len, uint32_t want, uint32_t limit)
{
    size_t off = ts_offset(l, len), size = off + (size_t)want * sizeof(uint16_t), got;
    /* a bigger free entry if its ring is no bigger than the limit's, so
     * that entry_size() stays in its class */
    entry_t *e = pool_alloc(&l->pool, size, off + (size_t)limit * sizeof(uint16_t), &got);
    fit_slot(l, e);
    size_t room = (got - off) / sizeof(uint16_t);
    e_set_cap(l, e, room < limit ? (uint32_t)room : limit);
    e_set_user_len(l, e, len); /* callers keep len <= user_max(l) */
    return e;
}

/* The first ring's size: 2 times, or fewer when the limit is. */
enum { RING0 = 2 };

/* The slot of user (hash h) in p, created when missing and `create` (NULL
 * when missing otherwise). The pointer is good until the next insert. */
static slot_t *lookup_hashed(local_t *l, part_t *p, const char *user, size_t len, uint64_t h, bool create)
{
    size_t mask = p->nslots - 1;
    size_t i;
    for (i = (size_t)h & mask; p->slots[i]; i = (i + 1) & mask) {
        if (!slot_may_be(p, p->slots[i], h)) continue;
        entry_t *e = slot_entry(p, p->slots[i]);
        if (e_user_len(l, e) == len && memcmp(e_user(l, e), user, len) == 0) return &p->slots[i];
    }
    if (!create) return NULL;
    if (!fits(p->count + 1, p->nslots)) {
        rehash(l, p, p->nslots * 2);
        mask = p->nslots - 1;
        for (i = (size_t)h & mask; p->slots[i];) i = (i + 1) & mask;
    }
    uint32_t limit = (uint32_t)l->base.limit;
    entry_t *e = entry_alloc(l, len, limit < RING0 ? limit : RING0, limit);
    e_set_head(l, e, 0);
    e_set_n(l, e, 0);
    memcpy(e_user(l, e), user, len);
    p->slots[i] = slot_make(p, e, h);
    p->count++;
    return &p->slots[i];
}

static slot_t *lookup(local_t *l, part_t *p, const char *user, size_t len, bool create)
{
    return lookup_hashed(l, p, user, len, fnv1a64(user, len), create);
}

/* Gives s's entry a ring of at least want (>= n) times, oldest first
 * from 0; the entry moves (its slot follows). */
static entry_t *resize(local_t *l, part_t *p, slot_t *s, uint32_t want)
{
    entry_t *e = slot_entry(p, *s);
    size_t len = e_user_len(l, e);
    uint32_t n = e_n(l, e), cap = e_cap(l, e);
    entry_t *g = entry_alloc(l, len, want, (uint32_t)l->base.limit);
    e_set_head(l, g, 0);
    e_set_n(l, g, n);
    memcpy(e_user(l, g), e_user(l, e), len);
    const uint16_t *from = ts_of(l, e);
    uint16_t *to = ts_of(l, g);
    for (uint32_t k = 0, j = e_head(l, e); k < n; k++, j = ring_next(cap, j)) to[k] = from[j];
    entry_free(l, e);
    *s = slot_moved(p, *s, g);
    return g;
}

/* Doubles the ring of s's entry, up to the limit; straight to the limit
 * when its entry would be at most twice this one's: the step between would
 * save at most a few bytes for the users who stay there, and costs the
 * others a move and an entry left behind (in the 1M-user benchmark, where
 * most push users reach the limit of 10 within the run, 24-byte entries
 * between the 16 and 32-byte ones were a third of the push pool, free). */
static entry_t *grow(local_t *l, part_t *p, slot_t *s)
{
    const entry_t *e = slot_entry(p, *s);
    uint32_t limit = (uint32_t)l->base.limit, cap = e_cap(l, e);
    size_t full = ts_offset(l, e_user_len(l, e)) + (size_t)limit * sizeof(uint16_t);
    return resize(l, p, s, cap > limit / 2 || full <= 2 * entry_size(l, e) ? limit : cap * 2);
}

/* After a sweep's expiry: a ring at most a quarter full (and bigger than
 * 4) is cut to twice what it holds, so a user who sent many once does not
 * keep a big ring while still in the window. */
static void shrink(local_t *l, part_t *p, slot_t *s)
{
    const entry_t *e = slot_entry(p, *s);
    uint32_t n = e_n(l, e), cap = e_cap(l, e);
    if (cap > 4 && n * 4 <= cap) resize(l, p, s, n > RING0 / 2 ? 2 * n : RING0);
}

/* The units of p's times that have left the window at now_ms: a time d
 * has left when d <= the result (-1: none has). */
static inline int64_t cut_units(const local_t *l, const part_t *p, int64_t now_ms)
{
    int64_t cut = now_ms - l->base.window_ms - p->epoch; /* ms after the epoch */
    return cut < 0 ? -1 : cut / l->unit;
}

static void expire_cut(const local_t *l, entry_t *e, int64_t cut)
{
    uint32_t n = e_n(l, e);
    if (cut < 0 || n == 0) return;
    const uint16_t *ts = ts_of(l, e);
    uint32_t head = e_head(l, e), cap = e_cap(l, e), n0 = n;
    while (n > 0 && (int64_t)ts[head] <= cut) {
        head = ring_next(cap, head);
        n--;
    }
    if (n != n0) {
        e_set_head(l, e, head);
        e_set_n(l, e, n);
    }
}

static void expire(const local_t *l, const part_t *p, entry_t *e, int64_t now_ms)
{
    expire_cut(l, e, cut_units(l, p, now_ms));
}

/* t as held in p's entries: the units since the epoch, rounded up (see
 * entry_t); a time before the epoch is held as the epoch (later: it has
 * left the window anyway, or the clock went back), one beyond the 16 bits
 * as the last unit (push() moves the epoch first). */
static uint16_t t_units(const local_t *l, const part_t *p, int64_t t)
{
    if (t <= p->epoch) return 0;
    int64_t d = (t - p->epoch + l->unit - 1) / l->unit;
    return d > UINT16_MAX ? UINT16_MAX : (uint16_t)d;
}

/* The newest time p's entries can hold, relative to the epoch (ms). */
static inline int64_t span_ms(const local_t *l) { return (int64_t)UINT16_MAX * l->unit; }

/* Moves e's times k units back (the epoch moves k units on); a time that
 * would fall before the new epoch is held as the epoch (later). */
static void shift_entry(const local_t *l, entry_t *e, uint32_t k)
{
    if (k == 0) return;
    uint16_t *ts = ts_of(l, e);
    uint32_t n = e_n(l, e), cap = e_cap(l, e);
    for (uint32_t c = 0, j = e_head(l, e); c < n; c++, j = ring_next(cap, j)) ts[j] = ts[j] > k ? (uint16_t)(ts[j] - k) : 0;
}

/* Moves p's epoch k units on, every entry's times with it (after an
 * expiry at the new epoch's time + window, none falls before it: exact;
 * otherwise those held as the new epoch are later than they were). */
static void shift(const local_t *l, part_t *p, uint32_t k)
{
    if (k == 0) return;
    for (size_t i = 0; i < p->nslots; i++) {
        __builtin_prefetch(ahead_entry(p->slots, p->nslots, p->pmask, i));
        entry_t *e = slot_entry(p, p->slots[i]);
        if (e) shift_entry(l, e, k);
    }
    p->epoch += (int64_t)k * l->unit;
}

/* The units the epoch can move on at now_ms without losing a time in the
 * window: the times that left (cut_units). More than 65,535 only when all
 * have left. */
static uint32_t shift_units(const local_t *l, const part_t *p, int64_t now_ms)
{
    int64_t k = cut_units(l, p, now_ms);
    return k <= 0 ? 0 : k > UINT32_MAX ? UINT32_MAX : (uint32_t)k;
}

/* Moves p's epoch to within a unit of now_ms - window_ms, dropping the
 * times that left the window: called by a check when now_ms is more than
 * 65,535 units after the epoch (no sweep for half a window: the sweeps
 * move the epoch, see sweep()). Afterwards now_ms is less than a window
 * and a unit after the epoch. */
static void rebase(const local_t *l, part_t *p, int64_t now_ms)
{
    int64_t cut = cut_units(l, p, now_ms);
    for (size_t i = 0; i < p->nslots; i++) {
        __builtin_prefetch(ahead_entry(p->slots, p->nslots, p->pmask, i));
        entry_t *e = slot_entry(p, p->slots[i]);
        if (e) expire_cut(l, e, cut);
    }
    shift(l, p, shift_units(l, p, now_ms)); /* one pass, however far the clock went */
}

/* Appends t (dropping the oldest when full: only for loading). A time
 * beyond the epoch's 16 bits (a file written by a clock ahead of this one)
 * moves the epoch on first, holding the times that fall before it as the
 * new epoch (later: conservative). */
static void push(local_t *l, part_t *p, slot_t *s, int64_t t)
{
    if (t - p->epoch > span_ms(l)) {
        int64_t k = (t - p->epoch - span_ms(l) + l->unit - 1) / l->unit;
        shift(l, p, k > UINT32_MAX ? UINT32_MAX : (uint32_t)k);
    }
    entry_t *e = slot_entry(p, *s);
    if (e_n(l, e) == e_cap(l, e) && e_cap(l, e) < (uint32_t)l->base.limit) e = grow(l, p, s);
    uint16_t *ts = ts_of(l, e);
    uint32_t head = e_head(l, e), n = e_n(l, e), cap = e_cap(l, e);
    if (n == cap) {
        head = ring_next(cap, head);
        n--;
    }
    ts[(head + n) % cap] = t_units(l, p, t);
    e_set_head(l, e, head);
    e_set_n(l, e, n + 1);
}

/* A journal record (version 2): u16 user id length | user id | i64 send
 * time (ms, absolute), host byte order, unaligned. */
static inline size_t jrec_bytes(size_t user_len) { return 2 + user_len + sizeof(int64_t); }

/* Records a send of e's user at t for the journal's next block: written
 * while the entry is in the cache, where the whole-ring records of
 * version 1 read every entry of the dirty list again at the write (a
 * cache miss each: a quarter of the push dispatcher's time at 100k
 * notifications/s with a million users). */
static void jrec_add(const local_t *l, part_t *p, entry_t *e, int64_t t)
{
    size_t len = e_user_len(l, e), need = jrec_bytes(len);
    if (!p->jbuf) p->jused = JBLOCK_HEAD;
    if (p->jused + need > p->jcap) {
        /* up to RL_JOURNAL_MAX and one record more: the check that
         * reaches RL_JOURNAL_MAX writes the block */
        size_t cap = p->jcap ? p->jcap : 16384, most = RL_JOURNAL_MAX + jrec_bytes(ENTRY_USER_MAX);
        while (p->jused + need > cap) cap = cap * 2 < most ? cap * 2 : most;
        p->jbuf = xrealloc(p->jbuf, p->jcap = cap);
    }
    char *w = p->jbuf + p->jused;
    uint16_t ul = (uint16_t)len;
    memcpy(w, &ul, 2);
    memcpy(w + 2, e_user(l, e), len);
    memcpy(w + 2 + len, &t, sizeof(t));
    p->jused += need;
}

/* Drops the records not written (a compaction holds them all). */
static void jrec_clear(part_t *p)
{
    if (p->jbuf) p->jused = JBLOCK_HEAD;
}

/* The table's size for `kept` entries after a sweep. */
static size_t table_size(size_t kept)
{
    size_t size = 64;
    while (!fits(kept + 1, size)) size *= 2;
    return size;
}

/* After a pass that freed entries (kept of p->count left): the table is
 * rebuilt from the others (smaller when many went). When none went it is
 * left as it is: a rebuild reads and writes every slot (with a million
 * users, 32 MB per partition). The pass moved the entries' times k units
 * back: the epoch moves k units on. */
static void sweep_done(const local_t *l, part_t *p, size_t kept, uint32_t k, int64_t now_ms)
{
    p->epoch += (int64_t)k * l->unit;
    if (kept != p->count) {
        p->count = kept;
        rehash(l, p, table_size(kept));
    }
    p->last_sweep = now_ms;
}

/* One user of a sweep (of cut: cut_units()): its times that left go, and
 * the user when none is left (false); its ring shrinks when mostly empty,
 * its times move k units back. */
static bool sweep_one(local_t *l, part_t *p, slot_t *s, int64_t cut, uint32_t k)
{
    entry_t *e = slot_entry(p, *s);
    expire_cut(l, e, cut);
    if (e_n(l, e) == 0) {
        entry_free(l, e);
        *s = 0;
        return false;
    }
    shrink(l, p, s);
    shift_entry(l, slot_entry(p, *s), k);
    return true;
}

/* Forgets the users with nothing left in the window and moves the epoch
 * on to the oldest time that may still be in it (so that the times stay
 * within the epoch's 16 bits without a rebase). */
static void sweep(local_t *l, part_t *p, int64_t now_ms)
{
    size_t kept = 0;
    int64_t cut = cut_units(l, p, now_ms);
    uint32_t k = shift_units(l, p, now_ms);
    for (size_t i = 0; i < p->nslots; i++) {
        __builtin_prefetch(ahead_entry(p->slots, p->nslots, p->pmask, i));
        if (p->slots[i] && sweep_one(l, p, &p->slots[i], cut, k)) kept++;
    }
    sweep_done(l, p, kept, k, now_ms);
}

static void snap_path(const local_t *l, int32_t id, char *out, size_t len, const char *suffix)
{
    snprintf(out, len, "%s/%s-%d.rl%s", l->dir, channel_name(l->base.ch), (int)id, suffix);
}

/* ---- base file: MAGIC | i64 window_ms | u32 entries | entries | u32 crc32 of everything before
 * entry: u32 user_len | user | u32 n | n x i64 send time, oldest first (host byte order: the
 * file belongs to this machine's data_dir)
 * ---- journal: JHEAD bytes (above), then blocks: u32 len | u32 CRC of len and payload | payload
 * of len bytes. Version 2 (JMAGIC2, CRC-32C): records (jrec_add), each a send appended to its
 * user's ring. Version 1 (JMAGIC1, zlib's CRC-32): entries as in the base, each replacing its
 * user's ring. */

static hr_t write_all(int fd, const void *p, size_t n, uLong *crc)
{
    if (crc) *crc = crc32(*crc, p, (uInt)n);
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return HR_ERR;
        c += w;
        n -= (size_t)w;
    }
    return HR_OK;
}

static inline size_t entry_bytes(const local_t *l, const entry_t *e)
{
    return 2 * sizeof(uint32_t) + e_user_len(l, e) + (size_t)e_n(l, e) * sizeof(int64_t);
}

/* Writes e at w (entry_bytes() bytes): its ring oldest first, as absolute
 * times (epoch: its times' epoch; the files' format is the one of the
 * 64-bit rings: a time is written as held, rounded up to its unit). */
static void entry_put(const local_t *l, int64_t epoch, entry_t *e, char *w)
{
    uint32_t n = e_n(l, e), ul = (uint32_t)e_user_len(l, e), cap = e_cap(l, e);
    memcpy(w, &ul, sizeof(uint32_t));
    memcpy(w + 4, e_user(l, e), ul);
    memcpy(w + 4 + ul, &n, sizeof(n));
    w += 8 + ul;
    const uint16_t *ts = ts_of(l, e);
    for (uint32_t k = 0, j = e_head(l, e); k < n; k++, j = ring_next(cap, j)) {
        int64_t t = epoch + (int64_t)ts[j] * l->unit;
        memcpy(w + (size_t)k * sizeof(int64_t), &t, sizeof(t));
    }
}

/* The journal's header of version 1 or 2 (a version 2 journal has CRC-32C
 * where version 1 had zlib's CRC-32). */
static void journal_head(const part_t *p, int version, char head[JHEAD])
{
    memcpy(head, version == 1 ? JMAGIC1 : JMAGIC2, 8);
    memcpy(head + 8, &p->base_len, 8);
    memcpy(head + 16, &p->base_crc, 4);
    uint32_t c = version == 1 ? (uint32_t)crc32(crc32(0, Z_NULL, 0), (const Bytef *)head, 20) : crc32c(0, head, 20);
    memcpy(head + 20, &c, 4);
}

/* A block's CRC: of its length field and payload (blen bytes after the
 * JBLOCK_HEAD of b). */
static uint32_t block_crc(int version, const char *b, uint32_t blen)
{
    if (version == 1)
        return (uint32_t)crc32(crc32(crc32(0, Z_NULL, 0), (const Bytef *)b, 4), (const Bytef *)b + JBLOCK_HEAD,
                               (uInt)blen);
    return crc32c(crc32c(0, b, 4), b + JBLOCK_HEAD, blen);
}

/* Appends the recorded sends to the journal (created, naming the base,
 * when the partition has none yet) as one block, one write. On a failed
 * write the journal is cut back to where it was and HR_ERR returned (the
 * caller compacts). */
static hr_t journal_append(local_t *l, part_t *p)
{
    char path[4200];
    snap_path(l, p->id, path, sizeof(path), "j");
    bool fresh = p->jlen == 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (fresh ? O_TRUNC : O_APPEND), 0600);
    if (fd < 0) {
        log_warn("ratelimit", "cannot write %s: %s", path, strerror(errno));
        return HR_ERR;
    }
    hr_t r = HR_OK;
    uint64_t len = p->jlen;
    if (fresh) {
        char head[JHEAD];
        journal_head(p, 2, head);
        r = write_all(fd, head, JHEAD, NULL);
        len = JHEAD;
    }
    if (r == HR_OK && p->jused > JBLOCK_HEAD) {
        uint32_t blen = (uint32_t)(p->jused - JBLOCK_HEAD);
        memcpy(p->jbuf, &blen, 4);
        uint32_t c = block_crc(2, p->jbuf, blen);
        memcpy(p->jbuf + 4, &c, 4);
        r = write_all(fd, p->jbuf, p->jused, NULL);
        len += p->jused;
    }
    if (r != HR_OK) {
        log_warn("ratelimit", "cannot write %s: %s", path, strerror(errno));
        if (!fresh && ftruncate(fd, (off_t)p->jlen) != 0) p->jlen = 0; /* unknown tail: start over */
        close(fd);
        return HR_ERR;
    }
    if (close(fd) != 0) return HR_ERR;
    p->jlen = len;
    jrec_clear(p);
    p->dirty = false;
    return HR_OK;
}

/* The compaction: writes p's users with sends in the window as the new
 * base, in one pass over them, then removes the journal. With sweep, the
 * same pass first drops the send times that left the window at now_ms and
 * forgets the users left with none (what sweep() does), so the tick reads
 * each user once. The count in the header is written when the pass is over
 * (pwrite); the file's CRC joins the header's and the body's
 * (crc32_combine), so it covers the same bytes in the same order as ever.
 * The recorded sends are dropped whatever happens (a failed write leaves
 * need_compact, so the next write is a compaction again). */
static hr_t snapshot(local_t *l, part_t *p, int64_t now_ms, bool sweep_too, bool sync)
{
    if (!l->dir || (!p->dirty && !p->need_compact && p->jlen == 0)) {
        if (sweep_too) sweep(l, p, now_ms);
        return HR_OK;
    }
    jrec_clear(p);
    char tmp[4200], path[4200];
    snap_path(l, p->id, tmp, sizeof(tmp), ".tmp");
    snap_path(l, p->id, path, sizeof(path), "");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_warn("ratelimit", "cannot write %s: %s", tmp, strerror(errno));
        if (sweep_too) sweep(l, p, now_ms);
        p->need_compact = true;
        return HR_ERR;
    }
    enum { HEAD = sizeof(MAGIC) + sizeof(int64_t) + sizeof(uint32_t) };
    char head[HEAD];
    uint32_t count = 0;
    memcpy(head, MAGIC, sizeof(MAGIC));
    memcpy(head + sizeof(MAGIC), &l->base.window_ms, sizeof(int64_t));
    memcpy(head + sizeof(MAGIC) + sizeof(int64_t), &count, sizeof(count)); /* for now */
    uLong ignored = 0, body_crc = crc32(0, Z_NULL, 0);
    z_off_t body_len = 0;
    hr_t r = write_all(fd, head, HEAD, &ignored);
    /* buffered: one write per 64 KiB (or per entry when one is bigger) */
    size_t cap = 65536, used = 0;
    char *buf = xmalloc(cap);
    size_t kept = 0;
    /* with sweep_too, the times move k units back as the pass goes (the
     * epoch moves k units on at its end) */
    int64_t cut = sweep_too ? cut_units(l, p, now_ms) : -1;
    uint32_t k = sweep_too ? shift_units(l, p, now_ms) : 0;
    int64_t epoch = p->epoch + (int64_t)k * l->unit;
    for (size_t i = 0; i < p->nslots; i++) {
        __builtin_prefetch(ahead_entry(p->slots, p->nslots, p->pmask, i));
        if (!p->slots[i]) continue;
        if (sweep_too) {
            if (!sweep_one(l, p, &p->slots[i], cut, k)) continue;
            kept++;
        }
        entry_t *e = slot_entry(p, p->slots[i]);
        if (e_n(l, e) == 0) continue;
        size_t need = entry_bytes(l, e);
        if (used + need > cap) {
            if (r == HR_OK) r = write_all(fd, buf, used, &body_crc);
            body_len += (z_off_t)used;
            used = 0;
            if (need > cap) buf = xrealloc(buf, cap = need);
        }
        entry_put(l, epoch, e, buf + used);
        used += need;
        count++;
    }
    if (r == HR_OK && used) r = write_all(fd, buf, used, &body_crc);
    body_len += (z_off_t)used;
    free(buf);
    if (sweep_too) sweep_done(l, p, kept, k, now_ms);
    memcpy(head + sizeof(MAGIC) + sizeof(int64_t), &count, sizeof(count));
    uint32_t c32 = (uint32_t)crc32_combine(crc32(crc32(0, Z_NULL, 0), (const Bytef *)head, HEAD), body_crc, body_len);
    if (r == HR_OK && pwrite(fd, head + sizeof(MAGIC) + sizeof(int64_t), sizeof(count),
                             (off_t)(sizeof(MAGIC) + sizeof(int64_t))) != (ssize_t)sizeof(count))
        r = HR_ERR;
    if (r == HR_OK) r = write_all(fd, &c32, sizeof(c32), &ignored);
    /* The periodic compaction (sync false) is not fsynced: it runs on the
     * dispatcher's thread, and while the status store writes on the same
     * disk an fsync can take hundreds of milliseconds, which every
     * notification of the batch waited for. After a kill -9 the page cache
     * has the file; a power cut may leave the previous base (or, on a file
     * system without rename ordering, a damaged one, which is ignored).
     * Revoke and close fsync. */
    if (r == HR_OK && sync && fsync(fd) != 0) r = HR_ERR;
    if (close(fd) != 0) r = HR_ERR;
    if (r == HR_OK && rename(tmp, path) != 0) r = HR_ERR;
    if (r != HR_OK) {
        log_warn("ratelimit", "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        p->need_compact = true;
        return r;
    }
    /* The journal extended the old base: it goes. Should this process die
     * before the unlink, the journal names the old base and is ignored. */
    snap_path(l, p->id, path, sizeof(path), "j");
    if (unlink(path) != 0 && errno != ENOENT) log_warn("ratelimit", "cannot remove %s: %s", path, strerror(errno));
    p->has_base = true;
    p->base_len = (uint64_t)HEAD + (uint64_t)body_len + 4;
    p->base_crc = c32;
    p->jlen = 0;
    p->need_compact = false;
    p->dirty = false;
    return HR_OK;
}

/* Reads the whole file at path (NULL when missing or unreadable: logged
 * unless missing). */
static char *slurp(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rbe");
    if (!f) {
        if (errno != ENOENT) log_warn("ratelimit", "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *data = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 65536) data = xrealloc(data, cap = cap * 2 + 65536);
        size_t got = fread(data + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        log_warn("ratelimit", "cannot read %s", path);
        free(data);
        return NULL;
    }
    *len_out = len;
    return data;
}

/* Walks the entries in data[at, end): checks their structure (apply
 * false) or loads them into p, each replacing its user's ring (apply
 * true). false when they do not end exactly at end. */
static bool entries_walk(local_t *l, part_t *p, const char *data, size_t at, size_t end, uint32_t count,
                         bool counted, bool apply, int64_t now_ms)
{
    for (uint32_t k = 0; counted ? k < count : at < end; k++) {
        uint32_t ul, n;
        if (at + 4 > end) return false;
        memcpy(&ul, data + at, 4);
        at += 4;
        if (ul > end - at || ul > ENTRY_USER_MAX) return false;
        const char *user = data + at;
        at += ul;
        if (at + 4 > end) return false;
        memcpy(&n, data + at, 4);
        at += 4;
        if ((size_t)n > (end - at) / 8) return false;
        if (apply && ul <= user_max(l)) { /* a longer id is not limited (local_check) */
            slot_t *s = lookup(l, p, user, ul, true);
            entry_t *e = slot_entry(p, *s);
            e_set_head(l, e, 0);
            e_set_n(l, e, 0);
            for (uint32_t j = 0; j < n; j++) {
                int64_t t;
                memcpy(&t, data + at + (size_t)j * 8, 8);
                push(l, p, s, t); /* a smaller limit than when written keeps the newest */
            }
            expire(l, p, slot_entry(p, *s), now_ms);
        }
        at += (size_t)n * 8;
    }
    return at == end;
}

/* Walks the records of sends (journal version 2) in data[at, end): checks
 * their structure (apply false) or appends each send to its user's ring
 * (apply true), in their order, which was the checks'. false when they do
 * not end exactly at end. */
static bool records_walk(local_t *l, part_t *p, const char *data, size_t at, size_t end, bool apply,
                         int64_t now_ms)
{
    while (at < end) {
        uint16_t ul;
        if (end - at < 2) return false;
        memcpy(&ul, data + at, 2);
        at += 2;
        if (ul > ENTRY_USER_MAX || end - at < jrec_bytes(ul) - 2) return false;
        if (apply && ul <= user_max(l)) {
            int64_t t;
            memcpy(&t, data + at + ul, sizeof(t));
            slot_t *s = lookup(l, p, data + at, ul, true);
            push(l, p, s, t); /* a smaller limit than when written keeps the newest */
            expire(l, p, slot_entry(p, *s), now_ms);
        }
        at += jrec_bytes(ul) - 2;
    }
    return true;
}

/* Replays the journal of p's base (p->base_len, p->base_crc) into p. A
 * journal of another base, or with a bad header, is removed; a torn tail
 * is cut off. A journal of version 1 (whole rings) is read as well; the
 * partition's next write then compacts, so that version 2 blocks never
 * follow version 1 ones. */
static void journal_load(local_t *l, part_t *p, int64_t now_ms)
{
    char path[4200];
    snap_path(l, p->id, path, sizeof(path), "j");
    size_t len = 0;
    char *data = slurp(path, &len);
    if (!data) return;
    char want[JHEAD];
    int version = 2;
    journal_head(p, 2, want);
    if (len >= JHEAD && memcmp(data, JMAGIC1, sizeof(JMAGIC1)) == 0) {
        version = 1;
        journal_head(p, 1, want);
    }
    if (!p->has_base || len < JHEAD || memcmp(data, want, JHEAD) != 0) {
        /* stale (its base was replaced) or damaged: the base has what it can */
        free(data);
        if (unlink(path) != 0) log_warn("ratelimit", "cannot remove %s: %s", path, strerror(errno));
        return;
    }
    size_t at = JHEAD;
    while (at + JBLOCK_HEAD <= len) {
        uint32_t blen, c;
        memcpy(&blen, data + at, 4);
        memcpy(&c, data + at + 4, 4);
        if (blen > len - at - JBLOCK_HEAD) break;
        size_t b = at + JBLOCK_HEAD;
        if (block_crc(version, data + at, blen) != c) break;
        if (version == 1) {
            if (!entries_walk(l, p, data, b, b + blen, 0, false, false, now_ms)) break;
            entries_walk(l, p, data, b, b + blen, 0, false, true, now_ms);
        } else {
            if (!records_walk(l, p, data, b, b + blen, false, now_ms)) break;
            records_walk(l, p, data, b, b + blen, true, now_ms);
        }
        at = b + blen;
    }
    free(data);
    if (version == 1) p->need_compact = true;
    if (at < len) {
        log_warn("ratelimit", "%s: dropping a torn tail of %zu bytes (sends of the last snapshot period)",
                 path, len - at);
        if (truncate(path, (off_t)at) != 0) {
            log_warn("ratelimit", "cannot cut %s: %s", path, strerror(errno));
            p->need_compact = true;
        }
    }
    p->jlen = at;
}

/* Reads the partition's base and journal into p (which is empty). */
static void load(local_t *l, part_t *p, int64_t now_ms)
{
    if (!l->dir) return;
    p->last_sweep = now_ms;
    char path[4200];
    snap_path(l, p->id, path, sizeof(path), "");
    size_t len = 0;
    char *data = slurp(path, &len);
    if (!data) {
        journal_load(l, p, now_ms); /* without a base: removed */
        return;
    }
    size_t head = sizeof(MAGIC) + sizeof(int64_t) + sizeof(uint32_t);
    uint32_t count = 0, crc = 0;
    bool bad = false;
    if (len >= head + 4) {
        memcpy(&crc, data + len - 4, 4);
        bad = memcmp(data, MAGIC, sizeof(MAGIC)) != 0 || crc != (uint32_t)crc32(crc32(0, Z_NULL, 0), (const Bytef *)data, (uInt)(len - 4));
        memcpy(&count, data + sizeof(MAGIC) + sizeof(int64_t), 4);
    } else {
        bad = true;
    }
    /* The first walk validates the structure, the second loads: all or nothing. */
    if (!bad) bad = !entries_walk(l, p, data, head, len - 4, count, true, false, now_ms);
    if (!bad) entries_walk(l, p, data, head, len - 4, count, true, true, now_ms);
    free(data);
    if (bad) {
        log_warn("ratelimit", "%s is damaged; starting %s partition %d empty", path,
                 channel_name(l->base.ch), (int)p->id);
    } else {
        p->has_base = true;
        p->base_len = len;
        p->base_crc = crc;
    }
    journal_load(l, p, now_ms);
}

static part_t *part_get(local_t *l, int32_t id, int64_t now_ms)
{
    if (id < 0) id = 0;
    if (id >= l->nparts) {
        int32_t n = l->nparts ? l->nparts : 8;
        while (n <= id) n *= 2;
        l->parts = xrealloc(l->parts, (size_t)n * sizeof(*l->parts));
        memset(l->parts + l->nparts, 0, (size_t)(n - l->nparts) * sizeof(*l->parts));
        l->nparts = n;
    }
    if (!l->parts[id]) {
        l->parts[id] = part_new(id, l->pmask);
        /* on the grid of whole units since 1970, as every move keeps it:
         * a time is held as the same multiple of the unit whichever
         * process loads it, so reloading does not round it up again */
        int64_t e0 = now_ms - l->base.window_ms;
        l->parts[id]->epoch = e0 - ((e0 % l->unit) + l->unit) % l->unit;
        load(l, l->parts[id], now_ms);
    }
    return l->parts[id];
}

static void persist_dirty(local_t *l, part_t *p, int64_t now_ms);

/* The checks of a batch run as a pipeline, so that their cache misses
 * overlap with each other and with the checks' work: request i + 2 *
 * CHECK_AHEAD has its user id hashed and its table slot prefetched,
 * request i + CHECK_AHEAD its slots read and its entry prefetched (the
 * first slot that may be its user's, within the slot's run), and request
 * i is checked. A prefetch that a check in between made stale (a rehash,
 * a moved or freed entry) costs a wasted fetch, nothing else: the check
 * looks its user up again. The groups of 16 before (slots of a group,
 * then their entries, then its checks) waited for the first miss of each
 * step. */
#define CHECK_AHEAD 8
#define CHECK_RING 32 /* > 2 * CHECK_AHEAD, a power of 2 */

/* The entry of the first of the two slots from h's home in p that may be
 * the user's (the home itself most often), or NULL: for a prefetch. */
static inline const char *entry_guess(const part_t *p, uint64_t h)
{
    size_t mask = p->nslots - 1, i = (size_t)h & mask;
    slot_t s = p->slots[i];
    if (s && !slot_may_be(p, s, h)) s = p->slots[(i + 1) & mask];
    return slot_may_be(p, s, h) ? (const char *)slot_entry(p, s) : NULL;
}

/* Sets p's cut (cut_units) and d (t_units) for now_ms, unless they are
 * for now_ms and p's epoch already: the checks of a batch share them (two
 * divisions a check less). */
static inline void check_units(const local_t *l, part_t *p, int64_t now_ms)
{
    if (p->units_now == now_ms && p->units_epoch == p->epoch) return;
    p->units_now = now_ms;
    p->units_epoch = p->epoch;
    p->cut = cut_units(l, p, now_ms);
    p->d = t_units(l, p, now_ms);
}

static void local_check(ratelimit_t *rl, ratelimit_req_t *reqs, int n, int64_t now_ms)
{
    _Static_assert(CHECK_RING > 2 * CHECK_AHEAD && (CHECK_RING & (CHECK_RING - 1)) == 0, "the pipeline's ring");
    local_t *l = (local_t *)rl;
    uint64_t h[CHECK_RING];
    part_t *ps[CHECK_RING];
    for (int i = -2 * CHECK_AHEAD; i < n; i++) {
        int a = i + 2 * CHECK_AHEAD, b = i + CHECK_AHEAD;
        if (a < n) {
            int ka = a & (CHECK_RING - 1);
            ps[ka] = part_get(l, reqs[a].partition, now_ms);
            h[ka] = fnv1a64(reqs[a].user, reqs[a].user_len);
            __builtin_prefetch(&ps[ka]->slots[h[ka] & (ps[ka]->nslots - 1)]);
        }
        if (b >= 0 && b < n) {
            const char *e = entry_guess(ps[b & (CHECK_RING - 1)], h[b & (CHECK_RING - 1)]);
            if (e) { /* here, not in a helper: see ahead_entry() */
                __builtin_prefetch(e);
                __builtin_prefetch(e + 64);
            }
        }
        if (i < 0) continue;
        int k = i & (CHECK_RING - 1);
        part_t *p = ps[k]; /* part_get of a later request never frees an earlier one's */
        if (reqs[i].user_len > user_max(l)) {
            reqs[i].allowed = true; /* not an id herald accepts (see ENTRY_USER_MAX, NARROW_MAX) */
            continue;
        }
        slot_t *s = lookup_hashed(l, p, reqs[i].user, reqs[i].user_len, h[k], true);
        entry_t *e = slot_entry(p, *s);
        check_units(l, p, now_ms);
        expire_cut(l, e, p->cut);
        uint32_t en = e_n(l, e);
        reqs[i].allowed = en < (uint32_t)rl->limit;
        if (reqs[i].allowed) {
            if (now_ms - p->epoch > span_ms(l)) { /* no sweep for half a window */
                rebase(l, p, now_ms);
                check_units(l, p, now_ms);
            }
            if (en == e_cap(l, e)) e = grow(l, p, s);
            uint32_t cap = e_cap(l, e), at = e_head(l, e) + en; /* < 2 * cap */
            ts_of(l, e)[at < cap ? at : at - cap] = p->d; /* rounded up; 0 when now_ms < epoch */
            e_set_n(l, e, en + 1);
            p->dirty = true;
            if (l->journal) {
                jrec_add(l, p, e, now_ms);
                /* a burst: write the block now rather than hold its
                 * records until the tick */
                if (p->jused >= RL_JOURNAL_MAX) persist_dirty(l, p, now_ms);
            }
        }
    }
}

static void local_assigned(ratelimit_t *rl, int32_t partition, int64_t now_ms)
{
    local_t *l = (local_t *)rl;
    if (partition < 0) return;
    if (partition < l->nparts && l->parts[partition]) {
        part_free(l, l->parts[partition]); /* whoever owned it meanwhile wrote newer state */
        l->parts[partition] = NULL;
    }
    part_get(l, partition, now_ms);
}

static void local_revoked(ratelimit_t *rl, int32_t partition, int64_t now_ms)
{
    local_t *l = (local_t *)rl;
    if (partition < 0 || partition >= l->nparts || !l->parts[partition]) return;
    snapshot(l, l->parts[partition], now_ms, false, true);
    part_free(l, l->parts[partition]);
    l->parts[partition] = NULL;
}

/* The periodic write of one partition: a journal block of its sends,
 * or a compaction when the journal has outgrown the base (or there is no
 * base, or a write failed). true when it compacted (and so swept). */
static bool persist(local_t *l, part_t *p, int64_t now_ms)
{
    if (!p->dirty && !p->need_compact) return false;
    uint64_t room = p->base_len > COMPACT_MIN ? p->base_len : COMPACT_MIN;
    if (!p->has_base || p->need_compact || p->jlen > room) {
        snapshot(l, p, now_ms, true, false);
        return true;
    }
    if (journal_append(l, p) != HR_OK) {
        snapshot(l, p, now_ms, true, false);
        return true;
    }
    return false;
}

/* The write of a full block of sends (from a check): a journal block, even
 * when the journal has outgrown the base - the compaction, which reads
 * every user of the partition, waits for the tick, so that a burst of new
 * users does not compact at every doubling of the partition. A compaction
 * only when there is no base yet or a write failed. */
static void persist_dirty(local_t *l, part_t *p, int64_t now_ms)
{
    if (!p->has_base || p->need_compact || journal_append(l, p) != HR_OK) snapshot(l, p, now_ms, true, false);
}

static void local_tick(ratelimit_t *rl, int64_t now_ms)
{
    local_t *l = (local_t *)rl;
    if (l->last_snapshot == 0) l->last_snapshot = now_ms;
    int64_t every = l->snapshot_ms > 0 ? l->snapshot_ms : 10000;
    if (now_ms - l->last_snapshot < every) return;
    l->last_snapshot = now_ms;
    /* the sweep walks every user: less often than the journal's writes */
    int64_t sweep_every = l->base.window_ms / 8 > every ? l->base.window_ms / 8 : every;
    for (int32_t i = 0; i < l->nparts; i++) {
        part_t *p = l->parts[i];
        if (!p) continue;
        if (p->last_sweep == 0) p->last_sweep = now_ms;
        bool swept = l->journal && persist(l, p, now_ms);
        if (!swept && now_ms - p->last_sweep >= sweep_every) sweep(l, p, now_ms);
    }
}

static void local_close(ratelimit_t *rl)
{
    local_t *l = (local_t *)rl;
    for (int32_t i = 0; i < l->nparts; i++) {
        if (!l->parts[i]) continue;
        snapshot(l, l->parts[i], 0, false, true);
        part_free(l, l->parts[i]);
    }
    pool_release(&l->pool);
    free(l->parts);
    free(l->dir);
    free(l);
}

static hr_t local_open(const ratelimit_opts_t *o, ratelimit_t **out, char *why, size_t why_len)
{
    if (o->limit > RL_LIMIT_MAX) {
        snprintf(why, why_len, "ratelimit: the local backend holds limits up to %d (%d asked)", RL_LIMIT_MAX,
                 o->limit);
        return HR_INVALID;
    }
    local_t *l = xcalloc(1, sizeof(*l));
    l->pmask = UINTPTR_MAX > UINT32_MAX ? SLOT_ADDR_MASK : UINT32_MAX; /* 32-bit: a 32-bit hash */
    if (o->state_dir && *o->state_dir) {
        if (mkdir_p(o->state_dir, 0700) != HR_OK) {
            snprintf(why, why_len, "ratelimit: cannot create %s", o->state_dir);
            free(l);
            return HR_ERR;
        }
        l->dir = xstrdup(o->state_dir);
    }
    l->snapshot_ms = o->snapshot_ms;
    l->wide = o->limit > NARROW_MAX;
    l->unit = unit_of(o->window_ms);
    l->journal = l->dir && o->snapshot_ms > 0;
    *out = &l->base;
    return HR_OK;
}

const ratelimit_ops_t ratelimit_local_ops = {
    .name = "local",
    .open = local_open,
    .check = local_check,
    .assigned = local_assigned,
    .revoked = local_revoked,
    .tick = local_tick,
    .close = local_close,
};
