/*
 * ingest.h - the first stage: accepted events go to raw-events.
 */
#ifndef HERALD_INGEST_H
#define HERALD_INGEST_H

#include "app.h"
#include "model/event.h"

/* Publishes validated events to raw-events keyed by event_id, stamping each
 * with "_accepted_at_us" (for latency figures). Returns once every record is
 * acknowledged by the bus: HR_OK; HR_AGAIN when the bus is full (answer 503);
 * another error when the bus failed. Runs on the caller's thread. */
hr_t ingest_publish(app_t *app, event_t *evs, int n);

#endif
