-- herald: the PostgreSQL schema (store_pg.c), version 4: the base tables.
-- schema_version: 4
--
-- The PostgreSQL schema is a list of versioned files, schema/pg/NNN_name.sql
-- (NNN = the version the file brings the database to), compiled in at build
-- time (CMakeLists.txt generates the list) and applied at open, oldest
-- first, each not yet applied one in the same transaction under an advisory
-- lock (store_pg.c schema_init). A file is never edited once released: a
-- change is a new file. Channels and statuses are the enum numbers of
-- model/notif.h; times are milliseconds since the epoch.

CREATE TABLE IF NOT EXISTS schema_version (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  version INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS users (
  user_id TEXT COLLATE "C" PRIMARY KEY,
  email TEXT, phone TEXT,
  locale TEXT NOT NULL, timezone TEXT NOT NULL,
  quiet_start TEXT, quiet_end TEXT, webhook_url TEXT,
  updated_at BIGINT NOT NULL,
  webhook_secret TEXT);

CREATE TABLE IF NOT EXISTS devices (
  user_id TEXT COLLATE "C" NOT NULL, seq INTEGER NOT NULL,
  platform TEXT NOT NULL, token TEXT NOT NULL,
  PRIMARY KEY (user_id, seq));

-- category '' = the channel switch for all categories
CREATE TABLE IF NOT EXISTS preferences (
  user_id TEXT COLLATE "C" NOT NULL, category TEXT COLLATE "C" NOT NULL, channel INTEGER NOT NULL,
  enabled BOOLEAN NOT NULL,
  PRIMARY KEY (user_id, category, channel));

CREATE TABLE IF NOT EXISTS subscriptions (
  topic TEXT COLLATE "C" NOT NULL, user_id TEXT COLLATE "C" NOT NULL, created_at BIGINT NOT NULL,
  PRIMARY KEY (topic, user_id));
CREATE INDEX IF NOT EXISTS subscriptions_user ON subscriptions (user_id, topic);

CREATE TABLE IF NOT EXISTS follows (
  actor TEXT COLLATE "C" NOT NULL, follower TEXT COLLATE "C" NOT NULL, created_at BIGINT NOT NULL,
  PRIMARY KEY (actor, follower));
CREATE INDEX IF NOT EXISTS follows_follower ON follows (follower, actor);

-- locale_key = lower(locale): locales compare case-insensitively
CREATE TABLE IF NOT EXISTS templates (
  event_type TEXT COLLATE "C" NOT NULL, channel INTEGER NOT NULL,
  locale_key TEXT COLLATE "C" NOT NULL, locale TEXT NOT NULL,
  title TEXT NOT NULL, body TEXT NOT NULL, updated_at BIGINT NOT NULL,
  PRIMARY KEY (event_type, channel, locale_key));

-- dedupe claims: the primary key is the unique constraint every instance
-- claims against (INSERT ... ON CONFLICT DO NOTHING)
CREATE TABLE IF NOT EXISTS events (
  event_id TEXT COLLATE "C" PRIMARY KEY, position TEXT NOT NULL,
  first_seen_ms BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS events_first_seen ON events (first_seen_ms);

CREATE TABLE IF NOT EXISTS notifications (
  notification_id TEXT COLLATE "C" PRIMARY KEY,
  event_id TEXT NOT NULL, user_id TEXT COLLATE "C" NOT NULL, channel INTEGER NOT NULL,
  category TEXT COLLATE "C" NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,
  address TEXT NOT NULL, status INTEGER NOT NULL, attempt INTEGER NOT NULL,
  channel_msg_id TEXT, metadata TEXT, error TEXT,
  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, delivered_at BIGINT,
  traceparent TEXT);
CREATE INDEX IF NOT EXISTS notifications_user
  ON notifications (user_id, created_at DESC, notification_id DESC);
CREATE INDEX IF NOT EXISTS notifications_created ON notifications (created_at);

-- id: insertion order (history reads oldest first)
CREATE TABLE IF NOT EXISTS status_history (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  notification_id TEXT COLLATE "C" NOT NULL,
  status INTEGER NOT NULL, attempt INTEGER NOT NULL, at_ms BIGINT NOT NULL, detail TEXT);
CREATE INDEX IF NOT EXISTS status_history_notif ON status_history (notification_id, id);

CREATE TABLE IF NOT EXISTS scheduled (
  notification_id TEXT COLLATE "C" PRIMARY KEY, channel INTEGER NOT NULL,
  due_at_ms BIGINT NOT NULL, record BYTEA NOT NULL, user_id TEXT);
CREATE INDEX IF NOT EXISTS scheduled_due ON scheduled (due_at_ms);
CREATE INDEX IF NOT EXISTS scheduled_user ON scheduled (user_id);

CREATE TABLE IF NOT EXISTS invalid_addresses (
  user_id TEXT COLLATE "C" NOT NULL, channel INTEGER NOT NULL, address TEXT NOT NULL,
  reason TEXT, at_ms BIGINT NOT NULL,
  PRIMARY KEY (user_id, channel, address));

CREATE TABLE IF NOT EXISTS api_keys (
  key_id TEXT COLLATE "C" PRIMARY KEY, secret_hash BYTEA NOT NULL, tenant TEXT NOT NULL,
  scopes INTEGER NOT NULL, name TEXT NOT NULL, created_at_ms BIGINT NOT NULL,
  revoked_at_ms BIGINT);

CREATE TABLE IF NOT EXISTS dlq_redriven (
  dlq_id TEXT COLLATE "C" PRIMARY KEY, at_ms BIGINT NOT NULL);
