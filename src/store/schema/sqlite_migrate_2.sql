-- herald: the main SQLite database from schema version 1 to 2, run by
-- schema_init (store_sqlite.c) inside the schema transaction when the
-- stored version is 1 (sqlite.sql has already run: its new tables exist).
--
-- 2: users.webhook_secret, the key the webhook provider signs a user's
-- requests with (NULL = none).

ALTER TABLE users ADD COLUMN webhook_secret TEXT;
UPDATE schema_version SET version = 2 WHERE id = 1;
