-- herald: the main SQLite database from schema version 6 to 7, run by
-- schema_init (store_sqlite.c) inside the schema transaction when the
-- stored version is 1 to 6 (after the earlier migrations; sqlite.sql has
-- already run: the digests and digest_members tables exist).
--
-- 7: a template may declare a digest (model/digest.h): its window in ms
-- (0 = none, what every existing template gets) and its key template
-- (NULL = the event type).

ALTER TABLE templates ADD COLUMN digest_window_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE templates ADD COLUMN digest_key TEXT;
UPDATE schema_version SET version = 7 WHERE id = 1;
