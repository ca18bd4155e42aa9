/*
 * workload.h - the benchmark's event stream: deterministic for a seed.
 *
 * Each event names its audience explicitly ("audience":{"users":[...]}) and
 * one channel ("channels":[...]). Audience sizes have mean 5: with
 * probability 1/250 an event is a burst of 250 recipients (50x the mean),
 * otherwise 1 + Poisson(3.016) recipients; recipients are distinct users
 * drawn uniformly from u0000000 .. u<users-1>. Channels follow the mix
 * push 70 %, in-app 20 %, email 8 %, SMS 2 % of notifications: each event
 * takes the channel furthest below its share so far (largest deficit), so
 * the mix holds exactly however the bursts fall.
 *
 * Not thread-safe: one workload_t per generating thread.
 */
#ifndef HERALD_BENCH_WORKLOAD_H
#define HERALD_BENCH_WORKLOAD_H

#include "core/buf.h"
#include "model/notif.h"

#define WL_BURST_EVERY 250          /* one event in 250 is a burst */
#define WL_BURST_SIZE 250           /* 50 x the mean audience */
#define WL_MEAN_AUDIENCE 5.0
#define WL_USER_ID_LEN 8            /* "u" + 7 digits */
#define WL_EVENT_TYPE "bench"

typedef struct workload {
    uint64_t rng;
    int64_t users;
    double lambda;              /* Poisson mean of the non-burst part, minus the 1 */
    const double *share;        /* channel shares of notifications (sum 1): wl_channel_share by default */
    int64_t chan_notifs[CH__COUNT];
    int64_t notifs;
    int64_t events;
    char run[24];               /* event id prefix: repeated runs never collide */
    int32_t *pick;              /* scratch: the audience being drawn */
} workload_t;

/* The channel shares of notifications (sum 1), and push only (the push
 * provider benchmark: workload_init, then w->share = wl_push_only). */
extern const double wl_channel_share[CH__COUNT];
extern const double wl_push_only[CH__COUNT];

void workload_init(workload_t *w, uint64_t seed, int64_t users, const char *run);
void workload_release(workload_t *w);
/* Appends one event as JSON to out. Returns its notification count (the
 * audience size); *channel is the channel it goes to. */
int workload_next(workload_t *w, buf_t *out, int *channel);
/* The user id of index i ("u0001234"); out holds WL_USER_ID_LEN + 1. */
void workload_user_id(int64_t i, char *out);
/* The template text the benchmark installs for every channel. */
extern const char wl_template_title[];
extern const char wl_template_body[];
/* A uniformly distributed number in [0, n) from the workload's generator. */
uint64_t workload_rand(workload_t *w, uint64_t n);

#endif
