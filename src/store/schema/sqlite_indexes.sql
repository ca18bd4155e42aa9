-- herald: indexes of the main SQLite database on columns a migration may
-- have added, so they cannot be in sqlite.sql (which runs before the
-- migrations). Run by schema_init at every open, after the migrations.

CREATE INDEX IF NOT EXISTS scheduled_user ON scheduled (user_id);

-- version 8: the status log's only index (sqlite.sql, sqlite_migrate_8.sql);
-- version 10: ids of 32 hex digits in it as 16-byte blobs (sqlite_migrate_10.sql)
CREATE INDEX IF NOT EXISTS status_log_key ON status_log (notification_id, status, content);
