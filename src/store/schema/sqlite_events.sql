-- herald: the SQLite schema of the dedupe database ("herald.db" ->
-- "herald.events.db"), kept apart so that fan-out's event claims never
-- queue behind the status sink's transactions on the main database.
-- schema_version: 9 (versioned with sqlite.sql; unchanged since 1)

CREATE TABLE IF NOT EXISTS events (
  event_id TEXT PRIMARY KEY, position TEXT NOT NULL,
  first_seen_ms INTEGER NOT NULL);
