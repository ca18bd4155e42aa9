/*
 * bench_int.h - what the parts of `herald bench` share. Not for use outside
 * src/bench/.
 *
 *   bench.c        the driver: options, phases, result JSON
 *   gen.c          load generator: HTTP/1.1 POST /v1/events over keep-alive
 *                  connections, at a fixed rate or closed-loop
 *   scrape.c       a tiny blocking HTTP client and the /metrics parser
 *   seed.c         users and templates written straight into the store
 *   raw_embedded.c the raw embedded-bus baseline
 *   raw_kafka.c    the raw librdkafka baseline
 *   proc.c         the measured child process: start, stop, CPU, RSS
 *   http_engine.c  `herald bench http-engine`: the HTTP engine alone
 *   threads.c      per-thread CPU of the measured herald, grouped by stage
 *   sustain.c      the sustained-rate search's decisions (keeps up? next rate)
 *   sink.c         `herald bench sink`: the status store alone
 */
#ifndef HERALD_BENCH_INT_H
#define HERALD_BENCH_INT_H

#include "bench/workload.h"
#include "core/buf.h"
#include "core/hist.h"
#include "metrics/metrics.h"

#include <jansson.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

/* ---- scrape.c ---- */

/* GET path from 127.0.0.1:port; body into out. HR_OK on a 2xx answer. */
/* The admin API key of the measured herald (its <data>/admin.key), sent
 * with every request; "" before it exists. */
extern char bench_api_key[128];
hr_t http_get(int port, const char *path, buf_t *out, int timeout_ms);
/* POST a JSON body. */
hr_t http_post(int port, const char *path, const char *body, buf_t *out, int timeout_ms);

/* A scrape of herald's /metrics: every metric of src/metrics/metrics.def
 * (v.notifs_sent, v.delivery_latency[ch] with the fine buckets and max...)
 * and the embedded bus's lag summed per stage. */
typedef struct metrics {
    metrics_snap_t v;
    int64_t lag_fanout, lag_dispatch, lag_status; /* -1 when not exposed */
    bool has_lag;
} metrics_t;

/* Parses herald's /metrics text (metrics_snap_parse, then the lag sums and
 * each latency histogram's max). */
hr_t metrics_parse(const char *text, metrics_t *m);
/* GET /metrics?buckets=fine (the fine buckets give quantiles within 12.5 %). */
hr_t metrics_scrape(int port, metrics_t *m);
/* Notifications whose fate is settled: sent, failed, suppressed or over the
 * recipient's rate limit (a final "rate_limited" status: herald's default
 * limits are on in the bench, and its later steps reach them). */
static inline int64_t metrics_limited(const metrics_t *m)
{
    int64_t limited = 0;
    for (int ch = 0; ch < CH__COUNT; ch++) limited += m->v.ratelimit_limited[ch];
    return limited;
}
static inline int64_t metrics_done(const metrics_t *m)
{
    return m->v.notifs_sent + m->v.notifs_failed + m->v.notifs_suppressed + metrics_limited(m);
}

/* ---- proc.c ---- */

/* Often enough to see the plateau of a burst and the drain after it; a read
 * of /proc/<pid>/status costs some 20 us. */
#define RSS_SAMPLE_MS 100

/* A resident-set reading of /proc/<pid>/status, in bytes: VmHWM, VmRSS and
 * VmRSS split into anonymous, file-backed and shared-memory pages. */
typedef struct rss_info {
    int64_t hwm, rss, anon, file, shmem;
} rss_info_t;

typedef struct child {
    pid_t pid;
    int port;
    char *log_path;
    /* a thread samples the child's RSS every RSS_SAMPLE_MS while it runs and
     * keeps the largest sample (its split into anonymous and file pages is
     * what VmHWM, the kernel's peak, does not tell) */
    pthread_t rss_th;
    pid_t rss_pid;      /* the sampled process (pid may be cleared meanwhile) */
    bool rss_started;
    atomic_bool rss_stop;
    pthread_mutex_t rss_mu;
    rss_info_t rss_max; /* under rss_mu */
} child_t;

/* Starts `herald serve` (this executable) with args (NULL-terminated, after
 * "serve"), output appended to log_path; waits for /readyz up to
 * timeout_ms. */
hr_t child_start(child_t *c, const char *const *args, const char *log_path, int port, int timeout_ms);
/* SIGTERM, wait up to timeout_ms, then SIGKILL. Returns the exit status. */
int child_stop(child_t *c, int timeout_ms);
/* CPU seconds (user + system) used so far by pid. */
double proc_cpu_s(pid_t pid);
/* Peak and current resident set size in bytes. */
hr_t proc_rss(pid_t pid, int64_t *peak, int64_t *now);
/* The same with the split of VmRSS (RssAnon, RssFile, RssShmem). */
hr_t proc_rss_info(pid_t pid, rss_info_t *out);
/* The largest RSS sample of the running child so far (zeros before the
 * first), with its VmHWM read now. */
rss_info_t child_rss_max(child_t *c);
/* CPU seconds of this process (all threads). */
double self_cpu_s(void);
/* A free TCP port on 127.0.0.1. */
int free_port(void);
double now_s(void);

/* ---- threads.c ---- */

/* What a thread of herald does, from its name. */
enum {
    TG_INGEST,      /* MHD-*: HTTP ingest and the rest of the API */
    TG_FANOUT,      /* fanout */
    TG_DISPATCH,    /* dispatch:<channel> */
    TG_RETRY,       /* retry:<channel>:<tier> */
    TG_STATUS,      /* status: the status sink */
    TG_CKPT,        /* store-ckpt: SQLite checkpoints (store and dedupe db) */
    TG_BUS,         /* unnamed threads: the bus's I/O (flusher, syncer, poller), watchdog */
    TG_MAIN,        /* the main thread */
    TG_KAFKA,       /* rdk:*: librdkafka */
    TG_OTHER,
    TG__COUNT
};
extern const char *const tcpu_group_names[TG__COUNT];
int tcpu_group(const char *comm, int tid, int pid);

typedef struct tcpu_snap {
    int n;
    struct {
        int tid, group;
        unsigned long long user_ticks, sys_ticks;
    } *t;
} tcpu_snap_t;

typedef struct tcpu_groups {
    double user_s[TG__COUNT], sys_s[TG__COUNT];
    int threads[TG__COUNT];
} tcpu_groups_t;

/* Every thread's CPU time so far (from /proc/<pid>/task/<tid>/stat). */
hr_t tcpu_snap(int pid, tcpu_snap_t *s);
void tcpu_free(tcpu_snap_t *s);
/* CPU seconds per group between two snapshots. */
void tcpu_diff(const tcpu_snap_t *a, const tcpu_snap_t *b, tcpu_groups_t *out);
/* {"fanout":{"threads","cpu_s","sys_s","cpu_us_per_notif"},...} */
json_t *tcpu_json(const tcpu_groups_t *g, double notifs);
void tcpu_print(const char *indent, const tcpu_groups_t *g, double notifs);
/* CPU seconds the whole machine has been busy (all cores, /proc/stat). */
bool machine_busy_s(double *busy);
/* {"1m","5m","15m"} load averages now. */
json_t *loadavg_json(void);

/* ---- sustain.c ---- */

#define SUSTAIN_GROWTH_REL 0.03   /* backlog growth allowed over a hold, share of the input */
#define SUSTAIN_GROWTH_ABS 4096.0 /* ... plus this many records (half a gathered sink batch) */
#define SUSTAIN_LEVEL_S 3.0       /* backlog allowed at the end: seconds of input */
#define SUSTAIN_LEVEL_ABS 32768.0 /* ... or this many records, whichever is more */
#define SUSTAIN_TAIL 4            /* samples averaged for the backlog at the end */

/* Least-squares slope of y over t (0 with fewer than 2 points). */
double sustain_slope(const double *t, const double *y, int n);
/* Mean of the last SUSTAIN_TAIL values. */
double sustain_tail(const double *y, int n);
/* Whether a stage with input `rate` (notifications/s) kept up over a hold
 * of hold_s seconds, given its backlog's slope and level at the end; why
 * (may be NULL) says what failed. */
bool sustain_keeps_up(double rate, double hold_s, double slope, double tail, char *why, size_t n);
/* The next rate to try, given the highest rate that kept up (lo, 0 for
 * none), the lowest that did not (hi), and the bottleneck's processed rate
 * in the last failed step (cap, 0 when the last step passed). 0 when
 * hi / lo <= 1 + tol: the search is done. */
double sustain_next(double lo, double hi, double cap, double tol);

/* The search's bracket. lo is the highest rate that kept up (0: none yet),
 * hi the lowest that did not - at first the burst rate, untried: a fixed
 * rate above what the closed loop reached is not expected to last, but the
 * burst may have been measured while the machine was busier, so an untried
 * hi is tried before the search ends, and raised when it keeps up. */
typedef struct sustain_search {
    double lo, hi, tol;
    bool hi_tried;
} sustain_search_t;
/* Starts a search below the burst rate; returns the first rate to try. */
double sustain_start(sustain_search_t *s, double burst, double first, double tol);
/* Records a step's outcome (cap: its bottleneck's processed rate); returns
 * the next rate to try, 0 when the search is done. */
double sustain_step(sustain_search_t *s, double rate, bool pass, double cap);

/* ---- gen.c ---- */

typedef struct gen_opts {
    int port;
    int conns;                  /* requests in flight at once */
    int batch;                  /* events per request */
    double rate;                /* events/s; 0 = as fast as `window` allows */
    double duration_s;
    int64_t window;             /* closed loop: notifications in flight at most (0 = off) */
    int64_t done_base;          /* metrics_done() when the generator's counts began */
    int64_t offered_base;       /* notifications accepted before this run (same origin) */
} gen_opts_t;

typedef struct gen_result {
    int64_t events;             /* accepted (202) */
    int64_t notifs;             /* their audience sizes summed */
    int64_t chan_notifs[CH__COUNT];
    int64_t requests;
    int64_t rejected;           /* requests answered other than 202 */
    int64_t errors;             /* connection failures (a request lost) */
    int64_t reconnects;         /* connections the server closed, reopened without loss */
    double elapsed_s;
    double max_behind_s;        /* fixed rate: how far sending fell behind the schedule */
    double cpu_s;               /* CPU the generator used */
    double sent_bytes;
} gen_result_t;

/* Generates load with wl until duration_s passes. */
hr_t gen_run(workload_t *wl, const gen_opts_t *o, gen_result_t *res);

/* ---- seed.c ---- */

/* Opens the SQLite store at path, writes `users` users (email, phone, one
 * push device each, of platform "fcm" or "apns": an APNs token is 64 hex
 * digits) and the benchmark's templates for push, in-app, email and SMS. */
hr_t seed_store(const char *path, int64_t users, const char *platform, double *seconds);

/* ---- bench.c ---- */

/* {"cores","cpu_model","mem_gib","kernel","loadavg_1m"} of this machine
 * (new reference). */
json_t *bench_machine_json(void);

/* ---- http_engine.c ---- */

/* `herald bench http-engine ...` (argv[0] is "http-engine"): exit code. */
int bench_http_engine_main(int argc, char **argv);
/* pg_sink.c: `herald bench pg-sink` (status rows/s into PostgreSQL). */
int bench_pg_sink_main(int argc, char **argv);

/* ---- sink.c ---- */

/* `herald bench sink ...` (argv[0] is "sink"): exit code. */
int bench_sink_main(int argc, char **argv);
/* claims.c: `herald bench claims ...` (the dedupe claims alone): exit code. */
int bench_claims_main(int argc, char **argv);

/* ---- raw baselines ---- */

typedef struct raw_opts {
    const char *dir;            /* embedded: bus directory */
    const char *brokers;        /* kafka */
    const char *topic_prefix;   /* kafka: topics and groups get this prefix */
    int partitions;
    int batch_max;              /* records per poll, as herald's stages */
    int depth;                  /* batches in flight per relay (1 = wait per batch) */
    double duration_s;
    double warmup_s;
    int64_t window;             /* notifications in flight at most */
    uint64_t seed;
    int64_t users;
    size_t notif_bytes;         /* mean value size of a notification record */
    size_t status_bytes;        /* mean value size of a status record */
    /* records to move: herald-encoded notifications and statuses with
     * varied ids and text (so compression sees what it would see) */
    const buf_t *notif_pool;
    const buf_t *status_pool;
    int pool_n;
    bool verbose;               /* progress every second on stderr */
    const char *fsync;          /* embedded */
    int fsync_interval_ms;
    int flush_interval_us;
} raw_opts_t;

typedef struct raw_result {
    double events_per_s;
    double notifs_per_s;        /* through the dispatch hop, acknowledged */
    double status_per_s;        /* read by the status consumer */
    double cpu_s_per_m;         /* CPU seconds per million notifications */
    double elapsed_s;
    int64_t notifs;
    int64_t events;
    size_t raw_bytes_avg;
} raw_result_t;

/* The counters a raw baseline's threads advance. */
typedef struct raw_counters {
    _Atomic int64_t *events;
    _Atomic int64_t *offered;
    _Atomic int64_t *done;
    _Atomic int64_t *status_read;
} raw_counters_t;

/* Waits out the warm-up, then measures rates and CPU over the rest of
 * o->duration_s into res (raw_measure.c). Runs on the caller's thread. */
void raw_measure(const raw_opts_t *o, const raw_counters_t *k, raw_result_t *res);

hr_t raw_embedded_run(const raw_opts_t *o, raw_result_t *res);
hr_t raw_kafka_run(const raw_opts_t *o, raw_result_t *res);
/* Deletes herald's topics and consumer groups on a broker (no herald may be
 * running against it) so that the next one starts empty. */
hr_t kafka_reset_herald(const char *brokers);

/* n realistic encoded notification and status records (free with
 * record_pool_free); mean sizes in *notif_mean, *status_mean. */
void record_pool_build(int n, uint64_t seed, buf_t **notifs, buf_t **statuses, size_t *notif_mean,
                       size_t *status_mean);
void record_pool_free(int n, buf_t *notifs, buf_t *statuses);

#endif
