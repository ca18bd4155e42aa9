-- herald: the main SQLite database from schema version 2 to 3, run by
-- schema_init (store_sqlite.c) inside the schema transaction when the
-- stored version is 2 (after sqlite_migrate_2.sql for a version 1
-- database; sqlite.sql has already run: its new tables exist).
--
-- 3: notifications.traceparent, the W3C trace context the notification's
-- records carried (NULL = none).

ALTER TABLE notifications ADD COLUMN traceparent TEXT;
UPDATE schema_version SET version = 3 WHERE id = 1;
