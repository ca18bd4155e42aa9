/*
 * dlq.h - reading and redriving the dead-letter topic (notifications-dlq),
 * for `herald dlq` (cli/cmd_dlq.c) and the API (http/api_dlq.c).
 *
 * A DLQ entry is one record of the topic, named "<partition>-<offset>".
 * Records are JSON written by stage_dead_letter (stage.h): reason, stage,
 * topic, partition, offset, at_ms, key, and payload (text, exact: NUL bytes
 * are \u0000) or payload_hex (bytes that are not UTF-8).
 *
 * Reading scans the topic from its start with a consumer that never commits
 * (one scan at a time per process; the DLQ holds the rare failures, so a
 * scan is small). Redrive produces the payload back to where it came from
 * - raw-events for events (after releasing the event's dedupe claim, so
 * the event is processed as new instead of being dropped as a duplicate),
 * notifications-<channel> for notifications (also those that died in a
 * retry tier), with attempt 1 and due_at_ms = now so that the dispatcher
 * checks it against the store ("already sent") before sending - and then
 * records the entry id as redriven in the store, so `--all` skips it next
 * time.
 *
 * Threads: any; calls block on the bus and the store.
 */
#ifndef HERALD_DLQ_H
#define HERALD_DLQ_H

#include "app.h"

#include <jansson.h>

typedef struct dlq_entry {
    char id[48];                /* "<partition>-<offset>" */
    int32_t partition;
    int64_t offset;
    json_t *rec;                /* the DLQ record (owned; dlq_entries_free) */
    bool redriven;              /* recorded as redriven in the store */
} dlq_entry_t;

typedef struct dlq_filter {
    int64_t since_ms;           /* at_ms >= since_ms; 0 = any */
    const char *reason;         /* substring of the reason; NULL = any */
    const char *after;          /* an id: entries after it in (partition, offset) order; NULL = first */
    int limit;                  /* at most this many; <= 0 = no limit */
} dlq_filter_t;

/* Lists entries in (partition, offset) order. *more: entries matching the
 * filter follow the last one returned. Free with dlq_entries_free. */
hr_t dlq_list(app_t *app, const dlq_filter_t *f, dlq_entry_t **out, int *n, bool *more);
void dlq_entries_free(dlq_entry_t *e, int n);

/* Parses an entry id; false when malformed. */
bool dlq_id_parse(const char *id, int32_t *partition, int64_t *offset);
/* Parses --since / since=: milliseconds since the epoch, an RFC 3339 UTC
 * time ("2026-11-30T02:00:00Z") or an age with a unit ("90s", "15m",
 * "2h", "7d": that long before now_ms). */
bool dlq_since_parse(const char *text, int64_t now_ms, int64_t *out);

/* Redrives one entry by id (also when it was redriven before: an explicit
 * request). HR_NOTFOUND: no such entry; HR_INVALID: the record cannot be
 * redriven (why says why). */
hr_t dlq_redrive_id(app_t *app, const char *id, char *why, size_t why_len);
/* Redrives every entry not redriven yet whose reason contains `reason`
 * (NULL = all). *done = entries redriven, *skipped = entries that cannot be
 * redriven (logged). */
hr_t dlq_redrive_all(app_t *app, const char *reason, int *done, int *skipped);

/* The DLQ's size without a scan: *records = records on the topic now (its
 * reader never commits, so its lag is every record kept), *stamp = the sum
 * of the end offsets, which grows with every record dead-lettered (a cache
 * of dlq_latest() is stale when it changed). 0 and 0 before the topic
 * exists. */
hr_t dlq_size(app_t *app, int64_t *records, int64_t *stamp);
/* The `max` (> 0) entries dead-lettered last (at_ms, newest first), with
 * their redriven flag; a full scan like dlq_list. Free with
 * dlq_entries_free. */
hr_t dlq_latest(app_t *app, int max, dlq_entry_t **out, int *n);

/* JSON for an entry as `herald dlq list` and GET /v1/dlq show it: id,
 * at_ms, reason, stage, topic, partition, offset, redriven, payload or
 * payload_hex. New reference. */
json_t *dlq_entry_json(const dlq_entry_t *e);

#endif
