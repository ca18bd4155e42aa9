/*
 * log.h - diagnostic logging (not the message log: that is the bus).
 * Free when the level is off; lines carry a component name.
 * Thread-safe; writes one line per call to stderr: text
 *   2026-01-02T03:04:05.678Z warn  ingest   message
 * or, with hlog_set_format(HLOG_JSON) (config log.format=json), one JSON
 * object per line for log collectors:
 *   {"ts":"2026-01-02T03:04:05.678Z","level":"warn","component":"ingest","msg":"message"}
 * Either way a message cannot start a line of its own: text escapes control
 * characters, JSON escapes through core/json_write.h.
 */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

enum hlog_level { HLOG_DEBUG = 0, HLOG_INFO = 1, HLOG_WARN = 2, HLOG_ERROR = 3, HLOG_OFF = 4 };

enum hlog_format { HLOG_TEXT = 0, HLOG_JSON = 1 };

extern int hlog_level_current;
void hlog_set_level(int level);
int hlog_parse_level(const char *name); /* -1 if unknown */
/* Set once at start, before threads log (like the level). */
void hlog_set_format(int format);
int hlog_parse_format(const char *name); /* "text", "json"; -1 if unknown */
void hlog_write(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define hlog(level, component, ...)                                  \
    do {                                                             \
        if ((level) >= hlog_level_current)                           \
            hlog_write((level), (component), __VA_ARGS__);           \
    } while (0)

#define log_debug(c, ...) hlog(HLOG_DEBUG, c, __VA_ARGS__)
#define log_info(c, ...) hlog(HLOG_INFO, c, __VA_ARGS__)
#define log_warn(c, ...) hlog(HLOG_WARN, c, __VA_ARGS__)
#define log_error(c, ...) hlog(HLOG_ERROR, c, __VA_ARGS__)

#endif
