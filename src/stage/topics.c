#include "stage/topics.h"

#include "core/log.h"

static hr_t ensure(app_t *app, const char *name, int64_t retention_ms)
{
    const config_t *c = app->cfg;
    bus_topic_opts_t o = {
        .partitions = c->bus_partitions,
        .replication = (int16_t)c->kafka_replication,
        .min_insync = (int16_t)c->kafka_min_insync,
        .retention_ms = retention_ms,
        .retention_bytes = -1,
    };
    hr_t r = bus_topic_ensure(app->bus, name, &o);
    if (r != HR_OK) log_error("topics", "cannot create topic %s: %s", name, hr_str(r));
    return r;
}

hr_t topics_create_all(app_t *app)
{
    const config_t *c = app->cfg;
    hr_t r = ensure(app, TOPIC_RAW, c->retention_raw_ms);
    for (int ch = 0; r == HR_OK && ch < CH__COUNT; ch++)
        r = ensure(app, topic_for_channel(ch), c->retention_notif_ms);
    for (int ch = 0; r == HR_OK && ch < CH__COUNT; ch++)
        for (int t = 0; r == HR_OK && t < RETRY_TIERS; t++)
            r = ensure(app, names_for_channel(ch)->retry_topic[t], c->retention_notif_ms);
    if (r == HR_OK) r = ensure(app, TOPIC_STATUS, c->retention_status_ms);
    if (r == HR_OK) r = ensure(app, TOPIC_DLQ, c->retention_dlq_ms);
    if (r == HR_OK) r = ensure(app, TOPIC_CHUNKS, c->retention_raw_ms); /* stage/chunks.h */
    return r;
}
