-- herald: the SQLite schema of the dedupe database ("herald.db" ->
-- "herald.events.db"), kept apart so that fan-out's event claims never
-- queue behind the status sink's transactions on the main database.
-- schema_version: 10 (versioned with sqlite.sql; the claims' generations
-- are created IF NOT EXISTS, see store_sqlite_claims.c)

-- The generations of claims: claims_<gen> (seq INTEGER PRIMARY KEY,
-- h INTEGER NOT NULL (a 64-bit hash of the id), event_id TEXT NOT NULL,
-- position TEXT NOT NULL, first_seen_ms INTEGER NOT NULL) holds a
-- generation's claims in arrival order; once sealed, its hash index is
-- claims_<gen>_by_h (lo INTEGER PRIMARY KEY, pairs BLOB): the (h, seq)
-- pairs sorted by h, in chunks keyed by their first h, written from the
-- in-memory index at the seal (generations sealed before have an SQL index
-- claims_<gen>_h on h instead). The current one has last_ms = 0. A sealed generation keeps
-- its Bloom filter here (64-bit words, host order) and is dropped once
-- last_ms is older than dedupe.window_ms. A store from before kept every
-- claim in one table, events, which the first open turns into generations.
CREATE TABLE IF NOT EXISTS claim_gens (
  gen INTEGER PRIMARY KEY,
  first_ms INTEGER NOT NULL,           -- opened at
  last_ms INTEGER NOT NULL,            -- sealed at; 0 = the current one
  claims INTEGER NOT NULL DEFAULT 0,   -- at seal
  filter BLOB);                        -- at seal
