/*
 * app.h - the running herald process: config, bus and store. One app_t per
 * process; parts receive it borrowed and never free it.
 */
#ifndef HERALD_APP_H
#define HERALD_APP_H

#include "bus/bus.h"
#include "config/config.h"
#include "metrics/metrics.h"
#include "store/store.h"

#include <stdatomic.h>

/* Topic names (DESIGN §1). */
#define TOPIC_RAW "raw-events"
#define TOPIC_STATUS "notification-status"
#define TOPIC_DLQ "notifications-dlq"
/* notifications-<channel>: see topic_for_channel(). */

typedef struct app {
    config_t *cfg;
    bus_t *bus;
    store_t *store;
    atomic_int stopping;        /* set by SIGTERM/SIGINT */
    /* Counters and histograms for /metrics are process-wide, declared in
     * metrics/metrics.def (METRIC_INC, METRIC_HIST). */
} app_t;

/* "notifications-push" etc. Static string. */
const char *topic_for_channel(int channel);

#endif
