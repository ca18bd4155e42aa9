/*
 * A damaged SQLite store is reported, never served silently shortened
 * (src/store/store_sqlite_check.c): a flipped WAL frame in front of later
 * commits, and a damaged page of the database file. Both refuse to open
 * unless damage is accepted; then store_health says what is wrong. The
 * same files undamaged open clean with every row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct dfx {
    char dir[64];
} dfx_t;

static int setup(void **st)
{
    dfx_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/herald-damage-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    dfx_t *f = *st;
    char *cmd = xasprintf("rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    return 0;
}

static void copy_file(const char *from, const char *to)
{
    char *cmd = xasprintf("cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static off_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_size;
}

static void overwrite(const char *path, off_t at, size_t n)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    unsigned char junk[256];
    for (size_t i = 0; i < sizeof(junk); i++) junk[i] = (unsigned char)(0xA5 ^ (i * 37));
    assert_true(n <= sizeof(junk));
    assert_int_equal(pwrite(fd, junk, n, at), (ssize_t)n);
    close(fd);
}

/* users u0..u<n-1>, one transaction each, and a sent notification each */
static void fill(store_t *s, int n)
{
    for (int i = 0; i < n; i++) {
        char id[32], nid[32];
        snprintf(id, sizeof(id), "u%d", i);
        user_t u = {.user_id = id, .email = "a@example.com"};
        assert_int_equal(store_user_put(s, &u), HR_OK);
        snprintf(nid, sizeof(nid), "n%d", i);
        notif_t m;
        memset(&m, 0, sizeof(m));
        m.kind = REC_STATUS;
        m.channel = CH_EMAIL;
        m.status = ST_SENT;
        m.notification_id = HSTR(nid);
        m.event_id = HSTR("ev");
        m.user_id = HSTR(id);
        m.created_at_ms = m.status_at_ms = 1000 + i;
        const notif_t *mp = &m;
        assert_int_equal(store_notif_write_batch(s, &mp, 1), HR_OK);
    }
}

static int users_present(store_t *s, int n)
{
    int found = 0;
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "u%d", i);
        user_t u;
        if (store_user_get(s, id, &u) == HR_OK) found++;
        store_user_clear(&u);
    }
    return found;
}

static bool damaged_copy_kept(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    bool found = false;
    struct dirent *e;
    while ((e = readdir(d)))
        found = found || strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return found;
}

/* A crash image (database + WAL, copied while the store is open), then a
 * damaged frame in the middle of the WAL: the commits after it would be
 * dropped by SQLite's recovery. */
static void test_wal_damage_reported(void **st)
{
    dfx_t *f = *st;
    enum { USERS = 100 };
    char *live = xasprintf("%s/live.db", f->dir), *good = xasprintf("%s/good.db", f->dir),
         *bad = xasprintf("%s/bad.db", f->dir);
    store_t *s;
    assert_int_equal(store_open("sqlite", live, &s), HR_OK);
    fill(s, USERS);
    char *lw = xasprintf("%s-wal", live), *gw = xasprintf("%s-wal", good), *bw = xasprintf("%s-wal", bad);
    copy_file(live, good);
    copy_file(lw, gw);
    copy_file(live, bad);
    copy_file(lw, bw);
    store_close(s);

    /* undamaged: opens clean, nothing lost */
    store_open_opts_t strict = {.check_ms = 10000, .accept_damage = false};
    assert_int_equal(store_open_with("sqlite", good, &strict, &s), HR_OK);
    char why[512];
    assert_int_equal(store_health(s, why, sizeof(why)), HR_OK);
    assert_int_equal(users_present(s, USERS), USERS);
    store_close(s);

    /* 16 bytes in the middle of a frame a third of the way in */
    off_t wal = file_size(bw);
    const off_t frame = 24 + 4096;
    off_t nframes = (wal - 32) / frame;
    assert_true(nframes > 10);
    overwrite(bw, 32 + (nframes / 3) * frame + 24 + 2048, 16);

    assert_int_equal(store_open_with("sqlite", bad, &strict, &s), HR_ERR);
    assert_null(s);
    assert_true(damaged_copy_kept(f->dir, "bad.db-wal.damaged-"));

    store_open_opts_t accept = {.check_ms = 10000, .accept_damage = true};
    assert_int_equal(store_open_with("sqlite", bad, &accept, &s), HR_OK);
    assert_int_equal(store_health(s, why, sizeof(why)), HR_ERR);
    assert_non_null(strstr(why, "WAL frame"));
    assert_true(users_present(s, USERS) < USERS); /* what SQLite's recovery dropped */
    store_close(s);
    free(live), free(good), free(bad), free(lw), free(gw), free(bw);
}

/* A damaged b-tree page in the database file itself: quick_check finds it. */
static void test_page_damage_reported(void **st)
{
    dfx_t *f = *st;
    char *path = xasprintf("%s/pages.db", f->dir);
    store_t *s;
    assert_int_equal(store_open("sqlite", path, &s), HR_OK);
    fill(s, 1000);
    store_close(s); /* checkpointed: everything is in the database file */
    off_t size = file_size(path);
    /* the database's page size: header bytes 16-17, big-endian */
    unsigned char hdr[18];
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(hdr, 1, sizeof(hdr), fp), sizeof(hdr));
    fclose(fp);
    const off_t page = (off_t)hdr[16] << 8 | hdr[17];
    assert_true(size / page > 8);
    /* the header and cell pointers of a page in the middle of the file */
    overwrite(path, (size / page / 2) * page, 64);

    store_open_opts_t strict = {.check_ms = 10000, .accept_damage = false};
    assert_int_equal(store_open_with("sqlite", path, &strict, &s), HR_ERR);
    assert_null(s);
    store_open_opts_t accept = {.check_ms = 10000, .accept_damage = true};
    assert_int_equal(store_open_with("sqlite", path, &accept, &s), HR_OK);
    char why[512];
    assert_int_equal(store_health(s, why, sizeof(why)), HR_ERR);
    assert_non_null(strstr(why, "pages.db"));
    store_close(s);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wal_damage_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_damage_reported, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
