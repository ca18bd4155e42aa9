/*
 * raw_measure.c - the measurement window shared by the raw bus baselines.
 */
#include "bench/bench_int.h"

#include <stdio.h>
#include <unistd.h>

void raw_measure(const raw_opts_t *o, const raw_counters_t *k, raw_result_t *res)
{
    double t0 = now_s();
    while (now_s() - t0 < o->warmup_s) usleep(10000);
    double c1 = self_cpu_s(), t1 = now_s();
    int64_t d1 = atomic_load(k->done), e1 = atomic_load(k->events), s1 = atomic_load(k->status_read);
    double next = t1 + 1;
    while (now_s() - t0 < o->duration_s) {
        usleep(10000);
        if (o->verbose && now_s() >= next) {
            fprintf(stderr,
                    "raw: %.0f s: %lld events, %lld notifications offered, %lld delivered, %lld "
                    "statuses read\n",
                    now_s() - t0, (long long)atomic_load(k->events),
                    (long long)atomic_load(k->offered), (long long)atomic_load(k->done),
                    (long long)atomic_load(k->status_read));
            next += 1;
        }
    }
    double c2 = self_cpu_s(), t2 = now_s();
    int64_t d2 = atomic_load(k->done), e2 = atomic_load(k->events), s2 = atomic_load(k->status_read);
    res->elapsed_s = t2 - t1;
    res->notifs = d2 - d1;
    res->events = e2 - e1;
    res->notifs_per_s = (double)(d2 - d1) / (t2 - t1);
    res->events_per_s = (double)(e2 - e1) / (t2 - t1);
    res->status_per_s = (double)(s2 - s1) / (t2 - t1);
    res->cpu_s_per_m = d2 > d1 ? (c2 - c1) / ((double)(d2 - d1) / 1e6) : 0;
}
