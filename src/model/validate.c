/*
 * validate.c - field validators (validate.h).
 */
#include "model/validate.h"

#include <string.h>
#include <unicode/ucal.h>

static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool valid_email(const char *s)
{
    if (strlen(s) > VALID_EMAIL_MAX) return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || !at[1] || strchr(at + 1, '@')) return false;
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == '\t') return false;
    const char *dot = strchr(at + 1, '.');
    return dot && dot != at + 1 && dot[1];
}

bool valid_phone(const char *s)
{
    if (s[0] != '+' || s[1] < '1' || s[1] > '9') return false;
    size_t n = 0;
    for (const char *p = s + 1; *p; p++, n++)
        if (!is_digit(*p)) return false;
    return n >= 7 && n <= 15;
}

bool valid_hhmm(const char *s, int *minute_of_day)
{
    if (strlen(s) != VALID_HHMM_LEN || s[2] != ':') return false;
    for (int i = 0; i < VALID_HHMM_LEN; i++)
        if (i != 2 && !is_digit(s[i])) return false;
    int h = (s[0] - '0') * 10 + (s[1] - '0');
    int m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h >= 24 || m >= 60) return false;
    if (minute_of_day) *minute_of_day = h * 60 + m;
    return true;
}

bool valid_locale(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > VALID_LOCALE_MAX || !is_alpha(s[0])) return false;
    for (const char *p = s; *p; p++)
        if (!(is_alpha(*p) || is_digit(*p) || *p == '-' || *p == '_')) return false;
    return true;
}

/* Existence is asked of ICU's copy of the tz database rather than of the C
 * library's /usr/share/zoneinfo: quiet hours are computed with ICU
 * (policy/quiet.c), so a zone the API admits is exactly a zone the
 * dispatcher can evaluate, whatever tzdata package the host has. The
 * syntax check comes first, so ICU only ever sees short ASCII names (no
 * "..", no NUL). isSystemID is false for custom ids like "GMT+05:00",
 * which ICU would otherwise canonicalise and accept. */
bool valid_timezone(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > VALID_TIMEZONE_MAX || s[0] == '/' || s[n - 1] == '/') return false;
    for (const char *p = s; *p; p++)
        if (!(is_alpha(*p) || is_digit(*p) || *p == '/' || *p == '_' || *p == '-' || *p == '+'))
            return false;
    UChar id[VALID_TIMEZONE_MAX], canon[128];
    for (size_t i = 0; i < n; i++) id[i] = (UChar)(unsigned char)s[i];
    UBool system = 0;
    UErrorCode err = U_ZERO_ERROR;
    ucal_getCanonicalTimeZoneID(id, (int32_t)n, canon, (int32_t)(sizeof(canon) / sizeof(canon[0])),
                                &system, &err);
    return U_SUCCESS(err) && system;
}

bool valid_url(const char *s)
{
    const char *rest;
    if (strlen(s) > VALID_URL_MAX) return false;
    if (strncmp(s, "https://", 8) == 0)
        rest = s + 8;
    else if (strncmp(s, "http://", 7) == 0)
        rest = s + 7;
    else
        return false;
    if (!*rest || *rest == '/') return false;
    for (const char *p = s; *p; p++)
        if (*p == ' ') return false;
    return true;
}
