/*
 * file.c - small files read whole (file.h).
 */
#include "core/file.h"

#include <openssl/crypto.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void file_secret_free(char *s, size_t len)
{
    if (!s) return;
    OPENSSL_cleanse(s, len);
    free(s);
}

hr_t file_read_small(const char *path, size_t max, char **out, size_t *len, char *why,
                     size_t why_len)
{
    *out = NULL;
    if (len) *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(why, why_len, "%s: %s", path, strerror(e));
        return e == ENOENT ? HR_NOTFOUND : HR_INVALID;
    }
    char *b = xmalloc(max + 1);
    size_t n = 0;
    hr_t r = HR_OK;
    for (;;) {
        ssize_t k = read(fd, b + n, max + 1 - n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            snprintf(why, why_len, "%s: %s", path, strerror(errno));
            r = HR_INVALID;
            break;
        }
        if (k == 0) break;
        n += (size_t)k;
        if (n > max) {
            snprintf(why, why_len, "%s: larger than %zu bytes", path, max);
            r = HR_INVALID;
            break;
        }
    }
    close(fd);
    if (r != HR_OK) {
        file_secret_free(b, max + 1);
        return r;
    }
    b[n] = '\0';
    *out = b;
    if (len) *len = n;
    return HR_OK;
}
