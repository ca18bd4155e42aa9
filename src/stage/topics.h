/*
 * topics.h - the pipeline's topics and their settings from config.
 */
#ifndef HERALD_TOPICS_H
#define HERALD_TOPICS_H

#include "app.h"
#include "model/notif.h"

/* Creates (if missing) every topic herald uses: raw-events, one
 * notifications-<channel> per channel, notification-status,
 * notifications-dlq, and the retry tiers <channel>-retry-30s/-5m/-30m (the
 * notifications' retention), with partitions, replication, min.insync.replicas and
 * retention from config. */
hr_t topics_create_all(app_t *app);

/* `herald topics plan ...`: prints partition and broker counts from the
 * provider throughput model. Returns a process exit code. (topics_plan.c) */
int topics_plan_main(int argc, char **argv);

/* ---- the sizing model behind `topics plan` (pure; topics_plan.c) ---- */

/* Inputs. Rates are peak rates. */
typedef struct topics_plan_in {
    double events_per_sec;          /* events arriving on raw-events at peak */
    double fanout;                  /* recipients per event (mean) */
    double share[CH__COUNT];        /* fraction of recipients reached on each channel, 0..1 */
    double worker_rate[CH__COUNT];  /* deliveries/s one dispatcher worker sustains */
    double fanout_events_rate;      /* events/s one fan-out worker parses and resolves */
    double fanout_notifs_rate;      /* notifications/s one fan-out worker renders and produces */
    double status_rate;             /* status records/s one status-sink worker stores */
    int event_bytes;                /* raw event record size */
    int record_bytes;               /* notification record size */
    int status_bytes;               /* status record size */
    double headroom;                /* partitions >= peak consumers x headroom */
    double broker_mb_s;             /* MB/s (in + out) one broker sustains */
    int replication;                /* replication factor */
} topics_plan_in_t;

/* One topic's row. */
typedef struct topics_plan_row {
    const char *topic;              /* static string */
    double rate;                    /* records/s at peak */
    double mb_s;                    /* MB/s produced at peak (one copy) */
    double worker_rate;             /* records/s per consumer */
    int workers;                    /* consumers needed at peak */
    int partitions;
} topics_plan_row_t;

#define TOPICS_PLAN_MAX_ROWS (CH__COUNT + 3)

typedef struct topics_plan {
    topics_plan_row_t rows[TOPICS_PLAN_MAX_ROWS];
    int nrows;
    double notifs_rate;             /* notifications/s over every channel */
    double produce_mb_s;            /* every topic, one copy */
    double cluster_mb_s;            /* produce x replication + one read per group */
    int brokers;
    int total_partitions;
} topics_plan_t;

/* Fills the documented defaults (see the table in topics_plan.c); the caller
 * then sets events_per_sec and fanout. */
void topics_plan_defaults(topics_plan_in_t *in);
/* Computes the plan. HR_INVALID when an input is out of range. */
hr_t topics_plan_compute(const topics_plan_in_t *in, topics_plan_t *out);

#endif
