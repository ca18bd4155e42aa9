/*
 * file.h - small files read whole: keys, certificates, credentials.
 *
 * Plain read(2) (no stdio buffer keeps a copy of a key), a bound on the
 * size, and a buffer wiped before it is freed on failure. Any thread.
 */
#ifndef HERALD_FILE_H
#define HERALD_FILE_H

#include "core/common.h"

/* Reads path whole into *out (malloc'd, NUL-terminated; *len its length,
 * len may be NULL). HR_NOTFOUND when the file does not exist, HR_INVALID
 * when it cannot be read or holds more than max bytes; why then says
 * "<path>: <reason>", never the content. Free the result with
 * file_secret_free() when it held a secret. */
hr_t file_read_small(const char *path, size_t max, char **out, size_t *len, char *why,
                     size_t why_len);

/* Overwrites s[0..len) and frees it; NULL is a no-op. */
void file_secret_free(char *s, size_t len);

#endif
