/*
 * The sandbox provider on a full disk (a 64 KiB tmpfs this test mounts in
 * its own mount namespace; skipped, saying why, where that is not
 * allowed): a batch that does not fit is taken back whole and every
 * notification of it is RETRY, so the file only ever holds whole lines,
 * one per notification reported sent; once space is freed the retried
 * batch goes through.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "prov_fixture.h"
#include "tmpfs_private.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH 16
#define FILLER (24 * 1024)

static char dir[64];
static char skip_why[256];

/* Lines of the email sandbox file; fails the test on a torn or non-JSON
 * line. */
static int whole_lines(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/sandbox/email.jsonl", dir);
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    static char line[16384];
    int n = 0;
    while (fgets(line, sizeof(line), fp)) {
        size_t l = strlen(line);
        if (l == 0 || line[l - 1] != '\n') fail_msg("torn last line: %.80s", line);
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o) fail_msg("line %d is not JSON (%s)", n + 1, err.text);
        json_decref(o);
        n++;
    }
    fclose(fp);
    return n;
}

/* Delivers one batch; returns how many completed OK (the rest RETRY). */
static int round_of(fx_t *f, provider_set_t *s)
{
    memset(f->completions, 0, sizeof(f->completions));
    memset(f->res, 0, sizeof(f->res));
    fx_deliver(f, s, BATCH, BATCH);
    int ok = 0;
    for (int i = 0; i < BATCH; i++) {
        if (f->res[i].cls == SEND_OK) ok++;
        else assert_int_equal(f->res[i].cls, SEND_RETRY);
    }
    return ok;
}

static void test_full_disk_whole_lines(void **st)
{
    if (skip_why[0]) {
        print_message("skipped: %s\n", skip_why);
        skip();
    }
    char filler[128];
    snprintf(filler, sizeof(filler), "%s/filler", dir);
    FILE *fp = fopen(filler, "w");
    assert_non_null(fp);
    static char junk[FILLER];
    memset(junk, 'f', sizeof(junk));
    assert_int_equal(fwrite(junk, 1, sizeof(junk), fp), sizeof(junk));
    assert_int_equal(fclose(fp), 0);

    static fx_t f;
    fx_init(&f, "data_dir", dir, "sandbox.mode", "file", "provider.sandbox.max_in_flight", "16",
            NULL);
    provider_set_t *s = NULL;
    char why[256];
    assert_int_equal(provider_set_open(&f.cfg, NULL, CH_EMAIL, fx_done, &f, &s, why, sizeof(why)),
                     HR_OK);
    static char body[900];
    memset(body, 'b', sizeof(body) - 1);
    for (int i = 0; i < BATCH; i++) {
        fx_notif(&f, i, CH_EMAIL, "title", "");
        f.n[i].body = HSTR(body);
    }

    int sent = 0, rounds = 0;
    bool refused = false;
    while (!refused && rounds++ < 20) {
        int ok = round_of(&f, s);
        assert_true(ok == 0 || ok == BATCH); /* one write: all or nothing */
        sent += ok;
        refused = ok == 0;
        assert_int_equal(whole_lines(), sent);
    }
    print_message("disk full after %d batches (%d lines)\n", rounds, sent);
    assert_true(refused);

    /* still full: refused again, nothing torn */
    assert_int_equal(round_of(&f, s), 0);
    assert_int_equal(whole_lines(), sent);

    /* space freed: the retry goes through */
    assert_int_equal(unlink(filler), 0);
    assert_int_equal(round_of(&f, s), BATCH);
    sent += BATCH;
    assert_int_equal(whole_lines(), sent);

    provider_set_close(s);
    fx_release(&f);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/herald-full-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    bool mounted = tmpfs_private_mount(dir, 64 * 1024, skip_why, sizeof(skip_why)) == 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_disk_whole_lines),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (mounted) umount2(dir, MNT_DETACH);
    rmdir(dir);
    return rc;
}
