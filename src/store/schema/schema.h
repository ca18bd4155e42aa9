/*
 * schema.h - the store schemas, compiled in from the .sql files beside this
 * header (the build turns each into a NUL-terminated string, see
 * cmake/embed.cmake).
 */
#ifndef HERALD_STORE_SCHEMA_H
#define HERALD_STORE_SCHEMA_H

/* schema/sqlite.sql: the main SQLite database. */
extern const char store_schema_sqlite[];
/* schema/sqlite_events.sql: the SQLite dedupe database. */
extern const char store_schema_sqlite_events[];
/* schema/sqlite_migrate_2.sql: a version 1 main database to version 2. */
extern const char store_schema_sqlite_migrate_2[];
/* schema/sqlite_migrate_3.sql: a version 2 main database to version 3. */
extern const char store_schema_sqlite_migrate_3[];
/* schema/sqlite_migrate_4.sql: a version 3 main database to version 4. */
extern const char store_schema_sqlite_migrate_4[];
/* schema/sqlite_migrate_5.sql: a version 4 main database to version 5. */
extern const char store_schema_sqlite_migrate_5[];
/* schema/sqlite_migrate_6.sql: a version 5 main database to version 6. */
extern const char store_schema_sqlite_migrate_6[];
/* schema/sqlite_migrate_7.sql: a version 6 main database to version 7. */
extern const char store_schema_sqlite_migrate_7[];
/* schema/sqlite_migrate_8.sql: a version 7 main database to version 8. */
extern const char store_schema_sqlite_migrate_8[];
/* schema/sqlite_migrate_9.sql: a version 8 main database to version 9. */
extern const char store_schema_sqlite_migrate_9[];
/* schema/sqlite_migrate_10.sql: a version 9 main database to version 10. */
extern const char store_schema_sqlite_migrate_10[];
/* schema/sqlite_indexes.sql: indexes on migrated columns, after migrating. */
extern const char store_schema_sqlite_indexes[];
/* The PostgreSQL schema: the migrations of schema/pg/ (store/store_pg.h). */

#endif
