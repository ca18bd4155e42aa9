/*
 * app.h - the running herald process: config, bus, store, and the
 * pipeline's shared counters. One app_t per process; parts receive it
 * borrowed and never free it.
 */
#ifndef HERALD_APP_H
#define HERALD_APP_H

#include "bus/bus.h"
#include "config/config.h"
#include "core/hist.h"
#include "model/names.h"
#include "store/store.h"

#include <stdatomic.h>

typedef struct app {
    config_t *cfg;
    bus_t *bus;
    store_t *store;
    atomic_int stopping;        /* set by SIGTERM/SIGINT */
    /* counters for /metrics */
    atomic_llong events_accepted;
    atomic_llong events_rejected;
    atomic_llong events_duplicate;
    atomic_llong notifs_fanned_out;
    atomic_llong notifs_suppressed;
    atomic_llong notifs_sent;
    atomic_llong notifs_failed;
    atomic_llong dlq_records;
    atomic_llong status_rows_written;
    /* End-to-end latency per channel, in microseconds: from the event's
     * accepted_at_us (stamped by ingest) to the return of the provider call
     * that delivered the notification. Merged by the dispatchers once per
     * batch; exposed on /metrics as herald_delivery_latency_seconds. */
    hist_t delivery_latency[CH__COUNT];
} app_t;

#endif
