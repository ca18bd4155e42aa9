#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int hlog_level_current = HLOG_INFO;

static const char *names[] = {"debug", "info", "warn", "error", "off"};

void hlog_set_level(int level) { hlog_level_current = level; }

int hlog_parse_level(const char *name)
{
    for (int i = 0; i < 5; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

/* Copies msg into out (cap bytes, NUL-terminated) with control characters
 * escaped - \n, \r, \t, \xNN - so that text a client chose (an event
 * type, an id) can never start a line of its own or hide one. Bytes 0x80
 * and up pass: UTF-8 stays readable. Returns the length written. */
static size_t escape_controls(char *out, size_t cap, const char *msg)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        char esc[4];
        size_t k = 0;
        if (*p == '\n') esc[0] = '\\', esc[1] = 'n', k = 2;
        else if (*p == '\r') esc[0] = '\\', esc[1] = 'r', k = 2;
        else if (*p == '\t') esc[0] = '\\', esc[1] = 't', k = 2;
        else if (*p < 0x20 || *p == 0x7f)
            esc[0] = '\\', esc[1] = 'x', esc[2] = hex[*p >> 4], esc[3] = hex[*p & 15], k = 4;
        if (k == 0) {
            if (n + 1 >= cap) break;
            out[n++] = (char)*p;
        } else {
            if (n + k >= cap) break;
            memcpy(out + n, esc, k);
            n += k;
        }
    }
    out[n] = '\0';
    return n;
}

void hlog_write(int level, const char *component, const char *fmt, ...)
{
    char line[2048], msg[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %-8s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level < 0 || level > 4 ? 3 : level],
                     component);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0 || m < 0) return;
    if ((size_t)n < sizeof(line)) n += (int)escape_controls(line + n, sizeof(line) - (size_t)n, msg);
    if ((size_t)n >= sizeof(line) - 1) n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr); /* one write per line keeps lines whole */
}
