-- herald: PostgreSQL schema version 7: notifications and their history in
-- tables partitioned by day of the notification's created_at (UTC), so
-- that retention (store_notif_purge) drops whole days instead of deleting
-- rows, and today's inserts touch today's (small, cached) indexes only.
-- schema_version: 7
--
-- A day's partitions (notifications_d<day>, status_history_d<day>; day =
-- created_at / 86400000, "m" for a minus sign) are made by
-- herald_notif_day(day): at open for the days around now, and by the
-- status writer for any other day a batch needs (store_pg_notif.c).
-- The key is (notification_id, created_at): a partitioned table's unique
-- key must hold the partition key; status records carry the
-- notification's created_at. History rows carry it too (created_at) and
-- live in the same day as their notification.

CREATE OR REPLACE FUNCTION herald_notif_day(day BIGINT) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
  sfx TEXT := replace(day::text, '-', 'm');
  lo BIGINT := day * 86400000;
  hi BIGINT := (day + 1) * 86400000;
BEGIN
  PERFORM pg_advisory_xact_lock(1751478882); -- instances creating the same day queue
  IF to_regclass('notifications_d' || sfx) IS NULL THEN
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF notifications'
                   ' FOR VALUES FROM (%s) TO (%s)', 'notifications_d' || sfx, lo, hi);
  END IF;
  IF to_regclass('status_history_d' || sfx) IS NULL THEN
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF status_history'
                   ' FOR VALUES FROM (%s) TO (%s)', 'status_history_d' || sfx, lo, hi);
  END IF;
END $$;

ALTER TABLE notifications RENAME TO notifications_v6;
ALTER INDEX IF EXISTS notifications_user RENAME TO notifications_v6_user;
ALTER INDEX IF EXISTS notifications_created RENAME TO notifications_v6_created;
ALTER TABLE status_history RENAME TO status_history_v6;
ALTER INDEX IF EXISTS status_history_notif RENAME TO status_history_v6_notif;

CREATE TABLE notifications (
  notification_id TEXT COLLATE "C" NOT NULL,
  event_id TEXT NOT NULL, user_id TEXT COLLATE "C" NOT NULL, channel INTEGER NOT NULL,
  category TEXT COLLATE "C" NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,
  address TEXT NOT NULL, status INTEGER NOT NULL, attempt INTEGER NOT NULL,
  channel_msg_id TEXT, metadata TEXT, error TEXT,
  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, delivered_at BIGINT,
  traceparent TEXT,
  PRIMARY KEY (notification_id, created_at)) PARTITION BY RANGE (created_at);
-- the per-user listing; per day, so an insert dirties today's index only
CREATE INDEX notifications_user ON notifications (user_id, created_at DESC, notification_id DESC);

CREATE SEQUENCE IF NOT EXISTS status_history_seq;
CREATE TABLE status_history (
  id BIGINT NOT NULL DEFAULT nextval('status_history_seq'),
  notification_id TEXT COLLATE "C" NOT NULL, created_at BIGINT NOT NULL,
  status INTEGER NOT NULL, attempt INTEGER NOT NULL, at_ms BIGINT NOT NULL, detail TEXT)
  PARTITION BY RANGE (created_at);
CREATE INDEX status_history_notif ON status_history (notification_id, id);

-- the rows of version 6, day by day
SELECT herald_notif_day(d) FROM (SELECT DISTINCT created_at / 86400000 -
  CASE WHEN created_at < 0 AND created_at % 86400000 <> 0 THEN 1 ELSE 0 END AS d
  FROM notifications_v6) days;
INSERT INTO notifications SELECT notification_id, event_id, user_id, channel, category, title,
  body, address, status, attempt, channel_msg_id, metadata, error, created_at, updated_at,
  delivered_at, traceparent FROM notifications_v6;
INSERT INTO status_history (notification_id, created_at, status, attempt, at_ms, detail)
  SELECT h.notification_id, n.created_at, h.status, h.attempt, h.at_ms, h.detail
  FROM status_history_v6 h JOIN notifications_v6 n USING (notification_id) ORDER BY h.id;
DROP TABLE status_history_v6;
DROP TABLE notifications_v6;
