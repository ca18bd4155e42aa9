/*
 * config.h - herald's settings: one declarative table (config.c) of
 * name, type, default, range and doc. Sources, later overriding earlier:
 * defaults, the config file (INI; "[section] key = v" is read as
 * "section.key"), HERALD_* environment variables (HERALD_BUS_FSYNC ->
 * bus.fsync; HERALD_KAFKA_<NAME> -> kafka.<name> with '_' -> '.' and
 * '__' -> '_', so HERALD_KAFKA_SASL_OAUTHBEARER_CLIENT__ID sets
 * kafka.sasl.oauthbearer.client_id), then command-line flags. Unknown keys
 * are rejected and named, except kafka.* which pass straight to librdkafka,
 * and provider.<name>.<key> and channel.<channel>.<key> which pass to the
 * provider registry (provider_config_check() validates them;
 * HERALD_PROVIDER_<NAME>_<KEY> -> provider.<name>.<key>,
 * HERALD_CHANNEL_<CH>_<KEY> -> channel.<ch>.<key>).
 * `herald config` prints the table (the README's configuration reference).
 */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H

#include "core/common.h"

typedef struct config {
    char *data_dir;             /* data_dir */
    char *listen;               /* http.listen  HOST:PORT */
    int64_t http_max_body;      /* http.max_body bytes */
    int http_threads;           /* http.threads */
    int http_connection_limit;  /* http.connection_limit */
    int http_per_client_connections; /* http.per_client_connections */
    int http_header_timeout_ms; /* http.header_timeout_ms */
    int http_body_timeout_ms;   /* http.body_timeout_ms */
    char *http_tls_cert_file;   /* http.tls_cert_file, "" = plain HTTP */
    char *http_tls_key_file;    /* http.tls_key_file */
    char *bus_backend;          /* bus.backend embedded|kafka */
    char *bus_fsync;            /* bus.fsync never|interval|always */
    int bus_fsync_interval_ms;  /* bus.fsync_interval_ms */
    int64_t bus_segment_bytes;  /* bus.segment_bytes */
    int bus_partitions;         /* bus.partitions (default for every topic) */
    int bus_flush_interval_us;  /* bus.flush_interval_us */
    int64_t bus_embedded_max_pending; /* bus.embedded.max_pending_bytes */
    char *bus_embedded_accept_loss;   /* bus.embedded.accept_loss false|true */
    int64_t bus_embedded_max_disk;    /* bus.embedded.max_disk_bytes, 0 = none */
    char *kafka_brokers;        /* kafka.bootstrap.servers (also --kafka-brokers) */
    int kafka_replication;      /* topics.replication */
    int kafka_min_insync;       /* topics.min_insync */
    int64_t retention_raw_ms;   /* topics.retention.raw_ms */
    int64_t retention_notif_ms; /* topics.retention.notifications_ms */
    int64_t retention_status_ms;/* topics.retention.status_ms */
    int64_t retention_dlq_ms;   /* topics.retention.dlq_ms */
    char *store_backend;        /* store.backend sqlite|postgres */
    char *store_dsn;            /* store.dsn (default <data_dir>/herald.db) */
    char *auth_enabled;         /* auth.enabled: "true" | "false" */
    char *auth_metrics_open;    /* auth.metrics_open: "true" | "false" */
    int auth_cache_ms;          /* auth.cache_ms */
    char *auth_bootstrap_file;  /* auth.bootstrap_key_file ("" = <data_dir>/admin.key) */
    char *roles;                /* roles: all | comma list of ingest,fanout,dispatch[:<channel>],status (model/names.h) */
    int workers_per_stage;      /* pipeline.workers: consumer threads per group */
    int batch_max;              /* pipeline.batch_max records per poll */
    int pipeline_depth;         /* pipeline.depth batches in flight per worker */
    int ingest_ack_timeout_ms;  /* ingest.ack_timeout_ms */
    int64_t ingest_max_backlog; /* ingest.max_backlog_records, 0 = none */
    int api_allow_private_webhook_urls; /* api.allow_private_webhook_urls 0|1 */
    int api_refuse_undeliverable; /* api.refuse_undeliverable_events 0|1 */
    int64_t api_import_max_bytes; /* api.import_max_bytes: POST /v1/users/import body bound */
    int64_t fanout_cache_bytes; /* fanout.recipient_cache_bytes */
    char *fanout_exactly_once;  /* fanout.exactly_once false|true */
    char *budget_redis;         /* budget.redis: empty = local provider buckets */
    int64_t fanout_chunk_threshold; /* fanout.chunk_threshold (stage/chunks.h), 0 = never */
    int64_t fanout_chunk_size;  /* fanout.chunk_size users per chunk task */
    int64_t fanout_pull_threshold; /* fanout.pull_threshold (stage/pullfan.h), 0 = never */
    int status_gather;          /* status.gather rows per store transaction */
    int status_linger_ms;       /* status.linger_ms: wait for a fuller transaction */
    int status_nice;            /* status.nice: the sink thread's nice value */
    char *log_level;            /* log.level */
    char *log_format;           /* log.format text|json */
    char *provider_mode;        /* sandbox.mode file|null */
    char *required_categories;  /* policy.required_categories, comma list (policy/prefs.h) */
    /* policy/ratelimit.h: notifications per recipient per window, by channel (0 = unlimited) */
    int ratelimit_push;         /* ratelimit.push */
    int ratelimit_sms;          /* ratelimit.sms */
    int ratelimit_email;        /* ratelimit.email */
    int ratelimit_inapp;        /* ratelimit.inapp */
    int ratelimit_webhook;      /* ratelimit.webhook */
    int64_t ratelimit_window_ms;/* ratelimit.window_ms */
    char *ratelimit_backend;    /* ratelimit.backend local|redis */
    char *ratelimit_redis;      /* ratelimit.redis address */
    int ratelimit_redis_timeout_ms; /* ratelimit.redis_timeout_ms */
    int64_t ratelimit_snapshot_ms;  /* ratelimit.snapshot_ms */
    char *retry_delays;         /* retry.delays_ms "30000,300000,1800000" (config_parse_delays) */
    int commit_interval_ms;     /* pipeline.commit_interval_ms: stored offsets committed this often */
    int dispatch_sent_memory;   /* dispatch.sent_memory: sent ids a dispatch worker remembers */
    int dispatch_status_every;  /* dispatch.status_every: provider calls between status writes */
    char *store_accept_damage;  /* store.accept_damage false|true */
    int store_check_ms;         /* store.check_ms: time bound of the integrity check at start */
    int64_t store_retention_ms; /* store.retention_ms: purge what is older (0 = never) */
    int64_t store_purge_interval_ms; /* store.purge_interval_ms: how often the purge runs */
    /* inbox.*: live streams and user tokens (http/inbox_hub.h, auth/user_token.h) */
    int inbox_stream_max;       /* inbox.stream_max: live streams in total */
    int inbox_stream_max_per_user; /* inbox.stream_max_per_user */
    int inbox_stream_queue;     /* inbox.stream_queue: events waiting per stream */
    int inbox_stream_heartbeat_ms; /* inbox.stream_heartbeat_ms */
    int inbox_stream_replay;    /* inbox.stream_replay: items replayed on resume */
    char *inbox_token_secret_file; /* inbox.token_secret_file ("" = <data_dir>/inbox_token.key) */
    int inbox_token_ttl_s;      /* inbox.token_ttl_s: default token lifetime */
    int inbox_token_max_ttl_s;  /* inbox.token_max_ttl_s */
    int store_pg_pool;          /* store.pg_pool: PostgreSQL connections */
    int store_sqlite_mmap_mb;   /* store.sqlite_mmap_mb: the SQLite writer's memory map */
    int64_t dedupe_window_ms;   /* dedupe.window_ms: event claims are kept at least this long */
    char *store_pg_listen;      /* store.pg_listen true|false: LISTEN for other instances' changes */
    /* kafka.* passthrough, NULL-terminated key/value pairs */
    char **kafka_kv;
    int kafka_kv_n;
    /* provider.* and channel.* passthrough, whole keys, NULL-terminated */
    char **provider_kv;
    int provider_kv_n;
} config_t;

/* Fills defaults. */
void config_init(config_t *c);
void config_release(config_t *c);
/* Sets one key from text; HR_INVALID with why filled naming the key. */
hr_t config_set(config_t *c, const char *key, const char *value, char *why, size_t why_len);
hr_t config_load_file(config_t *c, const char *path, char *why, size_t why_len);
hr_t config_load_env(config_t *c, char *why, size_t why_len);
/* Parses retry.delays_ms: RETRY_TIERS (model/names.h) comma-separated
 * delays in ms, each 1 ms .. 30 days. HR_INVALID with why naming the key. */
hr_t config_parse_delays(const char *text, int64_t *out, char *why, size_t why_len);
/* Prints the reference table (name, type, default, doc) as Markdown. */
void config_print_reference(void *file);
/* kafka.* pairs as a NULL-terminated array for bus_opts_t.kv (borrowed). */
const char *const *config_kafka_kv(const config_t *c);
/* provider.* and channel.* pairs (whole keys) as a NULL-terminated array
 * (borrowed). */
const char *const *config_provider_kv(const config_t *c);

#endif
