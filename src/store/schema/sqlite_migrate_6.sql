-- herald: the main SQLite database from schema version 5 to 6, run by
-- schema_init (store_sqlite.c) inside the schema transaction when the
-- stored version is 1 to 5 (after the earlier migrations; sqlite.sql has
-- already run: status_log, user_runs and user_run_list exist).
--
-- 6: notifications and status_history become the append-only status_log
-- (one row per history entry, the content in a notification's first row)
-- and the per-user listing the sorted runs of user_runs. A history entry's
-- detail was the error, or the provider's message id when there was no
-- error: it becomes the message id for sent and delivered (1, 2), the
-- error otherwise. metadata and traceparent go into the first row. The
-- migrated notifications form one run, at a level never merged (99).
--
-- sqlite.sql has made status_log in the layout of the current version:
-- this step writes the layout of version 6 (which sqlite_migrate_8.sql
-- turns into version 8's), so the empty table is made again as it was.

DROP TABLE status_log;
-- the per-user runs of versions 6 to 8 (sqlite.sql makes user_chunks since
-- version 9; sqlite_migrate_9.sql turns these rows into its blocks)
CREATE TABLE IF NOT EXISTS user_runs (
  run INTEGER NOT NULL, user_id TEXT NOT NULL, created_at INTEGER NOT NULL,
  notification_id TEXT NOT NULL,
  PRIMARY KEY (run, user_id, created_at, notification_id)) WITHOUT ROWID;
CREATE TABLE status_log (
  seq INTEGER PRIMARY KEY,
  notification_id TEXT NOT NULL,
  status INTEGER NOT NULL, attempt INTEGER NOT NULL, at_ms INTEGER NOT NULL,
  channel_msg_id TEXT, error TEXT, metadata TEXT, traceparent TEXT,
  event_id TEXT, user_id TEXT, channel INTEGER, category TEXT, title TEXT, body TEXT,
  address TEXT, created_at INTEGER);
CREATE INDEX status_log_id ON status_log (notification_id);

INSERT INTO status_log (notification_id, status, attempt, at_ms, channel_msg_id, error,
                        metadata, traceparent, event_id, user_id, channel, category, title, body,
                        address, created_at)
SELECT n.notification_id, h.status, h.attempt, h.at_ms,
       CASE WHEN h.status IN (1, 2) THEN h.detail END,
       CASE WHEN h.status IN (1, 2) THEN NULL ELSE h.detail END,
       CASE WHEN h.rowid = f.first THEN n.metadata END,
       CASE WHEN h.rowid = f.first THEN n.traceparent END,
       CASE WHEN h.rowid = f.first THEN n.event_id END,
       CASE WHEN h.rowid = f.first THEN n.user_id END,
       CASE WHEN h.rowid = f.first THEN n.channel END,
       CASE WHEN h.rowid = f.first THEN n.category END,
       CASE WHEN h.rowid = f.first THEN n.title END,
       CASE WHEN h.rowid = f.first THEN n.body END,
       CASE WHEN h.rowid = f.first THEN n.address END,
       CASE WHEN h.rowid = f.first THEN n.created_at END
FROM status_history h
JOIN notifications n ON n.rowid = h.notif_rowid
JOIN (SELECT notif_rowid, min(rowid) AS first FROM status_history GROUP BY notif_rowid) f
  ON f.notif_rowid = h.notif_rowid
ORDER BY h.rowid;

-- a notification without history entries: one row with its state
INSERT INTO status_log (notification_id, status, attempt, at_ms, channel_msg_id, error,
                        metadata, traceparent, event_id, user_id, channel, category, title, body,
                        address, created_at)
SELECT notification_id, status, attempt, updated_at, channel_msg_id, error, metadata, traceparent,
       event_id, user_id, channel, category, title, body, address, created_at
FROM notifications n
WHERE NOT EXISTS (SELECT 1 FROM status_history h WHERE h.notif_rowid = n.rowid);

INSERT INTO user_runs (run, user_id, created_at, notification_id)
SELECT 1, user_id, created_at, notification_id FROM notifications;
INSERT INTO user_run_list (run, level, rows, max_created)
SELECT 1, 99, count(*), max(created_at) FROM notifications HAVING count(*) > 0;

DROP TABLE status_history;
DROP TABLE notifications;
UPDATE schema_version SET version = 6 WHERE id = 1;
