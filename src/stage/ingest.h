/*
 * ingest.h - the first stage: accepted events go to raw-events.
 */
#ifndef HERALD_INGEST_H
#define HERALD_INGEST_H

#include "app.h"
#include "model/event.h"

/* Publishes validated events to raw-events keyed by event_id, as binary
 * event records (model/event.h) stamped with the accepted time (for latency
 * figures; evs[i].accepted_at_us is set) and carrying ev->traceparent. Returns once every record is
 * acknowledged by the bus: HR_OK; HR_AGAIN when the bus is full (answer 503);
 * another error when the bus failed. Runs on the caller's thread. */
hr_t ingest_publish(app_t *app, event_t *evs, int n);

/* Admission control: HR_AGAIN while fan-out's backlog on raw-events (records
 * not yet committed by its group) is above ingest.max_backlog_records, HR_OK
 * otherwise (and always when the bound is 0). *backlog gets the backlog
 * (-1 when unknown). Cheap: the backlog is cached and refreshed at most
 * every INGEST_BACKLOG_REFRESH_MS (embedded bus; 5 s on Kafka, where asking
 * costs a client and broker round trips) by one of the calling threads.
 * Any thread. */
#define INGEST_BACKLOG_REFRESH_MS 100
hr_t ingest_admit(app_t *app, int64_t *backlog);

#endif
