/*
 * ingest.c - the HTTP API's way onto the bus: validated events go to
 * raw-events, keyed by event_id, as binary event records (model/event.h):
 * stamped with the time they were accepted, and read by fan-out without
 * parsing JSON again. Not a stage (no consumer group): it runs
 * on the HTTP pool threads, which wait for the bus to acknowledge each
 * request's events (up to ingest.ack_timeout_ms) before answering.
 */
#include "stage/ingest.h"

#include "core/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* When the producer queue is full, flush for FULL_WAIT_MS and try again, at
 * most FULL_TRIES times (about 2 s), then answer "full" (503). */
#define FULL_TRIES 200
#define FULL_WAIT_MS 10


/* Fan-out's backlog, cached for every HTTP thread: one thread refreshes it
 * (trylock) while the others use the last value. Keyed by the bus, since a
 * test process may run several. */
static struct {
    pthread_mutex_t refresh;
    _Atomic(bus_t *) bus;
    _Atomic int64_t at_ns;
    _Atomic int64_t backlog;
} cache = {.refresh = PTHREAD_MUTEX_INITIALIZER};

static int64_t backlog_now(app_t *app)
{
    bus_lag_t *lags = NULL;
    int n = 0;
    if (bus_lag(app->bus, GROUP_FANOUT, TOPIC_RAW, &lags, &n) != HR_OK) return -1;
    int64_t sum = 0;
    for (int i = 0; i < n; i++) sum += lags[i].lag;
    free(lags);
    return sum;
}

hr_t ingest_admit(app_t *app, int64_t *backlog)
{
    int64_t bound = app->cfg->ingest_max_backlog;
    *backlog = -1;
    if (bound <= 0 || !app->bus) return HR_OK;
    int64_t now = hclock_mono_ns();
    int64_t ttl_ms = strcmp(bus_backend_name(app->bus), "embedded") == 0 ? INGEST_BACKLOG_REFRESH_MS : 5000;
    bool fresh = atomic_load(&cache.bus) == app->bus && now - atomic_load(&cache.at_ns) < ttl_ms * 1000000;
    if (!fresh && pthread_mutex_trylock(&cache.refresh) == 0) {
        int64_t v = backlog_now(app);
        atomic_store(&cache.backlog, v);
        atomic_store(&cache.at_ns, hclock_mono_ns());
        atomic_store(&cache.bus, app->bus);
        pthread_mutex_unlock(&cache.refresh);
    }
    if (atomic_load(&cache.bus) != app->bus) return HR_OK; /* another thread is refreshing it */
    *backlog = atomic_load(&cache.backlog);
    return *backlog > bound ? HR_AGAIN : HR_OK;
}

hr_t ingest_publish(app_t *app, event_t *evs, int n)
{
    /* On the heap: if the bus does not answer within the timeout, the API
     * answers 503 and the batch lives on until its last ack. */
    bus_batch_t *batch = bus_batch_new();
    hr_t r = HR_OK;
    int64_t now = hclock_now_us();
    /* every record into one buffer, then one bus_produce_batch (the bus
     * looks the topic up and takes each partition's lock once per call) */
    buf_t rec;
    buf_init(&rec, 0);
    size_t *end = xmalloc((size_t)n * sizeof(*end));
    bus_rec_t *recs = xmalloc((size_t)n * sizeof(*recs));

    for (int i = 0; i < n && r == HR_OK; i++) {
        /* the record carries the trace context fan-out carries on: the
         * event's own or the request's, in version 00 form */
        evs[i].accepted_at_us = now;
        r = event_encode(&evs[i], &rec);
        end[i] = rec.len;
    }
    for (int i = 0; i < n && r == HR_OK; i++) {
        size_t at = i ? end[i - 1] : 0;
        recs[i] = (bus_rec_t){.partition = -1, .key = evs[i].event_id, .key_len = strlen(evs[i].event_id),
                              .value = rec.data + at, .value_len = end[i] - at};
    }
    for (int k = 0, tries = 0; k < n && r == HR_OK;) {
        int got = 0;
        r = bus_produce_batch(app->bus, TOPIC_RAW, recs + k, n - k, batch, &got);
        k += got;
        if (r != HR_AGAIN || tries++ > FULL_TRIES) break;
        r = HR_OK; /* full: let the bus catch up, then the rest */
        bus_flush(app->bus, FULL_WAIT_MS);
    }
    free(recs);
    free(end);
    buf_release(&rec);
    hr_t w = bus_batch_wait(app->bus, batch, app->cfg->ingest_ack_timeout_ms);
    if (w == HR_TIMEOUT)
        bus_batch_abandon(batch);
    else
        bus_batch_free(batch);
    if (r == HR_OK) r = w;
    if (r == HR_OK)
        METRIC_ADD(events_accepted, n);
    else
        log_warn("ingest", "publishing %d events failed: %s", n, hr_str(r));
    return r;
}
