/*
 * threads.c - CPU time of the measured herald per thread, grouped by what
 * the thread does, and the machine's own busy time (what other processes
 * took from the cores during a window).
 *
 * herald names its threads (pthread_setname_np): the stage workers carry
 * their stage's name ("fanout", "dispatch:push", "status", "retry:..."),
 * the SQLite checkpointer "store-ckpt", libmicrohttpd's threads "MHD-...",
 * librdkafka's "rdk:...". Threads left unnamed keep the process name; the
 * main thread is the one whose id is the process id, the others are the
 * bus's I/O threads (the embedded bus's flusher and syncer, the Kafka
 * poller) and the HTTP watchdog.
 *
 * The kernel counts each thread's user and system time in clock ticks
 * (/proc/<pid>/task/<tid>/stat); a window's figure is the difference of two
 * snapshots. A thread that ended inside the window loses its share (herald's
 * threads live as long as the process).
 */
#include "bench/bench_int.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const tcpu_group_names[TG__COUNT] = {
    [TG_INGEST] = "ingest",         [TG_FANOUT] = "fanout",     [TG_DISPATCH] = "dispatch",
    [TG_RETRY] = "retry",           [TG_STATUS] = "status",     [TG_CKPT] = "store-ckpt",
    [TG_BUS] = "bus-io",            [TG_MAIN] = "main",         [TG_KAFKA] = "librdkafka",
    [TG_OTHER] = "other",
};

int tcpu_group(const char *comm, int tid, int pid)
{
    if (strncmp(comm, "MHD", 3) == 0) return TG_INGEST;
    if (strcmp(comm, "fanout") == 0) return TG_FANOUT;
    if (strncmp(comm, "dispatch", 8) == 0) return TG_DISPATCH;
    if (strncmp(comm, "retry", 5) == 0) return TG_RETRY;
    if (strcmp(comm, "status") == 0) return TG_STATUS;
    if (strcmp(comm, "store-ckpt") == 0) return TG_CKPT;
    if (strncmp(comm, "rdk:", 4) == 0) return TG_KAFKA;
    if (strcmp(comm, "herald") == 0) return tid == pid ? TG_MAIN : TG_BUS;
    return TG_OTHER;
}

/* One thread's stat line: comm and user, system ticks. */
static bool read_task(int pid, int tid, char *comm, size_t n, unsigned long long *ut, unsigned long long *st)
{
    char path[96], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
    FILE *f = fopen(path, "re");
    if (!f) return false;
    size_t got = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[got] = '\0';
    const char *open = strchr(line, '('), *close = strrchr(line, ')');
    if (!open || !close || close < open) return false;
    size_t len = (size_t)(close - open - 1);
    if (len >= n) len = n - 1;
    memcpy(comm, open + 1, len);
    comm[len] = '\0';
    return sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", ut, st) == 2;
}

hr_t tcpu_snap(int pid, tcpu_snap_t *s)
{
    memset(s, 0, sizeof(*s));
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d) return HR_ERR;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long tid = strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end) continue;
        char comm[32];
        unsigned long long ut, st;
        if (!read_task(pid, (int)tid, comm, sizeof(comm), &ut, &st)) continue;
        if (s->n == cap) {
            cap = cap ? cap * 2 : 64;
            s->t = xrealloc(s->t, (size_t)cap * sizeof(*s->t));
        }
        s->t[s->n].tid = (int)tid;
        s->t[s->n].group = tcpu_group(comm, (int)tid, pid);
        s->t[s->n].user_ticks = ut;
        s->t[s->n].sys_ticks = st;
        s->n++;
    }
    closedir(d);
    return HR_OK;
}

void tcpu_free(tcpu_snap_t *s)
{
    free(s->t);
    memset(s, 0, sizeof(*s));
}

void tcpu_diff(const tcpu_snap_t *a, const tcpu_snap_t *b, tcpu_groups_t *out)
{
    memset(out, 0, sizeof(*out));
    double tick = (double)sysconf(_SC_CLK_TCK);
    for (int i = 0; i < b->n; i++) {
        unsigned long long u0 = 0, s0 = 0;
        for (int j = 0; j < a->n; j++)
            if (a->t[j].tid == b->t[i].tid) {
                u0 = a->t[j].user_ticks;
                s0 = a->t[j].sys_ticks;
                break;
            }
        int g = b->t[i].group;
        if (b->t[i].user_ticks >= u0) out->user_s[g] += (double)(b->t[i].user_ticks - u0) / tick;
        if (b->t[i].sys_ticks >= s0) out->sys_s[g] += (double)(b->t[i].sys_ticks - s0) / tick;
        out->threads[g]++;
    }
}

json_t *tcpu_json(const tcpu_groups_t *g, double notifs)
{
    json_t *o = json_object();
    for (int i = 0; i < TG__COUNT; i++) {
        double cpu = g->user_s[i] + g->sys_s[i];
        if (g->threads[i] == 0) continue;
        json_object_set_new(o, tcpu_group_names[i],
                            json_pack("{s:i,s:f,s:f,s:f}", "threads", g->threads[i], "cpu_s", cpu, "sys_s",
                                      g->sys_s[i], "cpu_us_per_notif", notifs > 0 ? cpu * 1e6 / notifs : 0));
    }
    return o;
}

void tcpu_print(const char *indent, const tcpu_groups_t *g, double notifs)
{
    if (notifs <= 0) return;
    printf("%sCPU-µs per notification by thread:", indent);
    for (int i = 0; i < TG__COUNT; i++) {
        double cpu = g->user_s[i] + g->sys_s[i];
        if (cpu <= 0) continue;
        printf(" %s %.2f", tcpu_group_names[i], cpu * 1e6 / notifs);
    }
    printf("\n");
}

bool machine_busy_s(double *busy)
{
    FILE *f = fopen("/proc/stat", "re");
    if (!f) return false;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]);
    fclose(f);
    if (n < 7) return false;
    /* user nice system idle iowait irq softirq steal: everything but idle
     * and iowait (guest time is already inside user) */
    *busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
    return true;
}

json_t *loadavg_json(void)
{
    double l[3] = {-1, -1, -1};
    if (getloadavg(l, 3) != 3) return json_null();
    return json_pack("{s:f,s:f,s:f}", "1m", l[0], "5m", l[1], "15m", l[2]);
}
