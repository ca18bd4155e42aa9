/*
 * quiet.h - quiet hours in the recipient's time zone (IANA names, from the
 * real tz database through ICU's ucal), correct across DST changes.
 *
 * A window is [start_min, end_min) in local wall-clock minutes after
 * midnight (0..1439); it wraps midnight when start > end (22:00-07:00);
 * start == end, or either negative (NOTIF_QUIET_NONE), means no window.
 *
 * Meaning on days with a DST change: the window opens at the first moment
 * the local clock reads start on a day and closes at the first moment,
 * after that, the clock reads end (on the same day, or the next day for a
 * window that wraps). A local time that does not exist (02:30 on the
 * spring-forward day) is the first valid moment after the gap (03:00); a
 * local time that occurs twice (01:30 on the fall-back day) is its first
 * occurrence. So 22:00-07:00 always ends at 07:00 local on the next
 * morning, even when that night is an hour shorter or longer, and a window
 * ending in the repeated hour does not open again when the clock repeats.
 *
 * Threads: a quiet_ctx_t belongs to one thread (the dispatcher's; ICU
 * calendars are not thread-safe and ucal_open is slow, so each context
 * caches one calendar per zone it has seen). quiet_zone_valid is pure and
 * any thread.
 */
#ifndef HERALD_POLICY_QUIET_H
#define HERALD_POLICY_QUIET_H

#include "core/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct quiet_ctx quiet_ctx_t;

/* A context with an empty calendar cache; NULL when ICU cannot open a
 * calendar at all (no ICU data). Free with quiet_ctx_free. */
quiet_ctx_t *quiet_ctx_new(void);
void quiet_ctx_free(quiet_ctx_t *q);

/* Is now_ms inside the window in zone tz (tz_len bytes, not necessarily
 * NUL-terminated; empty = UTC)? *inside says so; when inside, *ends_at_ms
 * (optional) is the UTC time the window closes (the record's due time), else
 * 0. Returns HR_OK, or HR_NOTFOUND when tz is not a zone of the tz database:
 * the answer is then computed in UTC (the caller may log it; the API
 * refuses such zones, so they come only from old records). HR_ERR when ICU
 * fails (no answer: *inside false). */
hr_t quiet_check(quiet_ctx_t *q, const char *tz, size_t tz_len, int start_min, int end_min,
                 int64_t now_ms, bool *inside, int64_t *ends_at_ms);

/* Is tz (NUL-terminated) a time zone of the tz database ("Europe/Paris",
 * "America/New_York", "UTC"; not "Mars/Olympus", not "" nor custom offsets
 * like "GMT+05:00")? */
bool quiet_zone_valid(const char *tz);

#endif
