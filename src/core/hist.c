/*
 * hist.c - log-linear histograms (see hist.h for the bucket layout).
 */
#include "core/hist.h"

#include <pthread.h>
#include <string.h>

_Static_assert(HIST_BUCKETS == 304, "bucket layout changed: update the exposition and docs");

const uint64_t hist_coarse_le[HIST_COARSE] = {
    50,        70,                                                    /* us */
    100,       200,       300,       500,       700,                  /* 100 us */
    1000,      2000,      3000,      5000,      7000,                 /* 1 ms */
    10000,     20000,     30000,     50000,     70000,                /* 10 ms */
    100000,    200000,    300000,    500000,    700000,               /* 100 ms */
    1000000,   2000000,   3000000,   5000000,   7000000,              /* 1 s */
    10000000,  20000000,  30000000,  60000000,                        /* 10 s .. 60 s */
};
uint8_t hist_coarse_of[HIST_BUCKETS];
static pthread_once_t coarse_once = PTHREAD_ONCE_INIT;

int hist_index(uint64_t v)
{
    if (v < HIST_LINEAR) return (int)v;
    int e = 63 - __builtin_clzll(v);           /* >= HIST_SUB_BITS + 1 */
    if (e >= HIST_MAX_EXP) return HIST_BUCKETS - 1;
    int sub = (int)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
    return HIST_LINEAR + (e - HIST_SUB_BITS - 1) * HIST_SUB + sub;
}

uint64_t hist_bucket_lo(int i)
{
    if (i < HIST_LINEAR) return (uint64_t)i;
    int j = i - HIST_LINEAR;
    int e = j / HIST_SUB + HIST_SUB_BITS + 1;
    uint64_t sub = (uint64_t)(j % HIST_SUB);
    return (HIST_SUB + sub) << (e - HIST_SUB_BITS);
}

uint64_t hist_bucket_hi(int i)
{
    if (i < HIST_LINEAR) return (uint64_t)i;
    int j = i - HIST_LINEAR;
    int e = j / HIST_SUB + HIST_SUB_BITS + 1;
    return hist_bucket_lo(i) + ((uint64_t)1 << (e - HIST_SUB_BITS)) - 1;
}

static void coarse_build(void)
{
    int j = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        uint64_t lo = hist_bucket_lo(i);
        while (j < HIST_COARSE && hist_coarse_le[j] <= lo) j++;
        hist_coarse_of[i] = (uint8_t)j;
    }
}

void hist_local_init(hist_local_t *h)
{
    pthread_once(&coarse_once, coarse_build);
    memset(h, 0, sizeof(*h));
    h->lo = HIST_BUCKETS;
    h->hi = -1;
}

void hist_merge(hist_t *shared, hist_local_t *local)
{
    if (local->total == 0) return;
    for (int i = local->lo; i <= local->hi; i++) {
        if (!local->count[i]) continue;
        atomic_fetch_add_explicit(&shared->count[i], local->count[i], memory_order_relaxed);
        local->count[i] = 0;
    }
    for (int j = 0; j <= HIST_COARSE; j++) {
        if (!local->coarse[j]) continue;
        atomic_fetch_add_explicit(&shared->coarse[j], local->coarse[j], memory_order_relaxed);
        local->coarse[j] = 0;
    }
    atomic_fetch_add_explicit(&shared->sum, local->sum, memory_order_relaxed);
    atomic_fetch_add_explicit(&shared->total, local->total, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&shared->max, memory_order_relaxed);
    while (local->max > m &&
           !atomic_compare_exchange_weak_explicit(&shared->max, &m, local->max, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
    local->total = local->sum = local->max = 0;
    local->lo = HIST_BUCKETS;
    local->hi = -1;
}

void hist_read(const hist_t *h, hist_snap_t *out)
{
    uint64_t total = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        out->count[i] = atomic_load_explicit(&h->count[i], memory_order_relaxed);
        total += out->count[i];
    }
    /* total is the sum of the buckets as read, so quantiles stay consistent
     * with the counts even while a merge is running */
    out->total = total;
    for (int j = 0; j <= HIST_COARSE; j++)
        out->coarse[j] = atomic_load_explicit(&h->coarse[j], memory_order_relaxed);
    out->sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
    out->max = atomic_load_explicit(&h->max, memory_order_relaxed);
}

void hist_snap_sub(const hist_snap_t *a, const hist_snap_t *b, hist_snap_t *out)
{
    int top = -1;
    out->total = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        out->count[i] = a->count[i] >= b->count[i] ? a->count[i] - b->count[i] : 0;
        out->total += out->count[i];
        if (out->count[i]) top = i;
    }
    for (int j = 0; j <= HIST_COARSE; j++)
        out->coarse[j] = a->coarse[j] >= b->coarse[j] ? a->coarse[j] - b->coarse[j] : 0;
    out->sum = a->sum >= b->sum ? a->sum - b->sum : 0;
    /* the window's max lies in its highest bucket; a's max is exact when it
     * falls in that bucket */
    out->max = 0;
    if (top >= 0) {
        uint64_t hi = hist_bucket_hi(top);
        out->max = a->max >= hist_bucket_lo(top) && a->max <= hi ? a->max : hi;
    }
}

uint64_t hist_quantile(const hist_snap_t *s, double q)
{
    if (s->total == 0) return 0;
    if (q < 0) q = 0;
    if (q > 1) q = 1;
    /* rank of the wanted value, 1-based: ceil(q * total), at least 1 */
    uint64_t rank = (uint64_t)(q * (double)s->total);
    if ((double)rank < q * (double)s->total) rank++;
    if (rank == 0) rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += s->count[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_hi(i);
            return s->max && v > s->max ? s->max : v;
        }
    }
    return s->max;
}
