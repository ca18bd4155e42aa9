/*
 * hist.h - log-linear histograms of non-negative integers (latencies in
 * microseconds), in the style of HdrHistogram: values 0..15 have a bucket
 * each; above that every power of two is split into 8 equal sub-buckets, so
 * a bucket's width is at most 1/8 of its lower bound (12.5 % relative
 * precision) from 16 up to 2^40 (12 days in microseconds). Values beyond the
 * last bucket land in it. Every value is counted: no sampling, no decay.
 *
 * Beside these fine buckets every value is also counted in one of
 * HIST_COARSE + 1 coarse buckets with round bounds (1, 2, 3, 5, 7 per
 * decade, 50 us to 60 s, then overflow): the set /metrics exposes, so that a
 * dashboard can ask for "under 500 ms" exactly. The fine buckets cannot give
 * those counts (a round bound falls inside a fine bucket), hence the second
 * count per record; it costs a table look-up and a compare. Quantiles use
 * the fine buckets.
 *
 * Two types:
 *  - hist_t, shared: atomic counters, written by hist_merge(), read by any
 *    thread at any time (scrapes). Zero-initialised memory is an empty hist_t.
 *  - hist_local_t, one thread's scratch: hist_record() is a plain increment;
 *    hist_merge() adds it to a hist_t and clears it. A batch of records with
 *    similar values touches few buckets, so the merge is a handful of atomic
 *    adds per batch rather than one per record.
 */
#ifndef HERALD_HIST_H
#define HERALD_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define HIST_SUB_BITS 3
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_LINEAR (2 * HIST_SUB)              /* values below this are exact */
#define HIST_MAX_EXP 40                          /* values < 2^40 have their own bucket */
#define HIST_BUCKETS (HIST_LINEAR + (HIST_MAX_EXP - HIST_SUB_BITS - 1) * HIST_SUB)

/* Coarse bucket j < HIST_COARSE holds the values v (whole microseconds) with
 * hist_coarse_le[j-1] <= v < hist_coarse_le[j]; bucket HIST_COARSE holds
 * the rest. A value of v us stands for [v, v+1) us, so bucket j is exposed
 * as le = hist_coarse_le[j] microseconds. */
#define HIST_COARSE 31
extern const uint64_t hist_coarse_le[HIST_COARSE];
/* Coarse bucket of the smallest value of each fine bucket (hist_local_init
 * fills it once per process). */
extern uint8_t hist_coarse_of[HIST_BUCKETS];

typedef struct hist {
    _Atomic uint64_t count[HIST_BUCKETS];
    _Atomic uint64_t coarse[HIST_COARSE + 1];
    _Atomic uint64_t total;
    _Atomic uint64_t sum;
    _Atomic uint64_t max;
} hist_t;

typedef struct hist_local {
    uint64_t count[HIST_BUCKETS];
    uint64_t coarse[HIST_COARSE + 1];
    uint64_t total, sum, max;
    int lo, hi;                 /* touched index range; lo > hi when empty */
} hist_local_t;

/* A plain (non-atomic) copy of a histogram, for reading and arithmetic. */
typedef struct hist_snap {
    uint64_t count[HIST_BUCKETS];
    uint64_t coarse[HIST_COARSE + 1];
    uint64_t total, sum, max;   /* total: the fine buckets' sum */
} hist_snap_t;

/* Bucket of v. */
int hist_index(uint64_t v);
/* Smallest and largest value that fall in bucket i. */
uint64_t hist_bucket_lo(int i);
uint64_t hist_bucket_hi(int i);

/* Coarse bucket of v. */
static inline int hist_coarse_index(int fine, uint64_t v)
{
    int j = hist_coarse_of[fine];
    /* a fine bucket is narrower than the gap between two coarse bounds, so
     * at most one bound lies inside it */
    if (j < HIST_COARSE && v >= hist_coarse_le[j]) j++;
    return j;
}

/* Clears h (and builds hist_coarse_of on the first call). */
void hist_local_init(hist_local_t *h);
static inline void hist_record(hist_local_t *h, uint64_t v)
{
    int i = hist_index(v);
    h->count[i]++;
    h->coarse[hist_coarse_index(i, v)]++;
    h->total++;
    h->sum += v;
    if (v > h->max) h->max = v;
    if (i < h->lo) h->lo = i;
    if (i > h->hi) h->hi = i;
}
/* Adds local to shared and clears local. Any thread. */
void hist_merge(hist_t *shared, hist_local_t *local);

/* Copies a shared histogram (each counter read atomically; a concurrent
 * merge may be seen in part, never torn). */
void hist_read(const hist_t *h, hist_snap_t *out);
/* out = a - b, bucket by bucket (b an earlier snapshot of the same
 * histogram). max is a's (the shared max is monotonic). */
void hist_snap_sub(const hist_snap_t *a, const hist_snap_t *b, hist_snap_t *out);
/* The value at quantile q (0..1): the upper bound of the bucket holding the
 * q-th value, capped at max when max is known. 0 when empty. */
uint64_t hist_quantile(const hist_snap_t *s, double q);

#endif
