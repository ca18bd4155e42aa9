/*
 * bench.c - `herald bench`, the benchmark driver.
 *
 * DESIGN
 *  The measured process is a `herald serve` child running the whole
 *  pipeline with the sandbox provider (sandbox.mode null or file). This
 *  process seeds the store before the child starts, generates the load over
 *  HTTP (gen.c), reads the child's /metrics and /proc entries, and runs the
 *  raw bus baseline in-process while no herald runs. Phases:
 *
 *   1. seed      users (email, phone, one push device) and templates, straight into SQLite
 *   2. raw       the bus alone, same records, sizes, hops and groups (raw_*.c)
 *   3. max       closed loop for --duration s: the highest rate with a bounded backlog
 *   4. drain     wait until every notification is settled and the status sink has
 *                caught up; the sink's own rate is measured here
 *   5. sweep     fixed offered rates at --sweep percent of the max: p99 per channel
 *
 *  Latency comes from herald's own histograms (/metrics,
 *  herald_delivery_latency_seconds): event accepted by ingest -> provider
 *  call returned, every notification counted. A window's figures are the
 *  difference of two scrapes.
 *
 *  The result is one JSON document (--out) with the commit, the machine and
 *  the mode; scripts/bench.sh turns the results into BENCHMARKS.md and a
 *  chart.
 */
#include "bench/bench.h"

#include "bench/bench_int.h"
#include "app.h"
#include "bus/bus.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <spawn.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_SETS 32
#define MAX_SWEEP 16
#define MAX_STEPS 32
#define MAX_SAMPLES 1024
#define RECORD_POOL 4096
/* Settings of the measured herald besides the defaults (recorded in each
 * result with --set ones): one worker per core and stage - fan-out's CPU
 * sets the pipeline's pace -, and 16 HTTP threads: ingest handlers wait for
 * the bus to acknowledge each request's events, so the pool bounds the
 * requests in flight, and 4 (the default) caps a fixed-rate generator on
 * Kafka, where an acknowledgement takes ~10 ms. */
static const char *const bench_settings[] = {"pipeline.workers=2", "http.threads=16"};

typedef struct bopts {
    const char *bus;
    const char *brokers;
    const char *sink;
    int64_t users;
    double duration;
    double warmup;
    const char *sweep;
    double sweep_duration;
    double rate;
    bool raw;
    double raw_duration;
    int raw_depth;
    int conns;
    int batch;
    int64_t window;
    uint64_t seed;
    const char *data_dir;
    bool keep;
    const char *out;
    const char *label;
    const char *commit;
    const char *seed_cache;
    double drain_timeout;
    const char *sets[MAX_SETS];
    int nsets;
    int partitions;
    bool raw_only;
    bool verbose;
    bool push_only;             /* every event a push (the push provider benchmark) */
    const char *platform;       /* seeded devices: fcm | apns */
    int fake_control;           /* the fake providers' control port (0: none) */
    int fake_delay;             /* injected APNs delay set on the fake, ms */
    bool sustain;               /* search for the sustained rate */
    double hold;                /* measured seconds per step of the search */
    double step_warmup;         /* unmeasured seconds at the start of each step */
    int steps;                  /* steps of the search at most */
    double tolerance;           /* the search stops when hi / lo <= 1 + tolerance */
    bool warm_cache;            /* fill the page cache before each herald starts (warm_page_cache) */
} bopts_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: herald bench [options]\n"
            "Runs the whole pipeline (ingest, fan-out, dispatch, status events, the status\n"
            "sink) under generated load against a `herald serve` child, beside the raw bus.\n\n"
            "  --bus embedded|kafka    bus backend (default embedded)\n"
            "  --kafka-brokers B       Kafka bootstrap servers (default 127.0.0.1:9092)\n"
            "  --sink null|file        sandbox provider mode (default null: no I/O per delivery)\n"
            "  --users N               distinct users seeded (default 1000000)\n"
            "  --duration S            max-throughput run, seconds (default 20)\n"
            "  --warmup S              unmeasured lead-in of every run (default 3)\n"
            "  --sweep P,P,...         offered load, percent of the sustained rate (of the max without\n"
            "                          one), for latency (default 10,50,90)\n"
            "  --sweep-duration S      measured seconds per sweep point (default 10)\n"
            "  --rate EPS              skip the max run: one fixed-rate run at EPS events/s\n"
            "  --no-sustain            skip the search for the sustained rate\n"
            "  --hold S                measured seconds per step of the search (default 10)\n"
            "  --step-warmup S         unmeasured seconds at the start of each step (default 3)\n"
            "  --steps N               steps of the search at most (default 8)\n"
            "  --tolerance F           stop when the rates that kept up and did not are within\n"
            "                          1 + F of each other (default 0.1)\n"
            "  --no-raw                skip the raw bus baseline\n"
            "  --raw-duration S        raw baseline seconds (default 10)\n"
            "  --raw-depth N           batches in flight per raw relay (default 4)\n"
            "  --raw-only              run only the raw bus baseline\n"
            "  --verbose               progress of the raw baseline every second\n"
            "  --conns N               generator connections (default 4)\n"
            "  --batch N               events per request (default 500)\n"
            "  --window N              notifications in flight in the max run (default 1000000)\n"
            "  --seed N                workload seed (default 1)\n"
            "  --drain-timeout S       longest wait for the status sink to catch up (default 90)\n"
            "  --warm-page-cache       before each herald starts, fill free memory with a clean\n"
            "                          file in the work directory (the page cache of a server that\n"
            "                          has run for a while; see bench/notes.md, round 27)\n"
            "  --data-dir DIR          work directory (default: a temporary one, removed after)\n"
            "  --keep                  keep the work directory\n"
            "  --seed-cache DIR        reuse a seeded store from DIR (created when missing)\n"
            "  --set KEY=VALUE         passed to herald serve (repeatable)\n"
            "  --label NAME            name of this result\n"
            "  --commit ID             commit recorded in the result (default: git rev-parse)\n"
            "  --out FILE              write the result JSON to FILE\n"
            "  --push-only             every event a push notification (push provider benchmark)\n"
            "  --device-platform P     seeded devices: fcm (default) or apns (64 hex digit tokens)\n"
            "  --fake-control PORT     the fake providers (tests/fakeprov): reset them before each\n"
            "                          herald starts, report their connections, streams and CPU\n"
            "  --fake-delay MS         with --fake-control: APNs answers after MS ms (default 0)\n\n"
            "herald bench http-engine --help: the HTTP engine alone against the fake APNs\n"
            "herald bench sink --help: the status store alone (status rows into SQLite)\n"
            "herald bench claims --help: the event dedupe claims alone (SQLite)\n");
}

enum { O_BUS = 1, O_BROKERS, O_SINK, O_USERS, O_DURATION, O_WARMUP, O_SWEEP, O_SWEEP_DUR, O_RATE,
       O_NORAW, O_RAW_DUR, O_RAW_DEPTH, O_CONNS, O_BATCH, O_WINDOW, O_SEED, O_DATA, O_KEEP, O_OUT,
       O_LABEL, O_COMMIT, O_SEED_CACHE, O_DRAIN, O_SET, O_PARTS, O_RAW_ONLY, O_VERBOSE, O_PUSH_ONLY,
       O_PLATFORM, O_FAKE_CTL, O_FAKE_DELAY, O_NO_SUSTAIN, O_HOLD, O_STEP_WARM, O_STEPS, O_TOL, O_WARM_CACHE, O_HELP };

static int parse(int argc, char **argv, bopts_t *o)
{
    static const struct option lo[] = {
        {"bus", required_argument, NULL, O_BUS},
        {"kafka-brokers", required_argument, NULL, O_BROKERS},
        {"sink", required_argument, NULL, O_SINK},
        {"users", required_argument, NULL, O_USERS},
        {"duration", required_argument, NULL, O_DURATION},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"sweep", required_argument, NULL, O_SWEEP},
        {"sweep-duration", required_argument, NULL, O_SWEEP_DUR},
        {"rate", required_argument, NULL, O_RATE},
        {"no-raw", no_argument, NULL, O_NORAW},
        {"raw-duration", required_argument, NULL, O_RAW_DUR},
        {"raw-depth", required_argument, NULL, O_RAW_DEPTH},
        {"conns", required_argument, NULL, O_CONNS},
        {"batch", required_argument, NULL, O_BATCH},
        {"window", required_argument, NULL, O_WINDOW},
        {"seed", required_argument, NULL, O_SEED},
        {"data-dir", required_argument, NULL, O_DATA},
        {"keep", no_argument, NULL, O_KEEP},
        {"out", required_argument, NULL, O_OUT},
        {"label", required_argument, NULL, O_LABEL},
        {"commit", required_argument, NULL, O_COMMIT},
        {"seed-cache", required_argument, NULL, O_SEED_CACHE},
        {"drain-timeout", required_argument, NULL, O_DRAIN},
        {"set", required_argument, NULL, O_SET},
        {"partitions", required_argument, NULL, O_PARTS},
        {"raw-only", no_argument, NULL, O_RAW_ONLY},
        {"verbose", no_argument, NULL, O_VERBOSE},
        {"push-only", no_argument, NULL, O_PUSH_ONLY},
        {"device-platform", required_argument, NULL, O_PLATFORM},
        {"fake-control", required_argument, NULL, O_FAKE_CTL},
        {"fake-delay", required_argument, NULL, O_FAKE_DELAY},
        {"no-sustain", no_argument, NULL, O_NO_SUSTAIN},
        {"hold", required_argument, NULL, O_HOLD},
        {"step-warmup", required_argument, NULL, O_STEP_WARM},
        {"steps", required_argument, NULL, O_STEPS},
        {"tolerance", required_argument, NULL, O_TOL},
        {"warm-page-cache", no_argument, NULL, O_WARM_CACHE},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    *o = (bopts_t){
        .bus = "embedded", .brokers = "127.0.0.1:9092", .sink = "null", .users = 1000000,
        .duration = 20, .warmup = 3, .sweep = "10,50,90", .sweep_duration = 10, .raw = true,
        .raw_duration = 10, .raw_depth = 4, .conns = 4, .batch = 500, .window = 1000000, .seed = 1,
        .drain_timeout = 90, .partitions = 4, .platform = "fcm", .sustain = true, .hold = 10,
        .step_warmup = 3, .steps = 8, .tolerance = 0.1,
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case O_BUS: o->bus = optarg; break;
        case O_BROKERS: o->brokers = optarg; break;
        case O_SINK: o->sink = optarg; break;
        case O_USERS: o->users = strtoll(optarg, NULL, 10); break;
        case O_DURATION: o->duration = strtod(optarg, NULL); break;
        case O_WARMUP: o->warmup = strtod(optarg, NULL); break;
        case O_SWEEP: o->sweep = optarg; break;
        case O_SWEEP_DUR: o->sweep_duration = strtod(optarg, NULL); break;
        case O_RATE: o->rate = strtod(optarg, NULL); break;
        case O_NORAW: o->raw = false; break;
        case O_RAW_DUR: o->raw_duration = strtod(optarg, NULL); break;
        case O_RAW_DEPTH: o->raw_depth = atoi(optarg); break;
        case O_CONNS: o->conns = atoi(optarg); break;
        case O_BATCH: o->batch = atoi(optarg); break;
        case O_WINDOW: o->window = strtoll(optarg, NULL, 10); break;
        case O_SEED: o->seed = strtoull(optarg, NULL, 10); break;
        case O_DATA: o->data_dir = optarg; break;
        case O_KEEP: o->keep = true; break;
        case O_WARM_CACHE: o->warm_cache = true; break;
        case O_OUT: o->out = optarg; break;
        case O_LABEL: o->label = optarg; break;
        case O_COMMIT: o->commit = optarg; break;
        case O_SEED_CACHE: o->seed_cache = optarg; break;
        case O_DRAIN: o->drain_timeout = strtod(optarg, NULL); break;
        case O_PARTS: o->partitions = atoi(optarg); break;
        case O_RAW_ONLY: o->raw_only = true; break;
        case O_VERBOSE: o->verbose = true; break;
        case O_PUSH_ONLY: o->push_only = true; break;
        case O_PLATFORM: o->platform = optarg; break;
        case O_FAKE_CTL: o->fake_control = atoi(optarg); break;
        case O_FAKE_DELAY: o->fake_delay = atoi(optarg); break;
        case O_NO_SUSTAIN: o->sustain = false; break;
        case O_HOLD: o->hold = strtod(optarg, NULL); break;
        case O_STEP_WARM: o->step_warmup = strtod(optarg, NULL); break;
        case O_STEPS: o->steps = atoi(optarg); break;
        case O_TOL: o->tolerance = strtod(optarg, NULL); break;
        case O_SET:
            if (o->nsets == MAX_SETS) {
                fprintf(stderr, "herald bench: too many --set\n");
                return 2;
            }
            o->sets[o->nsets++] = optarg;
            break;
        case O_HELP: usage(stdout); return 1;
        default: usage(stderr); return 2;
        }
    }
    if (strcmp(o->bus, "embedded") != 0 && strcmp(o->bus, "kafka") != 0) {
        fprintf(stderr, "herald bench: --bus must be embedded or kafka\n");
        return 2;
    }
    if (strcmp(o->platform, "fcm") != 0 && strcmp(o->platform, "apns") != 0) {
        fprintf(stderr, "herald bench: --device-platform must be fcm or apns\n");
        return 2;
    }
    if (o->fake_delay < 0 || o->fake_delay > 10000) {
        fprintf(stderr, "herald bench: --fake-delay in 0..10000 ms\n");
        return 2;
    }
    if (strcmp(o->sink, "null") != 0 && strcmp(o->sink, "file") != 0) {
        fprintf(stderr, "herald bench: --sink must be null or file\n");
        return 2;
    }
    if (o->users < 1 || o->duration <= 0 || o->batch < 1 || o->batch > 1000 || o->conns < 1 ||
        o->window < 1 || o->partitions < 1 || o->hold < 1 || o->step_warmup < 0 || o->steps < 1 ||
        o->steps > MAX_STEPS || o->tolerance <= 0) {
        fprintf(stderr, "herald bench: bad --users, --duration, --batch (1..1000), --conns, --window, --partitions, "
                        "--hold (>= 1), --step-warmup, --steps (1..%d) or --tolerance\n", MAX_STEPS);
        return 2;
    }
    return 0;
}

/* ---- small helpers ---- */

/* Runs argv[0] (found on PATH) with stderr to /dev/null and keeps the first
 * line of its standard output in out ("" when it fails). No shell: the
 * arguments are passed as they are. */
static void run_argv(char *const argv[], char *out, size_t n)
{
    out[0] = '\0';
    int fd[2];
    if (pipe2(fd, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (e == 0) {
        /* read to the end, so the child never blocks on a full pipe */
        size_t len = 0;
        char chunk[4096];
        ssize_t got;
        while ((got = read(fd[0], chunk, sizeof(chunk))) != 0) {
            if (got < 0) {
                if (errno == EINTR) continue;
                break;
            }
            size_t take = (size_t)got < n - 1 - len ? (size_t)got : n - 1 - len;
            memcpy(out + len, chunk, take);
            len += take;
        }
        out[len] = '\0';
        out[strcspn(out, "\r\n")] = '\0';
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) out[0] = '\0';
    }
    close(fd[0]);
}

json_t *bench_machine_json(void)
{
    char model[256] = "", line[512];
    FILE *f = fopen("/proc/cpuinfo", "re");
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "model name", 10) == 0) {
            const char *c = strchr(line, ':');
            if (c) snprintf(model, sizeof(model), "%s", c + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    if (f) fclose(f);
    struct utsname u;
    uname(&u);
    double mem = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024 * 1024);
    /* the 1-minute load average when the run started: on a shared machine
     * it says how much of the cores the run could have had */
    double load[1] = {0};
    if (getloadavg(load, 1) != 1) load[0] = -1;
    return json_pack("{s:i,s:s,s:f,s:s,s:f}", "cores", (int)sysconf(_SC_NPROCESSORS_ONLN), "cpu_model",
                     model, "mem_gib", round(mem * 10) / 10, "kernel", u.release, "loadavg_1m",
                     round(load[0] * 100) / 100);
}

static json_t *latency_json(const hist_snap_t *s)
{
    if (s->total == 0) return json_null();
    return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f}", "count", (json_int_t)s->total, "p50_ms",
                     (double)hist_quantile(s, 0.50) / 1000.0, "p95_ms",
                     (double)hist_quantile(s, 0.95) / 1000.0, "p99_ms",
                     (double)hist_quantile(s, 0.99) / 1000.0, "max_ms", (double)s->max / 1000.0,
                     "mean_ms", (double)s->sum / (double)s->total / 1000.0);
}

static json_t *latencies_json(const metrics_t *a, const metrics_t *b)
{
    json_t *o = json_object();
    for (int ch = 0; ch < CH__COUNT; ch++) {
        hist_snap_t d;
        hist_snap_sub(&a->v.delivery_latency[ch], &b->v.delivery_latency[ch], &d);
        if (d.total) json_object_set_new(o, channel_name((channel_t)ch), latency_json(&d));
    }
    return o;
}

static void print_latencies(const char *indent, const metrics_t *a, const metrics_t *b)
{
    for (int ch = 0; ch < CH__COUNT; ch++) {
        hist_snap_t d;
        hist_snap_sub(&a->v.delivery_latency[ch], &b->v.delivery_latency[ch], &d);
        if (!d.total) continue;
        printf("%s%-6s p50 %8.2f ms  p95 %8.2f ms  p99 %8.2f ms  max %8.2f ms  (%llu)\n", indent,
               channel_name((channel_t)ch), (double)hist_quantile(&d, 0.50) / 1000.0,
               (double)hist_quantile(&d, 0.95) / 1000.0, (double)hist_quantile(&d, 0.99) / 1000.0,
               (double)d.max / 1000.0, (unsigned long long)d.total);
    }
}

static hr_t copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    hr_t r = a && b ? HR_OK : HR_ERR;
    char buf[1 << 16];
    size_t n;
    while (r == HR_OK && (n = fread(buf, 1, sizeof(buf), a)) > 0)
        if (fwrite(buf, 1, n, b) != n) r = HR_ERR;
    if (a) fclose(a);
    if (b && fclose(b) != 0) r = HR_ERR;
    return r;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT) log_warn("bench", "cannot remove %s: %s", path, strerror(errno));
    return 0; /* remove what can be removed */
}

/* Removes dir and everything below it (depth first, symlinks not followed). */
static void rm_rf(const char *dir)
{
    if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        log_warn("bench", "could not remove %s: %s", dir, strerror(errno));
}

/* Records like the ones herald moves: encoded notifications and status
 * records of the benchmark's channel mix, with their own ids, users,
 * addresses and texts. */
void record_pool_build(int n, uint64_t seed, buf_t **notifs, buf_t **statuses, size_t *notif_mean,
                       size_t *status_mean)
{
    static const char *const texts[] = {
        "Back in stock: the blue one you asked about, in your size.",
        "Your order #4711 has shipped and arrives on Thursday.",
        "Kylie commented on the photo you shared this morning.",
        "Price drop on an item in your wish list: now 20% off.",
    };
    workload_t wl;
    workload_init(&wl, seed, 1000000, "pool");
    *notifs = xcalloc((size_t)n, sizeof(buf_t));
    *statuses = xcalloc((size_t)n, sizeof(buf_t));
    size_t tn = 0, ts = 0;
    for (int i = 0; i < n; i++) {
        char user[16], actor[16], ev[32], nid[33], title[64], body[160], addr[96], msgid[48];
        workload_user_id((int64_t)workload_rand(&wl, 1000000), user);
        workload_user_id((int64_t)workload_rand(&wl, 1000000), actor);
        snprintf(ev, sizeof(ev), "b1700000000-%d", i);
        int r = (int)workload_rand(&wl, 100);
        channel_t ch = r < 70 ? CH_PUSH : r < 90 ? CH_INAPP : r < 98 ? CH_EMAIL : CH_SMS;
        notif_make_id(1700000000000000 + i, HSTR(ev), HSTR(user), ch, nid);
        snprintf(title, sizeof(title), "%s posted something new", actor);
        snprintf(body, sizeof(body), "Hi %s, %s wrote: %s", user, actor, texts[i % 4]);
        unsigned long long k = workload_rand(&wl, UINT64_MAX);
        if (ch == CH_PUSH)
            snprintf(addr, sizeof(addr), "fcm:fcm-%016llx%016llx%016llx", k, k * 0x9e3779b97f4a7c15ull,
                     k * 0xbf58476d1ce4e5b9ull);
        else if (ch == CH_EMAIL)
            snprintf(addr, sizeof(addr), "%s@example.com", user);
        else if (ch == CH_SMS)
            snprintf(addr, sizeof(addr), "+1555%07d", (int)(k % 10000000));
        else
            snprintf(addr, sizeof(addr), "%s", user);
        notif_t x = {
            .kind = 1, .channel = ch, .priority = PRIO_NORMAL, .status = ST_PENDING, .attempt = 1,
            .created_at_ms = 1700000000000 + i, .due_at_ms = 1700000000000 + i,
            .accepted_at_us = 1700000000000000 + i, .notification_id = {nid, 32}, .event_id = HSTR(ev),
            .user_id = HSTR(user), .category = HSTR("social"), .title = HSTR(title), .body = HSTR(body),
            .address = HSTR(addr), .platform = HSTR(ch == CH_PUSH ? "fcm" : ""),
        };
        buf_init(&(*notifs)[i], 0);
        notif_encode(&x, &(*notifs)[i]);
        tn += (*notifs)[i].len;
        snprintf(msgid, sizeof(msgid), "sandbox-%s", nid);
        x.kind = 2;
        x.status = ST_SENT;
        x.status_at_ms = x.created_at_ms + 3;
        x.channel_msg_id = HSTR(msgid);
        buf_init(&(*statuses)[i], 0);
        notif_encode_status(&x, true, &(*statuses)[i]); /* as dispatch writes a first attempt's */
        ts += (*statuses)[i].len;
    }
    workload_release(&wl);
    *notif_mean = n ? tn / (size_t)n : 0;
    *status_mean = n ? ts / (size_t)n : 0;
}

void record_pool_free(int n, buf_t *notifs, buf_t *statuses)
{
    for (int i = 0; i < n; i++) {
        buf_release(&notifs[i]);
        buf_release(&statuses[i]);
    }
    free(notifs);
    free(statuses);
}

/* ---- the measured child ---- */

typedef struct run {
    bopts_t *o;
    child_t child;
    int port;
    char *work;
    int64_t offered;            /* notifications accepted so far (all phases) */
    int64_t offered_events;
    workload_t wl;
    bus_t *lag_bus;             /* kafka: our own handle for lag queries */
    char *seed_db;              /* the seeded store every herald starts from */
    int64_t peak_rss;           /* over every herald started */
    rss_info_t rss_sample;      /* the largest RSS sample of every herald started */
    int instance;
    char *data;                 /* the running herald's data directory */
    double mean_aud;            /* notifications per event of the workload */
    int64_t warm_bytes;         /* written by warm_page_cache, over every herald started */
    double warm_s;
} run_t;

/* Lag per stage: from /metrics (embedded) or the broker (kafka). */
static void lag_now(run_t *R, const metrics_t *m, int64_t *fan, int64_t *disp, int64_t *stat)
{
    *fan = m->lag_fanout;
    *disp = m->lag_dispatch;
    *stat = m->lag_status;
    if (!R->lag_bus) return;
    static const struct {
        const char *group, *topic;
        int which;
    } q[] = {
        {"fanout", TOPIC_RAW, 0},
        {"dispatch-push", "notifications-push", 1},
        {"dispatch-inapp", "notifications-inapp", 1},
        {"dispatch-email", "notifications-email", 1},
        {"dispatch-sms", "notifications-sms", 1},
        {"status", TOPIC_STATUS, 2},
    };
    *fan = *disp = *stat = 0;
    for (size_t i = 0; i < ARRAY_LEN(q); i++) {
        bus_lag_t *l = NULL;
        int n = 0;
        if (bus_lag(R->lag_bus, q[i].group, q[i].topic, &l, &n) != HR_OK) continue;
        int64_t s = 0;
        for (int k = 0; k < n; k++) s += l[k].lag;
        free(l);
        *(q[i].which == 0 ? fan : q[i].which == 1 ? disp : stat) += s;
    }
}

/* Waits until every accepted notification is settled (and, with `sink`,
 * written to the store). Returns seconds waited, or -1 on timeout. */
static double wait_drain(run_t *R, bool sink, double timeout, metrics_t *last)
{
    double t0 = now_s();
    for (;;) {
        if (metrics_scrape(R->port, last) == HR_OK && metrics_done(last) >= R->offered &&
            (!sink || last->v.status_rows_written >= R->offered))
            return now_s() - t0;
        if (now_s() - t0 > timeout) return -1;
        usleep(100000);
    }
}

static hr_t gen(run_t *R, double rate, int batch, double seconds, int64_t window, gen_result_t *g)
{
    gen_opts_t go = {
        .port = R->port,
        /* open loop: enough connections that a slow answer does not hold
         * the schedule back (herald serves 16 at once, bench_settings) */
        .conns = rate > 0 && R->o->conns < 16 ? 16 : R->o->conns,
        .batch = batch,
        .rate = rate,
        .duration_s = seconds,
        .window = window,
        .offered_base = R->offered,
    };
    hr_t r = gen_run(&R->wl, &go, g);
    R->offered += g->notifs;
    R->offered_events += g->events;
    if (g->rejected || g->errors)
        log_warn("bench", "%lld request(s) refused, %lld connection error(s)", (long long)g->rejected,
                 (long long)g->errors);
    if (g->reconnects)
        log_info("bench", "%lld connection(s) closed by herald and reopened (no request lost)",
                 (long long)g->reconnects);
    return r;
}

static double wait_drain(run_t *R, bool sink, double timeout, metrics_t *last);

/* Events per request at a fixed rate: ~100 requests a second. */
static int rate_batch(const bopts_t *o, double eps)
{
    return (int)fmax(1, fmin(o->batch, eps / 100));
}

/* The fake providers (tests/fakeprov), when --fake-control names them:
 * counters and recordings reset, recording off, the APNs delay set. */
static hr_t fake_prepare(const bopts_t *o)
{
    buf_t ans;
    buf_init(&ans, 0);
    char body[96];
    snprintf(body, sizeof(body), "{\"route\":\"apns\",\"ms\":%d}", o->fake_delay);
    hr_t r = http_post(o->fake_control, "/reset", "", &ans, 5000);
    if (r == HR_OK) r = http_post(o->fake_control, "/control/record", "{\"on\":false}", &ans, 5000);
    if (r == HR_OK) r = http_post(o->fake_control, "/control/latency", body, &ans, 5000);
    buf_release(&ans);
    if (r != HR_OK) fprintf(stderr, "herald bench: the fake providers' control port %d does not answer\n", o->fake_control);
    return r;
}

/* The fake's /stats (NULL when it does not answer). */
static json_t *fake_stats(const bopts_t *o)
{
    buf_t b;
    buf_init(&b, 0);
    json_t *j = NULL;
    if (http_get(o->fake_control, "/stats", &b, 5000) == HR_OK) j = json_loadb(b.data, b.len, 0, NULL);
    buf_release(&b);
    return j;
}

static double fake_cpu_s(const bopts_t *o)
{
    json_t *j = o->fake_control ? fake_stats(o) : NULL;
    double v = j ? json_number_value(json_object_get(j, "cpu_s")) : 0;
    json_decref(j);
    return v;
}

/* ---- a warm page cache (--warm-page-cache) ----
 *
 * On a virtual machine whose guest hands the memory it frees back to the
 * host (virtio free page reporting, as on the 2-core machines these figures
 * come from: "Free page reporting enabled" at boot), the first write to a
 * page the host took back costs a fault in the host. herald's files grow
 * the page cache by ~1 KB a notification (the bus's records and the
 * store's rows); while it grows into such memory, the bus's and the
 * checkpointer's writes cost 3-4 times their usual system time. Measured
 * at 200k notifications/s (`--rate 40000`, 100 s): the bus's I/O threads
 * took 0.10 cores for the first 30 s, then 0.43-0.49 (copy_folio_from_
 * iter_atomic, the copy into new page-cache pages: 32 % of the machine's
 * samples), the checkpointer 0.05 -> 0.22-0.30, 8.09 CPU-s per million in
 * all; with the page cache filled by a clean file first, 0.11-0.19 and
 * 0.05-0.09 throughout, 5.77 CPU-s per million. A server that has run for
 * a while has a full page cache and gets pages by reclaim: that is the
 * state measured with this option. Each herald started in the benchmark
 * deletes the previous one's files, which frees their memory, so the
 * cache is topped up before each: the pages of the file the kernel
 * dropped meanwhile are written again (mincore), then the file grows,
 * until free memory is below WARM_FREE_KEEP, leaving at least
 * WARM_DISK_KEEP of disk for herald's files; then synced, so that its
 * pages are clean for reclaim. */
#define WARM_FREE_KEEP (768LL << 20)
#define WARM_DISK_KEEP (40LL << 30)
#define WARM_CHUNK (4 << 20)

static int64_t meminfo_kib(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f) return -1;
    char line[256];
    size_t kl = strlen(key);
    int64_t v = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtoll(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Writes len bytes of chunk-sized pieces at off; answers what it wrote. */
static int64_t warm_write(int fd, const char *chunk, int64_t off, int64_t len)
{
    int64_t done = 0;
    while (done < len) {
        size_t n = len - done < WARM_CHUNK ? (size_t)(len - done) : WARM_CHUNK;
        ssize_t w = pwrite(fd, chunk, n, off + done);
        if (w <= 0) break;
        done += w;
    }
    return done;
}

static void warm_page_cache(run_t *R)
{
    int64_t free_kib = meminfo_kib("MemFree");
    struct statvfs vs;
    if (free_kib < 0 || statvfs(R->work, &vs) != 0) return;
    int64_t want = free_kib * 1024 - WARM_FREE_KEEP;
    if (want <= 0) return;
    char *path = xasprintf("%s/warm.fill", R->work);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(path);
    if (fd < 0) return;
    struct stat st;
    int64_t size = fstat(fd, &st) == 0 ? (int64_t)st.st_size : 0;
    long pg = sysconf(_SC_PAGESIZE);
    double t0 = now_s();
    char *chunk = xmalloc(WARM_CHUNK);
    memset(chunk, 0x5a, WARM_CHUNK);
    int64_t done = 0;
    /* first the file's pages the kernel dropped (mincore), so that what is
     * written takes free memory rather than rewriting cached pages */
    void *map = size > 0 ? mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    if (map != MAP_FAILED) {
        size_t npages = (size_t)((size + pg - 1) / pg);
        unsigned char *vec = xmalloc(npages);
        if (mincore(map, (size_t)size, vec) == 0) {
            for (size_t i = 0; i < npages && done < want;) {
                if (vec[i] & 1) {
                    i++;
                    continue;
                }
                size_t j = i;
                while (j < npages && !(vec[j] & 1) && (int64_t)(j - i) * pg < want - done) j++;
                int64_t off = (int64_t)i * pg, len = (int64_t)(j - i) * pg;
                if (off + len > size) len = size - off;
                done += warm_write(fd, chunk, off, len);
                i = j;
            }
        }
        free(vec);
        munmap(map, (size_t)size);
    }
    /* then the file grows, leaving WARM_DISK_KEEP of disk */
    int64_t disk = (int64_t)vs.f_bavail * (int64_t)vs.f_frsize - WARM_DISK_KEEP;
    int64_t grow = want - done < disk ? want - done : disk;
    if (grow > 0) done += warm_write(fd, chunk, size, grow - grow % pg);
    fdatasync(fd);
    close(fd);
    free(chunk);
    double dt = now_s() - t0;
    R->warm_bytes += done;
    R->warm_s += dt;
    printf("warm page cache: %.1f GB written in %.1f s (free memory %.1f -> %.1f GB)\n", (double)done / 1e9, dt,
           (double)free_kib / 1048576.0, (double)meminfo_kib("MemFree") / 1048576.0);
    fflush(stdout);
}

/* Starts a fresh `herald serve`: its own data directory with a copy of the
 * seeded store, and on Kafka empty topics and groups. */
static hr_t herald_start(run_t *R, const char *name)
{
    const bopts_t *o = R->o;
    bool kafka = strcmp(o->bus, "kafka") == 0;
    char *data = xasprintf("%s/data-%s", R->work, name);
    char *db = xasprintf("%s/herald.db", data);
    char *logp = xasprintf("%s/herald-%s.log", R->work, name);
    if (o->warm_cache) warm_page_cache(R);
    hr_t r = mkdir_p(data, 0755);
    if (r == HR_OK) r = copy_file(R->seed_db, db);
    if (r == HR_OK && kafka) r = kafka_reset_herald(o->brokers);
    if (r == HR_OK && o->fake_control) r = fake_prepare(o);
    if (r != HR_OK) {
        fprintf(stderr, "herald bench: cannot prepare %s\n", data);
        goto out;
    }
    R->port = free_port();
    R->offered = 0;
    free(R->data);
    R->data = xstrdup(data);
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", R->port);
    char sink_set[64], parts_set[64];
    snprintf(sink_set, sizeof(sink_set), "sandbox.mode=%s", o->sink);
    snprintf(parts_set, sizeof(parts_set), "bus.partitions=%d", o->partitions);
    const char *args[24 + 2 * MAX_SETS];
    int na = 0;
    args[na++] = "--data-dir";
    args[na++] = data;
    args[na++] = "--listen";
    args[na++] = listen;
    args[na++] = "--bus";
    args[na++] = o->bus;
    if (kafka) {
        args[na++] = "--kafka-brokers";
        args[na++] = o->brokers;
    }
    args[na++] = "--set";
    args[na++] = sink_set;
    args[na++] = "--set";
    args[na++] = parts_set;
    args[na++] = "--set";
    args[na++] = "log.level=warn";
    for (size_t i = 0; i < ARRAY_LEN(bench_settings); i++) {
        args[na++] = "--set";
        args[na++] = bench_settings[i];
    }
    for (int i = 0; i < o->nsets; i++) {
        args[na++] = "--set";
        args[na++] = o->sets[i];
    }
    args[na] = NULL;
    r = child_start(&R->child, args, logp, R->port, 120000);
    if (r != HR_OK) {
        fprintf(stderr, "herald bench: herald serve did not become ready (log: %s)\n", logp);
        goto out;
    }
    /* The key herald made on its first start in this data dir: the load
     * goes through the API key check as every client's would. */
    {
        char *kp = xasprintf("%s/admin.key", data);
        FILE *kf = fopen(kp, "r");
        bench_api_key[0] = '\0';
        if (kf) {
            if (fgets(bench_api_key, sizeof(bench_api_key), kf))
                bench_api_key[strcspn(bench_api_key, "\r\n")] = '\0';
            fclose(kf);
        }
        free(kp);
    }
    if (kafka && !R->lag_bus) {
        bus_opts_t bo = {.backend = "kafka", .brokers = o->brokers};
        if (bus_open(&bo, &R->lag_bus) != HR_OK) R->lag_bus = NULL;
    }
    /* Ready is not flowing: consumer groups may still be joining (seconds,
     * on a fresh Kafka). One event through the whole pipeline first. */
    {
        buf_t ev, ans;
        buf_init(&ev, 0);
        buf_init(&ans, 0);
        buf_append(&ev, "[", 1);
        int ch;
        int n = workload_next(&R->wl, &ev, &ch);
        buf_append(&ev, "]", 1);
        r = http_post(R->port, "/v1/events", ev.data, &ans, 30000);
        if (r == HR_OK) {
            R->offered += n;
            metrics_t m;
            if (wait_drain(R, false, 60, &m) < 0) r = HR_TIMEOUT;
        }
        if (r != HR_OK) fprintf(stderr, "herald bench: the first event did not get through: %s\n", hr_str(r));
        buf_release(&ev);
        buf_release(&ans);
    }
out:
    free(data);
    free(db);
    free(logp);
    return r;
}

static hr_t herald_stop(run_t *R)
{
    if (!R->child.pid) return HR_OK;
    int64_t peak = 0, now = 0;
    if (proc_rss(R->child.pid, &peak, &now) == HR_OK && peak > R->peak_rss) R->peak_rss = peak;
    rss_info_t x = child_rss_max(&R->child);
    if (x.rss > R->rss_sample.rss) R->rss_sample = x;
    int st = child_stop(&R->child, 60000);
    /* its store and bus files (gigabytes after a long run) are not needed
     * any more */
    if (R->data && !R->o->keep && st == 0) rm_rf(R->data);
    if (st != 0) {
        log_warn("bench", "herald serve exited with status %d", st);
        return HR_ERR;
    }
    return HR_OK;
}

/* ---- the sustained-rate search ---- */

/* The backlog of each stage in notifications: ingest's is what the
 * generator's schedule offered so far minus what herald accepted (set by
 * the sampler); fan-out's lag (events) times
 * the mean audience, dispatch's and the status sink's lag (records). Where
 * the bus does not report lag, the counters stand in: accepted minus fanned
 * out, fanned out minus settled, settled minus written. */
enum { SG_INGEST, SG_FANOUT, SG_DISPATCH, SG_STATUS, SG__COUNT };
static const char *const sg_names[SG__COUNT] = {"ingest", "fanout", "dispatch", "status"};

static void behind_now(run_t *R, const metrics_t *m, double out[SG__COUNT])
{
    int64_t fan, disp, stat;
    lag_now(R, m, &fan, &disp, &stat);
    out[SG_INGEST] = 0;
    if (fan >= 0 && disp >= 0 && stat >= 0) {
        out[SG_FANOUT] = (double)fan * R->mean_aud;
        out[SG_DISPATCH] = (double)disp;
        out[SG_STATUS] = (double)stat;
        return;
    }
    double acc = (double)m->v.events_accepted * R->mean_aud;
    double fanned = (double)(m->v.notifs_fanned_out + m->v.notifs_suppressed);
    out[SG_FANOUT] = fmax(0, acc - fanned);
    out[SG_DISPATCH] = fmax(0, (double)m->v.notifs_fanned_out - (double)metrics_done(m));
    out[SG_STATUS] = fmax(0, (double)m->v.notifs_sent - (double)m->v.status_rows_written);
}

/* What a measured window saw of the herald and of the machine. */
typedef struct window_snap {
    metrics_t m;
    double t, cpu, self_cpu, busy;
    tcpu_snap_t threads;
    json_t *load;
} window_snap_t;

static hr_t window_take(run_t *R, window_snap_t *w)
{
    /* the scrape's moment: the middle of the request (it can take a while
     * on a busy machine) */
    double t0 = now_s();
    hr_t r = metrics_scrape(R->port, &w->m);
    w->t = (t0 + now_s()) / 2;
    w->cpu = proc_cpu_s(R->child.pid);
    w->self_cpu = self_cpu_s();
    if (!machine_busy_s(&w->busy)) w->busy = -1;
    tcpu_snap(R->child.pid, &w->threads);
    w->load = loadavg_json();
    return r;
}

static void window_release(window_snap_t *w)
{
    tcpu_free(&w->threads);
    json_decref(w->load);
    w->load = NULL;
}

/* Cores the rest of the machine used over a window: busy time minus the
 * measured herald's and this process's (the generator's). -1 if unknown. */
static double others_cores(const window_snap_t *a, const window_snap_t *b)
{
    if (a->busy < 0 || b->busy < 0 || b->t <= a->t) return -1;
    double v = (b->busy - a->busy - (b->cpu - a->cpu) - (b->self_cpu - a->self_cpu)) / (b->t - a->t);
    return v < 0 ? 0 : v;
}

/* Samples the backlogs during a step, from t_hold0 to t_hold1, beside the
 * generator. */
typedef struct sampler {
    run_t *R;
    double t_hold0, t_hold1;
    double t_gen0, eps;         /* the generator's start and rate */
    int64_t acc0;               /* events accepted before it started */
    window_snap_t a, b;
    hr_t ra, rb;
    int n;
    double t[MAX_SAMPLES];
    double behind[SG__COUNT][MAX_SAMPLES];
} sampler_t;

static void sample_one(sampler_t *s, const metrics_t *m, double t)
{
    if (s->n == MAX_SAMPLES) return;
    double b[SG__COUNT];
    behind_now(s->R, m, b);
    double offered = s->eps * (t - s->t_gen0);
    b[SG_INGEST] = fmax(0, (offered - (double)(m->v.events_accepted - s->acc0)) * s->R->mean_aud);
    s->t[s->n] = t - s->t_hold0;
    for (int i = 0; i < SG__COUNT; i++) s->behind[i][s->n] = b[i];
    s->n++;
}

static void *sampler_main(void *arg)
{
    sampler_t *s = arg;
    while (now_s() < s->t_hold0) usleep(20000);
    s->ra = window_take(s->R, &s->a);
    if (s->ra == HR_OK) sample_one(s, &s->a.m, s->a.t);
    double next = s->a.t + 0.5;
    for (;;) {
        double now = now_s();
        if (now >= s->t_hold1) break;
        if (now < next) {
            usleep((useconds_t)((fmin(next, s->t_hold1) - now) * 1e6) + 1000);
            continue;
        }
        next += 0.5;
        metrics_t m;
        if (metrics_scrape(s->R->port, &m) == HR_OK) sample_one(s, &m, now_s());
    }
    s->rb = window_take(s->R, &s->b);
    if (s->rb == HR_OK) sample_one(s, &s->b.m, s->b.t);
    return NULL;
}

typedef struct step {
    double rate;                /* offered notifications/s */
    bool pass;
    double cap;                 /* the slowest stage's processed rate, notifications/s */
    double dt, delivered_per_s, rows_per_s, cpu_s, notifs, others;
    tcpu_groups_t g;
    json_t *j;                  /* the step's record (owned by the caller) */
} step_t;

/* One step: `nps` notifications/s offered (open loop) for step_warmup +
 * hold seconds; the hold is measured. */
static hr_t run_step(run_t *R, double nps, step_t *st)
{
    const bopts_t *o = R->o;
    memset(st, 0, sizeof(*st));
    st->rate = nps;
    double eps = nps / R->mean_aud;
    int batch = rate_batch(o, eps);
    sampler_t *s = xcalloc(1, sizeof(*s));
    s->R = R;
    s->ra = s->rb = HR_ERR;
    s->eps = eps;
    metrics_t m0;
    if (metrics_scrape(R->port, &m0) != HR_OK) {
        free(s);
        return HR_ERR;
    }
    s->acc0 = m0.v.events_accepted;
    double t0 = now_s();
    s->t_gen0 = t0;
    s->t_hold0 = t0 + o->step_warmup;
    s->t_hold1 = s->t_hold0 + o->hold;
    pthread_t th;
    if (pthread_create(&th, NULL, sampler_main, s) != 0) {
        free(s);
        return HR_ERR;
    }
    gen_result_t g;
    hr_t r = gen(R, eps, batch, o->step_warmup + o->hold, 0, &g);
    pthread_join(th, NULL);
    if (r == HR_OK && (s->ra != HR_OK || s->rb != HR_OK)) r = HR_ERR;
    if (r != HR_OK) goto out;

    const metrics_t *a = &s->a.m, *b = &s->b.m;
    double dt = s->b.t - s->a.t;
    double acc_eps = (double)(b->v.events_accepted - a->v.events_accepted) / dt;
    double done = (double)(metrics_done(b) - metrics_done(a));
    double rows = (double)(b->v.status_rows_written - a->v.status_rows_written) / dt;
    double fanned = (double)(b->v.notifs_fanned_out + b->v.notifs_suppressed - a->v.notifs_fanned_out -
                             a->v.notifs_suppressed) / dt;
    st->dt = dt;
    st->delivered_per_s = done / dt;
    st->rows_per_s = rows;
    st->notifs = done;
    st->cpu_s = s->b.cpu - s->a.cpu;
    st->others = others_cores(&s->a, &s->b);
    tcpu_diff(&s->a.threads, &s->b.threads, &st->g);
    double processed[SG__COUNT] = {acc_eps * R->mean_aud, fanned, done / dt, rows};
    st->cap = fmin(processed[0], fmin(processed[1], fmin(processed[2], processed[3])));

    /* ingest: nothing refused; its backlog (the generator behind its
     * schedule) is judged as the stages' are */
    char why[256] = "";
    bool ok = true;
    if (g.rejected || g.errors) {
        ok = false;
        snprintf(why, sizeof(why), "ingest: %lld requests refused, %lld connection errors", (long long)g.rejected,
                 (long long)g.errors);
    }
    json_t *stages = json_object();
    for (int i = 0; i < SG__COUNT; i++) {
        double slope = sustain_slope(s->t, s->behind[i], s->n);
        double tail = sustain_tail(s->behind[i], s->n);
        char w[96];
        bool sok = sustain_keeps_up(nps, dt, slope, tail, w, sizeof(w));
        if (!sok && ok) snprintf(why, sizeof(why), "%s: %s", sg_names[i], w);
        ok = ok && sok;
        json_object_set_new(stages, sg_names[i],
                            json_pack("{s:b,s:f,s:f,s:f,s:f}", "kept_up", sok, "backlog_start", s->behind[i][0],
                                      "backlog_end", tail, "growth_per_s", slope, "processed_per_s", processed[i]));
    }
    st->pass = ok;
    double cpu_pm = done > 0 ? st->cpu_s / (done / 1e6) : 0;
    st->j = json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:b,s:s,s:f,s:f,s:f,s:f,s:f,s:I,s:i,s:o,s:o,s:O,s:O}",
                      "offered_notifs_per_s", nps, "offered_events_per_s", eps, "accepted_events_per_s",
                      acc_eps, "delivered_per_s", done / dt, "status_rows_per_s", rows, "duration_s", dt, "kept_up",
                      ok, "why_not", why, "cpu_cores", st->cpu_s / dt, "cpu_s_per_m", cpu_pm, "gen_cpu_cores",
                      g.cpu_s / g.elapsed_s, "others_cores", st->others, "max_behind_s", g.max_behind_s,
                      "status_rows_total", (json_int_t)b->v.status_rows_written, "samples", s->n, "stages",
                      stages, "threads", tcpu_json(&st->g, done), "loadavg_start", s->a.load, "loadavg_end",
                      s->b.load);
    printf("step %.0f notifications/s (%.0f events/s): delivered %.0f/s, sink %.0f rows/s, herald %.2f cores, "
           "%.1f CPU s/M, others %.2f cores: %s%s%s\n",
           nps, eps, done / dt, rows, st->cpu_s / dt, cpu_pm, st->others, ok ? "kept up" : "fell behind",
           ok ? "" : " - ", why);
    fflush(stdout);
out:
    window_release(&s->a);
    window_release(&s->b);
    free(s);
    return r;
}

/* The running herald with every stage caught up (every accepted
 * notification settled by dispatch and written by the status sink): waits
 * up to --drain-timeout, and starts a fresh one (named name) when the
 * backlog does not drain in time. *waited: the seconds the wait took, -1
 * when a fresh herald was started. */
static hr_t caught_up(run_t *R, const char *name, double *waited)
{
    metrics_t m;
    *waited = wait_drain(R, true, R->o->drain_timeout, &m);
    if (*waited >= 0) return HR_OK;
    printf("     the backlog did not drain in %.0f s: a fresh herald\n", R->o->drain_timeout);
    fflush(stdout);
    hr_t r = herald_stop(R);
    if (r == HR_OK) r = herald_start(R, name);
    return r;
}

/* The search: the highest offered rate at which every stage keeps up
 * (sustain_search_t has the bracket). Every step starts from a drained
 * pipeline: a step that kept up may still leave up to SUSTAIN_LEVEL_S of
 * input behind, and one that fell behind leaves more; either would be the
 * next step's backlog at its start (round 24's 286k step fell behind on the
 * previous step's dispatch backlog). The wait is bounded (--drain-timeout,
 * then a fresh herald) and recorded per step (drained_s). The best step's
 * record goes to *best (its json owned by res). */
static hr_t sustain_search(run_t *R, double burst, double first, json_t *res, step_t *best)
{
    const bopts_t *o = R->o;
    sustain_search_t ss;
    double r = sustain_start(&ss, burst, first, o->tolerance);
    json_t *steps = json_array();
    json_t *js = json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:o}", "hold_s", o->hold, "warmup_s", o->step_warmup,
                           "tolerance", o->tolerance, "growth_rel", SUSTAIN_GROWTH_REL, "growth_abs",
                           SUSTAIN_GROWTH_ABS, "level_s", SUSTAIN_LEVEL_S, "level_abs", SUSTAIN_LEVEL_ABS,
                           "first_guess", first, "steps", steps);
    json_object_set_new(res, "sustained", js);
    memset(best, 0, sizeof(*best));
    int restarts = 0;
    hr_t rc = HR_OK;
    for (int k = 0; k < o->steps && r > 0; k++) {
        /* from a drained pipeline (the first step's herald is fresh) */
        double drained = 0;
        if (k > 0) {
            char name[32];
            snprintf(name, sizeof(name), "sustain-%d", restarts + 1);
            rc = caught_up(R, name, &drained);
            if (rc != HR_OK) break;
            if (drained < 0) restarts++;
            else printf("     drained in %.1f s\n", drained);
            fflush(stdout);
        }
        step_t st;
        rc = run_step(R, r, &st);
        if (rc != HR_OK) break;
        json_object_set_new(st.j, "drained_s", json_real(drained));
        json_array_append_new(steps, st.j);
        if (st.pass) *best = st;
        r = sustain_step(&ss, r, st.pass, st.cap);
    }
    double lo = ss.lo, hi = ss.hi;
    json_object_set_new(js, "notifs_per_s", json_real(lo));
    json_object_set_new(js, "events_per_s", json_real(lo / R->mean_aud));
    json_object_set_new(js, "upper_notifs_per_s", json_real(hi));
    json_object_set_new(js, "upper_tried", json_boolean(ss.hi_tried));
    if (best->j) {
        json_object_set_new(js, "status_rows_per_s", json_real(best->rows_per_s));
        json_object_set_new(js, "delivered_per_s", json_real(best->delivered_per_s));
        json_object_set_new(js, "cpu_cores", json_real(best->cpu_s / best->dt));
        json_object_set_new(js, "cpu_s_per_m", json_real(best->notifs > 0 ? best->cpu_s / (best->notifs / 1e6) : 0));
        json_object_set_new(js, "others_cores", json_real(best->others));
        json_object_set_new(js, "threads", json_incref(json_object_get(best->j, "threads")));
        printf("sustained: %.0f notifications/s (%.0f events/s) kept up; %.0f %s. At it: sink %.0f rows/s, "
               "%.2f CPU s per million notifications (every stage)\n",
               lo, lo / R->mean_aud, hi, ss.hi_tried ? "did not" : "untried", best->rows_per_s, best->notifs > 0 ? best->cpu_s / (best->notifs / 1e6) : 0);
        tcpu_print("     ", &best->g, best->notifs);
    } else {
        printf("sustained: no step kept up (the lowest tried: %.0f notifications/s)\n", hi);
    }
    fflush(stdout);
    return rc;
}

static int sweep_list(const char *s, double *out)
{
    int n = 0;
    while (s && *s && n < MAX_SWEEP) {
        char *end;
        double v = strtod(s, &end);
        if (end == s) break;
        if (v > 0) out[n++] = v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

int bench_main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "http-engine") == 0) return bench_http_engine_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "sink") == 0) return bench_sink_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "pg-sink") == 0) return bench_pg_sink_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "claims") == 0) return bench_claims_main(argc - 1, argv + 1);
    bopts_t o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    hlog_set_level(HLOG_WARN);

    run_t R;
    memset(&R, 0, sizeof(R));
    buf_t *pool_n = NULL, *pool_s = NULL;
    R.o = &o;
    json_t *res = json_object();
    rc = 1;
    bool kafka = strcmp(o.bus, "kafka") == 0;
    char commit[128] = "";
    if (o.commit) snprintf(commit, sizeof(commit), "%s", o.commit);
    else run_argv((char *const[]){"git", "rev-parse", "--short=12", "HEAD", NULL}, commit, sizeof(commit));
    char dirty[8] = "";
    if (!o.commit)
        run_argv((char *const[]){"git", "status", "--porcelain", "--untracked-files=no", NULL}, dirty,
                 sizeof(dirty));
    char label[128];
    snprintf(label, sizeof(label), "%s", o.label ? o.label : "");
    if (!label[0]) snprintf(label, sizeof(label), "%s-%s", o.bus, o.sink);

    /* ---- work dir ---- */
    if (o.data_dir) {
        R.work = xstrdup(o.data_dir);
        if (mkdir_p(R.work, 0755) != HR_OK) {
            fprintf(stderr, "herald bench: cannot create %s\n", R.work);
            goto out;
        }
    } else {
        char tmpl[] = "/tmp/herald-bench.XXXXXX";
        if (!mkdtemp(tmpl)) {
            fprintf(stderr, "herald bench: mkdtemp: %s\n", strerror(errno));
            goto out;
        }
        R.work = xstrdup(tmpl);
    }

    time_t now = time(NULL);
    char started[32];
    strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    char run_id[24];
    snprintf(run_id, sizeof(run_id), "b%lld", (long long)now);
    workload_init(&R.wl, o.seed, o.users, run_id);
    if (o.push_only) R.wl.share = wl_push_only;

    size_t notif_bytes, status_bytes;
    record_pool_build(RECORD_POOL, o.seed, &pool_n, &pool_s, &notif_bytes, &status_bytes);
    printf("herald bench %s: bus %s, sandbox %s, %lld users, seed %llu, commit %s%s, %ld cores\n", label,
           o.bus, o.sink, (long long)o.users, (unsigned long long)o.seed, commit[0] ? commit : "unknown",
           dirty[0] ? " (modified)" : "", sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);

    json_object_set_new(res, "schema", json_integer(1));
    json_object_set_new(res, "label", json_string(label));
    json_object_set_new(res, "commit", json_string(commit));
    json_object_set_new(res, "commit_modified", json_boolean(dirty[0] != '\0'));
    json_object_set_new(res, "started_at", json_string(started));
    json_object_set_new(res, "herald_version", json_string(HERALD_VERSION));
    json_object_set_new(res, "machine", bench_machine_json());
    json_object_set_new(res, "loadavg_start", loadavg_json());
    json_t *mode = json_pack("{s:s,s:s,s:I,s:I,s:i,s:i,s:i}", "bus", o.bus, "sink", o.sink, "users",
                             (json_int_t)o.users, "seed", (json_int_t)o.seed, "partitions", o.partitions,
                             "generator_connections", o.conns, "events_per_request", o.batch);
    json_t *sets = json_array();
    for (size_t i = 0; i < ARRAY_LEN(bench_settings); i++) json_array_append_new(sets, json_string(bench_settings[i]));
    for (int i = 0; i < o.nsets; i++) json_array_append_new(sets, json_string(o.sets[i]));
    json_object_set_new(mode, "serve_settings", sets);
    json_object_set_new(mode, "push_only", json_boolean(o.push_only));
    json_object_set_new(mode, "device_platform", json_string(o.platform));
    json_object_set_new(res, "mode", mode);

    /* ---- 1. seed ---- */
    {
        bool fcm = strcmp(o.platform, "fcm") == 0;
        char *cached = o.seed_cache ? xasprintf("%s/users-%lld%s%s.db", o.seed_cache, (long long)o.users,
                                                fcm ? "" : "-", fcm ? "" : o.platform)
                                    : NULL;
        char *tmpdb = xasprintf("%s/seed.db", R.work);
        const char *db = cached ? cached : tmpdb;
        struct stat st;
        double secs = 0;
        hr_t r = HR_OK;
        if (stat(db, &st) == 0) {
            printf("seed: %lld users from the seed cache\n", (long long)o.users);
        } else {
            if (cached) mkdir_p(o.seed_cache, 0755);
            char *tmp = xasprintf("%s.tmp", db);
            unlink(tmp);
            r = seed_store(tmp, o.users, o.platform, &secs);
            if (r == HR_OK && rename(tmp, db) != 0) r = HR_ERR;
            free(tmp);
            printf("seed: %lld users written to the store in %.1f s (%.0f users/s)\n", (long long)o.users, secs,
                   (double)o.users / (secs > 0 ? secs : 1));
        }
        R.seed_db = xstrdup(db);
        free(cached);
        free(tmpdb);
        fflush(stdout);
        if (r != HR_OK) goto out;
        json_object_set_new(res, "seed_s", json_real(secs));
    }

    /* ---- 2. raw baseline ---- */
    if (o.raw) {
        raw_opts_t ro = {
            .partitions = o.partitions,
            .batch_max = 512,
            .depth = o.raw_depth,
            .duration_s = o.raw_duration,
            .warmup_s = o.raw_duration > 4 ? 2 : o.raw_duration / 3,
            .window = o.window,
            .seed = o.seed,
            .users = o.users,
            .notif_bytes = notif_bytes,
            .status_bytes = status_bytes,
            .notif_pool = pool_n,
            .status_pool = pool_s,
            .pool_n = RECORD_POOL,
            .fsync = "interval",
            .fsync_interval_ms = 1000,
            .flush_interval_us = 1000,
            .verbose = o.verbose,
        };
        raw_result_t rr;
        hr_t r;
        char *dir = xasprintf("%s/rawbus", R.work);
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "rawbench-%s-", run_id);
        if (o.warm_cache) warm_page_cache(&R); /* the baseline in the same state as herald */
        if (kafka) {
            ro.brokers = o.brokers;
            ro.topic_prefix = prefix;
            r = raw_kafka_run(&ro, &rr);
        } else {
            ro.dir = dir;
            r = raw_embedded_run(&ro, &rr);
        }
        rm_rf(dir);
        free(dir);
        if (r != HR_OK) {
            fprintf(stderr, "herald bench: the raw %s baseline failed: %s\n", o.bus, hr_str(r));
            goto out;
        }
        printf("raw %s bus: %.0f notifications/s (%.0f events/s), %.2f CPU s per million, "
               "records %zu B (event) %zu B (notification) %zu B (status)\n",
               o.bus, rr.notifs_per_s, rr.events_per_s, rr.cpu_s_per_m, rr.raw_bytes_avg, notif_bytes,
               status_bytes);
        fflush(stdout);
        json_object_set_new(res, "raw",
                            json_pack("{s:f,s:f,s:f,s:f,s:f,s:i,s:I,s:I,s:I}", "notifs_per_s", rr.notifs_per_s,
                                      "events_per_s", rr.events_per_s, "status_per_s", rr.status_per_s,
                                      "cpu_s_per_m", rr.cpu_s_per_m, "elapsed_s", rr.elapsed_s, "depth",
                                      o.raw_depth, "event_bytes", (json_int_t)rr.raw_bytes_avg,
                                      "notif_bytes", (json_int_t)notif_bytes, "status_bytes",
                                      (json_int_t)status_bytes));
    }

    if (o.raw_only) {
        rc = 0;
        goto out;
    }

    /* ---- 3. max (or one fixed rate), on a fresh herald ---- */
    if (herald_start(&R, "max") != HR_OK) goto out;
    double max_nps = 0, first_guess = 0;
    {
        gen_result_t g;
        metrics_t m0, m1;
        double rate = o.rate > 0 ? o.rate : 0;
        int batch = rate > 0 ? rate_batch(&o, rate) : o.batch;
        const char *what = rate > 0 ? "fixed" : "max";
        /* CPU and notifications from before the warm-up: with the sink's
         * deferred work counted until it has caught up, they are the whole
         * cost of these notifications */
        double c_pre = proc_cpu_s(R.child.pid);
        int64_t off_pre = R.offered;
        if (gen(&R, rate, batch, o.warmup, o.window, &g) != HR_OK) goto out;
        window_snap_t wa, wb;
        memset(&wb, 0, sizeof(wb));
        hr_t wr = window_take(&R, &wa);
        m0 = wa.m;
        double fc0 = fake_cpu_s(&o);
        double c0 = wa.cpu, t0 = wa.t;
        if (wr == HR_OK) wr = gen(&R, rate, batch, o.duration, o.window, &g);
        double fc1 = fake_cpu_s(&o);
        if (wr == HR_OK) wr = window_take(&R, &wb);
        if (wr != HR_OK) {
            window_release(&wa);
            window_release(&wb);
            goto out;
        }
        m1 = wb.m;
        double c1 = wb.cpu, t1 = wb.t;
        double dt = t1 - t0;
        tcpu_groups_t tg;
        tcpu_diff(&wa.threads, &wb.threads, &tg);
        double others = others_cores(&wa, &wb);
        R.mean_aud = (double)R.wl.notifs / (double)(R.wl.events ? R.wl.events : 1);
        int64_t fan, disp, stat;
        lag_now(&R, &m1, &fan, &disp, &stat);
        double eps = (double)(m1.v.events_accepted - m0.v.events_accepted) / dt;
        /* settled in the window: sent, or over a recipient's rate limit
         * (herald's default limits; their share is printed) */
        double nps = (double)(metrics_done(&m1) - metrics_done(&m0)) / dt;
        double rows = (double)(m1.v.status_rows_written - m0.v.status_rows_written) / dt;
        double cpu = c1 - c0;
        int64_t sent = metrics_done(&m1) - metrics_done(&m0);
        int64_t limited = metrics_limited(&m1) - metrics_limited(&m0);
        double cpu_per_m = sent ? cpu / ((double)sent / 1e6) : 0;
        max_nps = nps;
        int64_t peak = 0, rss = 0;
        proc_rss(R.child.pid, &peak, &rss);
        printf("%s: %.0f events/s in, %.0f notifications/s settled (%.1f %% rate-limited), status sink %.0f rows/s;\n"
               "     herald CPU %.2f cores (%.2f s per million notifications), generator %.2f cores; "
               "peak RSS %.0f MB\n",
               what, eps, nps, sent ? 100.0 * (double)limited / (double)sent : 0.0, rows, cpu / dt, cpu_per_m, g.cpu_s / g.elapsed_s, (double)peak / 1048576.0);
        printf("     lag when the load stopped: fan-out %lld events, dispatch %lld, status sink %lld records\n",
               (long long)fan, (long long)disp, (long long)stat);
        print_latencies("     ", &m1, &m0);
        double done_w = (double)(metrics_done(&m1) - metrics_done(&m0));
        tcpu_print("     ", &tg, done_w);
        printf("     the status sink wrote %.0f %% of the window's rows in it; others used %.2f cores\n",
               done_w > 0 ? 100 * rows * dt / done_w : 0, others);
        fflush(stdout);
        /* the first guess of the sustained search: the cores herald had,
         * over the CPU of a notification with its status row */
        double sink_cpu = tg.user_s[TG_STATUS] + tg.sys_s[TG_STATUS] + tg.user_s[TG_CKPT] + tg.sys_s[TG_CKPT];
        double rows_w = rows * dt;
        if (rows_w > 0 && done_w > 0)
            first_guess = (cpu / dt) / ((cpu - sink_cpu) / done_w + sink_cpu / rows_w);
        else
            first_guess = nps / 2;

        /* delivery settles; then the sink has the CPU to itself: its own rate */
        metrics_t ms, md;
        double settle = wait_drain(&R, false, 60, &ms);
        double t_settled = now_s();
        double drain = wait_drain(&R, true, o.drain_timeout, &md);
        double t_end = now_s();
        double sink_rate = t_end - t_settled > 1 && md.v.status_rows_written > ms.v.status_rows_written
                               ? (double)(md.v.status_rows_written - ms.v.status_rows_written) / (t_end - t_settled)
                               : 0;
        printf("     delivery settled %.1f s after the load stopped; the status sink then wrote %.0f rows/s "
               "alone%s\n",
               settle, sink_rate,
               drain >= 0 ? " and caught up" : " (still behind when the bench moved on)");
        double cpu_drained = drain >= 0 ? proc_cpu_s(R.child.pid) - c_pre : -1;
        int64_t n_drained = R.offered - off_pre;
        if (cpu_drained >= 0 && n_drained > 0)
            printf("     counted until the sink caught up: %.2f CPU s per million notifications\n",
                   cpu_drained / ((double)n_drained / 1e6));
        fflush(stdout);

        json_t *jm = json_pack(
            "{s:s,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:I,s:I,s:{s:I,s:I,s:I},s:f,s:b,s:f,s:I,s:I,s:I}",
            "kind", what, "duration_s", dt, "events_per_s", eps, "notifs_per_s", nps,
            "status_rows_per_s", rows, "cpu_cores", cpu / dt, "cpu_s_per_m", cpu_per_m, "gen_cpu_cores",
            g.cpu_s / g.elapsed_s, "offered_events_per_s", rate, "max_behind_s", g.max_behind_s,
            "peak_rss_bytes", (json_int_t)peak, "rss_bytes", (json_int_t)rss, "lag_end", "fanout_events",
            (json_int_t)fan, "dispatch_records", (json_int_t)disp, "status_records", (json_int_t)stat,
            "settle_s", settle, "sink_caught_up", drain >= 0, "sink_rows_per_s_after", sink_rate,
            "requests_refused", (json_int_t)g.rejected, "connection_errors", (json_int_t)g.errors,
            "window_notifs", (json_int_t)o.window);
        json_object_set_new(jm, "latency", latencies_json(&m1, &m0));
        json_object_set_new(jm, "threads", tcpu_json(&tg, done_w));
        json_object_set_new(jm, "reconnects", json_integer(g.reconnects));
        json_object_set_new(jm, "rate_limited", json_integer(limited));
        json_object_set_new(jm, "sink_rows_share", json_real(done_w > 0 ? rows * dt / done_w : 0));
        json_object_set_new(jm, "others_cores", json_real(others));
        json_object_set_new(jm, "loadavg_start", json_incref(wa.load));
        json_object_set_new(jm, "loadavg_end", json_incref(wb.load));
        json_object_set_new(jm, "cpu_s_per_m_drained", cpu_drained >= 0 && n_drained > 0
                                                              ? json_real(cpu_drained / ((double)n_drained / 1e6))
                                                              : json_null());
        window_release(&wa);
        window_release(&wb);
        json_t *mix = json_object();
        for (int ch = 0; ch < CH__COUNT; ch++)
            if (R.wl.chan_notifs[ch])
                json_object_set_new(mix, channel_name((channel_t)ch),
                                    json_real((double)R.wl.chan_notifs[ch] / (double)R.wl.notifs));
        json_object_set_new(res, "max", jm);
        json_t *fs = o.fake_control ? fake_stats(&o) : NULL;
        if (fs) {
            json_t *req = json_object_get(fs, "requests");
            int64_t conns = json_integer_value(json_object_get(fs, "tls_connections"));
            int64_t streams = json_integer_value(json_object_get(fs, "max_concurrent_streams"));
            double fcpm = sent ? (fc1 - fc0) / ((double)sent / 1e6) : 0;
            printf("     the fake providers: %lld TLS connection(s) opened, at most %lld streams on one, "
                   "%.1f CPU s per million notifications (APNs delay %d ms)\n",
                   (long long)conns, (long long)streams, fcpm, o.fake_delay);
            json_object_set_new(res, "fake",
                                json_pack("{s:i,s:I,s:I,s:f,s:O,s:O}", "delay_ms", o.fake_delay, "tls_connections",
                                          (json_int_t)conns, "max_concurrent_streams", (json_int_t)streams,
                                          "fake_cpu_s_per_m", fcpm, "requests", req ? req : json_null(),
                                          "responses", json_object_get(fs, "responses") ? json_object_get(fs, "responses") : json_null()));
            json_decref(fs);
            fflush(stdout);
        }
        json_object_set_new(res, "workload",
                            json_pack("{s:f,s:o,s:I,s:I}", "mean_audience",
                                      (double)R.wl.notifs / (double)(R.wl.events ? R.wl.events : 1),
                                      "channel_mix", mix, "events", (json_int_t)R.wl.events,
                                      "notifications", (json_int_t)R.wl.notifs));
    }

    /* ---- 4. the sustained rate, on another fresh herald (the max run's
     * sink backlog would otherwise compete with it) ---- */
    double base_nps = max_nps;
    const char *base = "max";
    step_t best;
    memset(&best, 0, sizeof(best));
    bool searched = o.rate <= 0 && o.sustain && max_nps > 0;
    if (searched) {
        if (herald_stop(&R) != HR_OK || herald_start(&R, "sustain") != HR_OK) goto out;
        if (sustain_search(&R, max_nps, first_guess, res, &best) != HR_OK) goto out;
        double lo = json_real_value(json_object_get(json_object_get(res, "sustained"), "notifs_per_s"));
        if (lo > 0) {
            base_nps = lo;
            base = "sustained";
        }
    }

    /* ---- 5. sweep: latency at shares of the sustained rate, on the same
     * herald with every stage caught up (or a fresh one) ---- */
    json_t *sweep = json_array();
    json_object_set_new(res, "sweep", sweep);
    json_object_set_new(res, "sweep_base", json_string(base));
    double pcts[MAX_SWEEP];
    int np = o.rate > 0 ? 0 : sweep_list(o.sweep, pcts);
    double mean_aud = (double)R.wl.notifs / (double)(R.wl.events ? R.wl.events : 1);
    if (np > 0) {
        if (searched) {
            double waited;
            if (caught_up(&R, "sweep", &waited) != HR_OK) goto out;
        } else if (herald_stop(&R) != HR_OK || herald_start(&R, "sweep") != HR_OK) {
            goto out;
        }
    }
    for (int i = 0; i < np; i++) {
        double eps = pcts[i] / 100.0 * base_nps / mean_aud;
        int batch = rate_batch(&o, eps);
        gen_result_t g;
        metrics_t a, b, before;
        int64_t lf = -1, ld = -1, ls = -1;
        if (metrics_scrape(R.port, &before) == HR_OK) lag_now(&R, &before, &lf, &ld, &ls);
        if (gen(&R, eps, batch, o.warmup < 2 ? o.warmup : 2, 0, &g) != HR_OK) goto out;
        if (metrics_scrape(R.port, &a) != HR_OK) goto out;
        double c0 = proc_cpu_s(R.child.pid), t0 = now_s();
        if (gen(&R, eps, batch, o.sweep_duration, 0, &g) != HR_OK) goto out;
        double c1 = proc_cpu_s(R.child.pid), t1 = now_s();
        metrics_t settled;
        double settle = wait_drain(&R, false, 60, &settled);
        if (metrics_scrape(R.port, &b) != HR_OK) goto out;
        /* delivered during the window: what settled, over the generation time */
        double nps = (double)(metrics_done(&b) - metrics_done(&a)) / (t1 - t0);
        int64_t limited = metrics_limited(&b) - metrics_limited(&a);
        printf("sweep %3.0f%% of %s: offered %.0f events/s (%.0f notifications/s, %d per request), settled %.0f "
               "notifications/s (%lld rate-limited), herald CPU %.2f cores, schedule slip %.3f s, backlog at start: "
               "fan-out %lld events, dispatch %lld, sink %lld\n",
               pcts[i], base, eps, eps * mean_aud, batch, nps, (long long)limited, (c1 - c0) / (t1 - t0),
               g.max_behind_s, (long long)lf, (long long)ld, (long long)ls);
        print_latencies("     ", &b, &a);
        fflush(stdout);
        json_t *p = json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:i,s:I,s:I,s:I}", "pct", pcts[i], "offered_events_per_s",
                              eps, "offered_notifs_per_s", eps * mean_aud, "notifs_per_s", nps, "cpu_cores",
                              (c1 - c0) / (t1 - t0), "max_behind_s", g.max_behind_s, "settle_s", settle,
                              "events_per_request", batch, "status_lag_at_start", (json_int_t)ls,
                              "fanout_lag_at_start", (json_int_t)lf, "dispatch_lag_at_start", (json_int_t)ld);
        json_object_set_new(p, "rate_limited", json_integer(limited));
        json_object_set_new(p, "latency", latencies_json(&b, &a));
        json_array_append_new(sweep, p);
        /* give the status sink a moment to catch up before the next point */
        metrics_t md;
        wait_drain(&R, true, o.drain_timeout / 3, &md);
    }
    if (herald_stop(&R) != HR_OK) goto out;
    json_object_set_new(res, "peak_rss_bytes", json_integer(R.peak_rss));
    json_object_set_new(res, "warm_page_cache", o.warm_cache ? json_pack("{s:I,s:f}", "bytes", (json_int_t)R.warm_bytes, "seconds", R.warm_s) : json_null());
    /* VmHWM is the kernel's peak; the largest sample tells what it was made
     * of: anonymous pages (heap, caches, stacks) or file pages (mapped
     * libraries and files, which the kernel may drop) */
    json_object_set_new(res, "peak_rss_sample",
                        json_pack("{s:I,s:I,s:I,s:I}", "rss_bytes", (json_int_t)R.rss_sample.rss, "anon_bytes",
                                  (json_int_t)R.rss_sample.anon, "file_bytes", (json_int_t)R.rss_sample.file,
                                  "shmem_bytes", (json_int_t)R.rss_sample.shmem));
    printf("herald peak RSS: %.0f MB (the largest sample, every %d ms: %.0f MB = anonymous %.0f + file %.0f + "
           "shared memory %.0f)\n",
           (double)R.peak_rss / 1048576.0, RSS_SAMPLE_MS, (double)R.rss_sample.rss / 1048576.0,
           (double)R.rss_sample.anon / 1048576.0, (double)R.rss_sample.file / 1048576.0,
           (double)R.rss_sample.shmem / 1048576.0);
    if (json_object_get(res, "raw") && max_nps > 0) {
        /* the headline ratio: the sustained rate over the raw bus's (the
         * burst's beside it) */
        double raw = json_real_value(json_object_get(json_object_get(res, "raw"), "notifs_per_s"));
        double sus = searched ? json_real_value(json_object_get(json_object_get(res, "sustained"), "notifs_per_s")) : 0;
        json_object_set_new(res, "ratio_vs_raw_burst", json_real(raw > 0 ? max_nps / raw : 0));
        if (searched) json_object_set_new(res, "ratio_vs_raw", json_real(raw > 0 ? sus / raw : 0));
        printf("herald / raw %s bus: sustained %.0f / %.0f = %.0f %%, burst %.0f / %.0f = %.0f %%\n", o.bus, sus,
               raw, raw > 0 ? 100 * sus / raw : 0, max_nps, raw, raw > 0 ? 100 * max_nps / raw : 0);
    }
    json_object_set_new(res, "loadavg_end", loadavg_json());
    {
        double l[3] = {0};
        if (getloadavg(l, 3) == 3)
            printf("load average at the end: %.2f %.2f %.2f (%ld cores)\n", l[0], l[1], l[2],
                   sysconf(_SC_NPROCESSORS_ONLN));
    }
    rc = 0;
out:
    if (R.child.pid) herald_stop(&R);
    if (R.lag_bus) bus_close(R.lag_bus);
    if (rc == 0 && o.out) {
        if (json_dump_file(res, o.out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
            fprintf(stderr, "herald bench: cannot write %s\n", o.out);
            rc = 1;
        } else {
            printf("result: %s\n", o.out);
        }
    }
    if (rc != 0 && R.work) fprintf(stderr, "herald bench: work directory kept: %s\n", R.work);
    if (rc == 0 && R.work && !o.keep && !o.data_dir) rm_rf(R.work);
    json_decref(res);
    if (pool_n) record_pool_free(RECORD_POOL, pool_n, pool_s);
    workload_release(&R.wl);
    free(R.data);
    free(R.work);
    free(R.seed_db);
    return rc;
}
