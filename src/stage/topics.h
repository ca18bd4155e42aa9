/*
 * topics.h - the pipeline's topics and their settings from config.
 */
#ifndef HERALD_TOPICS_H
#define HERALD_TOPICS_H

#include "app.h"

/* Creates (if missing) every topic herald uses: raw-events, one
 * notifications-<channel> per channel, notification-status,
 * notifications-dlq, with partitions, replication, min.insync.replicas and
 * retention from config. */
hr_t topics_create_all(app_t *app);

/* `herald topics plan ...`: prints partition and broker counts from the
 * provider throughput model. Returns a process exit code. (topics_plan.c) */
int topics_plan_main(int argc, char **argv);

#endif
