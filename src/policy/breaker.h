/*
 * breaker.h - a circuit breaker per provider: stop calling a provider that
 * is failing, so that lag builds in the bus instead of a retry storm.
 *
 *   closed --(error rate over the window >= error_pct, with at least
 *             min_requests in it)--> open
 *   open --(cool-down elapsed; noticed by breaker_allow)--> half-open
 *   half-open --(probes results all OK)--> closed
 *   half-open --(one probe fails)--> open (a new cool-down)
 *
 * The window is time-bucketed: `buckets` slots of window_ms / buckets each,
 * counting successes and failures; a slot older than the window is reused.
 * In half-open at most `probes` requests are allowed until their results
 * are recorded.
 *
 * Every state change goes through one function: it logs a line, calls the
 * optional on_change callback, counts herald_breaker_transitions_total and
 * updates the herald_breaker_state gauge (per channel: the worst state of
 * the channel's breakers, 0 closed, 1 half-open, 2 open).
 *
 * Exported breakers (channel >= 0) are also listed in a process-wide
 * registry that breaker_list() reads: per provider name, the worst state
 * of its breakers (one per dispatch worker), for GET /v1/ops/summary and
 * the status page.
 *
 * Threads: a breaker_t belongs to one thread (the dispatcher that owns the
 * provider); the gauge and the registry behind it are process-wide (atomic
 * states; a mutex held briefly by breaker_new, breaker_free and
 * breaker_list).
 */
#ifndef HERALD_POLICY_BREAKER_H
#define HERALD_POLICY_BREAKER_H

#include "core/common.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum breaker_state {
    BREAKER_CLOSED = 0,
    BREAKER_HALF_OPEN = 1,
    BREAKER_OPEN = 2,
} breaker_state_t;

const char *breaker_state_name(breaker_state_t s); /* "closed", "half-open", "open" */

typedef void (*breaker_change_fn)(void *ud, const char *name, breaker_state_t from,
                                  breaker_state_t to, int64_t now_ms);

typedef struct breaker_opts {
    const char *name;       /* for logs and the callback (copied); e.g. the provider's name */
    int channel;            /* channel_t for the metrics; -1 = not exported */
    int64_t window_ms;      /* error-rate window: 10000 */
    int buckets;            /* slots in the window: 10 */
    int min_requests;       /* results in the window before it may open: 20 */
    int error_pct;          /* open at this failure percentage or above: 20 */
    int64_t cooldown_ms;    /* open this long before half-open: 30000 */
    int probes;             /* requests allowed (and successes needed) in half-open: 3 */
    breaker_change_fn on_change; /* optional; called on this thread, after the change */
    void *ud;
} breaker_opts_t;

/* The defaults above; name "provider", channel -1, no callback. */
void breaker_opts_default(breaker_opts_t *o);

typedef struct breaker breaker_t;

/* A closed breaker. Values out of range are clamped (buckets 1..1000,
 * probes >= 1, error_pct 1..100, min_requests >= 1). Free with
 * breaker_free. */
breaker_t *breaker_new(const breaker_opts_t *o);
void breaker_free(breaker_t *b);

/* May one request go to the provider now? Closed: yes. Open: no, until the
 * cool-down ends (then half-open). Half-open: yes for up to `probes`
 * requests whose results are not recorded yet. A yes in half-open takes a
 * probe slot: the caller must breaker_record() its result. */
bool breaker_allow(breaker_t *b, int64_t now_ms);

/* Returns n half-open probe slots that breaker_allow granted for requests
 * that were not made after all (a later policy step refused them). No
 * effect in other states. */
void breaker_cancel(breaker_t *b, int n);

/* The result of a request that breaker_allow let through. A result that
 * arrives while open (sent before it opened) is ignored. */
void breaker_record(breaker_t *b, int64_t now_ms, bool ok);

/* The state at now_ms (open turns half-open here too once the cool-down
 * is over). */
breaker_state_t breaker_state(breaker_t *b, int64_t now_ms);

/* When breaker_allow may say yes again: open -> the end of the cool-down
 * (pause the partitions until then); half-open with every probe out ->
 * now_ms (ask again once a probe's result is recorded); otherwise now_ms. */
int64_t breaker_retry_at(breaker_t *b, int64_t now_ms);

/* Transitions so far (tests and logs). */
int64_t breaker_transitions(const breaker_t *b);

/* The herald_breaker_state gauge of a channel: the worst state of its live
 * breakers (BREAKER_CLOSED when it has none). Any thread. */
breaker_state_t breaker_channel_state(int channel);

/* One provider's breakers as breaker_list() reports them. */
typedef struct breaker_info {
    char name[64];              /* the provider's name (breaker_opts_t.name) */
    int channel;                /* channel_t */
    breaker_state_t state;      /* the worst state of its breakers */
    int breakers;               /* how many (one per dispatch worker) */
    int open;                   /* of which open */
    int half_open;              /* of which half-open */
    int64_t open_until_ms;      /* open: the latest end of a cool-down; else 0 */
    int64_t transitions;        /* state changes so far, all its breakers */
} breaker_info_t;

/* The live exported breakers grouped by (name, channel), sorted by channel
 * then name. *out is allocated (free() it; NULL when there are none). A
 * breaker that is open past its cool-down shows open until its owner next
 * asks it (breaker_allow), which is when it turns half-open. Any thread. */
void breaker_list(breaker_info_t **out, int *n);

#endif
