/*
 * store_int.h - the backend side of the store: the vtable every backend
 * fills, and the semantics store.c decides once for all of them.
 *
 * Only store.c and the backends (store_<name>*.c) include this; the rest of
 * herald sees store.h.
 *
 * What store.c does before an op runs, so a backend need not repeat it:
 *  - zeroes the out-parameters (structs, arrays, counts, flags);
 *  - validates the arguments: ids non-empty, channels in range, limits
 *    positive, users (user_valid) and preferences well-formed; a bad
 *    argument answers HR_INVALID without calling the backend;
 *  - drops invalid notification records (notif_valid) from a status batch
 *    with one warning, so the backend sees only valid ones;
 *  - computes the template locale chain (store_locale_chain);
 *  - supplies fallbacks for the ops marked "may be NULL".
 * What a backend must do itself: the rank rule when it upserts a status
 * (model/lifecycle.h: lifecycle_rank, lifecycle_may_replace, and
 * lifecycle_rank_sql to write it in SQL), atomicity as store.h promises,
 * and the change of nothing on error.
 *
 * Adding a backend: write store_<name>.c defining `const store_ops_t
 * store_<name>_ops` (its state struct starts with `store_t base`), declare
 * it below and list it in `backends` in store.c. tests/unit/store/
 * test_store.c then runs against it with HERALD_TEST_STORE=<name>.
 */
#ifndef HERALD_STORE_INT_H
#define HERALD_STORE_INT_H

#include "model/lifecycle.h"
#include "store/store.h"

/* The locale chain of store_template_get: the exact locale, its language
 * part ("pt-BR" -> "pt"; "_" also separates), then "en". Entries may repeat. */
#define STORE_LOCALE_CHAIN 3
#define STORE_LANG_MAX 32

/* Fills chain[] for `locale` (NULL or "" = "en"); lang is the storage for
 * the language part and must outlive chain. */
void store_locale_chain(const char *locale, char lang[STORE_LANG_MAX],
                        const char *chain[STORE_LOCALE_CHAIN]);

/* The validation store.c applies (exposed for backends' asserts). A user
 * needs an id and at most STORE_MAX_DEVICES devices, each with platform and
 * token. */
bool store_user_valid(const user_t *u);

/* Longest string bound from a record: far above any real field, and below
 * SQLite's limit so that binding cannot fail. */
#define STORE_NOTIF_STR_MAX (64u << 20)

/* A status record the store can write: an id, a known status and channel,
 * sane strings. Inline: the status sink checks every record. */
static inline bool store_notif_valid(const notif_t *m)
{
#define STR_OK(f) &&m->f.n <= STORE_NOTIF_STR_MAX && (m->f.p || m->f.n == 0)
    return m && m->notification_id.n > 0 && (unsigned)m->status < ST__COUNT &&
           (unsigned)m->channel < CH__COUNT NOTIF_STRINGS(STR_OK);
#undef STR_OK
}

/* Does a stored status count as "sent" for store_notif_sent? (sent, or a
 * provider's report after it: delivered, undelivered, bounced) */
static inline bool store_status_sent(notif_status_t st)
{
    return lifecycle_was_sent(st);
}

/* The vtable. Arguments arrive validated and out-parameters zeroed (see
 * above); ops marked "may be NULL" have a fallback in store.c. */
typedef struct store_ops {
    const char *name;
    hr_t (*open)(const char *dsn, const store_open_opts_t *o, store_t **out); /* o never NULL */
    void (*close)(store_t *s);
    /* May be NULL: called once by store_open_with after it has set up the
     * change feed (a backend's own threads may announce from then on). */
    void (*opened)(store_t *s);
    /* May be NULL (false): whether every change another process makes to
     * users, devices, preferences and templates reaches the change feed
     * (store_users_feed_exact). */
    bool (*users_feed_exact)(store_t *s);
    int (*schema_version)(store_t *s);

    hr_t (*user_put)(store_t *s, const user_t *u);
    hr_t (*user_put_batch)(store_t *s, const user_t *users, int n); /* may be NULL */
    hr_t (*user_get)(store_t *s, const char *user_id, user_t *out);
    /* ids[i] may be "" (not found). */
    hr_t (*users_get_batch)(store_t *s, const char *const *ids, int n, user_t *out, hr_t *found,
                            pref_t **prefs, int *nprefs); /* may be NULL */
    hr_t (*users_scan)(store_t *s, const char *after, int limit, user_t *out, pref_t **prefs,
                       int *nprefs, int *n); /* may be NULL: HR_DECLINED */
    hr_t (*prefs_replace)(store_t *s, const char *user_id, const pref_t *prefs, int n);
    hr_t (*prefs_get)(store_t *s, const char *user_id, pref_t **out, int *n);
    /* *created: the pair was not there before. */
    hr_t (*sub_add)(store_t *s, const char *topic, const char *user_id, bool *created);
    hr_t (*sub_del)(store_t *s, const char *topic, const char *user_id);
    hr_t (*subs_page)(store_t *s, const char *topic, const char *after, int limit,
                      char ***ids, int *n);
    hr_t (*follow_add)(store_t *s, const char *follower, const char *actor, bool *created);
    hr_t (*followers_page)(store_t *s, const char *actor, const char *after, int limit,
                           char ***ids, int *n);
    /* User lifecycle (store.h). user_erase fills *st (zeroed; HR_NOTFOUND
     * is store.c's, from the counts). */
    hr_t (*user_erase)(store_t *s, const char *user_id, store_erase_t *st);
    hr_t (*follow_del)(store_t *s, const char *follower, const char *actor);
    hr_t (*following_page)(store_t *s, const char *follower, const char *after, int limit,
                           char ***ids, int *n);
    hr_t (*user_topics_page)(store_t *s, const char *user_id, const char *after, int limit,
                             char ***topics, int *n);
    hr_t (*template_put)(store_t *s, const template_rec_t *t);
    /* The first of chain[] (store_locale_chain) that has a template wins. */
    hr_t (*template_get)(store_t *s, const char *event_type, channel_t ch,
                         const char *const chain[STORE_LOCALE_CHAIN], template_rec_t *out);
    hr_t (*template_channels)(store_t *s, const char *event_type, unsigned *mask);
    /* position is never NULL; positions[i] of the batch may be (= ""). */
    hr_t (*event_claim)(store_t *s, const char *event_id, const char *position, claim_t *out);
    hr_t (*event_claim_batch)(store_t *s, const char *const *event_ids,
                              const char *const *positions, int n, claim_t *out); /* may be NULL */
    /* recs are all valid (store_notif_valid); n > 0. */
    hr_t (*notif_write_batch)(store_t *s, const notif_t *const *recs, int n);
    /* hist and nhist may be NULL (no history wanted). */
    hr_t (*notif_get)(store_t *s, const char *notification_id, notif_row_t *out,
                      status_hist_t **hist, int *nhist);
    /* Newest first, at most limit rows; after_id non-NULL: only rows
     * ordered after (after_ms, after_id), the last row of the previous page.
     * *more: another row exists beyond the page. */
    hr_t (*notif_list_user)(store_t *s, const char *user_id, int64_t after_ms,
                            const char *after_id, int limit, notif_row_t **rows, int *n,
                            bool *more);
    hr_t (*notif_sent)(store_t *s, const char *notification_id, bool *sent);
    /* ids are non-empty; n > 0. */
    hr_t (*notif_sent_batch)(store_t *s, const hstr_t *ids, int n, bool *sent); /* may be NULL */
    hr_t (*notif_purge)(store_t *s, int64_t before_ms, int64_t *deleted);
    /* Dispatch policy (store.h). rec_len > 0; limit > 0. */
    /* user_id: the record's receiver (store.c decodes it), empty when the
     * record does not decode. */
    hr_t (*sched_put)(store_t *s, const char *notification_id, hstr_t user_id, channel_t ch,
                      int64_t due_at_ms, const void *rec, size_t rec_len);
    hr_t (*sched_due)(store_t *s, int64_t now_ms, int limit, sched_row_t **rows, int *n);
    hr_t (*sched_next)(store_t *s, int64_t *due);
    hr_t (*sched_del)(store_t *s, const char *notification_id, int64_t due_at_ms);
    /* Records the address as invalid (insert or replace). The removal from
     * the user is store.c's (user_get + user_put). */
    hr_t (*address_invalid_add)(store_t *s, const char *user_id, channel_t ch, const char *address,
                                const char *reason, int64_t at_ms);
    hr_t (*address_invalid_get)(store_t *s, const char *user_id, channel_t ch, const char *address,
                                bool *invalid);
    hr_t (*event_release)(store_t *s, const char *event_id);
    hr_t (*dlq_mark)(store_t *s, const char *dlq_id, int64_t at_ms, bool *first);
    hr_t (*dlq_get)(store_t *s, const char *dlq_id, bool *done);
    /* API keys (store.h); arguments already checked. */
    hr_t (*key_put)(store_t *s, const api_key_rec_t *k);
    hr_t (*key_get)(store_t *s, const char *key_id, api_key_rec_t *out);
    hr_t (*key_list)(store_t *s, api_key_rec_t **out, int *n);
    hr_t (*key_revoke)(store_t *s, const char *key_id, int64_t at_ms);
    /* In-app inbox (store.h). after_id NULL: from the newest; else only
     * items ordered after (after_ms, after_id). *more: another item exists
     * beyond the page. notification_id NULL in inbox_mark: every item of
     * the user not yet in that state. *changed: rows changed. */
    hr_t (*inbox_put)(store_t *s, const inbox_item_t *it, bool *created);
    hr_t (*inbox_list)(store_t *s, const char *user_id, inbox_filter_t f, int64_t after_ms,
                       const char *after_id, int limit, inbox_item_t **items, int *n, bool *more);
    hr_t (*inbox_counts)(store_t *s, const char *user_id, int64_t *unread, int64_t *unseen);
    hr_t (*inbox_mark)(store_t *s, const char *user_id, const char *notification_id,
                       inbox_mark_t m, int64_t at_ms, int64_t *changed);
    hr_t (*inbox_del)(store_t *s, const char *user_id, const char *notification_id);
    /* store_health; why has room (why_len > 0). May be NULL: always sound. */
    hr_t (*health)(store_t *s, char *why, size_t why_len);
    /* Pull fan-out's actor feed (store.h); NULL = not in this backend.
     * Arguments already checked. */
    hr_t (*feed_put)(store_t *s, const char *actor, const char *after_key, int priority,
                     const inbox_item_t *it, bool *created);
    hr_t (*followers_count)(store_t *s, const char *actor, int64_t limit, int64_t *n);
    hr_t (*feed_list)(store_t *s, const char *user_id, inbox_filter_t f, int64_t after_ms,
                      const char *after_id, int limit, inbox_item_t **items, int **prio, int *n,
                      bool *more);
    hr_t (*feed_mark)(store_t *s, const char *user_id, const char *notification_id,
                      inbox_mark_t m, int64_t at_ms, int64_t *changed);
    hr_t (*feed_del)(store_t *s, const char *user_id, const char *notification_id);
    /* Digests (store.h); NULL = not in this backend. Arguments checked. */
    hr_t (*digest_add_batch)(store_t *s, int64_t now_ms, digest_add_t *v, int n);
    hr_t (*digest_close)(store_t *s, const char *digest_id, digest_info_t *out);
} store_ops_t;

struct store_feed;

struct store {
    const store_ops_t *ops;
    struct store_feed *feed;    /* change feed (store.c); backends leave it alone */
};

/* Changes another process made (a backend that can see them, e.g.
 * PostgreSQL's LISTEN): announced on the change feed like this process's
 * own. user_id NULL: changes may have been missed, every cached user goes
 * (store_users_changed answers HR_AGAIN). Any thread. */
void store_feed_remote_user(store_t *s, const char *user_id);
void store_feed_remote_templates(store_t *s);

/* A backend's write failed for want of disk space (store_nospace_at_ms). */
void store_note_nospace(void);

/* The backends. */
extern const store_ops_t store_sqlite_ops;
#ifdef HERALD_HAVE_PG
extern const store_ops_t store_pg_ops; /* store_pg.c: "postgres" (libpq) */
#endif

#endif
