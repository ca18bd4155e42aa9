#include "core/log.h"

#include "core/buf.h"
#include "core/json_write.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int hlog_level_current = HLOG_INFO;
static int hlog_format_current = HLOG_TEXT;

static const char *names[] = {"debug", "info", "warn", "error", "off"};

void hlog_set_level(int level) { hlog_level_current = level; }

void hlog_set_format(int format) { hlog_format_current = format == HLOG_JSON ? HLOG_JSON : HLOG_TEXT; }

int hlog_parse_format(const char *name)
{
    if (strcmp(name, "text") == 0) return HLOG_TEXT;
    if (strcmp(name, "json") == 0) return HLOG_JSON;
    return -1;
}

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

/* {"ts":...,"level":...,"component":...,"msg":...} and a newline, in one
 * write. The message was cut to fit msg[] before; escaping may make the
 * line longer than a text line (at most 6 bytes per byte of msg). */
static void write_json(const char *ts, const char *level, const char *component, const char *msg)
{
    buf_t b;
    buf_init(&b, 0);
    jw_t w = JW_INIT(&b);
    jw_lit(&w, "{");
    jw_key_str(&w, JW_KEY0("ts"), ts, strlen(ts));
    jw_key_str(&w, JW_KEY("level"), level, strlen(level));
    jw_key_str(&w, JW_KEY("component"), component, strlen(component));
    jw_key_str(&w, JW_KEY("msg"), msg, strlen(msg));
    jw_lit(&w, "}\n");
    if (w.r == HR_OK) fwrite(b.data, 1, b.len, stderr);
    buf_release(&b);
}

void hlog_write(int level, const char *component, const char *fmt, ...)
{
    char line[2048], msg[2048], ts_text[128]; /* 24 bytes; room for what int fields could print */
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    const char *level_name = names[level < 0 || level > 4 ? 3 : level];
    if (!component) component = "";
    snprintf(ts_text, sizeof(ts_text), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0) return;
    if (hlog_format_current == HLOG_JSON) {
        write_json(ts_text, level_name, component, msg);
        return;
    }
    int n = snprintf(line, sizeof(line), "%s %-5s %-8s ", ts_text, level_name, component);
    if (n < 0) return;
    if ((size_t)n < sizeof(line)) n += (int)escape_controls(line + n, sizeof(line) - (size_t)n, msg);
    if ((size_t)n >= sizeof(line) - 1) n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr); /* one write per line keeps lines whole */
}
