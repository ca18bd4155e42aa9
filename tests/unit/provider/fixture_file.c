/*
 * fixture_file.c - fixture files of the provider tests (fixture_file.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "fixture_file.h"

#include <stdio.h>
#include <stdlib.h>

char *fixture_load(const char *rel, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", FIXTURE_DIR, rel);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open fixture %s", path);
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    n = fread(b, 1, cap, f);
    fclose(f);
    b[n] = '\0';
    if (len) *len = n;
    return b;
}
