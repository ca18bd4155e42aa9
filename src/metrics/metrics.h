/*
 * metrics.h - herald's metrics, generated from the one list in metrics.def:
 * the per-thread counters, the shared latency histograms, the snapshot a
 * scrape reads, the Prometheus text exposition (exposition.c) and its
 * parser (the benchmark reads /metrics with it).
 *
 * DESIGN. The counters are process-wide, like the default registry of the
 * Prometheus client libraries: one herald process is one scrape target, and
 * the hot paths count without a handle. Each thread that counts gets its own
 * cache-line-aligned block of slots on its first increment (h2o keeps its
 * counters per thread in the same way), so an increment is a relaxed load
 * and store on a line no other thread writes: no locked instruction, no
 * line bouncing between stages. A scrape takes the registry lock and sums
 * the live threads' blocks and the total of the threads that have ended;
 * a thread's block is folded into that total, under the same lock, when the
 * thread exits. Slots are C11 atomics written only by their thread, so the
 * scrape's reads are not data races; a scrape may see an increment of a
 * running thread a little late, never torn.
 * Histograms are shared hist_t merged once per batch (core/hist.h).
 *
 * Tests share the process's counters: compare a counter with its value
 * before the action (METRIC_VALUE) rather than with zero.
 *
 * Threads: increments and METRIC_VALUE from any thread; snapshots and the
 * exposition from any thread (they hold the registry lock briefly).
 */
#ifndef HERALD_METRICS_H
#define HERALD_METRICS_H

#include "core/buf.h"
#include "core/common.h"
#include "core/hist.h"
#include "model/notif.h"

#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct app app_t;

/* ---- label sets (metrics.def's labels column) ---- */

typedef enum metric_labels {
    ML_NONE,
    ML_CHANNEL,     /* channel="push" ...: channel_t order */
    ML_CHANNEL_RESULT, /* channel="push",result="sent" ...: METRIC_CHANNEL_RESULT below */
    ML_HTTP_CLASS,  /* class="aborted", "1xx" .. "5xx": index 0, 1 .. 5 */
    ML_BUS_GROUP,   /* group="fanout",topic="raw-events" ...: METRIC_BUS_* below */
    ML_BUILD,       /* version="...",bus="..." */
    ML_CALLBACK,    /* provider="twilio",outcome="delivered" ...: METRIC_CB_AT below */
} metric_labels_t;

/* Values per label set, and the dimension of a snapshot field. */
#define METRIC_N_NONE 1
#define METRIC_N_CHANNEL CH__COUNT
#define METRIC_N_CHANNEL_RESULT (CH__COUNT * METRIC_RESULT__COUNT)
#define METRIC_N_HTTP_CLASS 6
#define METRIC_N_BUS_GROUP (2 + CH__COUNT)
#define METRIC_N_BUILD 1
#define METRIC_N_CALLBACK (METRIC_CB_PROVIDERS * METRIC_CB__OUTCOMES)
#define METRIC_DIM_NONE
#define METRIC_DIM_CHANNEL [METRIC_N_CHANNEL]
#define METRIC_DIM_CHANNEL_RESULT [METRIC_N_CHANNEL_RESULT]
#define METRIC_DIM_HTTP_CLASS [METRIC_N_HTTP_CLASS]
#define METRIC_DIM_BUS_GROUP [METRIC_N_BUS_GROUP]
#define METRIC_DIM_BUILD
#define METRIC_DIM_CALLBACK [METRIC_N_CALLBACK]

/* The outcomes of ML_CHANNEL_RESULT (the lifecycle states a provider call
 * ends in), and the index of channel ch's outcome res. */
enum metric_result { METRIC_RESULT_SENT, METRIC_RESULT_FAILED, METRIC_RESULT_DEAD, METRIC_RESULT__COUNT };
#define METRIC_CHANNEL_RESULT(ch, res) ((ch) * METRIC_RESULT__COUNT + (res))

/* The consumer groups of ML_BUS_GROUP. */
#define METRIC_BUS_FANOUT 0
#define METRIC_BUS_DISPATCH(ch) (1 + (ch))
#define METRIC_BUS_STATUS (1 + CH__COUNT)

/* The values of ML_CALLBACK: delivery callbacks (src/http/api_callbacks.c)
 * by provider type and what became of each report. */
#define METRIC_CB_TWILIO 0
#define METRIC_CB_SENDGRID 1
#define METRIC_CB_PROVIDERS 2
#define METRIC_CB_OUTCOMES(X)                                                                   \
    X(METRIC_CB_DELIVERED, "delivered")     /* recorded: delivered */                          \
    X(METRIC_CB_UNDELIVERED, "undelivered") /* recorded: undelivered */                        \
    X(METRIC_CB_BOUNCED, "bounced")         /* recorded: bounced */                            \
    X(METRIC_CB_IGNORED, "ignored")         /* a status herald does not record (queued, open) */ \
    X(METRIC_CB_UNKNOWN, "unknown")         /* no such notification (pruned, or not stored yet) */ \
    X(METRIC_CB_NO_ID, "no_id")             /* an event without herald's notification id */    \
    X(METRIC_CB_FORBIDDEN, "forbidden")     /* a request whose signature did not verify */     \
    X(METRIC_CB_MALFORMED, "malformed")     /* a request refused with 400 or 415 */            \
    X(METRIC_CB_UNAVAILABLE, "unavailable") /* a request answered 503: the bus or store failed */
enum metric_cb_outcome {
#define METRIC_CB_ENUM(id, name) id,
    METRIC_CB_OUTCOMES(METRIC_CB_ENUM)
#undef METRIC_CB_ENUM
    METRIC_CB__OUTCOMES
};
/* The ML_CALLBACK index of (provider, outcome). */
#define METRIC_CB_AT(provider, outcome) ((provider) * METRIC_CB__OUTCOMES + (outcome))

/* ---- counting ---- */

/* Counter slots: a counter's values are MC_<id> .. MC_<id>_last_. */
enum metric_counter_slot {
#define METRIC_COUNTER(id, name, labels, help)                                                    \
    MC_##id, MC_##id##_last_ = MC_##id + METRIC_N_##labels - 1,
#include "metrics/metrics.def"
    MC__COUNT
};

/* Histogram slots, likewise. */
enum metric_hist_slot {
#define METRIC_HISTOGRAM(id, name, labels, help)                                                  \
    MH_##id, MH_##id##_last_ = MH_##id + METRIC_N_##labels - 1,
#include "metrics/metrics.def"
    MH__COUNT
};

/* One thread's counters. Private to metrics.c but for the inline increment:
 * the counters come first and the block is allocated on a cache-line
 * boundary, in whole lines. */
typedef struct metrics_thread {
    _Alignas(64) _Atomic uint64_t c[MC__COUNT];
    struct metrics_thread *prev, *next;
} metrics_thread_t;

extern _Thread_local metrics_thread_t *metrics__self;
/* The calling thread's block, created and registered on first use. */
metrics_thread_t *metrics__attach(void);
extern hist_t metrics__hists[MH__COUNT];

static inline void metrics__add(int slot, uint64_t n)
{
    metrics_thread_t *t = metrics__self;
    if (__builtin_expect(t == NULL, 0)) t = metrics__attach();
    /* only this thread writes the slot: a plain read-modify-write */
    uint64_t v = atomic_load_explicit(&t->c[slot], memory_order_relaxed);
    atomic_store_explicit(&t->c[slot], v + n, memory_order_relaxed);
}

static inline int metrics__at(int first, int last, int label)
{
    assert(label >= 0 && first + label <= last);
    (void)last;
    return first + label;
}

/* Compile-time check inside an expression. */
#define METRIC__ASSERT(cond, msg) ((void)sizeof(struct { _Static_assert(cond, msg); int x_; }))
#define METRIC__PLAIN(id)                                                                         \
    (METRIC__ASSERT(MC_##id == MC_##id##_last_, #id " has labels: use the _AT form"), MC_##id)

/* counter += n (an unlabelled counter). Any thread. */
#define METRIC_ADD(id, n) metrics__add(METRIC__PLAIN(id), (uint64_t)(n))
#define METRIC_INC(id) METRIC_ADD(id, 1)
/* counter{label} += n: label is the index in the counter's label set. */
#define METRIC_ADD_AT(id, label, n)                                                               \
    metrics__add(metrics__at(MC_##id, MC_##id##_last_, (label)), (uint64_t)(n))
/* The shared histogram of id{label}, for hist_merge(). */
#define METRIC_HIST(id, label) (&metrics__hists[metrics__at(MH_##id, MH_##id##_last_, (label))])

/* A counter's current value, summed over threads (takes the lock: not for
 * hot paths). */
int64_t metrics_counter_value(int slot);
#define METRIC_VALUE(id) metrics_counter_value(METRIC__PLAIN(id))
#define METRIC_VALUE_AT(id, label) metrics_counter_value(metrics__at(MC_##id, MC_##id##_last_, (label)))

/* ---- snapshots ---- */

/* Every metric's values at one time: counters as int64_t, histograms as
 * hist_snap_t (microseconds), values read at scrape time as double (NaN:
 * not exposed, e.g. bus lag on Kafka). A field has one element per label
 * value, and is a scalar when the metric has no labels. */
typedef struct metrics_snap {
#define METRIC_COUNTER(id, name, labels, help) int64_t id METRIC_DIM_##labels;
#define METRIC_HISTOGRAM(id, name, labels, help) hist_snap_t id METRIC_DIM_##labels;
#define METRIC_READ(id, type, name, labels, help) double id METRIC_DIM_##labels;
#include "metrics/metrics.def"
    const char *build_bus;      /* build_info's bus label; NULL = "none" (and when parsed) */
} metrics_snap_t;

/* The counters and histograms; every METRIC_READ value NaN. */
void metrics_snapshot(metrics_snap_t *s);

/* ---- the list as data (for the exposition and its parser) ---- */

typedef enum metric_kind { MK_COUNTER, MK_HISTOGRAM, MK_READ } metric_kind_t;

typedef struct metric_def {
    const char *name;
    const char *help;
    const char *type;           /* exposition TYPE: counter, gauge, histogram */
    metric_kind_t kind;
    metric_labels_t labels;
    int n;                      /* label values */
    size_t off;                 /* of the field in metrics_snap_t */
} metric_def_t;

extern const metric_def_t metric_defs[];
extern const size_t metric_ndefs;

/* ---- exposition.c ---- */

/* Histograms with every fine bucket (16 us .. 134 s, 8 per power of two)
 * instead of the HIST_COARSE round ones: what quantiles need
 * (GET /metrics?buckets=fine). */
#define METRICS_FINE 1u

/* A snapshot plus the values read at scrape time: bus lag (embedded bus),
 * build info, process CPU, memory and file descriptors. app may have no
 * bus. Any thread. */
void metrics_collect(app_t *app, metrics_snap_t *s);
/* Prometheus text format 0.0.4 of s, appended to out. Pure. */
void metrics_snap_format(const metrics_snap_t *s, unsigned flags, buf_t *out);
/* Reads text written by metrics_snap_format (with or without
 * METRICS_FINE) back into s: the same values, except histograms keep the
 * buckets that were exposed (coarse or fine) and no max (which travels as
 * delivery_latency_max). Unknown lines are skipped. HR_INVALID when no
 * line names a metric of the list. */
hr_t metrics_snap_parse(const char *text, metrics_snap_t *s);
/* metrics_collect + metrics_snap_format: the body of GET /metrics. */
hr_t metrics_render(app_t *app, unsigned flags, buf_t *out);
/* `channel="push"` etc.: the labels of value i of a label set (nothing for
 * ML_NONE). */
void metrics_label(const metrics_snap_t *s, metric_labels_t set, int i, buf_t *out);

#endif
