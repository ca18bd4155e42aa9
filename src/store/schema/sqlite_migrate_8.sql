-- herald: the main SQLite database from schema version 7 to 8, run by
-- schema_init (store_sqlite.c) inside the schema transaction when the
-- stored version is 1 to 7 (after the earlier migrations; sqlite.sql has
-- already run, finding the version 7 status_log in place).
--
-- 8: a status_log row keeps its seq (arrival order), id and status; the
-- other columns become one blob, rec, written by herald_log_rec()
-- (store_sqlite_notif.c, registered on the writer's connection), with the
-- content where event_id is set (content = 1). The index on
-- notification_id goes; sqlite_indexes.sql makes status_log_key
-- (notification_id, status, content) after the migrations.

ALTER TABLE status_log RENAME TO status_log_v7;
CREATE TABLE status_log (
  seq INTEGER PRIMARY KEY,
  notification_id TEXT NOT NULL,
  status INTEGER NOT NULL, content INTEGER NOT NULL, rec BLOB NOT NULL);
INSERT INTO status_log (seq, notification_id, status, content, rec)
SELECT seq, notification_id, status, event_id IS NOT NULL,
       herald_log_rec(attempt, at_ms, channel_msg_id, error, metadata, traceparent, event_id,
                      user_id, channel, category, title, body, address, created_at)
FROM status_log_v7
ORDER BY seq;
DROP TABLE status_log_v7;
UPDATE schema_version SET version = 8 WHERE id = 1;
