/*
 * fixture_file.h - reads a provider test's fixture file from
 * FIXTURE_DIR (tests/unit/provider/fixtures/<provider>/...).
 */
#ifndef FIXTURE_FILE_H
#define FIXTURE_FILE_H

#include <stddef.h>

/* The whole file rel (relative to the fixtures folder), NUL-terminated;
 * fails the test when it cannot be read. The caller frees it. */
char *fixture_load(const char *rel, size_t *len);

#endif
