/*
 * sink.c - `herald bench sink`: the status store alone.
 *
 * Writes realistic status rows through the real store API
 * (store_notif_write_batch, batches of the status sink's size) into a fresh
 * SQLite file, in this process, and reports per slice of rows (default one
 * million) the wall rate, the rows per CPU-second (every thread of this
 * process: the writer and the store's checkpointer) and the bytes written
 * per row (/proc/self/io: wchar = bytes handed to write(2), write_bytes =
 * bytes sent to the block layer). The CPU this benchmark spends making the
 * rows (formatting, SHA-256 ids) is measured apart and left out of the
 * store's figures (gen_cpu_s). A flat figure across slices is the goal:
 * the cost of a row must not grow with the table.
 *
 * Rows: the benchmark's channel mix and texts (like record_pool_build),
 * one million users, ids made by notif_make_id from an accepted time that
 * advances by 3 us per notification (~333k/s); every tenth row of a batch
 * after the first is a second status (delivered) of a notification of the
 * previous batch, as provider callbacks produce.
 *
 * --lag makes the ids arrive as they do in the pipeline, where dispatch
 * lags and an id starts with its event's acceptance time: each new
 * notification's accepted time is set back by a random lag, up to 20 ms
 * for 60 % of them, 0.5 s for 30 %, 3 s for 10 % (what a run at 260k
 * notifications/s showed). Its ids then land across the last seconds of
 * the id index instead of at its right-hand edge, and a transaction
 * dirties an index page for every few late rows: the figure the sink
 * pays in service (docs/internals/store.md, "Ids that arrive late").
 *
 * After each slice's write figures it times the three reads the status log
 * must keep cheap (issue 13) on rows written so far, a reservoir sample of
 * READ_SAMPLE notifications: GET by id (store_notif_get with its history),
 * the user's listing (store_notif_list_user, newest 50: every per-user run
 * is read, up to SQ_RUN_FANIN - 1 a level) and "already sent?"
 * (store_notif_sent), READ_N of each, p50 / p99 / max in µs. The reads'
 * time is kept out of the next slice's write figures.
 */
#include "bench/bench_int.h"

#include "core/log.h"
#include "store/store.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_SAMPLE 4096
#define READ_N 500
#define LIST_LIMIT 50

/* CPU seconds of the calling thread (the rows' making is not the store's). */
static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct srow {
    char user[16], ev[32], nid[33], title[64], body[160], addr[96], msgid[48];
    notif_t n;
} srow_t;

typedef struct io_counts {
    int64_t wchar, write_bytes;
} io_counts_t;

static io_counts_t io_now(void)
{
    io_counts_t c = {0, 0};
    FILE *fp = fopen("/proc/self/io", "r");
    if (!fp) return c;
    char line[128];
    while (fgets(line, sizeof(line), fp)) {
        long long v = 0;
        if (sscanf(line, "wchar: %lld", &v) == 1) c.wchar = v;
        else if (sscanf(line, "write_bytes: %lld", &v) == 1) c.write_bytes = v;
    }
    fclose(fp);
    return c;
}

static const char *const texts[] = {
    "Back in stock: the blue one you asked about, in your size.",
    "Your order #4711 has shipped and arrives on Thursday.",
    "Kylie commented on the photo you shared this morning.",
    "Price drop on an item in your wish list: now 20% off.",
};

/* Row k of the run: a new notification, its first status (sent). */
static void row_make(workload_t *wl, int64_t k, bool lag, srow_t *r)
{
    char actor[16];
    workload_user_id((int64_t)workload_rand(wl, 1000000), r->user);
    workload_user_id((int64_t)workload_rand(wl, 1000000), actor);
    snprintf(r->ev, sizeof(r->ev), "s-%" PRId64, k);
    int p = (int)workload_rand(wl, 100);
    channel_t ch = p < 70 ? CH_PUSH : p < 90 ? CH_INAPP : p < 98 ? CH_EMAIL : CH_SMS;
    int64_t accepted_us = 1700000000000000 + k * 3;
    if (lag) {
        int q = (int)workload_rand(wl, 10);
        accepted_us -= (int64_t)workload_rand(wl, q < 6 ? 20000 : q < 9 ? 500000 : 3000000);
    }
    notif_make_id(accepted_us, HSTR(r->ev), HSTR(r->user), ch, r->nid);
    snprintf(r->title, sizeof(r->title), "%s posted something new", actor);
    snprintf(r->body, sizeof(r->body), "Hi %s, %s wrote: %s", r->user, actor, texts[k % 4]);
    unsigned long long x = workload_rand(wl, UINT64_MAX);
    if (ch == CH_PUSH)
        snprintf(r->addr, sizeof(r->addr), "fcm:fcm-%016llx%016llx%016llx", x, x * 0x9e3779b97f4a7c15ull,
                 x * 0xbf58476d1ce4e5b9ull);
    else if (ch == CH_EMAIL)
        snprintf(r->addr, sizeof(r->addr), "%s@example.com", r->user);
    else if (ch == CH_SMS)
        snprintf(r->addr, sizeof(r->addr), "+1555%07d", (int)(x % 10000000));
    else
        snprintf(r->addr, sizeof(r->addr), "%s", r->user);
    snprintf(r->msgid, sizeof(r->msgid), "sandbox-%s", r->nid);
    int64_t ms = accepted_us / 1000;
    r->n = (notif_t){
        .kind = REC_STATUS, .channel = ch, .priority = PRIO_NORMAL, .status = ST_SENT, .attempt = 1,
        .created_at_ms = ms, .status_at_ms = ms + 3, .accepted_at_us = accepted_us,
        .user_id = HSTR(r->user), .category = HSTR("social"),
        .quiet_start_min = NOTIF_QUIET_NONE, .quiet_end_min = NOTIF_QUIET_NONE,
    };
}

/* The strings point into r itself: set after r has its final address. */
static void row_bind(srow_t *r)
{
    r->n.notification_id = (hstr_t){r->nid, 32};
    r->n.event_id = HSTR(r->ev);
    r->n.user_id = HSTR(r->user);
    r->n.title = HSTR(r->title);
    r->n.body = HSTR(r->body);
    r->n.address = HSTR(r->addr);
    r->n.platform = HSTR(r->n.channel == CH_PUSH ? "fcm" : "");
    r->n.channel_msg_id = HSTR(r->msgid);
}

static void usage(void)
{
    printf("usage: herald bench sink [--rows N] [--batch N] [--slice N] [--lag] [--dir DIR] [--out FILE]\n"
           "  --rows N    status rows to write (default 10000000)\n"
           "  --batch N   rows per store_notif_write_batch (default 8192, the status sink's)\n"
           "  --slice N   rows per reported slice (default 1000000)\n"
           "  --lag       ids late as in the pipeline (up to 20 ms for 60 %%, 0.5 s for 30 %%, 3 s for 10 %%)\n"
           "  --dir DIR   where the fresh SQLite file goes (default ./bench-sink.<pid>; removed after)\n"
           "  --out FILE  the result as JSON\n");
}

/* cpu: the store's (the process's minus gen, the rows' making). */
typedef struct sample {
    char user[16], nid[33];
} sample_t;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* p50, p99 and max of n latencies (sorted in place) as a JSON object. */
static json_t *lat_json(double *us, int n)
{
    qsort(us, (size_t)n, sizeof(*us), cmp_double);
    return json_pack("{s:f,s:f,s:f}", "p50_us", n ? us[n / 2] : 0.0, "p99_us",
                     n ? us[(n * 99) / 100] : 0.0, "max_us", n ? us[n - 1] : 0.0);
}

/* Times READ_N of each read on random samples; NULL when a read failed. */
static json_t *reads_json(store_t *s, const sample_t *smp, int nsmp, uint64_t *rng)
{
    static double get_us[READ_N], list_us[READ_N], sent_us[READ_N];
    int64_t listed = 0;
    for (int i = 0; i < READ_N; i++) {
        *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
        const sample_t *x = &smp[(*rng >> 33) % (uint64_t)nsmp];
        notif_row_t row;
        status_hist_t *hist = NULL;
        int nhist = 0;
        double t = now_s();
        hr_t r = store_notif_get(s, x->nid, &row, &hist, &nhist);
        get_us[i] = (now_s() - t) * 1e6;
        if (r != HR_OK) {
            fprintf(stderr, "bench sink: GET %s: %s\n", x->nid, hr_str(r));
            return NULL;
        }
        notif_row_clear(&row);
        store_status_hist_free(hist, nhist);
        notif_row_t *rows = NULL;
        int n = 0;
        char *next = NULL;
        t = now_s();
        r = store_notif_list_user(s, x->user, NULL, LIST_LIMIT, &rows, &n, &next);
        list_us[i] = (now_s() - t) * 1e6;
        if (r != HR_OK || n == 0) {
            fprintf(stderr, "bench sink: listing %s: %s, %d rows\n", x->user, hr_str(r), n);
            notif_rows_free(rows, n);
            free(next);
            return NULL;
        }
        listed += n;
        notif_rows_free(rows, n);
        free(next);
        bool sent = false;
        t = now_s();
        r = store_notif_sent(s, x->nid, &sent);
        sent_us[i] = (now_s() - t) * 1e6;
        if (r != HR_OK || !sent) {
            fprintf(stderr, "bench sink: sent? %s: %s, %d\n", x->nid, hr_str(r), (int)sent);
            return NULL;
        }
    }
    return json_pack("{s:o,s:o,s:o,s:f}", "get", lat_json(get_us, READ_N), "list",
                     lat_json(list_us, READ_N), "sent", lat_json(sent_us, READ_N), "list_rows_mean",
                     (double)listed / READ_N);
}

static json_t *slice_json(int64_t end, int64_t rows, double wall, double cpu, double gen,
                          io_counts_t io)
{
    double r = (double)rows;
    return json_pack("{s:I,s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "rows_end", (json_int_t)end, "rows",
                     (json_int_t)rows, "wall_s", wall, "cpu_s", cpu, "gen_cpu_s", gen, "rows_per_s",
                     wall > 0 ? r / wall : 0.0,
                     "rows_per_cpu_s", cpu > 0 ? r / cpu : 0.0, "cpu_us_per_row", r > 0 ? cpu * 1e6 / r : 0.0,
                     "wchar_per_row", r > 0 ? (double)io.wchar / r : 0.0, "disk_bytes_per_row",
                     r > 0 ? (double)io.write_bytes / r : 0.0);
}

int bench_sink_main(int argc, char **argv)
{
    int64_t rows = 10000000, slice = 1000000;
    int batch = 8192;
    bool lag = false;
    const char *dir_opt = NULL, *out = NULL;
    static const struct option longs[] = {
        {"rows", required_argument, NULL, 'r'}, {"batch", required_argument, NULL, 'b'},
        {"slice", required_argument, NULL, 's'}, {"dir", required_argument, NULL, 'd'},
        {"out", required_argument, NULL, 'o'},   {"help", no_argument, NULL, 'h'},
        {"lag", no_argument, NULL, 'l'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'r': rows = strtoll(optarg, NULL, 10); break;
        case 'b': batch = (int)strtol(optarg, NULL, 10); break;
        case 's': slice = strtoll(optarg, NULL, 10); break;
        case 'd': dir_opt = optarg; break;
        case 'o': out = optarg; break;
        case 'l': lag = true; break;
        case 'h': usage(); return 0;
        default: usage(); return 2;
        }
    }
    if (rows <= 0 || batch <= 0 || batch > 1048576 || slice <= 0) {
        usage();
        return 2;
    }
    hlog_set_level(HLOG_WARN);
    char *dir = dir_opt ? xstrdup(dir_opt) : xasprintf("bench-sink.%d", (int)getpid());
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench sink: %s: %s\n", dir, strerror(errno));
        free(dir);
        return 1;
    }
    char *db = xasprintf("%s/sink.db", dir);
    char *evdb = xasprintf("%s/sink.events.db", dir);
    static const char *const sfx[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < ARRAY_LEN(sfx); i++) {
        char *p = xasprintf("%s%s", db, sfx[i]);
        unlink(p);
        free(p);
        p = xasprintf("%s%s", evdb, sfx[i]);
        unlink(p);
        free(p);
    }
    store_t *s = NULL;
    int rc = 1;
    srow_t *cur = xcalloc((size_t)batch, sizeof(*cur)), *prev = xcalloc((size_t)batch, sizeof(*prev));
    const notif_t **ptrs = xcalloc((size_t)batch, sizeof(*ptrs));
    sample_t *smp = xcalloc(READ_SAMPLE, sizeof(*smp));
    int nsmp = 0;
    uint64_t rng = 0x243f6a8885a308d3ull;
    json_t *slices = json_array();
    if (store_open("sqlite", db, &s) != HR_OK) {
        fprintf(stderr, "bench sink: cannot open %s\n", db);
        goto out;
    }
    workload_t wl;
    workload_init(&wl, 42, 1000000, "sink");
    json_t *mach = bench_machine_json();
    printf("bench sink: %" PRId64 " rows, batches of %d%s, into %s (load %.1f)\n", rows, batch,
           lag ? ", ids late as in the pipeline" : "", db,
           json_real_value(json_object_get(mach, "loadavg_1m")));
    json_decref(mach);
    printf("(CPU: the store's, every thread; the rows' making left out)\n");
    printf("%10s %10s %12s %12s %10s %10s %10s  %s\n", "rows", "wall_s", "rows/s", "rows/cpu-s",
           "cpu-us/row", "wchar/row", "disk/row", "reads p50/p99 us: get, list 50, sent?");
    double t0 = now_s(), c0 = self_cpu_s(), ts = t0, cs = c0, gen = 0, gs = 0;
    io_counts_t i0 = io_now(), is = i0;
    int64_t done = 0, made = 0, slice_start = 0, next_slice = slice;
    bool have_prev = false;
    while (done < rows) {
        int n = rows - done < batch ? (int)(rows - done) : batch;
        double g0 = thread_cpu_s();
        for (int i = 0; i < n; i++) {
            if (have_prev && i % 10 == 9) { /* a provider's report on an earlier one */
                cur[i] = prev[i - 1];           /* a new one there (i - 1 is not 9 mod 10) */
                row_bind(&cur[i]);
                cur[i].n.status = ST_DELIVERED;
                cur[i].n.status_at_ms += 2000;
            } else {
                row_make(&wl, made, lag, &cur[i]);
                row_bind(&cur[i]);
                /* a reservoir sample of the notifications written */
                int64_t at = made < READ_SAMPLE ? made : -1;
                if (at < 0) {
                    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                    uint64_t j = (rng >> 33) % (uint64_t)(made + 1);
                    if (j < READ_SAMPLE) at = (int64_t)j;
                }
                if (at >= 0) {
                    snprintf(smp[at].user, sizeof(smp[at].user), "%s", cur[i].user);
                    snprintf(smp[at].nid, sizeof(smp[at].nid), "%s", cur[i].nid);
                    if (at >= nsmp) nsmp = (int)at + 1;
                }
                made++;
            }
            ptrs[i] = &cur[i].n;
        }
        gen += thread_cpu_s() - g0;
        hr_t r = store_notif_write_batch(s, ptrs, n);
        if (r != HR_OK) {
            fprintf(stderr, "bench sink: write failed at row %" PRId64 ": %s\n", done, hr_str(r));
            goto out;
        }
        done += n;
        srow_t *t = prev;
        prev = cur;
        cur = t;
        have_prev = n == batch;
        if (done >= next_slice || done == rows) {
            double tw = now_s(), cw = self_cpu_s();
            io_counts_t iw = io_now();
            io_counts_t d = {iw.wchar - is.wchar, iw.write_bytes - is.write_bytes};
            json_t *sj = slice_json(done, done - slice_start, tw - ts, cw - cs - (gen - gs), gen - gs, d);
            /* the rows just committed are readable: every sample is */
            json_t *rd = reads_json(s, smp, nsmp, &rng);
            if (!rd) {
                json_decref(sj);
                goto out;
            }
#define LAT(k, q) json_real_value(json_object_get(json_object_get(rd, k), q))
            printf("%10" PRId64 " %10.1f %12.0f %12.0f %10.2f %10.0f %10.0f  %.0f/%.0f, %.0f/%.0f, %.0f/%.0f\n",
                   done, json_real_value(json_object_get(sj, "wall_s")),
                   json_real_value(json_object_get(sj, "rows_per_s")),
                   json_real_value(json_object_get(sj, "rows_per_cpu_s")),
                   json_real_value(json_object_get(sj, "cpu_us_per_row")),
                   json_real_value(json_object_get(sj, "wchar_per_row")),
                   json_real_value(json_object_get(sj, "disk_bytes_per_row")), LAT("get", "p50_us"),
                   LAT("get", "p99_us"), LAT("list", "p50_us"), LAT("list", "p99_us"), LAT("sent", "p50_us"),
                   LAT("sent", "p99_us"));
#undef LAT
            fflush(stdout);
            json_object_set_new(sj, "reads", rd);
            json_array_append_new(slices, sj);
            /* the reads are not the next slice's writes, nor the total's */
            double rt = now_s() - tw, rcpu = self_cpu_s() - cw;
            t0 += rt;
            c0 += rcpu;
            tw += rt;
            cw += rcpu;
            ts = tw;
            cs = cw;
            gs = gen;
            is = iw;
            slice_start = done;
            while (next_slice <= done) next_slice += slice;
        }
    }
    double tw = now_s(), cw = self_cpu_s();
    io_counts_t iw = io_now();
    workload_release(&wl);
    store_close(s);
    s = NULL;
    struct stat sb;
    int64_t db_bytes = stat(db, &sb) == 0 ? (int64_t)sb.st_size : -1;
    json_t *total = slice_json(done, done, tw - t0, cw - c0 - gen, gen,
                               (io_counts_t){iw.wchar - i0.wchar, iw.write_bytes - i0.write_bytes});
    printf("total: %.0f rows/s, %.0f rows per CPU-s, %.2f CPU-us/row; database %.1f MB (%.0f B/row)\n",
           json_real_value(json_object_get(total, "rows_per_s")),
           json_real_value(json_object_get(total, "rows_per_cpu_s")),
           json_real_value(json_object_get(total, "cpu_us_per_row")), (double)db_bytes / 1e6,
           done ? (double)db_bytes / (double)done : 0.0);
    json_t *res = json_pack("{s:i,s:s,s:s,s:I,s:b,s:i,s:I,s:o,s:o,s:I,s:o}", "schema", 1, "label",
                            lag ? "sink-sqlite-lag" : "sink-sqlite", "mode", "sink", "rows", (json_int_t)done, "lag", lag,
                            "batch", batch, "schema_version", (json_int_t)STORE_SCHEMA_VERSION, "slices",
                            slices, "total", total, "db_bytes", (json_int_t)db_bytes, "machine",
                            bench_machine_json());
    slices = NULL;
    if (out && json_dump_file(res, out, JSON_INDENT(2)) != 0) {
        fprintf(stderr, "bench sink: cannot write %s\n", out);
        json_decref(res);
        goto out;
    }
    json_decref(res);
    rc = 0;
out:
    if (s) store_close(s);
    json_decref(slices);
    free(ptrs);
    free(smp);
    free(cur);
    free(prev);
    for (size_t i = 0; i < ARRAY_LEN(sfx); i++) {
        char *p = xasprintf("%s%s", db, sfx[i]);
        unlink(p);
        free(p);
        p = xasprintf("%s%s", evdb, sfx[i]);
        unlink(p);
        free(p);
    }
    if (!dir_opt) rmdir(dir);
    free(db);
    free(evdb);
    free(dir);
    return rc;
}
