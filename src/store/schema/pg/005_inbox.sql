-- herald: PostgreSQL schema version 5: the in-app inbox (store.h "in-app
-- inbox", store_pg_inbox.c), as SQLite's version 5.
-- schema_version: 5
--
-- One item per in-app notification of a user, written by the inapp
-- provider. States are the times they were first set (NULL = not yet).
-- The key leads with user_id: every read and change is one user's, newest
-- first (inbox_user_time); retention deletes by age (inbox_created).

CREATE TABLE IF NOT EXISTS inbox (
  user_id TEXT COLLATE "C" NOT NULL, notification_id TEXT COLLATE "C" NOT NULL,
  event_id TEXT, category TEXT, title TEXT, body TEXT,
  created_at_ms BIGINT NOT NULL,
  seen_at_ms BIGINT, read_at_ms BIGINT, archived_at_ms BIGINT,
  PRIMARY KEY (user_id, notification_id));
CREATE INDEX IF NOT EXISTS inbox_user_time ON inbox (user_id, created_at_ms, notification_id);
CREATE INDEX IF NOT EXISTS inbox_created ON inbox (created_at_ms);
