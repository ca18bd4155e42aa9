/*
 * test_quiet.c - quiet hours (policy/quiet.h) across both DST changes of
 * Europe/Paris and America/New_York in 2026 (Europe: 29 Mar, 25 Oct;
 * US: 8 Mar, 1 Nov), with windows that wrap midnight, empty windows,
 * local times that do not exist or occur twice, and unknown zones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "policy/quiet.h"

#include <string.h>
#include <time.h>
#include <unicode/ucal.h>
#include <unicode/ustring.h>

/* UTC milliseconds of a UTC date and time. */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm) * 1000;
}

#define H(m) ((m) * 60)

static quiet_ctx_t *Q;

static int setup(void **st)
{
    Q = quiet_ctx_new();
    return Q ? 0 : -1;
}

static int teardown(void **st)
{
    quiet_ctx_free(Q);
    return 0;
}

/* inside? and when it ends (0 when outside) */
static bool in(const char *tz, int s, int e, int64_t now, int64_t *end)
{
    bool inside;
    int64_t x;
    assert_int_equal(quiet_check(Q, tz, strlen(tz), s, e, now, &inside, &x), HR_OK);
    if (end) *end = x;
    if (!inside) assert_int_equal(x, 0);
    return inside;
}

static void test_paris_spring_forward(void **st)
{
    int64_t end;
    const char *tz = "Europe/Paris";
    /* 22:00-07:00 on the night of 28 -> 29 March (02:00 CET -> 03:00 CEST). */
    assert_false(in(tz, H(22), H(7), utc(2026, 3, 28, 20, 59), NULL)); /* 21:59 CET */
    assert_true(in(tz, H(22), H(7), utc(2026, 3, 28, 21, 0), &end));   /* 22:00 CET */
    assert_int_equal(end, utc(2026, 3, 29, 5, 0));                      /* 07:00 CEST */
    assert_true(in(tz, H(22), H(7), utc(2026, 3, 29, 1, 30), &end));   /* 03:30 CEST */
    assert_int_equal(end, utc(2026, 3, 29, 5, 0));
    assert_true(in(tz, H(22), H(7), utc(2026, 3, 29, 4, 59), &end));
    assert_false(in(tz, H(22), H(7), utc(2026, 3, 29, 5, 0), NULL));   /* 07:00 CEST: over */
    /* The next night is in summer time: 22:00 CEST = 20:00 UTC. */
    assert_false(in(tz, H(22), H(7), utc(2026, 3, 29, 19, 59), NULL));
    assert_true(in(tz, H(22), H(7), utc(2026, 3, 29, 20, 0), &end));
    assert_int_equal(end, utc(2026, 3, 30, 5, 0));
}

static void test_paris_fall_back(void **st)
{
    int64_t end;
    const char *tz = "Europe/Paris";
    /* 22:00 CEST on 24 Oct -> 07:00 CET on 25 Oct: a night of 10 hours. */
    assert_true(in(tz, H(22), H(7), utc(2026, 10, 24, 20, 0), &end));
    assert_int_equal(end, utc(2026, 10, 25, 6, 0));
    assert_int_equal(end - utc(2026, 10, 24, 20, 0), 10 * 3600 * 1000);
    assert_true(in(tz, H(22), H(7), utc(2026, 10, 25, 5, 59), &end)); /* 06:59 CET */
    assert_false(in(tz, H(22), H(7), utc(2026, 10, 25, 6, 0), NULL));
    assert_false(in(tz, H(22), H(7), utc(2026, 10, 24, 19, 59), NULL)); /* 21:59 CEST */
    /* 02:30-03:00 on 25 Oct: 02:30 occurs twice (first at 00:30 UTC); 03:00
     * occurs once (02:00 UTC, after the repeated hour), so the window holds
     * the second 02:30-03:00 as well. */
    assert_false(in(tz, 150, H(3), utc(2026, 10, 25, 0, 29), NULL));
    assert_true(in(tz, 150, H(3), utc(2026, 10, 25, 0, 30), &end));
    assert_int_equal(end, utc(2026, 10, 25, 2, 0));
    assert_true(in(tz, 150, H(3), utc(2026, 10, 25, 1, 45), &end)); /* 02:45 CET */
    assert_int_equal(end, utc(2026, 10, 25, 2, 0));
    assert_false(in(tz, 150, H(3), utc(2026, 10, 25, 2, 0), NULL));
}

static void test_new_york_spring_forward(void **st)
{
    int64_t end;
    const char *tz = "America/New_York";
    /* 22:00 EST on 7 Mar (03:00 UTC) -> 07:00 EDT on 8 Mar (11:00 UTC), not 12:00. */
    assert_false(in(tz, H(22), H(7), utc(2026, 3, 8, 2, 59), NULL));
    assert_true(in(tz, H(22), H(7), utc(2026, 3, 8, 3, 0), &end));
    assert_int_equal(end, utc(2026, 3, 8, 11, 0));
    assert_true(in(tz, H(22), H(7), utc(2026, 3, 8, 10, 59), &end));
    assert_false(in(tz, H(22), H(7), utc(2026, 3, 8, 11, 0), NULL));
    /* 02:30 does not exist on 8 Mar (02:00 EST -> 03:00 EDT at 07:00 UTC).
     * A window starting at 02:30 starts at 03:00 EDT ... */
    assert_false(in(tz, 150, H(6), utc(2026, 3, 8, 6, 59), NULL)); /* 01:59 EST */
    assert_true(in(tz, 150, H(6), utc(2026, 3, 8, 7, 0), &end));   /* 03:00 EDT */
    assert_int_equal(end, utc(2026, 3, 8, 10, 0));                  /* 06:00 EDT */
    /* ... and one ending at 02:30 ends at 03:00 EDT, the first moment the
     * clock is past 02:30. */
    assert_true(in(tz, H(23), 150, utc(2026, 3, 8, 6, 59), &end));
    assert_int_equal(end, utc(2026, 3, 8, 7, 0));
    assert_false(in(tz, H(23), 150, utc(2026, 3, 8, 7, 0), NULL));
    /* The day before and after: 02:30 exists. */
    assert_true(in(tz, H(23), 150, utc(2026, 3, 7, 7, 29), &end)); /* 02:29 EST */
    assert_int_equal(end, utc(2026, 3, 7, 7, 30));
    assert_true(in(tz, H(23), 150, utc(2026, 3, 9, 6, 29), &end)); /* 02:29 EDT */
    assert_int_equal(end, utc(2026, 3, 9, 6, 30));
}

static void test_new_york_fall_back(void **st)
{
    int64_t end;
    const char *tz = "America/New_York";
    /* 22:00 EDT on 31 Oct (02:00 UTC) -> 07:00 EST on 1 Nov (12:00 UTC). */
    assert_true(in(tz, H(22), H(7), utc(2026, 11, 1, 2, 0), &end));
    assert_int_equal(end, utc(2026, 11, 1, 12, 0));
    assert_true(in(tz, H(22), H(7), utc(2026, 11, 1, 11, 30), &end)); /* 06:30 EST */
    assert_int_equal(end, utc(2026, 11, 1, 12, 0));
    assert_false(in(tz, H(22), H(7), utc(2026, 11, 1, 12, 0), NULL));
    /* 00:00-01:30: 01:30 occurs twice (05:30 and 06:30 UTC); the window
     * ends at the first and does not open again when the hour repeats. */
    assert_true(in(tz, 0, 90, utc(2026, 11, 1, 5, 29), &end));
    assert_int_equal(end, utc(2026, 11, 1, 5, 30));
    assert_false(in(tz, 0, 90, utc(2026, 11, 1, 5, 45), NULL)); /* 01:45 EDT */
    assert_false(in(tz, 0, 90, utc(2026, 11, 1, 6, 10), NULL)); /* 01:10 EST, second time */
    /* A window starting in the repeated hour starts at its first occurrence. */
    assert_false(in(tz, 90, H(4), utc(2026, 11, 1, 5, 29), NULL));
    assert_true(in(tz, 90, H(4), utc(2026, 11, 1, 5, 30), &end));
    assert_int_equal(end, utc(2026, 11, 1, 9, 0)); /* 04:00 EST */
}

static void test_windows(void **st)
{
    int64_t end;
    const char *tz = "Europe/Paris";
    /* A daytime window (no wrap), summer: 09:00-17:00 CEST = 07:00-15:00 UTC. */
    assert_false(in(tz, H(9), H(17), utc(2026, 7, 1, 6, 59), NULL));
    assert_true(in(tz, H(9), H(17), utc(2026, 7, 1, 7, 0), &end));
    assert_int_equal(end, utc(2026, 7, 1, 15, 0));
    assert_false(in(tz, H(9), H(17), utc(2026, 7, 1, 15, 0), NULL));
    assert_false(in(tz, H(9), H(17), utc(2026, 7, 1, 23, 0), NULL));
    /* Wrapping, just after local midnight. */
    assert_true(in(tz, H(22), H(7), utc(2026, 7, 1, 22, 30), &end)); /* 00:30 CEST on 2 Jul */
    assert_int_equal(end, utc(2026, 7, 2, 5, 0));
    /* start == end, or none: no window at all. */
    for (int m = 0; m < 24 * 60; m += 17) {
        assert_false(in(tz, H(7), H(7), utc(2026, 7, 1, 0, 0) + (int64_t)m * 60000, NULL));
        assert_false(in(tz, -1, -1, utc(2026, 7, 1, 0, 0) + (int64_t)m * 60000, NULL));
    }
    /* Empty zone: UTC. */
    assert_true(in("", H(22), H(7), utc(2026, 7, 1, 23, 0), &end));
    assert_int_equal(end, utc(2026, 7, 2, 7, 0));
}

static void test_unknown_zone(void **st)
{
    bool inside;
    int64_t end;
    for (int k = 0; k < 2; k++) { /* the second time from the context's cache */
        assert_int_equal(quiet_check(Q, "Mars/Olympus", 12, H(22), H(7), utc(2026, 7, 1, 23, 0), &inside, &end),
                         HR_NOTFOUND);
        assert_true(inside); /* computed in UTC */
        assert_int_equal(end, utc(2026, 7, 2, 7, 0));
    }
    /* Not NUL-terminated: only tz_len bytes count. */
    assert_int_equal(quiet_check(Q, "Europe/Paris/junk", 12, H(22), H(7), utc(2026, 7, 1, 21, 0), &inside,
                                 &end),
                     HR_OK);
    assert_true(inside);
    assert_int_equal(end, utc(2026, 7, 2, 5, 0));
    char longname[200];
    memset(longname, 'A', sizeof(longname));
    assert_int_equal(quiet_check(Q, longname, sizeof(longname), H(22), H(7), 0, &inside, &end), HR_NOTFOUND);
}

static void test_zone_valid(void **st)
{
    assert_true(quiet_zone_valid("Europe/Paris"));
    assert_true(quiet_zone_valid("America/New_York"));
    assert_true(quiet_zone_valid("UTC"));
    assert_true(quiet_zone_valid("Asia/Kolkata"));
    assert_true(quiet_zone_valid("US/Eastern")); /* an alias in the database */
    assert_false(quiet_zone_valid("Mars/Olympus"));
    assert_false(quiet_zone_valid(""));
    assert_false(quiet_zone_valid(NULL));
    assert_false(quiet_zone_valid("GMT+05:00"));
    assert_false(quiet_zone_valid("Europe/Paris "));
    assert_false(quiet_zone_valid("Europe/\xc3\xa9"));
}

/* Local wall minute of an instant, through a separate calendar. */
static int wall_min(const char *tz, int64_t t)
{
    UChar z[64];
    u_charsToUChars(tz, z, (int32_t)strlen(tz) + 1);
    UErrorCode e = U_ZERO_ERROR;
    UCalendar *c = ucal_open(z, -1, "en_US_POSIX", UCAL_GREGORIAN, &e);
    ucal_setMillis(c, (UDate)t, &e);
    int m = ucal_get(c, UCAL_HOUR_OF_DAY, &e) * 60 + ucal_get(c, UCAL_MINUTE, &e);
    ucal_close(c);
    assert_true(U_SUCCESS(e));
    return m;
}

/* Every 5 minutes over three days around each change, for several windows:
 * the answer agrees with the wall clock (away from the jumps), and an end
 * is in the future, within a day, and reads end_min on the wall clock
 * unless end_min does not exist that day. */
static void test_sweep_agrees_with_wall_clock(void **st)
{
    static const struct {
        const char *tz;
        int y, mo, d;
    } days[] = {
        {"Europe/Paris", 2026, 3, 28}, {"Europe/Paris", 2026, 10, 24},
        {"America/New_York", 2026, 3, 7}, {"America/New_York", 2026, 10, 31},
    };
    static const int win[][2] = {{H(22), H(7)}, {H(23), 150}, {60, 180}, {H(9), H(17)}, {150, H(22)}};
    int checked = 0;
    for (size_t k = 0; k < ARRAY_LEN(days); k++) {
        int64_t t0 = utc(days[k].y, days[k].mo, days[k].d, 0, 0);
        for (int64_t t = t0; t < t0 + 3 * 86400000LL; t += 300000) {
            int w = wall_min(days[k].tz, t);
            /* skip the wall times around the jump (01:00-04:00) */
            bool near = w >= 60 && w < 240 && t > t0 + 86400000LL / 2 && t < t0 + 2 * 86400000LL;
            for (size_t j = 0; j < ARRAY_LEN(win); j++) {
                int s = win[j][0], e = win[j][1];
                int64_t end;
                bool inside = in(days[k].tz, s, e, t, &end);
                if (!near) {
                    bool want = s < e ? (w >= s && w < e) : (w >= s || w < e);
                    assert_int_equal(inside, want);
                    checked++;
                }
                if (inside) {
                    assert_true(end > t && end - t <= 25 * 3600 * 1000LL);
                    int we = wall_min(days[k].tz, end);
                    assert_true(we == e || we == 180); /* 180: 02:30 skipped, ends at 03:00 */
                }
            }
        }
    }
    assert_true(checked > 3000);
}

/* More zones than the context caches: answers stay right after eviction. */
static void test_cache_eviction(void **st)
{
    UErrorCode e = U_ZERO_ERROR;
    UEnumeration *en = ucal_openTimeZones(&e);
    assert_true(U_SUCCESS(e));
    char names[150][64];
    int n = 0;
    const char *z;
    int32_t len;
    while (n < 150 && (z = uenum_next(en, &len, &e)) != NULL)
        if (len < 64 && strchr(z, '/') && quiet_zone_valid(z)) snprintf(names[n++], 64, "%s", z);
    uenum_close(en);
    assert_true(n >= 100);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < n; i++) {
            bool inside;
            int64_t end;
            int64_t t = utc(2026, 1, 15, 12, 0);
            assert_int_equal(quiet_check(Q, names[i], strlen(names[i]), 0, 1, t, &inside, &end), HR_OK);
            int w = wall_min(names[i], t);
            assert_int_equal(inside, w == 0);
        }
    /* Paris still right after its calendar was evicted and reopened. */
    int64_t end;
    assert_true(in("Europe/Paris", H(22), H(7), utc(2026, 3, 29, 1, 30), &end));
    assert_int_equal(end, utc(2026, 3, 29, 5, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paris_spring_forward),
        cmocka_unit_test(test_paris_fall_back),
        cmocka_unit_test(test_new_york_spring_forward),
        cmocka_unit_test(test_new_york_fall_back),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_unknown_zone),
        cmocka_unit_test(test_zone_valid),
        cmocka_unit_test(test_sweep_agrees_with_wall_clock),
        cmocka_unit_test(test_cache_eviction),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
