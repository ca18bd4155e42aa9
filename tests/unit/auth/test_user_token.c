/*
 * Tests for user tokens (auth/user_token.h): a signed token verifies and
 * says its tenant, user and expiry; it is URL-safe; expired, tampered,
 * truncated and foreign-secret tokens are refused; the secret file is made
 * once (0600) and read back; a short secret is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "auth/user_token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char secret[] = "a-secret-of-at-least-thirty-two-bytes!!";

static user_token_key_t *key(void) { return user_token_key_new(secret, sizeof(secret) - 1); }

static void test_sign_verify(void **state)
{
    (void)state;
    user_token_key_t *k = key();
    char *tok = user_token_sign(k, "acme", "user:1/é", 2000);
    assert_true(user_token_like(tok, strlen(tok)));
    for (const char *p = tok; *p; p++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", *p));
    user_token_t t;
    assert_int_equal(user_token_verify(k, tok, strlen(tok), 1999, &t), HR_OK);
    assert_string_equal(t.tenant, "acme");
    assert_string_equal(t.user_id, "user:1/é");
    assert_int_equal(t.exp_s, 2000);
    /* at and after the expiry: HR_TIMEOUT */
    assert_int_equal(user_token_verify(k, tok, strlen(tok), 2000, &t), HR_TIMEOUT);
    free(tok);
    user_token_key_free(k);
}

static void test_tampered_refused(void **state)
{
    (void)state;
    user_token_key_t *k = key();
    char *tok = user_token_sign(k, "default", "alice", 5000);
    size_t n = strlen(tok);
    user_token_t t;
    /* every single-character change in the payload or the MAC */
    for (size_t i = strlen(USER_TOKEN_PREFIX); i < n; i++) {
        char *bad = strdup(tok);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        hr_t r = user_token_verify(k, bad, n, 1000, &t);
        if (r != HR_INVALID) fail_msg("a change at %zu was accepted (%d)", i, r);
        free(bad);
    }
    /* cut short, no MAC, not a token at all */
    assert_int_equal(user_token_verify(k, tok, n - 1, 1000, &t), HR_INVALID);
    assert_int_equal(user_token_verify(k, tok, (size_t)(strrchr(tok, '.') - tok), 1000, &t), HR_INVALID);
    assert_int_equal(user_token_verify(k, "hk_0123", 7, 1000, &t), HR_INVALID);
    assert_false(user_token_like("hk_0123", 7));
    /* signed with another secret */
    static const char other_s[] = "another-secret-of-thirty-two-bytes-or-more";
    user_token_key_t *other = user_token_key_new(other_s, sizeof(other_s) - 1);
    char *foreign = user_token_sign(other, "default", "alice", 5000);
    assert_int_equal(user_token_verify(k, foreign, strlen(foreign), 1000, &t), HR_INVALID);
    assert_string_equal(t.user_id, ""); /* nothing filled */
    free(foreign);
    user_token_key_free(other);
    free(tok);
    user_token_key_free(k);
}

static void test_secret_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/herald-utok-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], why[256];
    snprintf(path, sizeof(path), "%s/inbox_token.key", dir);
    user_token_key_t *a = NULL, *b = NULL;
    assert_int_equal(user_token_key_load(path, &a, why, sizeof(why)), HR_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* read back, not made again: a token of one verifies with the other */
    assert_int_equal(user_token_key_load(path, &b, why, sizeof(why)), HR_OK);
    char *tok = user_token_sign(a, "default", "u", 100);
    user_token_t t;
    assert_int_equal(user_token_verify(b, tok, strlen(tok), 1, &t), HR_OK);
    free(tok);
    user_token_key_free(a);
    user_token_key_free(b);
    /* a short secret is refused, naming the file */
    FILE *f = fopen(path, "w");
    fputs("short\n", f);
    fclose(f);
    assert_int_equal(user_token_key_load(path, &a, why, sizeof(why)), HR_INVALID);
    assert_null(a);
    assert_non_null(strstr(why, path));
    assert_null(user_token_key_new("short", 5));
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_tampered_refused),
        cmocka_unit_test(test_secret_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
