/*
 * pg_sink.c - `herald bench pg-sink`: status rows/s into PostgreSQL through
 * the store alone (store_notif_write_batch, the status sink's call), no
 * pipeline. Two phases of --rows records in batches of --batch from
 * --writers threads: "insert" (new notifications, pending) and "update"
 * (the same ids, sent: the rank rule's upsert path). With --readers R,
 * R threads meanwhile read as the API and dispatch do (a user's listing,
 * a sent check of 100 ids) and their reads/s and worst latency are
 * reported: the rate "under load".
 *
 *   herald bench pg-sink --dsn postgresql://... [--rows N] [--batch B]
 *                        [--writers W] [--readers R] [--pool P] [--out FILE]
 *
 * The DSN's database is written to (tables of the store); use a
 * throw-away one (scripts/pg.sh start). Threads: the writers and readers.
 */
#include "bench/bench_int.h"

#include "core/log.h"
#include "store/store.h"

#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ps_opts {
    const char *dsn, *out, *commit;
    int rows, batch, writers, readers, pool, users;
} ps_opts_t;

typedef struct ps_run {
    const ps_opts_t *o;
    store_t *s;
    char (*ids)[33];
    char (*uids)[16];
    notif_status_t status;
    int64_t t0_ms;
    atomic_int next;            /* next batch to write */
    atomic_int errors;
    atomic_bool stop_readers;
    atomic_long reads;
    _Atomic int64_t worst_read_us;
} ps_run_t;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *writer(void *arg)
{
    ps_run_t *R = arg;
    const ps_opts_t *o = R->o;
    notif_t *recs = xcalloc((size_t)o->batch, sizeof(*recs));
    const notif_t **ptrs = xcalloc((size_t)o->batch, sizeof(*ptrs));
    for (;;) {
        int b = atomic_fetch_add(&R->next, 1);
        int first = b * o->batch;
        if (first >= o->rows) break;
        int n = o->rows - first < o->batch ? o->rows - first : o->batch;
        for (int i = 0; i < n; i++) {
            int k = first + i;
            notif_t *m = &recs[i];
            memset(m, 0, sizeof(*m));
            m->kind = 2;
            m->channel = CH_PUSH;
            m->status = R->status;
            m->attempt = 1;
            m->created_at_ms = R->t0_ms + k / 10; /* ~10 notifications per ms */
            m->status_at_ms = m->created_at_ms + (R->status == ST_SENT ? 150 : 0);
            m->notification_id = (hstr_t){R->ids[k], 32};
            m->event_id = (hstr_t){R->ids[k], 16};
            m->user_id = (hstr_t){R->uids[k % o->users], strlen(R->uids[k % o->users])};
            m->category = HSTR("social");
            m->title = HSTR("Kylie posted a photo");
            m->body = HSTR("Look at this sunset over the bay, taken a minute ago");
            m->address = HSTR("apns:8f3c2a61d4e5b7a9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3");
            if (R->status == ST_SENT) m->channel_msg_id = HSTR("apns-4f1c2d3e");
            ptrs[i] = m;
        }
        if (store_notif_write_batch(R->s, ptrs, n) != HR_OK) atomic_fetch_add(&R->errors, 1);
    }
    free(ptrs);
    free(recs);
    return NULL;
}

static void *reader(void *arg)
{
    ps_run_t *R = arg;
    const ps_opts_t *o = R->o;
    hstr_t ids[100];
    unsigned seed = 7;
    while (!atomic_load(&R->stop_readers)) {
        int64_t t = now_us();
        int u = (int)(rand_r(&seed) % (unsigned)o->users);
        notif_row_t *rows = NULL;
        int n = 0;
        char *next = NULL;
        if (store_notif_list_user(R->s, R->uids[u], NULL, 20, &rows, &n, &next) != HR_OK)
            atomic_fetch_add(&R->errors, 1);
        notif_rows_free(rows, n);
        free(next);
        for (int i = 0; i < 100; i++) ids[i] = (hstr_t){R->ids[rand_r(&seed) % (unsigned)o->rows], 32};
        bool sent[100];
        if (store_notif_sent_batch(R->s, ids, 100, sent) != HR_OK) atomic_fetch_add(&R->errors, 1);
        int64_t us = now_us() - t;
        int64_t w = atomic_load(&R->worst_read_us);
        while (us > w && !atomic_compare_exchange_weak(&R->worst_read_us, &w, us)) {}
        atomic_fetch_add(&R->reads, 2);
    }
    return NULL;
}

/* One phase; adds its figures to res under name. */
static int phase(ps_run_t *R, const char *name, notif_status_t st, json_t *res)
{
    const ps_opts_t *o = R->o;
    R->status = st;
    atomic_store(&R->next, 0);
    atomic_store(&R->errors, 0);
    atomic_store(&R->reads, 0);
    atomic_store(&R->worst_read_us, 0);
    atomic_store(&R->stop_readers, false);
    pthread_t *rt = xcalloc((size_t)o->readers + 1, sizeof(*rt));
    pthread_t *wt = xcalloc((size_t)o->writers, sizeof(*wt));
    for (int i = 0; i < o->readers; i++) pthread_create(&rt[i], NULL, reader, R);
    int64_t t = now_us();
    for (int i = 0; i < o->writers; i++) pthread_create(&wt[i], NULL, writer, R);
    for (int i = 0; i < o->writers; i++) pthread_join(wt[i], NULL);
    double secs = (double)(now_us() - t) / 1e6;
    atomic_store(&R->stop_readers, true);
    for (int i = 0; i < o->readers; i++) pthread_join(rt[i], NULL);
    free(rt);
    free(wt);
    double rate = o->rows / secs;
    printf("pg-sink %-6s %d rows in %.2f s: %.0f rows/s (batch %d, %d writer(s), %d reader(s)",
           name, o->rows, secs, rate, o->batch, o->writers, o->readers);
    if (o->readers)
        printf(": %.0f reads/s, worst %.1f ms", (double)atomic_load(&R->reads) / secs,
               (double)atomic_load(&R->worst_read_us) / 1000.0);
    printf("), %d failed call(s)\n", atomic_load(&R->errors));
    json_object_set_new(res, name,
                        json_pack("{s:i,s:f,s:f,s:i,s:f,s:f}", "rows", o->rows, "seconds", secs,
                                  "rows_per_s", rate, "errors", atomic_load(&R->errors),
                                  "reads_per_s", (double)atomic_load(&R->reads) / secs,
                                  "worst_read_ms",
                                  (double)atomic_load(&R->worst_read_us) / 1000.0));
    return atomic_load(&R->errors) ? 1 : 0;
}

int bench_pg_sink_main(int argc, char **argv)
{
    ps_opts_t o = {.dsn = getenv("HERALD_TEST_STORE_DSN"), .rows = 200000, .batch = 1000,
                   .writers = 1, .readers = 0, .pool = 8, .users = 100000, .commit = "unknown"};
    static const struct option lo[] = {
        {"dsn", 1, 0, 'd'}, {"rows", 1, 0, 'n'}, {"batch", 1, 0, 'b'}, {"writers", 1, 0, 'w'},
        {"readers", 1, 0, 'r'}, {"pool", 1, 0, 'p'}, {"users", 1, 0, 'u'}, {"out", 1, 0, 'o'},
        {"commit", 1, 0, 'c'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'd': o.dsn = optarg; break;
        case 'n': o.rows = (int)strtol(optarg, NULL, 10); break;
        case 'b': o.batch = (int)strtol(optarg, NULL, 10); break;
        case 'w': o.writers = (int)strtol(optarg, NULL, 10); break;
        case 'r': o.readers = (int)strtol(optarg, NULL, 10); break;
        case 'p': o.pool = (int)strtol(optarg, NULL, 10); break;
        case 'u': o.users = (int)strtol(optarg, NULL, 10); break;
        case 'o': o.out = optarg; break;
        case 'c': o.commit = optarg; break;
        default:
            printf("usage: herald bench pg-sink --dsn CONNINFO [--rows N] [--batch B] [--writers W]\n"
                   "                            [--readers R] [--pool P] [--users U] [--out FILE]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (!o.dsn || o.rows <= 0 || o.batch <= 0 || o.writers <= 0 || o.readers < 0 || o.users <= 0) {
        fprintf(stderr, "bench pg-sink: --dsn (or HERALD_TEST_STORE_DSN) and positive sizes needed\n");
        return 2;
    }
    hlog_set_level(HLOG_WARN);
    store_open_opts_t so = {.check_ms = 0, .pg_pool = o.pool};
    ps_run_t R;
    memset(&R, 0, sizeof(R));
    R.o = &o;
    if (store_open_with("postgres", o.dsn, &so, &R.s) != HR_OK) {
        fprintf(stderr, "bench pg-sink: cannot open the PostgreSQL store\n");
        return 1;
    }
    /* time-ordered ids, as the sink's: 12 hex digits of ms, then a counter */
    R.t0_ms = hclock_now_ms();
    R.ids = xcalloc((size_t)o.rows, sizeof(*R.ids));
    R.uids = xcalloc((size_t)o.users, sizeof(*R.uids));
    for (int k = 0; k < o.rows; k++)
        snprintf(R.ids[k], sizeof(R.ids[k]), "%012llx%020llx",
                 (unsigned long long)(R.t0_ms + k / 10), (unsigned long long)k * 2654435761u);
    for (int u = 0; u < o.users; u++) snprintf(R.uids[u], sizeof(R.uids[u]), "u%07d", u);
    json_t *res = json_pack("{s:i,s:s,s:s}", "schema", 1, "label", o.readers ? "pg-sink-load" : "pg-sink",
                            "commit", o.commit);
    json_object_set_new(res, "settings",
                        json_pack("{s:i,s:i,s:i,s:i,s:i,s:i}", "rows", o.rows, "batch", o.batch,
                                  "writers", o.writers, "readers", o.readers, "pool", o.pool,
                                  "users", o.users));
    json_object_set_new(res, "machine", bench_machine_json()); /* the load beside the rates */
    int rc = phase(&R, "insert", ST_PENDING, res);
    rc |= phase(&R, "update", ST_SENT, res);
    if (o.out && json_dump_file(res, o.out, JSON_INDENT(2)) != 0) {
        fprintf(stderr, "bench pg-sink: cannot write %s\n", o.out);
        rc = 1;
    }
    json_decref(res);
    store_close(R.s);
    free(R.ids);
    free(R.uids);
    return rc;
}
