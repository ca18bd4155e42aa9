-- herald: the SQLite schema of the main database.
-- schema_version: 10
--
-- Applied at every open (each statement is IF NOT EXISTS); the version is
-- STORE_SCHEMA_VERSION in store.h and is recorded in schema_version. A
-- change to this file that existing databases need is a new version with
-- its migration in schema_init (store_sqlite.c). Channels and statuses are
-- the enum numbers of model/notif.h (docs/internals/store.md lists them).

CREATE TABLE IF NOT EXISTS schema_version (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  version INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS users (
  user_id TEXT PRIMARY KEY,
  email TEXT, phone TEXT,
  locale TEXT NOT NULL, timezone TEXT NOT NULL,
  quiet_start TEXT, quiet_end TEXT, webhook_url TEXT,
  updated_at INTEGER NOT NULL,
  webhook_secret TEXT) WITHOUT ROWID;   -- version 2 (sqlite_migrate_2.sql)

CREATE TABLE IF NOT EXISTS devices (
  user_id TEXT NOT NULL, seq INTEGER NOT NULL,
  platform TEXT NOT NULL, token TEXT NOT NULL,
  PRIMARY KEY (user_id, seq)) WITHOUT ROWID;

-- category '' = the channel switch for all categories
CREATE TABLE IF NOT EXISTS preferences (
  user_id TEXT NOT NULL, category TEXT NOT NULL, channel INTEGER NOT NULL,
  enabled INTEGER NOT NULL,
  PRIMARY KEY (user_id, category, channel)) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS subscriptions (
  topic TEXT NOT NULL, user_id TEXT NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY (topic, user_id)) WITHOUT ROWID;

-- a user's topics (listing them, erasing the user)
CREATE INDEX IF NOT EXISTS subscriptions_user ON subscriptions (user_id, topic);

CREATE TABLE IF NOT EXISTS follows (
  actor TEXT NOT NULL, follower TEXT NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY (actor, follower)) WITHOUT ROWID;

-- whom a user follows (listing, erasing the user)
CREATE INDEX IF NOT EXISTS follows_follower ON follows (follower, actor);

CREATE TABLE IF NOT EXISTS templates (
  event_type TEXT NOT NULL, channel INTEGER NOT NULL,
  locale TEXT NOT NULL COLLATE NOCASE,
  title TEXT NOT NULL, body TEXT NOT NULL, updated_at INTEGER NOT NULL,
  digest_window_ms INTEGER NOT NULL DEFAULT 0,   -- version 7 (sqlite_migrate_7.sql)
  digest_key TEXT,                               -- version 7
  PRIMARY KEY (event_type, channel, locale)) WITHOUT ROWID;

-- rowid tables: rows are appended in arrival order, which the purge relies
-- on to find old rows first. The dedupe claims live in a database of their
-- own (sqlite_events.sql); this table is where a store from before that
-- split kept them, and open moves any rows found here.
CREATE TABLE IF NOT EXISTS events (
  event_id TEXT PRIMARY KEY, position TEXT NOT NULL,
  first_seen_ms INTEGER NOT NULL);

-- Notifications (version 6, sqlite_migrate_6.sql; before it the tables
-- notifications and status_history). The status log: one row per status
-- record the sink wrote, appended (seq = arrival order), never updated.
-- Version 8 (sqlite_migrate_8.sql): status is the status code ("already
-- sent?" reads it); rec is the rest of the row as one blob (attempt, time,
-- message id, error, metadata, traceparent and, in the row with
-- content = 1, the notification's content: event_id, user_id, channel,
-- category, title, body, address, created_at), the row record of
-- store_sqlite_notif.c, decoded on read. A notification's first row with
-- content carries it, so the content is stored once. What GET shows is the
-- rows of the id folded in seq order by the rank rule of model/lifecycle.h
-- (store_sqlite_notif.c); the rows are its history. The only index,
-- status_log_key (notification_id, status, content; sqlite_indexes.sql),
-- covers "already sent?" and the sink's "has content?" probe; the id starts
-- with the event's accepted time (model/notif.h) and the sink writes a
-- batch in id order, so it grows at its right-hand edge. Version 10
-- (sqlite_migrate_10.sql): an id of 32 lowercase hex digits (the ids
-- model/notif.h makes) is stored as its 16 bytes, a blob, which sorts as
-- the text does; any other id as text (store_sqlite_int.h, bind_id).
CREATE TABLE IF NOT EXISTS status_log (
  seq INTEGER PRIMARY KEY,
  notification_id BLOB NOT NULL,         -- version 10: TEXT before
  status INTEGER NOT NULL, content INTEGER NOT NULL, rec BLOB NOT NULL);

-- The per-user listing as sorted runs (a small LSM tree): each write
-- transaction of the sink adds one run holding the notifications it
-- created, its keys (user, created, id) sorted; SQ_RUN_FANIN runs of a
-- level are merged into one run of the next level. A listing reads every
-- run in user_run_list (one seek each). A run's blocks are visible once
-- its user_run_list row exists. Version 9 (sqlite_migrate_9.sql; before
-- it user_runs, a row per key): a run is a sequence of blocks of up to 64
-- keys (store_sqlite_runs.c encodes them), keyed (run, the user of the
-- block's last key, the block's position in the run), so a run is
-- appended at the right-hand edge and a user's keys in a run start at
-- the first block whose last_user is not below the user.
CREATE TABLE IF NOT EXISTS user_chunks (
  run INTEGER NOT NULL, last_user TEXT NOT NULL, pos INTEGER NOT NULL,
  keys BLOB NOT NULL,
  PRIMARY KEY (run, last_user, pos)) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS user_run_list (
  run INTEGER PRIMARY KEY, level INTEGER NOT NULL, rows INTEGER NOT NULL,
  max_created INTEGER NOT NULL);

-- Dispatch policy (no schema version change: new tables only). Deferred
-- notifications until due (scheduled sends, quiet hours): the scheduler
-- takes the due ones by due_at_ms, whatever their user or channel.
-- user_id (the record's receiver, NULL when it does not decode) lets an
-- erasure find a user's deferred notifications; its index is created in
-- sqlite_indexes.sql, after the migrations.
CREATE TABLE IF NOT EXISTS scheduled (
  notification_id TEXT PRIMARY KEY, channel INTEGER NOT NULL,
  due_at_ms INTEGER NOT NULL, record BLOB NOT NULL,
  user_id TEXT) WITHOUT ROWID;         -- version 3 (sqlite_migrate_3.sql)

CREATE INDEX IF NOT EXISTS scheduled_due ON scheduled (due_at_ms);

-- Addresses a provider declared dead (unregistered token, invalid number,
-- hard bounce); the address is also removed from the user.
CREATE TABLE IF NOT EXISTS invalid_addresses (
  user_id TEXT NOT NULL, channel INTEGER NOT NULL, address TEXT NOT NULL,
  reason TEXT, at_ms INTEGER NOT NULL,
  PRIMARY KEY (user_id, channel, address)) WITHOUT ROWID;

-- API keys (no schema version change: a new table only). secret_hash is
-- SHA-256 of the key's secret part; the key itself is shown once, at
-- creation, and never stored. scopes is a bit set (auth/apikey.h).
CREATE TABLE IF NOT EXISTS api_keys (
  key_id TEXT PRIMARY KEY, secret_hash BLOB NOT NULL, tenant TEXT NOT NULL,
  scopes INTEGER NOT NULL, name TEXT NOT NULL, created_at_ms INTEGER NOT NULL,
  revoked_at_ms INTEGER) WITHOUT ROWID;

-- DLQ entries ("<partition>-<offset>") already redriven.
CREATE TABLE IF NOT EXISTS dlq_redriven (
  dlq_id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL) WITHOUT ROWID;

-- The in-app inbox (version 5, sqlite_migrate_5.sql): one item per in-app
-- notification of a user, written by the inapp provider. States are the
-- times they were first set (NULL = not yet). The key leads with user_id:
-- every read and change is one user's, newest first.
CREATE TABLE IF NOT EXISTS inbox (
  user_id TEXT NOT NULL, notification_id TEXT NOT NULL, event_id TEXT, category TEXT,
  title TEXT, body TEXT, created_at_ms INTEGER NOT NULL,
  seen_at_ms INTEGER, read_at_ms INTEGER, archived_at_ms INTEGER,
  PRIMARY KEY (user_id, notification_id)) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS inbox_user_time ON inbox (user_id, created_at_ms, notification_id);
-- retention (store_notif_purge) deletes items by age
CREATE INDEX IF NOT EXISTS inbox_created ON inbox (created_at_ms);

-- Pull fan-out (stage/pullfan.h; no schema version of its own: the tables
-- are created when missing): an in-app item of an actor with a huge
-- audience, stored once. Followers whose id sorts after after_key see it
-- (the ones up to it got inbox items); their states are feed_state rows,
-- made on the first mark or delete.
CREATE TABLE IF NOT EXISTS actor_feed (
  actor TEXT NOT NULL, notification_id TEXT NOT NULL, event_id TEXT, category TEXT,
  title TEXT, body TEXT, priority INTEGER NOT NULL, after_key TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  PRIMARY KEY (actor, notification_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feed_state (
  user_id TEXT NOT NULL, notification_id TEXT NOT NULL,
  seen_at_ms INTEGER, read_at_ms INTEGER, archived_at_ms INTEGER,
  deleted INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, notification_id)) WITHOUT ROWID;

-- Digests (version 7; model/digest.h, store_sqlite_digest.c). One row per
-- digest: the grouping key (user, channel, dkey), the window, the count and
-- the first and last actors. closed = 0 while it takes members (at most one
-- such row per key); the flush closes it. Members are remembered by
-- notification id, so that a member offered again is counted once.
CREATE TABLE IF NOT EXISTS digests (
  digest_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, channel INTEGER NOT NULL,
  dkey TEXT NOT NULL, opened_at_ms INTEGER NOT NULL, due_at_ms INTEGER NOT NULL,
  closed INTEGER NOT NULL DEFAULT 0, count INTEGER NOT NULL DEFAULT 0,
  first_actor TEXT NOT NULL DEFAULT '', last_actor TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS digests_open ON digests (user_id, channel, dkey) WHERE closed = 0;
CREATE INDEX IF NOT EXISTS digests_user ON digests (user_id);
CREATE TABLE IF NOT EXISTS digest_members (
  notification_id TEXT PRIMARY KEY, digest_id TEXT NOT NULL, user_id TEXT NOT NULL,
  at_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS digest_members_user ON digest_members (user_id);
CREATE INDEX IF NOT EXISTS digest_members_at ON digest_members (at_ms);

-- The change feed across processes (store_sqlite.c, "changes"): every
-- change of a user, its devices or preferences made through a store
-- appends the user id (kind 0), every template change a row of kind 1, in
-- the writing transaction (store_sqlite_users.c, sq_change_note), so that
-- a herald whose caches hold them sees what another process sharing this
-- file wrote: its checkpointer thread reads the rows after the last it saw
-- and announces them on the store's change feed (store.h), as
-- PostgreSQL's NOTIFY does (schema/pg/006_change_feed.sql). The writer
-- keeps about the last 65,536 rows (a reader that falls further behind
-- drops everything it caches). Written by herald's code rather than by
-- triggers: SQLite's triggers cost ~5 us a firing, and a user put fires
-- one per row (the user, each device): a million users were seeded in 41 s
-- with them against 7.5 s without. Added at open like every statement
-- here: no version step. (The triggers of one development build are
-- dropped.)
CREATE TABLE IF NOT EXISTS change_log (
  seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, id TEXT);
DROP TRIGGER IF EXISTS users_log_i;
DROP TRIGGER IF EXISTS users_log_u;
DROP TRIGGER IF EXISTS users_log_d;
DROP TRIGGER IF EXISTS devices_log_i;
DROP TRIGGER IF EXISTS devices_log_u;
DROP TRIGGER IF EXISTS devices_log_d;
DROP TRIGGER IF EXISTS preferences_log_i;
DROP TRIGGER IF EXISTS preferences_log_u;
DROP TRIGGER IF EXISTS preferences_log_d;
DROP TRIGGER IF EXISTS templates_log_i;
DROP TRIGGER IF EXISTS templates_log_u;
DROP TRIGGER IF EXISTS templates_log_d;
