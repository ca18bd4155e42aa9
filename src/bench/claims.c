/*
 * claims.c - `herald bench claims`: the event dedupe claims alone.
 *
 * Claims N random event ids through the real store API
 * (store_event_claim_batch, in batches the size of a polled fan-out batch)
 * in a fresh SQLite store, in this process, and reports per slice of
 * claims (default one million) the claims per CPU-second (every thread of
 * this process: the claiming thread and the store's checkpointer; the
 * ids' making is measured apart and left out), the user/system split, the
 * bytes read from and handed to the kernel per claim (/proc/self/io rchar,
 * wchar), the dedupe database's size on disk and the process's RSS. A flat
 * figure across slices is the goal: the cost of a claim must not grow with
 * the number of claims made. Also per slice: the longest single
 * store_event_claim_batch call, in wall time and in the claiming thread's
 * CPU time (a generation's seal runs inside one: fan-out waits that long).
 *
 * Ids: "<tenant>/<32 hex digits>" from a seeded generator, as random as a
 * producer's UUIDs; positions "raw-events/<partition>/<offset>". Every
 * --replay-th claim repeats an id of the previous batch at its position (a
 * replay after a crash: CLAIM_SAME), every --dup-th one at another position
 * (a duplicate publish: CLAIM_DUP); both answers are checked.
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct cslot {
    char id[48], pos[48];
    bool ref;                   /* (id, pos) is the claim's reference position */
} cslot_t;

typedef struct ccounts {
    double user, sys;
    int64_t rchar, wchar;
} ccounts_t;

static double cthread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static ccounts_t counts_now(void)
{
    ccounts_t c = {0, 0, 0, 0};
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        c.user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
        c.sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    }
    FILE *fp = fopen("/proc/self/io", "r");
    if (!fp) return c;
    char line[128];
    while (fgets(line, sizeof(line), fp)) {
        long long v = 0;
        if (sscanf(line, "rchar: %lld", &v) == 1) c.rchar = v;
        else if (sscanf(line, "wchar: %lld", &v) == 1) c.wchar = v;
    }
    fclose(fp);
    return c;
}

static long rss_kib(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp) return 0;
    char line[128];
    long v = 0;
    while (fgets(line, sizeof(line), fp))
        if (sscanf(line, "VmRSS: %ld", &v) == 1) break;
    fclose(fp);
    return v;
}

static int64_t file_bytes(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void usage(void)
{
    printf("usage: herald bench claims [--n N] [--batch N] [--slice N] [--replay N] [--dup N]\n"
           "                           [--dir DIR]\n"
           "  --n N       claims to make (default 10000000)\n"
           "  --batch N   claims per store_event_claim_batch (default 256, a polled batch)\n"
           "  --slice N   claims per reported slice (default 1000000)\n"
           "  --replay N  every Nth claim repeats one of the previous batch (default 100; 0 none)\n"
           "  --dup N     every Nth claim repeats one at another position (default 1000; 0 none)\n"
           "  --dir DIR   where the fresh SQLite files go (default ./bench-claims.<pid>; removed after)\n");
}

int bench_claims_main(int argc, char **argv)
{
    int64_t n = 10000000, slice = 1000000;
    int batch = 256, replay = 100, dup = 1000;
    const char *dir_opt = NULL;
    static const struct option longs[] = {
        {"n", required_argument, NULL, 'n'},      {"batch", required_argument, NULL, 'b'},
        {"slice", required_argument, NULL, 's'},  {"replay", required_argument, NULL, 'r'},
        {"dup", required_argument, NULL, 'u'},    {"dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'n': n = strtoll(optarg, NULL, 10); break;
        case 'b': batch = (int)strtol(optarg, NULL, 10); break;
        case 's': slice = strtoll(optarg, NULL, 10); break;
        case 'r': replay = (int)strtol(optarg, NULL, 10); break;
        case 'u': dup = (int)strtol(optarg, NULL, 10); break;
        case 'd': dir_opt = optarg; break;
        case 'h': usage(); return 0;
        default: usage(); return 2;
        }
    }
    if (n <= 0 || batch <= 1 || batch > 65536 || slice <= 0 || replay < 0 || dup < 0) {
        usage();
        return 2;
    }
    hlog_set_level(HLOG_WARN);
    char *dir = dir_opt ? xstrdup(dir_opt) : xasprintf("bench-claims.%d", (int)getpid());
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench claims: %s: %s\n", dir, strerror(errno));
        free(dir);
        return 1;
    }
    char *db = xasprintf("%s/claims.db", dir);
    char *evdb = xasprintf("%s/claims.events.db", dir);
    char *evwal = xasprintf("%s-wal", evdb);
    static const char *const sfx[] = {"", "-wal", "-shm"};
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < ARRAY_LEN(sfx); i++) {
            char *p = xasprintf("%s%s", pass ? evdb : db, sfx[i]);
            unlink(p);
            free(p);
        }
    cslot_t *cur = xcalloc((size_t)batch, sizeof(*cur)), *prev = xcalloc((size_t)batch, sizeof(*prev));
    const char **ids = xcalloc((size_t)batch, sizeof(*ids)), **pos = xcalloc((size_t)batch, sizeof(*pos));
    claim_t *out = xcalloc((size_t)batch, sizeof(*out)), *want = xcalloc((size_t)batch, sizeof(*want));
    store_t *s = NULL;
    int rc = 1;
    store_open_opts_t so = {.check_ms = 0};
    if (store_open_with("sqlite", db, &so, &s) != HR_OK) {
        fprintf(stderr, "bench claims: cannot open %s\n", db);
        goto out;
    }
    json_t *mach = bench_machine_json();
    printf("bench claims: %" PRId64 " claims, batches of %d, replay 1/%d, dup 1/%d, into %s (load %.1f)\n",
           n, batch, replay, dup, evdb, json_real_value(json_object_get(mach, "loadavg_1m")));
    json_decref(mach);
    printf("(CPU: every thread of the process, the ids' making left out)\n");
    printf("%10s %8s %12s %9s %9s %9s %10s %10s %10s %8s %9s %9s\n", "claims", "wall_s", "claims/cpu-s",
           "cpu-us", "user-us", "sys-us", "rchar/cl", "wchar/cl", "disk_MB", "rss_MB", "max_ms",
           "maxcpu_ms");
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    double t0 = now_s(), ts = t0, gen = 0, gs = 0;
    double max_wall = 0, max_cpu = 0, all_wall = 0, all_cpu = 0; /* the longest batch call */
    ccounts_t cs = counts_now();
    int64_t done = 0, slice_start = 0, next_slice = slice, offset = 0, wrong = 0;
    int64_t nnew = 0, nsame = 0, ndup = 0;
    bool have_prev = false;
    while (done < n) {
        int k = n - done < batch ? (int)(n - done) : batch;
        double g0 = cthread_cpu_s();
        for (int i = 0; i < k; i++) {
            int64_t seq = done + i;
            if (have_prev && replay && seq % replay == replay - 1) {
                cur[i] = prev[i]; /* the same event at the same position */
                want[i] = prev[i].ref ? CLAIM_SAME : CLAIM_DUP;
            } else if (have_prev && dup && seq % dup == dup / 2) {
                snprintf(cur[i].id, sizeof(cur[i].id), "%s", prev[(i + 1) % batch].id);
                snprintf(cur[i].pos, sizeof(cur[i].pos), "raw-events/%d/%" PRId64, (int)(seq % 8), offset++);
                want[i] = CLAIM_DUP;
                cur[i].ref = false;
            } else {
                uint64_t a = rng_next(&seed), b = rng_next(&seed);
                snprintf(cur[i].id, sizeof(cur[i].id), "t%d/%016llx%016llx", (int)(a % 4),
                         (unsigned long long)a, (unsigned long long)b);
                snprintf(cur[i].pos, sizeof(cur[i].pos), "raw-events/%d/%" PRId64, (int)(seq % 8), offset++);
                want[i] = CLAIM_NEW;
                cur[i].ref = true;
            }
            ids[i] = cur[i].id;
            pos[i] = cur[i].pos;
        }
        gen += cthread_cpu_s() - g0;
        double w0 = now_s(), c0 = cthread_cpu_s();
        hr_t r = store_event_claim_batch(s, ids, pos, k, out);
        double bw = now_s() - w0, bc = cthread_cpu_s() - c0;
        if (bw > max_wall) max_wall = bw;
        if (bc > max_cpu) max_cpu = bc;
        if (r != HR_OK) {
            fprintf(stderr, "bench claims: claim failed at %" PRId64 ": %s\n", done, hr_str(r));
            goto out;
        }
        for (int i = 0; i < k; i++) {
            wrong += out[i] != want[i];
            nnew += out[i] == CLAIM_NEW;
            nsame += out[i] == CLAIM_SAME;
            ndup += out[i] == CLAIM_DUP;
        }
        done += k;
        /* the next batch repeats from this one: keep it (a replay keeps
         * its slot's event, a dup its neighbour's) */
        cslot_t *t = prev;
        prev = cur;
        cur = t;
        have_prev = k == batch;
        if (done >= next_slice || done == n) {
            double tw = now_s();
            ccounts_t cw = counts_now();
            double m = (double)(done - slice_start), g = gen - gs;
            double user = cw.user - cs.user - g, sys = cw.sys - cs.sys, cpu = user + sys;
            printf("%10" PRId64 " %8.1f %12.0f %9.2f %9.2f %9.2f %10.0f %10.0f %10.1f %8.1f %9.2f %9.2f\n", done,
                   tw - ts, cpu > 0 ? m / cpu : 0.0, cpu * 1e6 / m, user * 1e6 / m, sys * 1e6 / m,
                   (double)(cw.rchar - cs.rchar) / m, (double)(cw.wchar - cs.wchar) / m,
                   (double)(file_bytes(evdb) + file_bytes(evwal)) / 1e6, (double)rss_kib() / 1024.0,
                   max_wall * 1e3, max_cpu * 1e3);
            if (max_wall > all_wall) all_wall = max_wall;
            if (max_cpu > all_cpu) all_cpu = max_cpu;
            max_wall = max_cpu = 0;
            fflush(stdout);
            ts = tw;
            cs = cw;
            gs = gen;
            slice_start = done;
            while (next_slice <= done) next_slice += slice;
        }
    }
    printf("claims: %" PRId64 " new, %" PRId64 " same, %" PRId64 " dup; %" PRId64 " answered wrongly; %.1f s;"
           " longest batch call %.2f ms (%.2f ms of CPU)\n",
           nnew, nsame, ndup, wrong, now_s() - t0, all_wall * 1e3, all_cpu * 1e3);
    rc = wrong ? 1 : 0;
out:
    store_close(s);
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < ARRAY_LEN(sfx); i++) {
            char *p = xasprintf("%s%s", pass ? evdb : db, sfx[i]);
            unlink(p);
            free(p);
        }
    if (!dir_opt) rmdir(dir);
    free(cur);
    free(prev);
    free(ids);
    free(pos);
    free(out);
    free(want);
    free(db);
    free(evdb);
    free(evwal);
    free(dir);
    return rc;
}
