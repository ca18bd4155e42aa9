/*
 * config.c - the one options table. Every setting herald reads is a row
 * here: name, type, default, range, doc. config_set() validates and names
 * the bad key; config_print_reference() prints the reference table
 * (`herald config`), which the README carries verbatim
 * (tests/integration/readme_config.sh checks that they match).
 */
#include "config/config.h"

#include "model/names.h"
#include "policy/prefs.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OPT_STR, OPT_INT, OPT_I64, OPT_ENUM } opt_type_t;

typedef struct opt {
    const char *name;
    opt_type_t type;
    size_t off;
    const char *def;
    int64_t min, max;           /* OPT_INT / OPT_I64 */
    const char *choices;        /* OPT_ENUM: '|' separated */
    const char *doc;
} opt_t;

#define F(field) offsetof(config_t, field)

static const opt_t opts[] = {
    {"data_dir", OPT_STR, F(data_dir), "./var", 0, 0, NULL,
     "Directory for the embedded bus, the SQLite store and sandbox output."},
    {"http.listen", OPT_STR, F(listen), "127.0.0.1:8080", 0, 0, NULL,
     "HOST:PORT the HTTP API listens on (port 0 picks a free port)."},
    {"http.max_body", OPT_I64, F(http_max_body), "1048576", 1024, INT64_C(1) << 30, NULL,
     "Largest accepted request body in bytes; larger bodies get 413."},
    {"http.threads", OPT_INT, F(http_threads), "4", 1, 256, NULL,
     "HTTP worker threads."},
    {"http.connection_limit", OPT_INT, F(http_connection_limit), "1024", 1, 1000000, NULL,
     "Simultaneous HTTP connections; more are refused at accept."},
    {"http.per_client_connections", OPT_INT, F(http_per_client_connections), "64", 1, 1000000,
     NULL,
     "Simultaneous HTTP connections from one client address; more are refused at accept "
     "(behind a reverse proxy every client shares its address: raise it)."},
    {"http.header_timeout_ms", OPT_INT, F(http_header_timeout_ms), "10000", 10, 3600000, NULL,
     "A request's line and headers must arrive within this time of the connection opening (or "
     "of the previous answer on it), however slowly bytes trickle in; then it is closed."},
    {"http.body_timeout_ms", OPT_INT, F(http_body_timeout_ms), "30000", 10, 3600000, NULL,
     "A request's body must arrive within this time of its headers; then it is closed."},
    {"http.tls_cert_file", OPT_STR, F(http_tls_cert_file), "", 0, 0, NULL,
     "PEM certificate (chain) for HTTPS on http.listen; empty = plain HTTP. Set with "
     "http.tls_key_file."},
    {"http.tls_key_file", OPT_STR, F(http_tls_key_file), "", 0, 0, NULL,
     "PEM private key of http.tls_cert_file (unencrypted; keep it readable by herald only)."},
    {"auth.enabled", OPT_ENUM, F(auth_enabled), "true", 0, 0, "true|false",
     "Every API route but /healthz, /readyz (and /metrics with auth.metrics_open) needs an API key "
     "(`herald keys`); false serves everyone as an admin of tenant default (local experiments only)."},
    {"auth.metrics_open", OPT_ENUM, F(auth_metrics_open), "false", 0, 0, "true|false",
     "Serve /metrics without a key (otherwise it needs an admin key as a bearer token)."},
    {"auth.cache_ms", OPT_INT, F(auth_cache_ms), "5000", 0, 3600000, NULL,
     "How long a verified API key is trusted before the store is asked again: a revoked key "
     "stops working within this time."},
    {"auth.bootstrap_key_file", OPT_STR, F(auth_bootstrap_file), "", 0, 0, NULL,
     "Where `herald serve` writes the first admin key when the store has none (mode 0600); "
     "empty = <data_dir>/admin.key."},
    {"bus.backend", OPT_ENUM, F(bus_backend), "embedded", 0, 0, "embedded|kafka",
     "Message bus: the embedded log or Apache Kafka."},
    {"bus.fsync", OPT_ENUM, F(bus_fsync), "interval", 0, 0, "never|interval|always",
     "Embedded bus durability: fdatasync never, every fsync_interval_ms, or before every ack."},
    {"bus.fsync_interval_ms", OPT_INT, F(bus_fsync_interval_ms), "1000", 1, 3600000, NULL,
     "Embedded bus: fdatasync period for fsync=interval."},
    {"bus.segment_bytes", OPT_I64, F(bus_segment_bytes), "67108864", 65536, INT64_C(1) << 40,
     NULL, "Embedded bus: segment file size before rolling."},
    {"bus.partitions", OPT_INT, F(bus_partitions), "4", 1, 10000, NULL,
     "Partitions of each topic herald creates."},
    {"bus.flush_interval_us", OPT_INT, F(bus_flush_interval_us), "1000", 50, 1000000, NULL,
     "Embedded bus: producer batching window in microseconds."},
    {"bus.embedded.max_pending_bytes", OPT_I64, F(bus_embedded_max_pending), "1048576", 4096,
     INT64_C(1) << 40, NULL,
     "Embedded bus: bytes of records a partition holds before they are written; beyond it "
     "producers wait (backpressure). A larger record goes alone."},
    {"bus.embedded.accept_loss", OPT_ENUM, F(bus_embedded_accept_loss), "false", 0, 0, "false|true",
     "Embedded bus: start even when segment files are missing or the metadata does not match the "
     "data (logged and counted), and do not report skipped damaged records as degraded."},
    {"bus.embedded.max_disk_bytes", OPT_I64, F(bus_embedded_max_disk), "0", 0, INT64_MAX, NULL,
     "Embedded bus: hard bound on segment bytes; past it the oldest segments are deleted even "
     "if a group has not read them (logged, counted). 0 = none: retention waits for every group."},
    {"kafka.bootstrap.servers", OPT_STR, F(kafka_brokers), "127.0.0.1:9092", 0, 0, NULL,
     "Kafka bootstrap servers (also --kafka-brokers). Any other kafka.<name> passes to librdkafka."},
    {"topics.replication", OPT_INT, F(kafka_replication), "1", 1, 16, NULL,
     "Kafka replication factor of created topics (3 in production)."},
    {"topics.min_insync", OPT_INT, F(kafka_min_insync), "1", 1, 16, NULL,
     "Kafka min.insync.replicas of created topics (2 in production)."},
    {"topics.retention.raw_ms", OPT_I64, F(retention_raw_ms), "3600000", -1, INT64_MAX, NULL,
     "Retention of raw-events (1 h)."},
    {"topics.retention.notifications_ms", OPT_I64, F(retention_notif_ms), "86400000", -1,
     INT64_MAX, NULL, "Retention of notifications-<channel> topics (24 h)."},
    {"topics.retention.status_ms", OPT_I64, F(retention_status_ms), "604800000", -1, INT64_MAX,
     NULL, "Retention of notification-status (7 d)."},
    {"topics.retention.dlq_ms", OPT_I64, F(retention_dlq_ms), "1209600000", -1, INT64_MAX, NULL,
     "Retention of notifications-dlq (14 d)."},
    {"store.backend", OPT_ENUM, F(store_backend), "sqlite", 0, 0, "sqlite|postgres",
     "Store backend (postgres: in builds with libpq; its contract tests pass, see docs/internals/store.md)."},
    {"store.dsn", OPT_STR, F(store_dsn), "", 0, 0, NULL,
     "Store location: SQLite file (default <data_dir>/herald.db) or PostgreSQL conninfo (never logged: it may hold a password)."},
    {"roles", OPT_STR, F(roles), "all", 0, 0, NULL,
     "Parts this process runs: all, or a comma list of ingest (the HTTP API), fanout, dispatch "
     "(every channel), dispatch:<channel>, status."},
    {"pipeline.workers", OPT_INT, F(workers_per_stage), "1", 1, 64, NULL,
     "Consumer threads per consumer group."},
    {"pipeline.batch_max", OPT_INT, F(batch_max), "512", 1, 65536, NULL,
     "Records a stage takes per poll (one ack wait per batch)."},
    {"pipeline.depth", OPT_INT, F(pipeline_depth), "4", 1, 64, NULL,
     "Batches a stage worker keeps in flight: processing the next while the bus acknowledges "
     "the outputs of earlier ones."},
    {"api.refuse_undeliverable_events", OPT_INT, F(api_refuse_undeliverable), "1", 0, 1, NULL,
     "1: POST /v1/events answers 422 for an event whose type has no template on any channel and "
     "that carries no inline content. 0: accept it; fan-out dead-letters it, and it can be "
     "redriven once a template exists (for producers that ship before their templates)."},
    {"api.allow_private_webhook_urls", OPT_INT, F(api_allow_private_webhook_urls), "0", 0, 1,
     NULL,
     "1 lets a user's webhook_url name localhost or a private, link-local or loopback address "
     "literal; 0 answers 422 (the server would otherwise call into its own network)."},
    {"api.import_max_bytes", OPT_I64, F(api_import_max_bytes), "1073741824", 1024,
     INT64_C(1) << 40, NULL,
     "Largest body of POST /v1/users/import (NDJSON, read as it streams in, not buffered); "
     "larger bodies get 413. Other routes are bounded by http.max_body."},
    {"ingest.ack_timeout_ms", OPT_INT, F(ingest_ack_timeout_ms), "10000", 1, 600000, NULL,
     "How long POST /v1/events waits for the bus to acknowledge its events before answering "
     "503 (a retry is safe: event_id dedupes)."},
    {"ingest.max_backlog_records", OPT_I64, F(ingest_max_backlog), "1000000", 0, INT64_MAX, NULL,
     "Admission control: POST /v1/events answers 429 with Retry-After while fan-out has more "
     "than this many raw-events records unprocessed (0 = no bound)."},
    {"fanout.recipient_cache_bytes", OPT_I64, F(fanout_cache_bytes), "134217728", 1048576,
     INT64_C(1) << 40, NULL,
     "Fan-out recipient cache, shared by the fan-out workers (~100 bytes per user with one "
     "device, e-mail and phone: 128 MiB hold ~1.3M such users)."},
    {"fanout.exactly_once", OPT_ENUM, F(fanout_exactly_once), "false", 0, 0, "false|true",
     "Kafka bus: fan-out writes each batch's notifications and its raw-events offsets in one "
     "transaction, and every consumer reads committed records only, so a fan-out process killed "
     "mid-stream leaves no duplicate notification records (one batch in flight per worker)."},
    {"fanout.chunk_threshold", OPT_I64, F(fanout_chunk_threshold), "10000", 0, INT64_MAX, NULL,
     "Chunked fan-out: once a follower or topic audience has reached this many users, the "
     "worker reading the event hands the rest to chunk tasks on fanout-chunks, which every "
     "fan-out worker expands (0 = never)."},
    {"fanout.chunk_size", OPT_I64, F(fanout_chunk_size), "5000", 1, 10000000, NULL,
     "Users per chunk task of chunked fan-out."},
    {"fanout.pull_threshold", OPT_I64, F(fanout_pull_threshold), "100000", 0, INT64_MAX, NULL,
     "Pull fan-out: an event to the followers of an actor with at least this many followers "
     "stores its in-app item once, merged into each follower's inbox when read, instead of "
     "one inbox item per follower; push, e-mail, SMS and webhook still fan out (0 = never)."},
    {"status.gather", OPT_INT, F(status_gather), "16384", 1, 1048576, NULL,
     "Status sink: rows per store transaction (bigger transactions write each index page once "
     "for more rows)."},
    {"status.linger_ms", OPT_INT, F(status_linger_ms), "50", 0, 1000, NULL,
     "Status sink: how long it waits for more status records when fewer than status.gather "
     "are there, so that a moderate load makes fewer, fuller store transactions (statuses "
     "show up to this much later; 0 = write what is there at once)."},
    {"status.nice", OPT_INT, F(status_nice), "10", 0, 19, NULL,
     "Status sink: the nice value of its thread (0 = the priority of delivery; higher gives "
     "delivery the CPU first when it is short, the sink catching up later)."},
    {"log.level", OPT_ENUM, F(log_level), "info", 0, 0, "debug|info|warn|error|off",
     "Diagnostic log level."},
    {"log.format", OPT_ENUM, F(log_format), "text", 0, 0, "text|json",
     "Diagnostic log lines on stderr: text, or one JSON object per line (ts, level, component, "
     "msg) for log collectors."},
    {"sandbox.mode", OPT_ENUM, F(provider_mode), "file", 0, 0, "file|null",
     "Sandbox provider: append a JSON line per delivery, or record nothing (benchmarks)."},
    {"policy.required_categories", OPT_STR, F(required_categories), "security,otp", 0, 0, NULL,
     "Categories users cannot opt out of, comma separated (empty: none). Preferences naming "
     "them are ignored; a critical notification of one also ignores the channel switches. "
     "Critical priority overrides no preference of any other category."},
    {"ratelimit.push", OPT_INT, F(ratelimit_push), "10", 0, 1000000, NULL,
     "Push notifications per recipient per ratelimit.window_ms (0 = unlimited); more get "
     "status rate_limited."},
    {"ratelimit.sms", OPT_INT, F(ratelimit_sms), "2", 0, 1000000, NULL,
     "SMS per recipient per ratelimit.window_ms (0 = unlimited)."},
    {"ratelimit.email", OPT_INT, F(ratelimit_email), "3", 0, 1000000, NULL,
     "Emails per recipient per ratelimit.window_ms (0 = unlimited)."},
    {"ratelimit.inapp", OPT_INT, F(ratelimit_inapp), "20", 0, 1000000, NULL,
     "In-app notifications per recipient per ratelimit.window_ms (0 = unlimited)."},
    {"ratelimit.webhook", OPT_INT, F(ratelimit_webhook), "60", 0, 1000000, NULL,
     "Webhook calls per recipient per ratelimit.window_ms (0 = unlimited)."},
    {"ratelimit.window_ms", OPT_I64, F(ratelimit_window_ms), "3600000", 1000, INT64_C(2592000000),
     NULL, "Sliding window of the per-recipient rate limits (1 h). The embedded limiter holds send times rounded up to 1/43,690 of the window (83 ms for an hour, exact up to 43.7 s): a send may count up to that much longer, never shorter."},
    {"ratelimit.backend", OPT_ENUM, F(ratelimit_backend), "local", 0, 0, "local|redis",
     "Rate-limit state: local (held by the partition's dispatcher, snapshotted under "
     "<data_dir>/ratelimit) or redis (shared; fails open when Redis is down)."},
    {"ratelimit.redis", OPT_STR, F(ratelimit_redis), "127.0.0.1:6379", 0, 0, NULL,
     "Redis for ratelimit.backend=redis: HOST:PORT or a unix socket path."},
    {"ratelimit.redis_timeout_ms", OPT_INT, F(ratelimit_redis_timeout_ms), "100", 1, 60000, NULL,
     "Redis connect and command timeout; after a failure no reconnect for 1 s."},
    {"budget.redis", OPT_STR, F(budget_redis), "", 0, 0, NULL,
     "Cluster-wide provider token budgets (provider.<name>.rate/burst) in this Redis "
     "(HOST:PORT or a socket path), shared by every herald process instead of each having the "
     "whole rate; empty = per process. Fails open when Redis is down."},
    {"ratelimit.snapshot_ms", OPT_I64, F(ratelimit_snapshot_ms), "10000", 0, INT64_C(86400000),
     NULL, "Local rate limits: snapshot period (also written on rebalance and shutdown; a crash "
     "forgets at most this much; 0 = only then)."},
    {"retry.delays_ms", OPT_STR, F(retry_delays), "30000,300000,1800000", 0, 0, NULL,
     "Delays of the retry tiers <channel>-retry-30s, -5m, -30m after a retriable failure (three "
     "comma-separated milliseconds; the topic names stay). A provider's Retry-After is honoured "
     "when longer."},
    {"pipeline.commit_interval_ms", OPT_INT, F(commit_interval_ms), "100", 0, 60000, NULL,
     "How often a stage worker commits its stored offsets (0 = after every batch); what a "
     "crash makes the next start process again."},
    {"dispatch.sent_memory", OPT_INT, F(dispatch_sent_memory), "262144", 0, 100000000, NULL,
     "Notification ids a dispatch worker remembers as sent (the tail of notification-status "
     "read on takeover, and its own deliveries) to skip copies after a crash; 16 bytes each."},
    {"dispatch.status_every", OPT_INT, F(dispatch_status_every), "128", 0, 65536, NULL,
     "Notifications dispatch hands to the provider before it waits for their status records to "
     "be written (0 = the whole batch): a crash repeats at most this many provider calls. Keep "
     "it at or above the providers' max_in_flight so that their concurrency is used."},
    {"store.accept_damage", OPT_ENUM, F(store_accept_damage), "false", 0, 0, "false|true",
     "Start although the store's integrity check found damage (/readyz still reports it)."},
    {"store.check_ms", OPT_INT, F(store_check_ms), "10000", 0, 3600000, NULL,
     "Time bound of the store's integrity check at start (0 = skip it); a check cut short "
     "says so in the log."},
    {"store.retention_ms", OPT_I64, F(store_retention_ms), "7776000000", 0, INT64_MAX, NULL,
     "Notifications (with their status history), inbox items and digests older than this are "
     "deleted by the process with the status role (0 = keep everything; dedupe claims go by "
     "dedupe.window_ms)."},
    {"store.purge_interval_ms", OPT_I64, F(store_purge_interval_ms), "3600000", 1000,
     INT64_C(2592000000),
     NULL, "How often that purge runs; the first run is a minute after the start."},
    {"inbox.stream_max", OPT_INT, F(inbox_stream_max), "1000", 1, 1000000, NULL,
     "Live inbox streams (GET /v1/users/{user_id}/inbox/stream) open at once in total; more "
     "get 429."},
    {"inbox.stream_max_per_user", OPT_INT, F(inbox_stream_max_per_user), "8", 1, 1000, NULL,
     "Live inbox streams open at once for one user; more get 429."},
    {"inbox.stream_queue", OPT_INT, F(inbox_stream_queue), "64", 1, 100000, NULL,
     "Events waiting for one live stream's client; a client further behind is dropped (it "
     "reconnects and resumes from the store)."},
    {"inbox.stream_heartbeat_ms", OPT_INT, F(inbox_stream_heartbeat_ms), "15000", 10, 25000,
     NULL, "A live stream idle this long gets a comment line (keeps proxies from closing it; at "
     "most 25 s, under the server's 30 s idle timeout)."},
    {"inbox.stream_replay", OPT_INT, F(inbox_stream_replay), "50", 1, 200, NULL,
     "Items a resumed live stream (Last-Event-ID) replays at most; with more missed it gets a "
     "reset event and the client reloads the list."},
    {"inbox.token_secret_file", OPT_STR, F(inbox_token_secret_file), "", 0, 0, NULL,
     "File holding the secret that signs user tokens (at least 32 bytes; share it between "
     "processes behind one address); empty = <data_dir>/inbox_token.key, made on first start "
     "(mode 0600)."},
    {"inbox.token_ttl_s", OPT_INT, F(inbox_token_ttl_s), "3600", 10, 31536000, NULL,
     "Lifetime of a user token when POST /v1/users/{user_id}/inbox/token names none."},
    {"inbox.token_max_ttl_s", OPT_INT, F(inbox_token_max_ttl_s), "86400", 10, 31536000, NULL,
     "Longest lifetime a user token may be given."},
    {"store.pg_pool", OPT_INT, F(store_pg_pool), "8", 1, 256, NULL,
     "PostgreSQL store: connections in the pool (API threads, fan-out, dispatch and the status "
     "sink each take one per call)."},
    {"store.pg_listen", OPT_ENUM, F(store_pg_listen), "true", 0, 0, "true|false",
     "PostgreSQL store: follow other instances' writes of users, preferences and templates "
     "(LISTEN/NOTIFY) so that recipient and template caches stay exact; one more connection."},
    {"store.sqlite_mmap_mb", OPT_INT, F(store_sqlite_mmap_mb), "0", 0, 65536, NULL,
     "SQLite store: MiB of the database the status writer reads through a memory map (0 = none). "
     "~7 % less CPU per status row, but every mapped page it touched counts in herald's RSS."},
    {"dedupe.window_ms", OPT_I64, F(dedupe_window_ms), "86400000", 60000, INT64_C(86400000) * 366,
     NULL,
     "How long fan-out remembers an event id to drop a duplicate publish (SQLite store; the "
     "claims are kept in generations and dropped whole once older than this). A producer retry "
     "later than the window is delivered again; a longer window costs disk (~100 bytes per "
     "event) and memory (~4 bytes per event). At most ~16.7M events are remembered: past that "
     "the oldest are forgotten early (logged)."},
};

static hr_t check_roles(const char *value, char *why, size_t why_len)
{
    roles_t r;
    return roles_parse(value, &r, why, why_len);
}

static hr_t check_categories(const char *value, char *why, size_t why_len)
{
    prefs_required_t r;
    if (prefs_required_parse(value, &r) == HR_OK) {
        prefs_required_clear(&r);
        return HR_OK;
    }
    snprintf(why, why_len, "policy.required_categories: '%s' is not a comma list of category names "
             "(letters, digits, _ - . :, at most %d bytes each)", value, PREFS_CATEGORY_MAX);
    return HR_INVALID;
}

/* String settings with a syntax of their own: checked when set, naming the
 * key in why. */
hr_t config_parse_delays(const char *text, int64_t *out, char *why, size_t why_len)
{
    const char *p = text;
    for (int i = 0; i < RETRY_TIERS; i++) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 1 || v > INT64_C(86400000) * 30 ||
            (i < RETRY_TIERS - 1 ? *end != ',' : *end != '\0')) {
            snprintf(why, why_len, "retry.delays_ms: '%s' is not %d comma-separated delays in ms "
                     "(1 ms to 30 days each)", text, RETRY_TIERS);
            return HR_INVALID;
        }
        out[i] = v;
        p = end + 1;
    }
    return HR_OK;
}

static hr_t check_delays(const char *value, char *why, size_t why_len)
{
    int64_t d[RETRY_TIERS];
    return config_parse_delays(value, d, why, why_len);
}

static const struct {
    const char *name;
    hr_t (*check)(const char *value, char *why, size_t why_len);
} checks[] = {
    {"roles", check_roles},
    {"policy.required_categories", check_categories},
    {"retry.delays_ms", check_delays},
};

static const opt_t *find(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(opts); i++)
        if (strcmp(opts[i].name, name) == 0) return &opts[i];
    return NULL;
}

/* A decimal integer with an optional unit suffix (k/KiB, M/MiB for sizes;
 * s, m/min, h, d for durations in ms). HR_INVALID for junk and for values
 * that do not fit in 64 bits, before or after the unit. */
static hr_t parse_i64(const char *s, int64_t *out)
{
    static const struct {
        const char *suffix;
        int64_t mul;
    } units[] = {
        {"k", 1024}, {"KiB", 1024}, {"M", 1024 * 1024}, {"MiB", 1024 * 1024},
        {"s", 1000}, {"m", 60000}, {"min", 60000}, {"h", 3600000}, {"d", 86400000},
    };
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s) return HR_INVALID;
    int64_t r = v;
    if (*end) {
        size_t i = 0;
        while (i < ARRAY_LEN(units) && strcmp(end, units[i].suffix) != 0) i++;
        if (i == ARRAY_LEN(units) || __builtin_mul_overflow(r, units[i].mul, &r)) return HR_INVALID;
    }
    *out = r;
    return HR_OK;
}

static hr_t set_kv(char ***kv, int *kv_n, const char *name, const char *value)
{
    for (int i = 0; i < *kv_n; i += 2) {
        if (strcmp((*kv)[i], name) == 0) {
            free((*kv)[i + 1]);
            (*kv)[i + 1] = xstrdup(value);
            return HR_OK;
        }
    }
    *kv = xrealloc(*kv, sizeof(char *) * ((size_t)*kv_n + 3));
    (*kv)[(*kv_n)++] = xstrdup(name);
    (*kv)[(*kv_n)++] = xstrdup(value);
    (*kv)[*kv_n] = NULL;
    return HR_OK;
}

static hr_t set_kafka_kv(config_t *c, const char *name, const char *value)
{
    return set_kv(&c->kafka_kv, &c->kafka_kv_n, name, value);
}

/* provider.<name>.<key> and channel.<channel>.<key>: kept whole for the
 * provider registry, which validates them (provider_config_check). */
static bool is_provider_key(const char *key)
{
    const char *rest = strncmp(key, "provider.", 9) == 0  ? key + 9
                       : strncmp(key, "channel.", 8) == 0 ? key + 8
                                                           : NULL;
    if (!rest) return false;
    const char *dot = strchr(rest, '.');
    return dot && dot > rest && dot[1];
}

hr_t config_set(config_t *c, const char *key, const char *value, char *why, size_t why_len)
{
    const opt_t *o = find(key);
    if (!o) {
        if (strncmp(key, "kafka.", 6) == 0 && key[6]) return set_kafka_kv(c, key + 6, value);
        if (is_provider_key(key)) return set_kv(&c->provider_kv, &c->provider_kv_n, key, value);
        snprintf(why, why_len, "unknown configuration key '%s'", key);
        return HR_INVALID;
    }
    char *base = (char *)c;
    switch (o->type) {
    case OPT_STR: {
        for (size_t i = 0; i < ARRAY_LEN(checks); i++)
            if (strcmp(checks[i].name, o->name) == 0 && checks[i].check(value, why, why_len) != HR_OK)
                return HR_INVALID;
        char **p = (char **)(base + o->off);
        free(*p);
        *p = xstrdup(value);
        return HR_OK;
    }
    case OPT_ENUM: {
        size_t n = strlen(value);
        const char *ch = o->choices;
        while (*ch) {
            const char *bar = strchr(ch, '|');
            size_t len = bar ? (size_t)(bar - ch) : strlen(ch);
            if (len == n && strncmp(ch, value, n) == 0) {
                char **p = (char **)(base + o->off);
                free(*p);
                *p = xstrdup(value);
                return HR_OK;
            }
            ch += len + (bar ? 1 : 0);
        }
        snprintf(why, why_len, "%s: '%s' is not one of %s", key, value, o->choices);
        return HR_INVALID;
    }
    case OPT_INT:
    case OPT_I64: {
        int64_t v;
        if (parse_i64(value, &v) != HR_OK) {
            snprintf(why, why_len, "%s: '%s' is not a number", key, value);
            return HR_INVALID;
        }
        if (v < o->min || v > o->max) {
            snprintf(why, why_len, "%s: %lld is outside [%lld, %lld]", key, (long long)v,
                     (long long)o->min, (long long)o->max);
            return HR_INVALID;
        }
        if (o->type == OPT_INT)
            *(int *)(base + o->off) = (int)v;
        else
            *(int64_t *)(base + o->off) = v;
        return HR_OK;
    }
    }
    return HR_ERR;
}

void config_init(config_t *c)
{
    char why[256];
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < ARRAY_LEN(opts); i++)
        if (config_set(c, opts[i].name, opts[i].def, why, sizeof(why)) != HR_OK) abort();
}

void config_release(config_t *c)
{
    for (size_t i = 0; i < ARRAY_LEN(opts); i++)
        if (opts[i].type == OPT_STR || opts[i].type == OPT_ENUM) free(*(char **)((char *)c + opts[i].off));
    for (int i = 0; i < c->kafka_kv_n; i++) free(c->kafka_kv[i]);
    free(c->kafka_kv);
    for (int i = 0; i < c->provider_kv_n; i++) free(c->provider_kv[i]);
    free(c->provider_kv);
    memset(c, 0, sizeof(*c));
}

typedef struct ini_ctx {
    config_t *c;
    char *why;
    size_t why_len;
    hr_t r;
} ini_ctx_t;

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx_t *x = user;
    char key[256];
    if (section && *section)
        snprintf(key, sizeof(key), "%s.%s", section, name);
    else
        snprintf(key, sizeof(key), "%s", name);
    if (x->r != HR_OK) return 0;
    x->r = config_set(x->c, key, value, x->why, x->why_len);
    return x->r == HR_OK;
}

hr_t config_load_file(config_t *c, const char *path, char *why, size_t why_len)
{
    ini_ctx_t x = {c, why, why_len, HR_OK};
    int rc = ini_parse(path, ini_cb, &x);
    if (rc < 0) {
        snprintf(why, why_len, "cannot read config file %s", path);
        return HR_INVALID;
    }
    if (x.r != HR_OK) return x.r;
    if (rc > 0) {
        snprintf(why, why_len, "%s:%d: syntax error", path, rc);
        return HR_INVALID;
    }
    return HR_OK;
}

extern char **environ;

hr_t config_load_env(config_t *c, char *why, size_t why_len)
{
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "HERALD_", 7) != 0) continue;
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        char env[256], key[256];
        size_t n = (size_t)(eq - (*e + 7));
        if (n == 0 || n >= sizeof(env)) continue;
        memcpy(env, *e + 7, n);
        env[n] = '\0';
        for (size_t i = 0; i <= n; i++) env[i] = (char)tolower((unsigned char)env[i]);
        /* Match against the table: a key matches when its '.' and '_' both map to '_'. */
        const opt_t *hit = NULL;
        for (size_t i = 0; i < ARRAY_LEN(opts) && !hit; i++) {
            const char *a = opts[i].name, *b = env;
            while (*a && *b && (*a == *b || (*a == '.' && *b == '_'))) a++, b++;
            if (!*a && !*b) hit = &opts[i];
        }
        if (hit) {
            snprintf(key, sizeof(key), "%s", hit->name);
        } else if (strncmp(env, "kafka_", 6) == 0 && env[6]) {
            /* librdkafka names use '.' and sometimes '_': '_' -> '.', '__' -> '_' */
            size_t k = 0;
            k += (size_t)snprintf(key, sizeof(key), "kafka.");
            for (const char *p = env + 6; *p && k + 1 < sizeof(key); p++) {
                if (p[0] == '_' && p[1] == '_') {
                    key[k++] = '_';
                    p++;
                } else {
                    key[k++] = *p == '_' ? '.' : *p;
                }
            }
            key[k] = '\0';
        } else if (strncmp(env, "provider_", 9) == 0 || strncmp(env, "channel_", 8) == 0) {
            /* <prefix>_<name>_<key>: names have no '_', keys may. */
            snprintf(key, sizeof(key), "%s", env);
            char *p = strchr(key, '_');
            *p = '.';
            if ((p = strchr(p + 1, '_'))) *p = '.';
        } else {
            /* Tests and tools use other HERALD_* variables; ignore them. */
            continue;
        }
        hr_t r = config_set(c, key, eq + 1, why, why_len);
        if (r != HR_OK) return r;
    }
    return HR_OK;
}

const char *const *config_kafka_kv(const config_t *c)
{
    static const char *const empty[] = {NULL};
    return c->kafka_kv ? (const char *const *)c->kafka_kv : empty;
}

const char *const *config_provider_kv(const config_t *c)
{
    static const char *const empty[] = {NULL};
    return c->provider_kv ? (const char *const *)c->provider_kv : empty;
}

void config_print_reference(void *file)
{
    FILE *f = file;
    fprintf(f, "| key | type | range | default | doc |\n| --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < ARRAY_LEN(opts); i++) {
        const opt_t *o = &opts[i];
        fprintf(f, "| `%s` | ", o->name);
        if (o->type == OPT_ENUM) {
            for (const char *p = o->choices; *p; p++) fputs(*p == '|' ? " \\| " : (char[]){*p, 0}, f);
        } else {
            fputs(o->type == OPT_STR ? "string" : "integer", f);
        }
        fputs(" |", f);
        if (o->type == OPT_INT || o->type == OPT_I64) {
            if (o->max == INT64_MAX)
                fprintf(f, " >= %lld", (long long)o->min);
            else
                fprintf(f, " %lld .. %lld", (long long)o->min, (long long)o->max);
        }
        fprintf(f, " | `%s` | %s |\n", o->def, o->doc);
    }
    fprintf(f, "| `kafka.<name>` | string | | | Passed straight to librdkafka (e.g. `kafka.security.protocol`). "
               "From the environment: `HERALD_KAFKA_<NAME>`, where `_` becomes `.` and `__` becomes `_` "
               "(`HERALD_KAFKA_SASL_OAUTHBEARER_CLIENT__ID` sets `kafka.sasl.oauthbearer.client_id`). |\n");
    fprintf(f, "| `provider.<name>.<key>` | string | | | Settings of provider instance <name> (`type`, `max_in_flight`, and the provider's own keys; see docs/internals/provider.md). |\n");
    fprintf(f, "| `channel.<channel>.providers` | string | | `sandbox` | Provider instances a channel delivers through, comma separated (default `inapp` for the in-app channel: its users' inboxes, unless `sandbox.mode` is `null`); push picks the one named like the device's platform, other channels spread users over the list (a pool of accounts; a user stays on one). |\n");
}
