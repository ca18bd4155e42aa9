/*
 * ticker.h - a background thread that calls one function again and again,
 * sleeping between calls for as long as the function asks, on a monotonic
 * condition variable: a wall-clock step never moves the cadence, and
 * ticker_stop() ends the sleep at once. The retention purge and the
 * deferred-notification scheduler run on one each.
 */
#ifndef HERALD_TICKER_H
#define HERALD_TICKER_H

#include "core/common.h"

#include <stdint.h>

typedef struct ticker ticker_t;

/* One call; returns the milliseconds to sleep before the next one
 * (0 = call again at once, negative = as 0). */
typedef int64_t (*ticker_fn)(void *arg);

/* Starts a thread named name (at most 15 characters) at niceness nice
 * (0 = unchanged; a failure to lower it is logged, not fatal) that sleeps
 * first_ms, then calls fn(arg) and sleeps what it returns, until stopped.
 * HR_ERR when the thread cannot be made. */
hr_t ticker_start(const char *name, int nice, int64_t first_ms, ticker_fn fn, void *arg, ticker_t **out);
/* Wakes the thread, waits for a call under way to return, joins and frees
 * it. NULL is a no-op. */
void ticker_stop(ticker_t *t);

#endif
