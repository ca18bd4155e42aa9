/*
 * store_fixture.c - see store_fixture.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HERALD_HAVE_PG
#include <libpq-fe.h>

/* PostgreSQL: the tests want an empty database; drop everything in the
 * public schema of the one HERALD_TEST_STORE_DSN names. */
static int pg_empty(const char *dsn)
{
    PGconn *c = PQconnectdb(dsn);
    int rc = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *res = PQexec(c, "SET client_min_messages = warning;"
                                  " DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public");
        rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
        if (rc != 0) fprintf(stderr, "store fixture: emptying the database: %s", PQerrorMessage(c));
        PQclear(res);
    } else {
        fprintf(stderr, "store fixture: %s", PQerrorMessage(c));
    }
    PQfinish(c);
    return rc;
}
#endif

bool fx_is_sqlite(const fx_t *f) { return strcmp(f->backend, "sqlite") == 0; }

int fx_setup(void **state)
{
    fx_t *f = xcalloc(1, sizeof(*f));
    const char *b = getenv("HERALD_TEST_STORE");
    f->backend = xstrdup(b && b[0] ? b : "sqlite");
    if (fx_is_sqlite(f)) {
        const char *tmp = getenv("TMPDIR");
        snprintf(f->dir, sizeof(f->dir), "%s/herald-store-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (!mkdtemp(f->dir)) return -1;
        f->dsn = xasprintf("%s/herald.db", f->dir);
    } else {
        const char *d = getenv("HERALD_TEST_STORE_DSN");
        if (!d) return -1;
        f->dsn = xstrdup(d);
#ifdef HERALD_HAVE_PG
        if (strcmp(f->backend, "postgres") == 0 && pg_empty(f->dsn) != 0) return -1;
#endif
    }
    if (store_open(f->backend, f->dsn, &f->s) != HR_OK) return -1;
    *state = f;
    return 0;
}

int fx_teardown(void **state)
{
    fx_t *f = *state;
    store_close(f->s);
    if (fx_is_sqlite(f)) {
        static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
        /* the main database and the dedupe database beside it */
        char *ev = xasprintf("%.*s.events.db", (int)(strlen(f->dsn) - 3), f->dsn);
        const char *bases[] = {f->dsn, ev};
        for (size_t b = 0; b < ARRAY_LEN(bases); b++)
            for (size_t i = 0; i < ARRAY_LEN(suffix); i++) {
                char *p = xasprintf("%s%s", bases[b], suffix[i]);
                unlink(p);
                free(p);
            }
        free(ev);
        rmdir(f->dir);
    }
    free(f->dsn);
    free(f->backend);
    free(f);
    return 0;
}

void fx_reopen(fx_t *f)
{
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_open(f->backend, f->dsn, &f->s), HR_OK);
}
