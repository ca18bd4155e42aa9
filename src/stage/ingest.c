#include "stage/ingest.h"

#include "core/log.h"

#include <stdlib.h>

/* How long an API request waits for the bus before answering 503. A
 * re-post of the same events is safe: event_id dedupes. */
#define INGEST_ACK_TIMEOUT_MS 10000

hr_t ingest_publish(app_t *app, event_t *evs, int n)
{
    /* On the heap: if the bus does not answer within the timeout, the API
     * answers 503 and the batch lives on until its last ack. */
    bus_batch_t *batch = bus_batch_new();
    hr_t r = HR_OK;
    int64_t now = hclock_now_us();

    for (int i = 0; i < n; i++) {
        json_object_set_new(evs[i].doc, "_accepted_at_us", json_integer(now));
        char *text = json_dumps(evs[i].doc, JSON_COMPACT);
        if (!text) {
            r = HR_ERR;
            break;
        }
        for (int tries = 0;; tries++) {
            r = bus_produce(app->bus, TOPIC_RAW, -1, evs[i].event_id, strlen(evs[i].event_id),
                            text, strlen(text), batch);
            if (r != HR_AGAIN || tries > 200) break;
            bus_flush(app->bus, 10);
        }
        free(text);
        if (r != HR_OK) break;
    }
    hr_t w = bus_batch_wait(app->bus, batch, INGEST_ACK_TIMEOUT_MS);
    if (w == HR_TIMEOUT)
        bus_batch_abandon(batch);
    else
        bus_batch_free(batch);
    if (r == HR_OK) r = w;
    if (r == HR_OK)
        atomic_fetch_add(&app->events_accepted, n);
    else
        log_warn("ingest", "publishing %d events failed: %s", n, hr_str(r));
    return r;
}
