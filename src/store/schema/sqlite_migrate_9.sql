-- herald: the main SQLite database from schema version 8 to 9, run by
-- schema_init (store_sqlite.c) inside the schema transaction when the
-- stored version is 1 to 8 (after the earlier migrations; sqlite.sql has
-- already run and made the empty user_chunks).
--
-- 9: the per-user runs are stored in blocks of keys (user_chunks) instead
-- of a row per key (user_runs). The blocks are encoded in C: after this
-- file, schema_init calls sq_runs_migrate_9 (store_sqlite_runs.c), which
-- writes every live run of user_runs (those in user_run_list, under the
-- same run number) as blocks and drops user_runs. user_run_list and the
-- status log stay as they are.

UPDATE schema_version SET version = 9 WHERE id = 1;
