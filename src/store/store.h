/*
 * store.h - herald's durable state: users, preferences, subscriptions,
 * follows, templates, the event dedupe table, and notification records with
 * their status history. Backends: SQLite (store_sqlite.c, embedded default)
 * and later PostgreSQL. The same tests (tests/unit/store/test_store.c) run
 * against every backend; the backend interface is in store_int.h.
 *
 * Ownership: strings passed in are copied; structs filled by the store own
 * their strings and are freed with the matching *_clear(). A store_t may be
 * used from several threads; backends serialise internally as needed.
 */
#ifndef HERALD_STORE_H
#define HERALD_STORE_H

#include "core/common.h"
#include "model/notif.h"

typedef struct store store_t;

#define STORE_SCHEMA_VERSION 10
#define STORE_MAX_DEVICES 16

typedef struct device {
    char *platform;             /* "apns" | "fcm" */
    char *token;
} device_t;

typedef struct user {
    char *user_id;
    char *email;                /* NULL when absent */
    char *phone;
    char *locale;               /* default "en" */
    char *timezone;             /* IANA name, default "UTC" */
    char *quiet_start;          /* "HH:MM" or NULL */
    char *quiet_end;
    char *webhook_url;          /* NULL when absent */
    /* The key the webhook provider signs this user's requests with
     * ("whsec_<base64>" or raw text; provider/webhook.h). Write-only in
     * the API. On put: NULL keeps the stored one, "" removes it. On get:
     * NULL when none. */
    char *webhook_secret;
    int ndevices;
    device_t devices[STORE_MAX_DEVICES];
    int64_t updated_at_ms;
} user_t;

/* One preference: category "" means "all categories" (the channel switch). */
typedef struct pref {
    char *category;
    channel_t channel;
    bool enabled;
} pref_t;

typedef struct template_rec {
    char *event_type;
    channel_t channel;
    char *locale;
    char *title;
    char *body;
    /* A digest (model/digest.h; schema version 7): window in ms, 0 = none;
     * key template, NULL = the event type. */
    int64_t digest_window_ms;
    char *digest_key;
} template_rec_t;
/* Frees the template's strings and zeroes it; NULL is a no-op. */
void template_rec_clear(template_rec_t *t);

/* A notification row as the status sink writes it and the API reads it. */
typedef struct notif_row {
    char *notification_id;
    char *event_id;
    char *user_id;
    channel_t channel;
    char *category;
    char *title;
    char *body;
    char *address;
    notif_status_t status;
    int attempt;
    char *channel_msg_id;
    char *error;
    int64_t created_at_ms;
    int64_t updated_at_ms;
    int64_t delivered_at_ms;    /* 0 when not sent */
    char *traceparent;          /* W3C trace context the records carried; NULL when none */
} notif_row_t;
/* Frees the row's strings and zeroes it; NULL is a no-op. */
void notif_row_clear(notif_row_t *r);

typedef struct status_hist {
    notif_status_t status;
    int attempt;
    int64_t at_ms;
    char *detail;               /* error or channel_msg_id; may be NULL */
} status_hist_t;

/* Outcome of store_event_claim(). */
typedef enum claim {
    CLAIM_NEW = 0,              /* first time this event_id is seen */
    CLAIM_SAME = 1,             /* seen before at the same source position: re-processing */
    CLAIM_DUP = 2,              /* seen before at another position: a duplicate publish */
} claim_t;

/* ---- public API (store.c) ----
 * Every call validates its arguments (HR_INVALID, nothing stored) and
 * sets its out-parameters to empty (NULL, 0, false) first, so they are safe
 * to free after any answer. Backend errors: HR_AGAIN (busy, try later) or HR_ERR (logged). */

/* Opens the store. backend: "sqlite" (dsn = file path, or ":memory:") or
 * NULL for "sqlite"; an unknown backend is HR_INVALID. Creates the schema
 * when absent; a database with a newer schema is HR_INVALID. Close with
 * store_close. */
hr_t store_open(const char *backend, const char *dsn, store_t **out);
/* What store_open_with() checks when it opens. */
typedef struct store_open_opts {
    int check_ms;               /* time bound of the integrity check (0 = skip it) */
    bool accept_damage;         /* open even when the checks find damage */
    int pg_pool;                /* PostgreSQL: connections in the pool (0 = 8) */
    bool pg_listen;             /* PostgreSQL: follow other processes' changes (LISTEN) */
    int sqlite_mmap_mb;         /* SQLite: the writer's memory map, MiB (0 = none) */
    int64_t dedupe_window_ms;   /* SQLite: how long event claims are kept at least (0 = 24 h) */
    int dedupe_gen_claims;      /* SQLite: claims per dedupe generation (0 = the default; tests) */
} store_open_opts_t;
/* store_open with the integrity checks of the backend (SQLite: the WAL and
 * PRAGMA quick_check, bounded by o->check_ms). Damage found is logged and
 * makes the open fail with HR_ERR, unless o->accept_damage: then the store
 * opens and store_health() reports it. o NULL = store_open(). */
hr_t store_open_with(const char *backend, const char *dsn, const store_open_opts_t *o, store_t **out);
/* HR_OK when the store is sound as far as it knows; HR_ERR with why filled
 * when the checks at open found damage or the backend has reported
 * corruption since. */
hr_t store_health(store_t *s, char *why, size_t why_len);
/* Closes and frees the store; NULL is a no-op. No call may be running. */
void store_close(store_t *s);
/* The schema version stored in the database, -1 on error. */
int store_schema_version(store_t *s);
/* hclock_now_ms() of the last write a store refused for want of disk space
 * (HR_NOSPACE: SQLITE_FULL, ENOSPC), 0 if none. Process-wide; any thread. */
int64_t store_nospace_at_ms(void);

/* Insert or replace the user (devices replaced as a whole). HR_INVALID
 * when the user_id is empty, ndevices is out of [0, STORE_MAX_DEVICES] or a
 * device lacks its platform or token. */
hr_t store_user_put(store_t *s, const user_t *u);
/* Bulk load: puts n users in one transaction (all or none). For seeding
 * and imports; users sorted by user_id load fastest. */
hr_t store_user_put_batch(store_t *s, const user_t *users, int n);
/* Reads the user with its devices into *out (free with store_user_clear).
 * HR_NOTFOUND when unknown. */
hr_t store_user_get(store_t *s, const char *user_id, user_t *out);
/* Reads n users with their devices and preferences in one read snapshot
 * (fan-out's lookups for a batch of recipients). found[i] is HR_OK or
 * HR_NOTFOUND (also for an empty id); out[i] (store_user_clear) and
 * prefs[i] (store_prefs_free, nprefs[i]) are filled for found users. Any
 * other error fails the call and fills nothing. */
hr_t store_users_get_batch(store_t *s, const char *const *ids, int n, user_t *out, hr_t *found,
                           pref_t **prefs, int *nprefs);
/* Reads up to limit users with user_id > after (NULL: from the first), in
 * user_id order, with devices and preferences, in one snapshot; *n < limit
 * means the end. Free each out[i] (store_user_clear) and prefs[i]
 * (store_prefs_free). HR_DECLINED when the backend cannot scan. */
hr_t store_users_scan(store_t *s, const char *after, int limit, user_t *out, pref_t **prefs,
                      int *nprefs, int *n);
/* Replaces all preferences of the user in one transaction. HR_INVALID for
 * an unknown channel. The user need not exist. */
hr_t store_prefs_replace(store_t *s, const char *user_id, const pref_t *prefs, int n);
/* The user's preferences, ordered by (category, channel); a missing
 * category reads as "". *out allocated (free with store_prefs_free). */
hr_t store_prefs_get(store_t *s, const char *user_id, pref_t **out, int *n);

/* Subscribes user_id to topic. Idempotent: HR_OK also when already
 * subscribed; *created (may be NULL) tells whether the subscription is new. */
hr_t store_sub_add(store_t *s, const char *topic, const char *user_id, bool *created);
/* Unsubscribes; HR_NOTFOUND when the subscription does not exist. */
hr_t store_sub_del(store_t *s, const char *topic, const char *user_id);
/* Page of subscriber ids ordered by user_id, strictly after `after` (NULL =
 * from the start). *ids allocated; free with store_ids_free. *n < limit =
 * last page. */
hr_t store_subs_page(store_t *s, const char *topic, const char *after, int limit, char ***ids,
                     int *n);
/* follower follows actor. Idempotent like store_sub_add; *created (may be
 * NULL) tells whether the follow is new. */
hr_t store_follow_add(store_t *s, const char *follower, const char *actor, bool *created);
/* Page of actor's followers, like store_subs_page. */
hr_t store_followers_page(store_t *s, const char *actor, const char *after, int limit,
                          char ***ids, int *n);

/* ---- user lifecycle ---- */

/* What store_user_erase removed. */
typedef struct store_erase {
    int64_t notifications;      /* notification rows (their status history went with them) */
    int64_t rows;               /* every other row: the user, devices, preferences,
                                 * subscriptions, follows both ways, invalid addresses,
                                 * scheduled notifications */
    int transactions;           /* write transactions it took */
} store_erase_t;

/* Right to erasure: deletes everything the store keeps about user_id - the
 * user row (with its webhook secret), devices, preferences, topic
 * subscriptions, follows (as follower and as the followed actor), invalid
 * address records, notification rows with their status history, the
 * user's scheduled (deferred) notifications and inbox items. HR_NOTFOUND when none of that
 * existed (nothing changed). One transaction when the user has at most a
 * backend's chunk of notifications and followers; larger histories go in
 * bounded chunks (other writers interleave) and the user row with the rest
 * goes in the last one, so a failed erase leaves the user in place and
 * calling it again finishes the work. Announced on the change feed (caches
 * drop the user); status records of notifications created before the
 * erase that reach store_notif_write_batch later in this process are
 * dropped rather than re-creating rows (the last STORE_ERASED_MAX erased
 * users are remembered, in memory only). stats may be NULL. */
hr_t store_user_erase(store_t *s, const char *user_id, store_erase_t *stats);
#define STORE_ERASED_MAX 1024
/* Up to limit users with user_id > after (NULL: from the first), in
 * user_id order, with their devices. *out allocated (free with
 * store_users_free); *n < limit means the last page. */
hr_t store_users_page(store_t *s, const char *after, int limit, user_t **out, int *n);
/* Frees n users and the array; NULL is a no-op. */
void store_users_free(user_t *u, int n);
/* follower stops following actor; HR_NOTFOUND when it did not. */
hr_t store_follow_del(store_t *s, const char *follower, const char *actor);
/* Page of the actors follower follows, ordered, strictly after `after`
 * (NULL = from the start); like store_subs_page. */
hr_t store_following_page(store_t *s, const char *follower, const char *after, int limit,
                          char ***ids, int *n);
/* Page of the topics user_id is subscribed to, like store_subs_page. */
hr_t store_user_topics_page(store_t *s, const char *user_id, const char *after, int limit,
                            char ***topics, int *n);

/* Insert or replace the template for (event_type, channel, locale); locale
 * NULL or "" means "en", and compares case-insensitively. */
hr_t store_template_put(store_t *s, const template_rec_t *t);
/* Finds (type, channel, locale), falling back to the language part
 * ("pt-BR" -> "pt") and then to "en"; out->locale says which matched.
 * HR_NOTFOUND when none. Free out with template_rec_clear. */
hr_t store_template_get(store_t *s, const char *event_type, channel_t ch, const char *locale,
                        template_rec_t *out);
/* Bit mask (1u << channel) of channels having any template for the type. */
hr_t store_template_channels(store_t *s, const char *event_type, unsigned *mask);

/* Dedupe by event_id; position identifies the source record (e.g.
 * "raw-events/3/1042"; NULL = ""). The first position seen stays the
 * reference. */
hr_t store_event_claim(store_t *s, const char *event_id, const char *position, claim_t *out);
/* The same for n events in one transaction (out[i] for event_ids[i]); an id
 * that appears twice in the batch at different positions is a duplicate the
 * second time. All or nothing: on error no claim is recorded. */
hr_t store_event_claim_batch(store_t *s, const char *const *event_ids, const char *const *positions,
                             int n, claim_t *out);

/* Status sink: upserts notification rows from status records (kind
 * REC_STATUS), appending status history. A stored row moves only by the
 * rank rule of model/lifecycle.h (lifecycle_may_replace): never back from a
 * final state (sent/delivered/undelivered/bounced/dead) to an earlier one, whatever the order
 * of arrival. Invalid records (no id, unknown status or channel) are
 * skipped with a warning. Backends may commit a large batch in several
 * transactions so that short writes are not held up; on an error the rows
 * of the transactions already committed stay (writing the batch again
 * repeats their history entries, as any re-processing does). */
hr_t store_notif_write_batch(store_t *s, const notif_t *const *recs, int n);
/* Reads one notification row and, when hist is not NULL, its status
 * history oldest first (*hist allocated, free with store_status_hist_free).
 * HR_NOTFOUND when unknown. Free out with notif_row_clear. */
hr_t store_notif_get(store_t *s, const char *notification_id, notif_row_t *out,
                     status_hist_t **hist, int *nhist);
/* The user's notifications, newest first, at most limit. cursor NULL =
 * newest; *next_cursor allocated (free()) or NULL at the end; a malformed
 * cursor is HR_INVALID. Free *rows with notif_rows_free. */
hr_t store_notif_list_user(store_t *s, const char *user_id, const char *cursor, int limit,
                           notif_row_t **rows, int *n, char **next_cursor);
/* Frees n rows and the array; NULL is a no-op. */
void notif_rows_free(notif_row_t *rows, int n);
/* Was this notification already recorded as sent (or delivered,
 * undelivered, bounced: lifecycle_was_sent)? Unknown ids
 * are not sent (HR_OK, false). */
hr_t store_notif_sent(store_t *s, const char *notification_id, bool *sent);
/* The same for n ids (not NUL-terminated) in one read snapshot: sent[i] for
 * ids[i]. An empty id is HR_INVALID. On error sent[] is all false. */
hr_t store_notif_sent_batch(store_t *s, const hstr_t *ids, int n, bool *sent);
/* Retention (DESIGN §4: 90 days): deletes notifications created before
 * before_ms with their status history, in-app inbox items created before
 * it, and dedupe entries first seen before it. Works in small transactions
 * so other writers interleave. *deleted (may be NULL) = notifications
 * removed (inbox items are logged, not counted). */
hr_t store_notif_purge(store_t *s, int64_t before_ms, int64_t *deleted);

/* ---- dispatch policy: deferrals, dead addresses, redrives ---- */

/* A deferred notification (the scheduler's table). */
typedef struct sched_row {
    char *notification_id;
    channel_t channel;
    int64_t due_at_ms;
    void *rec;                  /* the encoded notification (model/notif.h) */
    size_t rec_len;
} sched_row_t;
/* Frees n rows and the array; NULL is a no-op. */
void store_sched_rows_free(sched_row_t *rows, int n);

/* Keeps the encoded notification rec until due_at_ms (insert or replace by
 * notification_id). Durable when it returns HR_OK. */
hr_t store_sched_put(store_t *s, const char *notification_id, channel_t ch, int64_t due_at_ms,
                     const void *rec, size_t rec_len);
/* Up to limit rows with due_at_ms <= now_ms, earliest first (*rows
 * allocated: store_sched_rows_free). */
hr_t store_sched_due(store_t *s, int64_t now_ms, int limit, sched_row_t **rows, int *n);
/* The earliest due time kept; *due = INT64_MAX when nothing is kept. */
hr_t store_sched_next(store_t *s, int64_t *due);
/* Deletes the row of notification_id if its due time is still due_at_ms
 * (a deferral replaced meanwhile stays). HR_OK also when nothing matched. */
hr_t store_sched_del(store_t *s, const char *notification_id, int64_t due_at_ms);

/* A provider said `address` of the user on channel ch is dead (unregistered
 * token, invalid number, hard bounce): records it with reason in the table
 * of invalid addresses and removes it from the user (the devices whose
 * "platform:token" is in a push address, which lists a user's devices
 * comma-separated; the e-mail address, phone number or webhook URL when it
 * equals address), so fan-out stops using it; the change feed tells the
 * recipient caches. HR_NOTFOUND when the user is unknown (still recorded).
 * A later user update may register the address again; it is then used
 * again (the record stays). */
hr_t store_address_invalidate(store_t *s, const char *user_id, channel_t ch, const char *address,
                              const char *reason);
/* Was (user_id, ch, address) ever invalidated? */
hr_t store_address_is_invalid(store_t *s, const char *user_id, channel_t ch, const char *address,
                              bool *invalid);

/* Forgets the dedupe claim of event_id, so that the event can be processed
 * again as new (a redrive of a dead-lettered event). HR_OK also when the
 * event was never claimed. */
hr_t store_event_release(store_t *s, const char *event_id);

/* Records that the DLQ entry `dlq_id` ("<partition>-<offset>") was
 * redriven; *first (may be NULL) is false when it was recorded before. */
hr_t store_dlq_mark_redriven(store_t *s, const char *dlq_id, bool *first);
/* Was the DLQ entry redriven? */
hr_t store_dlq_redriven(store_t *s, const char *dlq_id, bool *done);

/* ---- API keys (auth/apikey.h makes and checks them) ---- */

#define STORE_KEY_ID_MAX 32
#define STORE_TENANT_MAX 64
#define STORE_KEY_NAME_MAX 128

typedef struct api_key_rec {
    char key_id[STORE_KEY_ID_MAX + 1];
    unsigned char secret_hash[32];  /* SHA-256 of the secret part */
    char tenant[STORE_TENANT_MAX + 1];
    unsigned scopes;                /* SCOPE_* bits */
    char name[STORE_KEY_NAME_MAX + 1];
    int64_t created_at_ms;
    int64_t revoked_at_ms;          /* 0 = active */
} api_key_rec_t;

/* Inserts a new key; HR_CONFLICT when key_id exists. */
hr_t store_key_put(store_t *s, const api_key_rec_t *k);
/* HR_NOTFOUND when there is no such key (revoked keys are found). */
hr_t store_key_get(store_t *s, const char *key_id, api_key_rec_t *out);
/* Every key, oldest first (*out malloc'd; free it). */
hr_t store_key_list(store_t *s, api_key_rec_t **out, int *n);
/* Marks the key revoked at at_ms (HR_NOTFOUND: no such key; a key already
 * revoked keeps its first time). */
hr_t store_key_revoke(store_t *s, const char *key_id, int64_t at_ms);

/* ---- in-app inbox (schema version 5) ----
 * One item per in-app notification of a user, written by the "inapp"
 * provider (provider/inapp.c) and read and changed by the inbox API.
 * user_id is the stored (tenant-qualified) id. States are timestamps:
 * seen (the user saw it in a list), read (opened), archived (put away);
 * reading implies seen, archiving implies read and seen. Unread = not read
 * and not archived; unseen = not seen and not archived. */

typedef struct inbox_item {
    char *user_id;
    char *notification_id;
    char *event_id;             /* NULL when absent */
    char *category;             /* NULL when absent */
    char *title;
    char *body;
    int64_t created_at_ms;
    int64_t seen_at_ms;         /* 0 = not seen */
    int64_t read_at_ms;         /* 0 = not read */
    int64_t archived_at_ms;     /* 0 = not archived */
} inbox_item_t;
/* Frees the item's strings and zeroes it; NULL is a no-op. */
void inbox_item_clear(inbox_item_t *it);
/* Frees n items and the array; NULL is a no-op. */
void inbox_items_free(inbox_item_t *v, int n);

/* Which items a listing returns. */
typedef enum inbox_filter {
    INBOX_ACTIVE = 0,           /* every item not archived (the default) */
    INBOX_UNREAD,
    INBOX_READ,                 /* read, not archived */
    INBOX_SEEN,                 /* seen, not archived */
    INBOX_ARCHIVED,
    INBOX_FILTER__COUNT
} inbox_filter_t;

/* A state change. */
typedef enum inbox_mark {
    INBOX_MARK_SEEN = 1,
    INBOX_MARK_READ,            /* also seen */
    INBOX_MARK_ARCHIVED,        /* also read and seen */
} inbox_mark_t;

/* Adds the item (strings copied). Idempotent: an item already there for
 * (user_id, notification_id) is kept as it is (a redelivery does not make a
 * read item unread); *created (may be NULL) tells whether it is new.
 * HR_INVALID without user_id, notification_id or created_at_ms > 0. */
hr_t store_inbox_put(store_t *s, const inbox_item_t *it, bool *created);
/* The user's items that match f, newest first (created_at_ms, then
 * notification_id), at most limit; cursor as store_notif_list_user's
 * (NULL = newest; *next_cursor allocated or NULL at the end; malformed =
 * HR_INVALID). Free *items with inbox_items_free. */
hr_t store_inbox_list(store_t *s, const char *user_id, inbox_filter_t f, const char *cursor,
                      int limit, inbox_item_t **items, int *n, char **next_cursor);
/* Unread and unseen counts of the user (archived items count in neither). */
hr_t store_inbox_counts(store_t *s, const char *user_id, int64_t *unread, int64_t *unseen);
/* Marks one item at at_ms (a state already set keeps its first time).
 * HR_NOTFOUND when the user has no such item. */
hr_t store_inbox_mark(store_t *s, const char *user_id, const char *notification_id,
                      inbox_mark_t m, int64_t at_ms);
/* Marks every item of the user not yet in that state; *changed (may be
 * NULL) = how many changed. One transaction. */
hr_t store_inbox_mark_all(store_t *s, const char *user_id, inbox_mark_t m, int64_t at_ms,
                          int64_t *changed);
/* Deletes one item; HR_NOTFOUND when the user has no such item. */
hr_t store_inbox_del(store_t *s, const char *user_id, const char *notification_id);

/* ---- pull fan-out: the actor feed (stage/pullfan.h) ----
 * An in-app item of an actor with a huge audience is stored once, as a
 * feed item, instead of one inbox item per follower. A follower sees it
 * when it follows the actor (since before the item was made) and its id
 * sorts after the item's after_key (the followers up to after_key got
 * their own inbox items). Per-follower states are rows made on the first
 * mark or delete. Backends without it (PostgreSQL for now) answer
 * HR_DECLINED; the inbox then shows inbox items only. */

/* Stores the feed item once (it->user_id is ignored; actor is the key);
 * idempotent like store_inbox_put. priority: the event's. */
hr_t store_feed_put(store_t *s, const char *actor, const char *after_key, int priority,
                    const inbox_item_t *it, bool *created);
/* Followers of actor, counted up to limit (*n <= limit). */
hr_t store_followers_count(store_t *s, const char *actor, int64_t limit, int64_t *n);
/* The feed items user_id sees that match f, newest first, at most limit,
 * ordered after the cursor (after_id NULL = from the newest), with the
 * user's states; prio[i] (allocated, may be NULL) = item i's priority.
 * *more: another item follows. Free *items with inbox_items_free. */
hr_t store_feed_list(store_t *s, const char *user_id, inbox_filter_t f, int64_t after_ms,
                     const char *after_id, int limit, inbox_item_t **items, int **prio, int *n,
                     bool *more);
/* Marks one feed item the user sees (notification_id), or every one not
 * yet in that state (NULL), making the user's state rows. *changed: items
 * changed. HR_NOTFOUND: the user sees no such item. */
hr_t store_feed_mark(store_t *s, const char *user_id, const char *notification_id,
                     inbox_mark_t m, int64_t at_ms, int64_t *changed);
/* Hides a feed item from the user. HR_NOTFOUND as above. */
hr_t store_feed_del(store_t *s, const char *user_id, const char *notification_id);

/* ---- digests (model/digest.h; schema version 7) ----
 * State of the digests, owned by the dispatcher of the user's partition.
 * Backends without it (PostgreSQL for now) answer HR_DECLINED; dispatch
 * then delivers members one by one. */

/* One member to add. In: every field but the outs; strings borrowed. */
typedef struct digest_add {
    hstr_t user_id;             /* stored (qualified) id */
    channel_t channel;
    hstr_t dkey;                /* digest_meta_t.dkey */
    int64_t window_ms;
    hstr_t notification_id;     /* the member's own id: counted once */
    hstr_t actor;
    const void *rec;            /* the member's encoded record: a digest it */
    size_t rec_len;             /* opens keeps its flush token made from it */
    /* out */
    char digest_id[33];         /* the digest it is (or was already) in */
    bool added;                 /* false: the member was counted before */
    bool opened;                /* it opened the digest */
} digest_add_t;
/* Adds n members in one transaction, in order, at now_ms. A member joins
 * the open digest of its (user, channel, dkey) while now_ms is before the
 * digest's due time; otherwise that digest is closed (its token flushes it)
 * and the member opens a new one: id digest_make_id(.., now_ms), due at
 * now_ms + window_ms, its flush token (digest_token_make) kept in the
 * scheduled table until then. A member already counted (same
 * notification_id) changes nothing and gets its digest's id. All or
 * nothing. n = 0 tells whether the backend keeps digests (HR_OK) or not
 * (HR_DECLINED). */
hr_t store_digest_add_batch(store_t *s, int64_t now_ms, digest_add_t *v, int n);

/* A digest as its flush sees it. */
typedef struct digest_info {
    int64_t count;
    char *first_actor, *last_actor;
    int64_t opened_at_ms, due_at_ms;
} digest_info_t;
void digest_info_clear(digest_info_t *d);
/* Closes the digest (no member joins it after this) and reads it; a
 * closed one is read as it is, so a repeated flush renders the same.
 * HR_NOTFOUND when unknown (purged, the user erased). */
hr_t store_digest_close(store_t *s, const char *digest_id, digest_info_t *out);

/* ---- freeing what the store fills ---- */

/* Frees the user's strings and zeroes it; NULL is a no-op. */
void store_user_clear(user_t *u);
/* Frees n preferences (their categories) and the array; NULL is a no-op. */
void store_prefs_free(pref_t *p, int n);
/* Frees n ids and the array (from the *_page calls); NULL is a no-op. */
void store_ids_free(char **ids, int n);
/* Frees n history entries and the array; NULL is a no-op. */
void store_status_hist_free(status_hist_t *h, int n);

/* Older names of the four above, kept for existing callers. */
static inline void user_clear(user_t *u) { store_user_clear(u); }
static inline void prefs_free(pref_t *p, int n) { store_prefs_free(p, n); }
static inline void ids_free(char **ids, int n) { store_ids_free(ids, n); }
static inline void status_hist_free(status_hist_t *h, int n) { store_status_hist_free(h, n); }

/* ---- change feed: keeps in-process caches of store data exact ----
 * Every successful user_put (and batch), prefs_replace, user_erase and
 * template_put made through a store_t is announced here after it commits. Caches compare
 * an epoch before use and drop what changed. Writes made by another process
 * (another herald sharing the database) are seen on PostgreSQL opened with
 * pg_listen (LISTEN/NOTIFY, store_pg_listen.c; herald's store.pg_listen)
 * and on a SQLite file (its change_log, read by the checkpointer thread),
 * shortly after they commit; otherwise not (an in-memory SQLite database,
 * PostgreSQL without pg_listen), and caches bound their staleness with a
 * TTL for those (store_users_feed_exact). Any thread. */

/* Bumped once per changed user. */
uint64_t store_users_epoch(store_t *s);
/* Whether changes made by other processes reach the feed too (SQLite: a
 * file database, whose writers log every change for the checkpointer
 * thread to announce within ~200 ms; PostgreSQL: with pg_listen): caches
 * then need no TTL to bound their staleness, only as a safety net. */
bool store_users_feed_exact(store_t *s);
/* Calls fn(arg, user_id) for each user changed after epoch `since` (the
 * same id may come more than once) and sets *now to the current epoch.
 * HR_AGAIN when more users changed than the feed remembers: drop everything.
 * fn runs under the feed's lock and must not call the store. */
hr_t store_users_changed(store_t *s, uint64_t since, uint64_t *now,
                         void (*fn)(void *arg, const char *user_id), void *arg);
/* Bumped on every template change. */
uint64_t store_templates_epoch(store_t *s);

#endif
