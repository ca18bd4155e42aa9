-- herald: the main SQLite database from schema version 4 to 5, run by
-- schema_init (store_sqlite.c) inside the schema transaction when the
-- stored version is 1 to 4 (after the earlier migrations; sqlite.sql has
-- already run: its new tables exist).
--
-- 5: the inbox table (in-app inbox items), created by sqlite.sql; nothing
-- to convert.

UPDATE schema_version SET version = 5 WHERE id = 1;
