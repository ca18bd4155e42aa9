-- herald: the main SQLite database from schema version 2 to 3, run by
-- schema_init (store_sqlite.c) inside the schema transaction when the
-- stored version is 1 or 2 (after sqlite.sql and the earlier migrations).
--
-- 3: scheduled.user_id, the receiver of a deferred notification, so that
-- erasing a user (store_user_erase) finds them. schema_init fills it for
-- the rows already there by decoding their records.

ALTER TABLE scheduled ADD COLUMN user_id TEXT;
UPDATE schema_version SET version = 3 WHERE id = 1;
