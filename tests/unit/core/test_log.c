/*
 * log.c: one call writes exactly one line, whatever the message holds:
 * control characters a client chose (a newline in an event type) are
 * escaped, so they can never forge a line of their own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs one log call with stderr sent to a file; returns what it wrote. */
static char *captured(const char *type)
{
    char path[] = "/tmp/herald-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    log_warn("ingest", "event %s refused", type);
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    static char out[4096];
    ssize_t n = pread(fd, out, sizeof(out) - 1, 0);
    assert_true(n > 0);
    out[n] = '\0';
    close(fd);
    unlink(path);
    return out;
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_forged_line(void **state)
{
    char *out = captured("x\n2026-01-01T00:00:00.000Z error   admin    forged");
    assert_int_equal(lines(out), 1);
    assert_non_null(strstr(out, "event x\\n2026-01-01T00:00:00.000Z error"));
    assert_non_null(strstr(out, " refused\n"));
}

static void test_controls_escaped(void **state)
{
    char *out = captured("a\rb\tc\x01\x1b[31md\x7f");
    assert_int_equal(lines(out), 1);
    assert_non_null(strstr(out, "a\\rb\\tc\\x01\\x1b[31md\\x7f refused"));
    assert_null(strchr(out, '\r'));
    assert_null(strchr(out, '\x1b'));
}

static void test_utf8_kept(void **state)
{
    char *out = captured("caf\xc3\xa9");
    assert_non_null(strstr(out, "event caf\xc3\xa9 refused\n"));
}

static void test_long_line_whole(void **state)
{
    char big[5000];
    memset(big, '\n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char *out = captured(big);
    assert_int_equal(lines(out), 1);
    assert_true(strlen(out) <= 2048);
    assert_int_equal(out[strlen(out) - 1], '\n');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forged_line),
        cmocka_unit_test(test_controls_escaped),
        cmocka_unit_test(test_utf8_kept),
        cmocka_unit_test(test_long_line_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
