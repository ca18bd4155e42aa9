/*
 * HTTP API on a full disk: the fixture's store and bus live on a 16 MiB
 * tmpfs mounted over /tmp in this process's own mount namespace (skipped,
 * saying why, where that is not allowed). A store write that finds no
 * space answers 507 with a reason and Retry-After, /readyz says the store
 * is out of space, and once space is freed writes succeed again with
 * nothing lost.
 */
#include "api_fixture.h"
#include "tmpfs_private.h"

#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char skip_why[256];
static const char filler[] = "/tmp/filler";

/* Fills the filesystem under /tmp to the last byte. */
static void fill_disk(void)
{
    FILE *fp = fopen(filler, "w");
    assert_non_null(fp);
    setvbuf(fp, NULL, _IONBF, 0);
    static char junk[4096];
    memset(junk, 'f', sizeof(junk));
    while (fwrite(junk, 1, sizeof(junk), fp) == sizeof(junk)) {}
    while (fwrite(junk, 1, 1, fp) == 1) {}
    fclose(fp);
}

static void put_template(hresp_t *r, int i, const char *big)
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/templates/t%d/email", i);
    char *body = NULL;
    assert_true(asprintf(&body, "{\"locale\":\"en\",\"title\":\"t\",\"body\":\"%s\"}", big) > 0);
    hreq(r, "PUT", path, body);
    free(body);
}

static void test_store_full(void **state)
{
    if (skip_why[0]) {
        print_message("skipped: %s\n", skip_why);
        skip();
    }
    static char big[32 * 1024];
    memset(big, 'x', sizeof(big) - 1);
    hresp_t r;
    put_template(&r, 0, big);
    assert_ok_json(&r, 200);
    hresp_clear(&r);

    fill_disk();
    /* the WAL may still have room for a few pages: write until it has none */
    int i, refused = -1;
    for (i = 1; i < 200 && refused < 0; i++) {
        put_template(&r, i, big);
        if (r.status != 200) refused = i;
        else hresp_clear(&r);
    }
    print_message("store refused the write %d after the disk filled\n", refused);
    assert_true(refused > 0);
    assert_problem(&r, 507, NULL);
    assert_string_equal(jstr(r.json, "type"), "urn:herald:problem:no-space");
    assert_non_null(strstr(jstr(r.json, "detail"), "no disk space"));
    assert_string_equal(r.retry_after, "30");
    hresp_clear(&r);

    hreq(&r, "GET", "/readyz", NULL);
    assert_problem(&r, 503, NULL);
    json_t *checks = json_object_get(r.json, "checks");
    assert_string_equal(jstr(checks, "store"), "no space");
    assert_non_null(strstr(jstr(r.json, "detail"), "out of disk space"));
    hresp_clear(&r);

    /* space freed: the same write goes through, and what was written before
     * the disk filled is all there */
    assert_int_equal(unlink(filler), 0);
    put_template(&r, refused, big);
    assert_ok_json(&r, 200);
    hresp_clear(&r);
    for (int k = 0; k <= refused; k++) {
        char path[64];
        snprintf(path, sizeof(path), "/v1/templates/t%d/email", k);
        hreq(&r, "GET", path, NULL);
        assert_ok_json(&r, 200);
        hresp_clear(&r);
    }

    /* readiness returns once the last refusal is older than its window */
    hclock_set_fake(store_nospace_at_ms() + 11000);
    hreq(&r, "GET", "/readyz", NULL);
    hclock_set_fake(0);
    assert_ok_json(&r, 200);
    hresp_clear(&r);
}

int main(void)
{
    tmpfs_private_mount("/tmp", 16 * 1024 * 1024, skip_why, sizeof(skip_why));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_full),
    };
    return cmocka_run_group_tests(tests, api_setup, api_teardown);
}
