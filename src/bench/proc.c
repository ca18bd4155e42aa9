/*
 * proc.c - the measured process: `herald serve` started from this very
 * executable, and what the kernel says about its CPU time and memory.
 */
#include "bench/bench_int.h"

#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double now_s(void) { return (double)hclock_mono_ns() / 1e9; }

static void rss_note(child_t *c)
{
    rss_info_t x;
    if (c->rss_pid <= 0 || proc_rss_info(c->rss_pid, &x) != HR_OK) return;
    pthread_mutex_lock(&c->rss_mu);
    if (x.rss > c->rss_max.rss) c->rss_max = x;
    pthread_mutex_unlock(&c->rss_mu);
}

static void *rss_main(void *arg)
{
    child_t *c = arg;
    while (!atomic_load(&c->rss_stop)) {
        rss_note(c);
        usleep(RSS_SAMPLE_MS * 1000);
    }
    return NULL;
}

static void rss_start(child_t *c)
{
    memset(&c->rss_max, 0, sizeof(c->rss_max));
    c->rss_pid = c->pid;
    atomic_store(&c->rss_stop, false);
    pthread_mutex_init(&c->rss_mu, NULL);
    c->rss_started = pthread_create(&c->rss_th, NULL, rss_main, c) == 0;
}

static void rss_end(child_t *c)
{
    if (!c->rss_started) return;
    atomic_store(&c->rss_stop, true);
    pthread_join(c->rss_th, NULL);
    c->rss_started = false;
    rss_note(c);
    pthread_mutex_destroy(&c->rss_mu);
}

rss_info_t child_rss_max(child_t *c)
{
    rss_info_t x = {0};
    if (!c->rss_started) return x;
    rss_note(c);
    pthread_mutex_lock(&c->rss_mu);
    x = c->rss_max;
    pthread_mutex_unlock(&c->rss_mu);
    rss_info_t now;
    if (proc_rss_info(c->rss_pid, &now) == HR_OK) x.hwm = now.hwm;
    return x;
}

int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

hr_t child_start(child_t *c, const char *const *args, const char *log_path, int port, int timeout_ms)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) return HR_ERR;
    exe[n] = '\0';
    size_t na = 0;
    while (args[na]) na++;
    char **argv = xcalloc(na + 3, sizeof(*argv));
    argv[0] = exe;
    argv[1] = (char *)"serve";
    for (size_t i = 0; i < na; i++) argv[i + 2] = (char *)args[i];
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) {
        free(argv);
        return HR_ERR;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        free(argv);
        return HR_ERR;
    }
    if (pid == 0) {
        dup2(logfd, 1);
        dup2(logfd, 2);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        execv(exe, argv);
        _exit(127);
    }
    close(logfd);
    free(argv);
    c->pid = pid;
    c->port = port;
    c->log_path = xstrdup(log_path);
    rss_start(c);
    buf_t b;
    buf_init(&b, 0);
    hr_t r = HR_TIMEOUT;
    int64_t deadline = hclock_mono_ns() + (int64_t)timeout_ms * 1000000;
    while (hclock_mono_ns() < deadline) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            c->pid = 0;
            r = HR_ERR;
            break;
        }
        if (http_get(port, "/readyz", &b, 1000) == HR_OK) {
            r = HR_OK;
            break;
        }
        usleep(50000);
    }
    buf_release(&b);
    if (r != HR_OK && c->pid) child_stop(c, 5000);
    else if (r != HR_OK) rss_end(c);
    return r;
}

int child_stop(child_t *c, int timeout_ms)
{
    int status = -1;
    rss_end(c);
    if (c->pid > 0) {
        kill(c->pid, SIGTERM);
        int64_t deadline = hclock_mono_ns() + (int64_t)timeout_ms * 1000000;
        for (;;) {
            pid_t w = waitpid(c->pid, &status, WNOHANG);
            if (w == c->pid) break;
            if (hclock_mono_ns() >= deadline) {
                log_warn("bench", "herald (pid %d) did not stop in %d ms; killing it", (int)c->pid,
                         timeout_ms);
                kill(c->pid, SIGKILL);
                waitpid(c->pid, &status, 0);
                break;
            }
            usleep(20000);
        }
        c->pid = 0;
    }
    free(c->log_path);
    c->log_path = NULL;
    return status;
}

double proc_cpu_s(pid_t pid)
{
    char path[64], line[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    /* fields after the command name, which is in parentheses and may hold spaces */
    const char *p = strrchr(line, ')');
    if (!p) return -1;
    unsigned long long ut = 0, st = 0;
    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

hr_t proc_rss_info(pid_t pid, rss_info_t *out)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f) return HR_ERR;
    out->hwm = out->rss = -1;
    out->anon = out->file = out->shmem = 0;
    long long kb;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmHWM: %lld kB", &kb) == 1) out->hwm = kb * 1024;
        else if (sscanf(line, "VmRSS: %lld kB", &kb) == 1) out->rss = kb * 1024;
        else if (sscanf(line, "RssAnon: %lld kB", &kb) == 1) out->anon = kb * 1024;
        else if (sscanf(line, "RssFile: %lld kB", &kb) == 1) out->file = kb * 1024;
        else if (sscanf(line, "RssShmem: %lld kB", &kb) == 1) out->shmem = kb * 1024;
    }
    fclose(f);
    return out->hwm >= 0 ? HR_OK : HR_ERR;
}

hr_t proc_rss(pid_t pid, int64_t *peak, int64_t *now)
{
    rss_info_t x;
    hr_t r = proc_rss_info(pid, &x);
    *peak = r == HR_OK ? x.hwm : -1;
    *now = r == HR_OK ? x.rss : -1;
    return r;
}

double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}
