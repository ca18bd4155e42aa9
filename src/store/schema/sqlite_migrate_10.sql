-- herald: the main SQLite database from schema version 9 to 10, run by
-- schema_init (store_sqlite.c) inside the schema transaction when the
-- stored version is 1 to 9 (after the earlier migrations; sqlite.sql has
-- already run, finding the version 9 status_log in place).
--
-- 10: status_log stores a notification id of 32 lowercase hex digits (the
-- ids model/notif.h makes) as its 16 bytes, a blob, written by
-- herald_id() (store_sqlite_notif.c, registered on the writer's
-- connection); any other id stays text. Half the key bytes in the table
-- and in status_log_key, and a 16-byte compare instead of a 32-byte one
-- in every descent of the index. Every row keeps its seq, status, content
-- flag and record; sqlite_indexes.sql makes status_log_key again after
-- the migrations.

ALTER TABLE status_log RENAME TO status_log_v9;
DROP INDEX IF EXISTS status_log_key;
CREATE TABLE status_log (
  seq INTEGER PRIMARY KEY,
  notification_id BLOB NOT NULL,
  status INTEGER NOT NULL, content INTEGER NOT NULL, rec BLOB NOT NULL);
INSERT INTO status_log (seq, notification_id, status, content, rec)
SELECT seq, herald_id(notification_id), status, content, rec
FROM status_log_v9
ORDER BY seq;
DROP TABLE status_log_v9;
UPDATE schema_version SET version = 10 WHERE id = 1;
