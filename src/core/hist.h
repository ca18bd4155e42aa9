/*
 * hist.h - log-linear histograms of non-negative integers (latencies in
 * microseconds), in the style of HdrHistogram: values 0..15 have a bucket
 * each; above that every power of two is split into 8 equal sub-buckets, so
 * a bucket's width is at most 1/8 of its lower bound (12.5 % relative
 * precision) from 16 up to 2^40 (12 days in microseconds). Values beyond the
 * last bucket land in it. Every value is counted: no sampling, no decay.
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

typedef struct hist {
    _Atomic uint64_t count[HIST_BUCKETS];
    _Atomic uint64_t total;
    _Atomic uint64_t sum;
    _Atomic uint64_t max;
} hist_t;

typedef struct hist_local {
    uint64_t count[HIST_BUCKETS];
    uint64_t total, sum, max;
    int lo, hi;                 /* touched index range; lo > hi when empty */
} hist_local_t;

/* A plain (non-atomic) copy of a histogram, for reading and arithmetic. */
typedef struct hist_snap {
    uint64_t count[HIST_BUCKETS];
    uint64_t total, sum, max;
} hist_snap_t;

/* Bucket of v. */
int hist_index(uint64_t v);
/* Smallest and largest value that fall in bucket i. */
uint64_t hist_bucket_lo(int i);
uint64_t hist_bucket_hi(int i);

void hist_local_init(hist_local_t *h);
static inline void hist_record(hist_local_t *h, uint64_t v)
{
    int i = hist_index(v);
    h->count[i]++;
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
