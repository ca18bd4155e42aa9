/*
 * store_sqlite_keys.c - API keys in SQLite (store.h "API keys"). Reads go
 * to the reader connection: a key check that misses the process's cache
 * (auth/auth.c) is one indexed point read.
 */
#include "store/store_sqlite_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void col_text(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

static void row_to_key(sqlite3_stmt *st, api_key_rec_t *k)
{
    memset(k, 0, sizeof(*k));
    col_text(st, 0, k->key_id, sizeof(k->key_id));
    const void *h = sqlite3_column_blob(st, 1);
    if (h && sqlite3_column_bytes(st, 1) == (int)sizeof(k->secret_hash))
        memcpy(k->secret_hash, h, sizeof(k->secret_hash));
    col_text(st, 2, k->tenant, sizeof(k->tenant));
    k->scopes = (unsigned)sqlite3_column_int64(st, 3);
    col_text(st, 4, k->name, sizeof(k->name));
    k->created_at_ms = sqlite3_column_int64(st, 5);
    k->revoked_at_ms = sqlite3_column_int64(st, 6);
}

hr_t sq_key_put(store_t *s, const api_key_rec_t *k)
{
    conn_t *c = &sq(s)->w;
    sq_writer_lock(c);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_KEY_PUT);
    if (st) {
        bind_str(st, 1, k->key_id);
        sqlite3_bind_blob(st, 2, k->secret_hash, (int)sizeof(k->secret_hash), SQLITE_STATIC);
        bind_str(st, 3, k->tenant);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)k->scopes);
        bind_str(st, 5, k->name);
        sqlite3_bind_int64(st, 6, k->created_at_ms);
        r = sq_step_done(c, st, "api key put");
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_key_get(store_t *s, const char *key_id, api_key_rec_t *out)
{
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_KEY_GET);
    if (st) {
        bind_str(st, 1, key_id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            row_to_key(st, out);
            r = HR_OK;
        } else {
            r = rc == SQLITE_DONE ? HR_NOTFOUND : sq_err(c, rc, "api key get");
        }
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}

hr_t sq_key_list(store_t *s, api_key_rec_t **out, int *n)
{
    conn_t *c = sq(s)->rd;
    pthread_mutex_lock(&c->mu);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_KEY_LIST);
    api_key_rec_t *v = NULL;
    int cnt = 0, cap = 0;
    if (st) {
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (cnt == cap) {
                cap = cap ? cap * 2 : 16;
                v = xrealloc(v, (size_t)cap * sizeof(*v));
            }
            row_to_key(st, &v[cnt++]);
        }
        r = rc == SQLITE_DONE ? HR_OK : sq_err(c, rc, "api key list");
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&c->mu);
    if (r != HR_OK) {
        free(v);
        return r;
    }
    *out = v;
    *n = cnt;
    return HR_OK;
}

hr_t sq_key_revoke(store_t *s, const char *key_id, int64_t at_ms)
{
    conn_t *c = &sq(s)->w;
    sq_writer_lock(c);
    hr_t r = HR_ERR;
    sqlite3_stmt *st = sq_stmt(c, S_KEY_REVOKE);
    if (st) {
        bind_str(st, 1, key_id);
        sqlite3_bind_int64(st, 2, at_ms);
        r = sq_step_done(c, st, "api key revoke");
        if (r == HR_OK && sqlite3_changes(c->db) == 0) r = HR_NOTFOUND;
    }
    pthread_mutex_unlock(&c->mu);
    return r;
}
