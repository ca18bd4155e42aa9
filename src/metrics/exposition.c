/*
 * exposition.c - a scrape: collecting the values (metrics_collect), the
 * Prometheus text format 0.0.4 (metrics_snap_format) and its parser
 * (metrics_snap_parse, which `herald bench` reads /metrics with). All three
 * walk the list of metrics.def, so a metric added there is collected,
 * exposed and parsed without further code, except a METRIC_READ, which
 * needs its read_<id>() below.
 *
 * Histograms: by default the HIST_COARSE round buckets (50 us .. 60 s);
 * with METRICS_FINE every fine bucket from 16 us to 2^27 us, as quantiles
 * need. Values are whole microseconds and a value of v us stands for
 * [v, v+1) us, so a bucket holding [lo, hi] us is exposed as le = hi + 1 us.
 */
#include "metrics/metrics.h"

#include "app.h"
#include "bus/bus.h"
#include "metrics/metrics_int.h"
#include "policy/breaker.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fine buckets exposed: upper bounds from 16 us to 2^27 us (134 s), 8 per
 * power of two, then +Inf. */
#define FINE_FIRST (HIST_LINEAR - 1)
#define FINE_LAST (HIST_LINEAR + (27 - HIST_SUB_BITS - 1) * HIST_SUB - 1)

static const char *const http_classes[METRIC_N_HTTP_CLASS] = {"aborted", "1xx", "2xx",
                                                               "3xx",     "4xx", "5xx"};
static const char *const results[METRIC_RESULT__COUNT] = {"sent", "failed", "dead"};

/* ============================================================ labels */

static const char *const cb_providers[METRIC_CB_PROVIDERS] = {"twilio", "sendgrid"};
static const char *const cb_outcomes[METRIC_CB__OUTCOMES] = {
#define CB_NAME(id, name) [id] = name,
    METRIC_CB_OUTCOMES(CB_NAME)
#undef CB_NAME
};

/* Consumer group and topic of an ML_BUS_GROUP value. */
static void bus_group(int i, char *group, size_t cap, const char **topic)
{
    if (i == METRIC_BUS_FANOUT) {
        snprintf(group, cap, "%s", GROUP_FANOUT);
        *topic = TOPIC_RAW;
    } else if (i == METRIC_BUS_STATUS) {
        snprintf(group, cap, "%s", GROUP_STATUS);
        *topic = TOPIC_STATUS;
    } else {
        int ch = i - METRIC_BUS_DISPATCH(0);
        snprintf(group, cap, "%s", names_for_channel(ch)->group);
        *topic = names_for_channel(ch)->topic;
    }
}

void metrics_label(const metrics_snap_t *s, metric_labels_t set, int i, buf_t *out)
{
    char group[64];
    const char *topic;
    switch (set) {
    case ML_NONE:
        break;
    case ML_CHANNEL:
        buf_printf(out, "channel=\"%s\"", channel_name((channel_t)i));
        break;
    case ML_CHANNEL_RESULT:
        buf_printf(out, "channel=\"%s\",result=\"%s\"",
                   channel_name((channel_t)(i / METRIC_RESULT__COUNT)), results[i % METRIC_RESULT__COUNT]);
        break;
    case ML_HTTP_CLASS:
        buf_printf(out, "class=\"%s\"", http_classes[i]);
        break;
    case ML_BUS_GROUP:
        bus_group(i, group, sizeof(group), &topic);
        buf_printf(out, "group=\"%s\",topic=\"%s\"", group, topic);
        break;
    case ML_BUILD:
        buf_printf(out, "version=\"%s\",bus=\"%s\"", HERALD_VERSION,
                   s->build_bus ? s->build_bus : "none");
        break;
    case ML_CALLBACK:
        buf_printf(out, "provider=\"%s\",outcome=\"%s\"", cb_providers[i / METRIC_CB__OUTCOMES],
                   cb_outcomes[i % METRIC_CB__OUTCOMES]);
        break;
    }
}

/* ============================================================ collect */

typedef struct collect {
    app_t *app;
    metrics_snap_t *s;
    metrics_process_t proc;
    bool have_proc;
} collect_t;

static const metrics_process_t *proc(collect_t *cx)
{
    if (!cx->have_proc) metrics_process_read(&cx->proc);
    cx->have_proc = true;
    return &cx->proc;
}

static void read_delivery_latency_max(collect_t *cx)
{
    for (int ch = 0; ch < CH__COUNT; ch++)
        cx->s->delivery_latency_max[ch] = (double)cx->s->delivery_latency[ch].max / 1e6;
}

/* Records each stage's consumer group has still to process (summed over
 * partitions). Embedded bus only: there the figures are in memory; on
 * Kafka every query is a broker round trip per group, so use the broker's
 * tools (kafka-consumer-groups.sh --describe) instead. */
static void read_bus_lag(collect_t *cx)
{
    bus_t *bus = cx->app ? cx->app->bus : NULL;
    if (!bus || strcmp(bus_backend_name(bus), "embedded") != 0) return;
    for (int i = 0; i < METRIC_N_BUS_GROUP; i++) {
        char group[64];
        const char *topic;
        bus_group(i, group, sizeof(group), &topic);
        bus_lag_t *lags = NULL;
        int nl = 0;
        if (bus_lag(bus, group, topic, &lags, &nl) != HR_OK) continue;
        long long sum = 0;
        for (int k = 0; k < nl; k++) sum += lags[k].lag;
        free(lags);
        cx->s->bus_lag[i] = (double)sum;
    }
}

static void read_build_info(collect_t *cx)
{
    cx->s->build_info = 1;
    cx->s->build_bus = cx->app && cx->app->bus ? bus_backend_name(cx->app->bus) : NULL;
}

static void read_process_cpu_seconds(collect_t *cx)
{
    cx->s->process_cpu_seconds = proc(cx)->cpu_s;
}

static void read_process_resident_memory(collect_t *cx)
{
    cx->s->process_resident_memory = proc(cx)->rss_bytes;
}

static void read_process_virtual_memory(collect_t *cx)
{
    cx->s->process_virtual_memory = proc(cx)->vm_bytes;
}

static void read_process_open_fds(collect_t *cx)
{
    cx->s->process_open_fds = proc(cx)->open_fds;
}

static void read_process_max_fds(collect_t *cx)
{
    cx->s->process_max_fds = proc(cx)->max_fds;
}

static void read_process_start_time(collect_t *cx)
{
    cx->s->process_start_time = proc(cx)->start_time_s;
}

static void read_breaker_state(collect_t *cx)
{
    for (int ch = 0; ch < CH__COUNT; ch++) cx->s->breaker_state[ch] = (double)breaker_channel_state(ch);
}

void metrics_collect(app_t *app, metrics_snap_t *s)
{
    metrics_snapshot(s);
    collect_t cx = {.app = app, .s = s};
#define METRIC_READ(id, type, name, labels, help) read_##id(&cx);
#include "metrics/metrics.def"
}

/* ============================================================ format */

static const void *field(const metrics_snap_t *s, const metric_def_t *d)
{
    return (const char *)s + d->off;
}

/* A sample name with its labels, up to the space before the value. */
static void sample(buf_t *out, const metrics_snap_t *s, const metric_def_t *d, const char *suffix,
                   int i, const char *le)
{
    buf_printf(out, "%s%s", d->name, suffix);
    if (d->labels == ML_NONE && !le) {
        buf_append_str(out, " ");
        return;
    }
    buf_append_str(out, "{");
    metrics_label(s, d->labels, i, out);
    if (le) buf_printf(out, "%sle=\"%s\"", d->labels == ML_NONE ? "" : ",", le);
    buf_append_str(out, "} ");
}

/* As the Prometheus clients write a float: the shortest form that reads
 * back the same, +Inf, -Inf, NaN. */
static void put_double(buf_t *out, double v)
{
    if (isnan(v)) {
        buf_append_str(out, "NaN");
        return;
    }
    if (isinf(v)) {
        buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char b[40];
    snprintf(b, sizeof(b), "%.15g", v);
    if (strtod(b, NULL) != v) snprintf(b, sizeof(b), "%.17g", v);
    buf_append_str(out, b);
}

/* Microseconds as seconds, exactly: 1234567 -> "1.234567". */
static void put_us(buf_t *out, uint64_t us)
{
    buf_printf(out, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
}

static void format_hist(buf_t *out, const metrics_snap_t *s, const metric_def_t *d, int i,
                        const hist_snap_t *h, unsigned flags)
{
    char le[32];
    uint64_t cum = 0;
    if (flags & METRICS_FINE) {
        for (int b = 0; b <= FINE_LAST; b++) {
            cum += h->count[b];
            if (b < FINE_FIRST) continue;
            snprintf(le, sizeof(le), "%.9g", (double)(hist_bucket_hi(b) + 1) / 1e6);
            sample(out, s, d, "_bucket", i, le);
            buf_printf(out, "%" PRIu64 "\n", cum);
        }
        for (int b = FINE_LAST + 1; b < HIST_BUCKETS; b++) cum += h->count[b];
    } else {
        for (int j = 0; j < HIST_COARSE; j++) {
            cum += h->coarse[j];
            snprintf(le, sizeof(le), "%.9g", (double)hist_coarse_le[j] / 1e6);
            sample(out, s, d, "_bucket", i, le);
            buf_printf(out, "%" PRIu64 "\n", cum);
        }
        cum += h->coarse[HIST_COARSE];
    }
    /* the count is the buckets' sum as exposed, so +Inf always equals it */
    sample(out, s, d, "_bucket", i, "+Inf");
    buf_printf(out, "%" PRIu64 "\n", cum);
    sample(out, s, d, "_sum", i, NULL);
    put_us(out, h->sum);
    buf_append_str(out, "\n");
    sample(out, s, d, "_count", i, NULL);
    buf_printf(out, "%" PRIu64 "\n", cum);
}

void metrics_snap_format(const metrics_snap_t *s, unsigned flags, buf_t *out)
{
    for (size_t k = 0; k < metric_ndefs; k++) {
        const metric_def_t *d = &metric_defs[k];
        const double *dv = field(s, d);
        if (d->kind == MK_READ) {
            /* a value read at scrape time may be absent (NaN) */
            int present = 0;
            for (int i = 0; i < d->n; i++) present += !isnan(dv[i]);
            if (!present) continue;
        }
        buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name, d->type);
        for (int i = 0; i < d->n; i++) {
            switch (d->kind) {
            case MK_COUNTER:
                sample(out, s, d, "", i, NULL);
                buf_printf(out, "%" PRId64 "\n", ((const int64_t *)field(s, d))[i]);
                break;
            case MK_HISTOGRAM:
                format_hist(out, s, d, i, (const hist_snap_t *)field(s, d) + i, flags);
                break;
            case MK_READ:
                if (isnan(dv[i])) break;
                sample(out, s, d, "", i, NULL);
                put_double(out, dv[i]);
                buf_append_str(out, "\n");
                break;
            }
        }
    }
}

hr_t metrics_render(app_t *app, unsigned flags, buf_t *out)
{
    metrics_snap_t *s = xmalloc(sizeof(*s));
    metrics_collect(app, s);
    metrics_snap_format(s, flags, out);
    free(s);
    return HR_OK;
}

/* ============================================================ parse */

/* One histogram bucket line as read: its bound (UINT64_MAX for +Inf) and
 * cumulative count. */
typedef struct bucket_line {
    uint64_t le_us;
    uint64_t cum;
} bucket_line_t;

typedef struct series {
    hist_snap_t *h;
    bucket_line_t *lines;
    int n;
} series_t;

/* Seconds in decimal to whole microseconds: exact for the "A.BBBBBB" this
 * file writes, rounded for other forms. */
static uint64_t parse_us(const char *p)
{
    char *end;
    unsigned long long whole = strtoull(p, &end, 10);
    if (end != p && (*end == '.' || *end == ' ' || *end == '\n' || *end == '\0')) {
        uint64_t frac = 0;
        int digits = 0;
        if (*end == '.')
            for (end++; *end >= '0' && *end <= '9'; end++)
                if (digits < 6) frac = frac * 10 + (uint64_t)(*end - '0'), digits++;
        if (*end != 'e' && *end != 'E') {
            for (; digits < 6; digits++) frac *= 10;
            return (uint64_t)whole * 1000000 + frac;
        }
    }
    double v = strtod(p, NULL);
    return v > 0 ? (uint64_t)(v * 1e6 + 0.5) : 0;
}

/* Which value of d's label set the labels text (after '{') names; -1 when
 * none. */
static int label_index(const metrics_snap_t *s, const metric_def_t *d, const char *labels)
{
    if (d->n == 1) return 0;
    buf_t b;
    buf_init(&b, 0);
    int found = -1;
    for (int i = 0; i < d->n && found < 0; i++) {
        buf_reset(&b);
        metrics_label(s, d->labels, i, &b);
        buf_cstr(&b);
        if (strncmp(labels, b.data, b.len) == 0 && (labels[b.len] == '}' || labels[b.len] == ','))
            found = i;
    }
    buf_release(&b);
    return found;
}

static int coarse_pos(uint64_t le_us)
{
    for (int j = 0; j < HIST_COARSE; j++)
        if (hist_coarse_le[j] == le_us) return j;
    return -1;
}

/* Turns a series' cumulative bucket lines into counts: coarse buckets when
 * every bound is one of hist_coarse_le, fine buckets otherwise. */
static void series_finish(series_t *se)
{
    bool coarse = true;
    for (int k = 0; k < se->n; k++)
        if (se->lines[k].le_us != UINT64_MAX && coarse_pos(se->lines[k].le_us) < 0) coarse = false;
    uint64_t prev = 0;
    for (int k = 0; k < se->n; k++) {
        const bucket_line_t *l = &se->lines[k];
        uint64_t add = l->cum >= prev ? l->cum - prev : 0;
        prev = l->cum;
        if (coarse)
            se->h->coarse[l->le_us == UINT64_MAX ? HIST_COARSE : coarse_pos(l->le_us)] += add;
        else
            se->h->count[l->le_us == UINT64_MAX ? HIST_BUCKETS - 1
                                                : hist_index(l->le_us ? l->le_us - 1 : 0)] += add;
    }
}

hr_t metrics_snap_parse(const char *text, metrics_snap_t *s)
{
    memset(s, 0, sizeof(*s));
    int nseries = 0;
    for (size_t k = 0; k < metric_ndefs; k++) {
        const metric_def_t *d = &metric_defs[k];
        if (d->kind == MK_READ)
            for (int i = 0; i < d->n; i++) ((double *)((char *)s + d->off))[i] = NAN;
        if (d->kind == MK_HISTOGRAM) nseries += d->n;
    }
    series_t *series = xcalloc((size_t)(nseries ? nseries : 1), sizeof(*series));
    bool any = false;
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t name_len = strcspn(line, "{ \n");
        const char *after = line + name_len;
        const char *labels = *after == '{' ? after + 1 : NULL;
        const char *value = labels ? strstr(labels, "} ") : after;
        if (value && *value == '}') value++;
        if (line[0] == '#' || !value || *value != ' ' || (nl && value > nl)) goto next;
        value++;
        int first_series = 0;
        for (size_t k = 0; k < metric_ndefs; k++) {
            const metric_def_t *d = &metric_defs[k];
            size_t dl = strlen(d->name);
            int this_first = first_series;
            if (d->kind == MK_HISTOGRAM) first_series += d->n;
            if (name_len < dl || strncmp(line, d->name, dl) != 0) continue;
            const char *suffix = line + dl;
            size_t sl = name_len - dl;
            int i = label_index(s, d, labels ? labels : "}");
            if (i < 0) continue;
            if (d->kind != MK_HISTOGRAM) {
                if (sl != 0) continue;
                if (d->kind == MK_COUNTER)
                    ((int64_t *)((char *)s + d->off))[i] = strtoll(value, NULL, 10);
                else
                    ((double *)((char *)s + d->off))[i] = strtod(value, NULL);
                any = true;
                break;
            }
            hist_snap_t *h = (hist_snap_t *)((char *)s + d->off) + i;
            series_t *se = &series[this_first + i];
            if (sl == 4 && strncmp(suffix, "_sum", 4) == 0) {
                h->sum = parse_us(value);
            } else if (sl == 6 && strncmp(suffix, "_count", 6) == 0) {
                h->total = strtoull(value, NULL, 10);
            } else if (sl == 7 && strncmp(suffix, "_bucket", 7) == 0 && labels) {
                const char *le = strstr(labels, "le=\"");
                if (!le || le > value) continue;
                le += 4;
                if (!se->lines) se->lines = xcalloc(HIST_BUCKETS + 2, sizeof(*se->lines));
                if (se->n >= HIST_BUCKETS + 2) continue;
                se->h = h;
                se->lines[se->n].le_us = strncmp(le, "+Inf", 4) == 0 ? UINT64_MAX : parse_us(le);
                se->lines[se->n++].cum = strtoull(value, NULL, 10);
            } else {
                continue;
            }
            any = true;
            break;
        }
    next:
        line = nl ? nl + 1 : NULL;
    }
    for (int k = 0; k < nseries; k++) {
        if (series[k].h) series_finish(&series[k]);
        free(series[k].lines);
    }
    free(series);
    return any ? HR_OK : HR_INVALID;
}
