/*
 * topics_plan.c - `herald topics plan`: how many partitions each topic needs
 * and how many brokers carry them, from a provider throughput model.
 *
 * A topic's partitions are the unit of parallelism: a channel needs as many
 * consumers (workers) as its peak rate divided by what one worker sustains
 * against its provider, and partitions = ceil(workers x headroom) so the
 * group can grow by half again without repartitioning (repartitioning moves
 * keys and breaks per-user order). Every topic gets at least one partition
 * per broker so that leadership spreads over the cluster.
 *
 * Per-worker rates (defaults; each can be overridden with --<channel>-rate):
 *
 * | channel | deliveries/s per worker | why                                            |
 * | ------- | ----------------------- | ---------------------------------------------- |
 * | push    |  2,000 | APNs / FCM over HTTP/2: ~100 concurrent streams per connection  |
 * |         |        | x ~50 ms round trip; a worker drives one connection              |
 * | sms     |    100 | Twilio: ~100 messages/s per account (short code / sender pool); |
 * |         |        | a worker owns one account's send queue                           |
 * | email   |    500 | SendGrid v3 / SMTP: ~50 requests/s per connection, a worker     |
 * |         |        | keeps ~10 connections (or batches personalizations)              |
 * | in-app  | 20,000 | local: batched store inserts plus SSE pushes, no provider        |
 * | webhook |  1,000 | HTTP/1.1 keep-alive, ~100 requests in flight x ~100 ms           |
 *
 * Other stages: a fan-out worker parses and resolves ~20,000 events/s and
 * renders and produces ~100,000 notifications/s (binary codec, one core); a
 * status-sink worker stores ~50,000 status records/s (batched transactions).
 * The DLQ is assumed to receive 0.1% of notifications.
 *
 * Brokers: each byte produced is written `replication` times and read once
 * by its consumer group, so the cluster moves produce x (replication + 1)
 * MB/s; a broker is budgeted at 200 MB/s (disk and network, with room for
 * catch-up reads), and a cluster has at least `replication` brokers.
 */
#include "stage/topics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DLQ_SHARE 0.001

void topics_plan_defaults(topics_plan_in_t *in)
{
    memset(in, 0, sizeof(*in));
    in->share[CH_PUSH] = 0.7;
    in->share[CH_SMS] = 0.02;
    in->share[CH_EMAIL] = 0.2;
    in->share[CH_INAPP] = 1.0;
    in->share[CH_WEBHOOK] = 0.01;
    in->worker_rate[CH_PUSH] = 2000;
    in->worker_rate[CH_SMS] = 100;
    in->worker_rate[CH_EMAIL] = 500;
    in->worker_rate[CH_INAPP] = 20000;
    in->worker_rate[CH_WEBHOOK] = 1000;
    in->fanout_events_rate = 20000;
    in->fanout_notifs_rate = 100000;
    in->status_rate = 50000;
    in->event_bytes = 1000;
    in->record_bytes = 400;
    in->status_bytes = 120;
    in->headroom = 1.5;
    in->broker_mb_s = 200;
    in->replication = 3;
}

/* ceil() for the positive values of this model, clamped to int. Rates are
 * rounded to a millionth first so that 350000/2000 is 175, not 176. */
static int ceil_int(double x)
{
    if (!(x > 0)) return 0;
    x = ceil(x - 1e-6);
    return x > 1e9 ? 1000000000 : (int)x;
}

static topics_plan_row_t *add_row(topics_plan_t *p, const char *topic, double rate, int bytes,
                                  double worker_rate, double work)
{
    topics_plan_row_t *r = &p->rows[p->nrows++];
    r->topic = topic;
    r->rate = rate;
    r->mb_s = rate * bytes / 1e6;
    r->worker_rate = worker_rate;
    r->workers = ceil_int(work);
    return r;
}

hr_t topics_plan_compute(const topics_plan_in_t *in, topics_plan_t *p)
{
    memset(p, 0, sizeof(*p));
    if (!(in->events_per_sec > 0) || !(in->fanout >= 0) || !(in->headroom >= 1) ||
        !(in->broker_mb_s > 0) || in->replication < 1 || in->event_bytes <= 0 ||
        in->record_bytes <= 0 || in->status_bytes <= 0 || !(in->fanout_events_rate > 0) ||
        !(in->fanout_notifs_rate > 0) || !(in->status_rate > 0))
        return HR_INVALID;
    for (int ch = 0; ch < CH__COUNT; ch++)
        if (!(in->share[ch] >= 0 && in->share[ch] <= 1) || !(in->worker_rate[ch] > 0))
            return HR_INVALID;

    double notifs = 0;
    for (int ch = 0; ch < CH__COUNT; ch++)
        notifs += in->events_per_sec * in->fanout * in->share[ch];
    p->notifs_rate = notifs;

    /* fan-out: time per event = parse/resolve + render/produce its notifications */
    double per_event =
        1 / in->fanout_events_rate + (notifs / in->events_per_sec) / in->fanout_notifs_rate;
    add_row(p, TOPIC_RAW, in->events_per_sec, in->event_bytes, 1 / per_event,
            in->events_per_sec * per_event);
    for (int ch = 0; ch < CH__COUNT; ch++) {
        double rate = in->events_per_sec * in->fanout * in->share[ch];
        add_row(p, topic_for_channel(ch), rate, in->record_bytes, in->worker_rate[ch],
                rate / in->worker_rate[ch]);
    }
    add_row(p, TOPIC_STATUS, notifs, in->status_bytes, in->status_rate, notifs / in->status_rate);
    double dlq = notifs * DLQ_SHARE;
    add_row(p, TOPIC_DLQ, dlq, in->record_bytes, in->status_rate, dlq / in->status_rate);

    for (int i = 0; i < p->nrows; i++) p->produce_mb_s += p->rows[i].mb_s;
    p->cluster_mb_s = p->produce_mb_s * (in->replication + 1);
    p->brokers = ceil_int(p->cluster_mb_s / in->broker_mb_s);
    if (p->brokers < in->replication) p->brokers = in->replication;

    for (int i = 0; i < p->nrows; i++) {
        topics_plan_row_t *r = &p->rows[i];
        if (r->workers < 1) r->workers = 1;
        r->partitions = ceil_int(r->workers * in->headroom);
        if (r->partitions < p->brokers) r->partitions = p->brokers;
        p->total_partitions += r->partitions;
    }
    return HR_OK;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: herald topics plan --events-per-sec N --fanout F [options]\n"
            "\n"
            "Sizes herald's topics for a peak load: partitions per topic (the consumers\n"
            "each channel needs against its provider, with headroom) and brokers.\n"
            "\n"
            "  --events-per-sec N      peak events/s on raw-events (required)\n"
            "  --fanout F              recipients per event, mean (required)\n"
            "  --record-bytes B        notification record size (default 400)\n"
            "  --event-bytes B         raw event size (default 1000)\n"
            "  --status-bytes B        status record size (default 120)\n"
            "  --<channel>-share S     fraction of recipients reached on the channel, 0..1\n"
            "                          (push 0.7, sms 0.02, email 0.2, inapp 1, webhook 0.01)\n"
            "  --<channel>-rate R      deliveries/s per worker (push 2000, sms 100,\n"
            "                          email 500, inapp 20000, webhook 1000)\n"
            "  --headroom H            partitions >= peak consumers x H (default 1.5)\n"
            "  --broker-mb-per-sec M   MB/s one broker carries (default 200)\n"
            "  --replication R         replication factor (default 3)\n");
}

static bool parse_num(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

/* Sets the option `name` (without "--") from text. */
static hr_t set_option(topics_plan_in_t *in, const char *name, const char *value)
{
    double v;
    if (!parse_num(value, &v)) return HR_INVALID;
    for (int ch = 0; ch < CH__COUNT; ch++) {
        const char *cn = channel_name(ch);
        size_t l = strlen(cn);
        if (strncmp(name, cn, l) != 0 || name[l] != '-') continue;
        if (strcmp(name + l + 1, "share") == 0) {
            in->share[ch] = v;
            return HR_OK;
        }
        if (strcmp(name + l + 1, "rate") == 0) {
            in->worker_rate[ch] = v;
            return HR_OK;
        }
    }
    bool integral = v == floor(v) && v >= 0 && v <= 1e9;
    if (strcmp(name, "events-per-sec") == 0) in->events_per_sec = v;
    else if (strcmp(name, "fanout") == 0) in->fanout = v;
    else if (strcmp(name, "headroom") == 0) in->headroom = v;
    else if (strcmp(name, "broker-mb-per-sec") == 0) in->broker_mb_s = v;
    else if (strcmp(name, "record-bytes") == 0 && integral) in->record_bytes = (int)v;
    else if (strcmp(name, "event-bytes") == 0 && integral) in->event_bytes = (int)v;
    else if (strcmp(name, "status-bytes") == 0 && integral) in->status_bytes = (int)v;
    else if (strcmp(name, "replication") == 0 && integral) in->replication = (int)v;
    else return HR_NOTFOUND;
    return HR_OK;
}

static void print_plan(const topics_plan_in_t *in, const topics_plan_t *p)
{
    printf("peak: %.0f events/s x %.4g recipients = %.0f notifications/s; replication %d\n\n",
           in->events_per_sec, in->fanout, p->notifs_rate,
           in->replication);
    printf("%-24s %12s %9s %13s %8s %11s\n", "topic", "records/s", "MB/s", "per worker/s",
           "workers", "partitions");
    for (int i = 0; i < p->nrows; i++) {
        const topics_plan_row_t *r = &p->rows[i];
        printf("%-24s %12.0f %9.1f %13.0f %8d %11d\n", r->topic, r->rate, r->mb_s, r->worker_rate,
               r->workers, r->partitions);
    }
    printf("\npartitions: %d in total; x%d replicas = %d partition replicas, ~%d per broker\n",
           p->total_partitions, in->replication, p->total_partitions * in->replication,
           (p->total_partitions * in->replication + p->brokers - 1) / p->brokers);
    printf("brokers: %d  (produce %.1f MB/s; written x%d and read once = %.1f MB/s at %.0f MB/s "
           "per broker; at least %d for replication %d)\n",
           p->brokers, p->produce_mb_s, in->replication, p->cluster_mb_s, in->broker_mb_s,
           in->replication, in->replication);
    printf("set: topics.replication=%d topics.min_insync=%d; create each topic with the "
           "partitions above\n",
           in->replication, in->replication > 2 ? 2 : 1);
}

int topics_plan_main(int argc, char **argv)
{
    topics_plan_in_t in;
    topics_plan_defaults(&in);
    in.events_per_sec = -1;
    in.fanout = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "herald topics plan: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        char name[64];
        const char *value;
        const char *eq = strchr(a, '=');
        if (eq) {
            snprintf(name, sizeof(name), "%.*s", (int)(eq - a - 2), a + 2);
            value = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", a + 2);
            if (i + 1 >= argc) {
                fprintf(stderr, "herald topics plan: %s needs a value\n", a);
                return 2;
            }
            value = argv[++i];
        }
        hr_t r = set_option(&in, name, value);
        if (r == HR_NOTFOUND) {
            fprintf(stderr, "herald topics plan: unknown option --%s\n", name);
            usage(stderr);
            return 2;
        }
        if (r != HR_OK) {
            fprintf(stderr, "herald topics plan: --%s: '%s' is not a valid number\n", name, value);
            return 2;
        }
    }
    if (in.events_per_sec < 0 || in.fanout < 0) {
        fprintf(stderr, "herald topics plan: --events-per-sec and --fanout are required\n");
        usage(stderr);
        return 2;
    }
    topics_plan_t p;
    if (topics_plan_compute(&in, &p) != HR_OK) {
        fprintf(stderr, "herald topics plan: inputs out of range (rates and sizes > 0, shares "
                        "0..1, headroom >= 1, replication >= 1)\n");
        return 2;
    }
    print_plan(&in, &p);
    return 0;
}
