/*
 * validate.c - field validators (validate.h).
 */
#include "model/validate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <unicode/ucal.h>
#include <strings.h>

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

/* Is a host-order IPv4 address outside the public internet? */
static bool ipv4_private(uint32_t a)
{
    static const struct {
        uint32_t net;
        int bits;
    } ranges[] = {
        {0x00000000u, 8},  /* 0/8 "this network" */
        {0x0a000000u, 8},  /* 10/8 */
        {0x64400000u, 10}, /* 100.64/10 shared (CGNAT) */
        {0x7f000000u, 8},  /* 127/8 loopback */
        {0xa9fe0000u, 16}, /* 169.254/16 link-local, cloud metadata */
        {0xac100000u, 12}, /* 172.16/12 */
        {0xc0000000u, 24}, /* 192.0.0/24 protocol assignments */
        {0xc0a80000u, 16}, /* 192.168/16 */
        {0xc6120000u, 15}, /* 198.18/15 benchmarking */
        {0xe0000000u, 4},  /* 224/4 multicast */
        {0xf0000000u, 4},  /* 240/4 reserved, broadcast */
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        if ((a >> (32 - ranges[i].bits)) == (ranges[i].net >> (32 - ranges[i].bits))) return true;
    return false;
}

static bool ipv6_private(const unsigned char b[16])
{
    static const unsigned char zero[16] = {0};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (memcmp(b, zero, 15) == 0 && (b[15] == 0 || b[15] == 1)) return true; /* ::, ::1 */
    if ((b[0] & 0xfe) == 0xfc) return true;                   /* fc00::/7 unique local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return true;   /* fe80::/10 link-local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return true;   /* fec0::/10 site-local */
    if (b[0] == 0xff) return true;                            /* ff00::/8 multicast */
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0 || memcmp(b, zero, 12) == 0) {
        uint32_t a = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
        return ipv4_private(a); /* IPv4-mapped, NAT64 and IPv4-compatible forms */
    }
    return false;
}

bool url_host_private(const char *url)
{
    const char *p = strstr(url, "://");
    if (!p) return true;
    p += 3;
    size_t alen = strcspn(p, "/?#");
    /* userinfo ends at the last '@' of the authority */
    for (size_t i = alen; i > 0; i--) {
        if (p[i - 1] == '@') {
            p += i;
            alen -= i;
            break;
        }
    }
    char host[256];
    size_t hlen;
    if (alen && p[0] == '[') {
        const char *rb = memchr(p, ']', alen);
        if (!rb) return true;
        hlen = (size_t)(rb - p - 1);
        if (hlen >= sizeof(host)) return true;
        memcpy(host, p + 1, hlen);
        host[hlen] = '\0';
        if (strchr(host, '%')) return true; /* a zone id ("%25eth0") names a local link */
        unsigned char b[16];
        if (inet_pton(AF_INET6, host, b) != 1) return true;
        return ipv6_private(b);
    }
    hlen = strcspn(p, ":/?#");
    if (hlen > alen) hlen = alen;
    if (hlen == 0 || hlen >= sizeof(host)) return true;
    memcpy(host, p, hlen);
    host[hlen] = '\0';
    if (host[hlen - 1] == '.') host[--hlen] = '\0'; /* "localhost." is localhost */
    if (hlen == 0) return true;
    /* a percent-encoded host could spell any of the below in disguise */
    if (strchr(host, '%')) return true;
    if (strcasecmp(host, "localhost") == 0) return true;
    if (hlen > 10 && strcasecmp(host + hlen - 10, ".localhost") == 0) return true;
    /* inet_aton, unlike inet_pton, takes every form a resolver does:
     * "127.1", "0x7f.0.0.1", "017700000001", "2130706433" */
    struct in_addr a4;
    if (inet_aton(host, &a4)) return ipv4_private(ntohl(a4.s_addr));
    return false;
}
