/*
 * process.c - the process_* metrics, read as the Prometheus client
 * libraries read them on Linux: CPU time, memory and start time from
 * /proc/self/stat (plus btime from /proc/stat), open descriptors by listing
 * /proc/self/fd, the descriptor limit from getrlimit (the soft limit that
 * /proc/self/limits shows as "Max open files").
 *
 * Written here rather than taken from libproc2: six numbers from two
 * stable kernel formats do not justify a new build dependency.
 */
#include "metrics/metrics_int.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The whole of a small /proc file, NUL-terminated; false when unreadable. */
static bool read_small(const char *path, char *out, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    size_t n = 0;
    while (n < cap - 1) {
        ssize_t got = read(fd, out + n, cap - 1 - n);
        if (got <= 0) break;
        n += (size_t)got;
    }
    close(fd);
    out[n] = '\0';
    return n > 0;
}

/* Seconds since boot of the system's boot, from /proc/stat's "btime". */
static double boot_time_s(void)
{
    FILE *f = fopen("/proc/stat", "re");
    if (!f) return NAN;
    char *line = NULL;
    size_t cap = 0;
    double bt = NAN;
    while (getline(&line, &cap, f) > 0) {
        unsigned long long v;
        if (sscanf(line, "btime %llu", &v) == 1) {
            bt = (double)v;
            break;
        }
    }
    free(line);
    fclose(f);
    return bt;
}

static double g_boot_s = NAN;
static pthread_once_t g_boot_once = PTHREAD_ONCE_INIT;

static void boot_init(void)
{
    g_boot_s = boot_time_s();
}

static void read_stat(metrics_process_t *p)
{
    char buf[2048];
    if (!read_small("/proc/self/stat", buf, sizeof(buf))) return;
    /* the command name (field 2) is in parentheses and may hold anything,
     * so the fields are counted from the last ')' */
    const char *rp = strrchr(buf, ')');
    if (!rp) return;
    unsigned long utime, stime, vsize;
    unsigned long long start;
    long rss;
    int got = sscanf(rp + 1,
                     " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u" /* fields 3-13 */
                     " %lu %lu %*d %*d %*d %*d %*d %*d"             /* 14-21 */
                     " %llu %lu %ld",                               /* 22-24 */
                     &utime, &stime, &start, &vsize, &rss);
    if (got != 5) return;
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    if (tick <= 0 || page <= 0) return;
    p->cpu_s = (double)(utime + stime) / (double)tick;
    p->vm_bytes = (double)vsize;
    p->rss_bytes = (double)rss * (double)page;
    pthread_once(&g_boot_once, boot_init);
    p->start_time_s = g_boot_s + (double)start / (double)tick;
}

static double open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return NAN;
    int self = dirfd(d);
    double n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        if (strtol(e->d_name, NULL, 10) == self) continue; /* the listing's own descriptor */
        n++;
    }
    closedir(d);
    return n;
}

void metrics_process_read(metrics_process_t *p)
{
    p->cpu_s = p->rss_bytes = p->vm_bytes = p->start_time_s = NAN;
    read_stat(p);
    p->open_fds = open_fds();
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        p->max_fds = rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
    else
        p->max_fds = NAN;
}
