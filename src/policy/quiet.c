/*
 * quiet.c - quiet hours (quiet.h) with ICU calendars.
 *
 * DESIGN. The window that may contain now is the one that opened at the
 * latest local `start` at or before now (today's, else yesterday's), and
 * it closes at the first local `end` after that start (same date, or the
 * next date when the window wraps midnight). Both instants are computed
 * by setting the local date and wall time on a calendar of the zone, with
 * ICU's wall-time options deciding the gaps (next valid time) and the
 * repeated hour (first occurrence); then inside = start <= now < end.
 * Comparing instants rather than wall-clock minutes is what keeps the
 * answer right on the nights the clock jumps.
 */
#include "policy/quiet.h"

#include <stdlib.h>
#include <string.h>
#include <unicode/ucal.h>
#include <unicode/ustring.h>

/* Zones a context keeps open; a dispatcher sees few distinct zones, and
 * beyond this the least recently used calendar is closed. */
#define QUIET_CACHE 64
#define ZONE_MAX 64

typedef struct zone_cal {
    char name[ZONE_MAX + 1];
    UCalendar *cal;
    bool known;
    uint64_t used;
} zone_cal_t;

struct quiet_ctx {
    zone_cal_t z[QUIET_CACHE];
    int n;
    uint64_t clock;
    UCalendar *utc;
};

static UCalendar *cal_open(const UChar *zone, int32_t len)
{
    UErrorCode st = U_ZERO_ERROR;
    UCalendar *c = ucal_open(zone, len, "en_US_POSIX", UCAL_GREGORIAN, &st);
    if (U_FAILURE(st)) return NULL;
    ucal_setAttribute(c, UCAL_LENIENT, 1); /* day 0 = the last day of the previous month */
    ucal_setAttribute(c, UCAL_SKIPPED_WALL_TIME, UCAL_WALLTIME_NEXT_VALID);
    ucal_setAttribute(c, UCAL_REPEATED_WALL_TIME, UCAL_WALLTIME_FIRST);
    return c;
}

quiet_ctx_t *quiet_ctx_new(void)
{
    quiet_ctx_t *q = xcalloc(1, sizeof(*q));
    UChar utc[4];
    u_charsToUChars("UTC", utc, 4);
    q->utc = cal_open(utc, 3);
    if (!q->utc) {
        free(q);
        return NULL;
    }
    return q;
}

void quiet_ctx_free(quiet_ctx_t *q)
{
    if (!q) return;
    for (int i = 0; i < q->n; i++)
        if (q->z[i].cal) ucal_close(q->z[i].cal);
    ucal_close(q->utc);
    free(q);
}

/* tz as UTF-16 when it is plain ASCII of a sensible length. */
static bool to_uchars(const char *tz, size_t len, UChar *out)
{
    if (len == 0 || len > ZONE_MAX) return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)tz[i] <= ' ' || (unsigned char)tz[i] >= 0x7f) return false;
    char tmp[ZONE_MAX + 1];
    memcpy(tmp, tz, len);
    tmp[len] = 0;
    u_charsToUChars(tmp, out, (int32_t)len + 1);
    return true;
}

static bool known_zone(const UChar *zone, int32_t len)
{
    UChar canon[128];
    UBool system = 0;
    UErrorCode st = U_ZERO_ERROR;
    ucal_getCanonicalTimeZoneID(zone, len, canon, (int32_t)ARRAY_LEN(canon), &system, &st);
    return U_SUCCESS(st) && system;
}

bool quiet_zone_valid(const char *tz)
{
    UChar z[ZONE_MAX + 1];
    if (!tz || !to_uchars(tz, strlen(tz), z)) return false;
    return known_zone(z, (int32_t)strlen(tz));
}

/* The context's calendar for tz (opening and caching it); *known false and
 * the UTC calendar for a zone the tz database does not have. */
static UCalendar *calendar(quiet_ctx_t *q, const char *tz, size_t len, bool *known)
{
    *known = true;
    if (len == 0) return q->utc;
    q->clock++;
    for (int i = 0; i < q->n; i++) {
        zone_cal_t *z = &q->z[i];
        if (strlen(z->name) == len && memcmp(z->name, tz, len) == 0) {
            z->used = q->clock;
            *known = z->known;
            return z->cal ? z->cal : q->utc;
        }
    }
    UChar u[ZONE_MAX + 1];
    bool ok = to_uchars(tz, len, u) && known_zone(u, (int32_t)len);
    UCalendar *c = ok ? cal_open(u, (int32_t)len) : NULL;
    if (len <= ZONE_MAX) { /* cache the answer, also "unknown" */
        zone_cal_t *z;
        if (q->n < QUIET_CACHE) {
            z = &q->z[q->n++];
        } else {
            z = &q->z[0];
            for (int i = 1; i < q->n; i++)
                if (q->z[i].used < z->used) z = &q->z[i];
            if (z->cal) ucal_close(z->cal);
        }
        memcpy(z->name, tz, len);
        z->name[len] = 0;
        z->cal = c;
        z->known = c != NULL;
        z->used = q->clock;
    } else if (c) {
        ucal_close(c); /* not reached: to_uchars refuses long names */
        c = NULL;
    }
    *known = c != NULL;
    return c ? c : q->utc;
}

/* The instant local date (y, m, d + dd) at minute `min` in cal's zone. */
static int64_t local_instant(UCalendar *c, int32_t y, int32_t m, int32_t d, int dd, int min, UErrorCode *st)
{
    ucal_clear(c);
    ucal_setDateTime(c, y, m, d + dd, min / 60, min % 60, 0, st);
    ucal_set(c, UCAL_MILLISECOND, 0);
    return (int64_t)ucal_getMillis(c, st);
}

hr_t quiet_check(quiet_ctx_t *q, const char *tz, size_t tz_len, int start_min, int end_min,
                 int64_t now_ms, bool *inside, int64_t *ends_at_ms)
{
    *inside = false;
    if (ends_at_ms) *ends_at_ms = 0;
    bool known;
    UCalendar *c = calendar(q, tz, tz_len, &known);
    hr_t ok = known ? HR_OK : HR_NOTFOUND;
    if (start_min < 0 || end_min < 0 || start_min > 1439 || end_min > 1439 || start_min == end_min)
        return ok;
    UErrorCode st = U_ZERO_ERROR;
    ucal_setMillis(c, (UDate)now_ms, &st);
    int32_t y = ucal_get(c, UCAL_YEAR, &st);
    int32_t m = ucal_get(c, UCAL_MONTH, &st);
    int32_t d = ucal_get(c, UCAL_DATE, &st);
    if (U_FAILURE(st)) return HR_ERR;
    int dd = 0;
    int64_t s = local_instant(c, y, m, d, 0, start_min, &st);
    if (s > now_ms) {
        dd = -1;
        s = local_instant(c, y, m, d, -1, start_min, &st);
    }
    int64_t e = local_instant(c, y, m, d, dd + (start_min > end_min ? 1 : 0), end_min, &st);
    if (U_FAILURE(st)) return HR_ERR;
    if (s <= now_ms && now_ms < e) {
        *inside = true;
        if (ends_at_ms) *ends_at_ms = e;
    }
    return ok;
}
