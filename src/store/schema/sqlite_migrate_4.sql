-- herald: the main SQLite database from schema version 3 to 4, run by
-- schema_init (store_sqlite.c) inside the schema transaction when the
-- stored version is 1 to 3 (after the earlier migrations; sqlite.sql has
-- already run: its new tables exist).
--
-- 4: notifications.traceparent, the W3C trace context the notification's
-- records carried (NULL = none).

ALTER TABLE notifications ADD COLUMN traceparent TEXT;
UPDATE schema_version SET version = 4 WHERE id = 1;
