/*
 * log.h - diagnostic logging (not the message log: that is the bus).
 * Free when the level is off; lines carry a component name.
 * Thread-safe; writes one line per call to stderr.
 */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

enum hlog_level { HLOG_DEBUG = 0, HLOG_INFO = 1, HLOG_WARN = 2, HLOG_ERROR = 3, HLOG_OFF = 4 };

extern int hlog_level_current;
void hlog_set_level(int level);
int hlog_parse_level(const char *name); /* -1 if unknown */
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
