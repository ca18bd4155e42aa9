/*
 * store_pg.h - what the PostgreSQL backend shows beyond store_int.h: its
 * schema migrations (src/store/schema/pg/NNN_name.sql, listed by the build
 * in pg_migrations.c) and its schema version, for tests and tools.
 */
#ifndef HERALD_STORE_PG_H
#define HERALD_STORE_PG_H

/* One migration file: it brings the database to `version`. */
typedef struct store_pg_migration {
    int version;
    const char *name;           /* "004_base" */
    const char *sql;            /* the file's text */
} store_pg_migration_t;

/* Every migration, oldest first (generated at build time). */
extern const store_pg_migration_t store_pg_migrations[];
extern const int store_pg_nmigrations;

/* The version this herald brings a PostgreSQL database to: the last
 * migration's. */
static inline int store_pg_schema_version(void)
{
    return store_pg_nmigrations ? store_pg_migrations[store_pg_nmigrations - 1].version : 0;
}

#endif
