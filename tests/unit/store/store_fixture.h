/*
 * store_fixture.h - the per-test store for the tests in this folder: a
 * fresh, empty store of the backend HERALD_TEST_STORE names (default
 * "sqlite"; other backends need HERALD_TEST_STORE_DSN naming an empty
 * database).
 */
#ifndef HERALD_TEST_STORE_FIXTURE_H
#define HERALD_TEST_STORE_FIXTURE_H

#include "store/store.h"

typedef struct fx {
    char dir[64];
    char *backend;
    char *dsn;
    store_t *s;
} fx_t;

/* cmocka setup/teardown: *state is an fx_t with an open store; teardown
 * closes it and removes SQLite's files. */
int fx_setup(void **state);
int fx_teardown(void **state);
/* Closes and reopens f->s on the same database (asserts success). */
void fx_reopen(fx_t *f);
bool fx_is_sqlite(const fx_t *f);

#endif
