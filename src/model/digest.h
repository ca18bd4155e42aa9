/*
 * digest.h - digests: the notifications of one user with the same key that
 * arrive inside a window collapse into one delivered notification ("Kylie
 * and 12 others liked your post").
 *
 * A template declares it (store.h template_rec_t: digest_window_ms and
 * digest_key, itself a template rendered per notification; none = the
 * event type). Fan-out renders such a notification as usual - the
 * {{digest.*}} variables as a digest of one, their places recorded
 * (template.h tmpl_spans_t) - and puts the digest's description in the
 * record's metadata (a member). The dispatcher that owns the user's
 * partition adds each member to the store's digest state
 * (store_digest_add_batch); the window's first member opens the digest and
 * keeps a flush token (the member's record with the digest's id, the window
 * end as due time and flush metadata) in the scheduler's table. When the
 * scheduler puts the token back on the channel topic, the dispatcher closes
 * the digest (store_digest_close), splices count and actors into the
 * token's title and body (digest_splice) and delivers that: one
 * notification, whose id is the digest's.
 *
 * Everything here is pure: no I/O.
 */
#ifndef HERALD_DIGEST_H
#define HERALD_DIGEST_H

#include "core/buf.h"
#include "model/notif.h"
#include "model/template.h"

/* Windows from one second to seven days. */
#define DIGEST_WINDOW_MIN_MS 1000
#define DIGEST_WINDOW_MAX_MS (7LL * 24 * 3600 * 1000)
/* A digest_key template's source, at most this many bytes. */
#define DIGEST_KEY_TMPL_MAX 256
/* A rendered key longer than this is replaced by '#' and its SHA-256 in
 * hex, so that the store's key stays short. */
#define DIGEST_KEY_MAX 128

/* Parses a window: a positive integer followed by "ms", "s", "m", "h" or
 * "d" ("10m", "90s"), within [DIGEST_WINDOW_MIN_MS, DIGEST_WINDOW_MAX_MS].
 * HR_INVALID with the reason in why. */
hr_t digest_window_parse(const char *s, int64_t *ms, char *why, size_t why_len);
/* The shortest such text for ms ("10m", "90s", "1500ms"); out >= 24 bytes. */
void digest_window_format(int64_t ms, char *out, size_t cap);
/* Checks a digest_key template: tmpl_check's syntax, no {{digest.*}} (a
 * key cannot depend on the digest), at most DIGEST_KEY_TMPL_MAX bytes. */
hr_t digest_key_check(const char *tmpl, char *why, size_t why_len);

/* The digest's id, which is the delivered notification's id: like a
 * notification id (notif.h: 32 hex digits, the time in ms first), the time
 * being when the digest opened, then the first 10 bytes of SHA-256 of
 * ("digest", user_id, channel, dkey, opened_at_ms). The same state gives
 * the same id, so a flush repeated after a crash is recognised as sent. */
void digest_make_id(hstr_t user_id, channel_t ch, hstr_t dkey, int64_t opened_at_ms, char out[33]);

typedef enum digest_kind {
    DIGEST_NONE = 0,            /* an ordinary notification */
    DIGEST_MEMBER,              /* to be added to its digest */
    DIGEST_FLUSH,               /* the flush token of a digest */
} digest_kind_t;

/* What a record's metadata says about its digest. Strings owned (malloc),
 * freed by digest_meta_clear. */
typedef struct digest_meta {
    digest_kind_t kind;
    int64_t window_ms;
    char *dkey;                 /* the grouping key: type, rendered key (and device for push) */
    char *actor;                /* the member's actor ("" when none) */
    tmpl_spans_t title, body;   /* where {{digest.*}} went in title and body */
} digest_meta_t;

/* Writes m (kind MEMBER or FLUSH) as the metadata JSON object to out. */
hr_t digest_meta_write(const digest_meta_t *m, buf_t *out);
/* Reads a record's metadata into out (zeroed first; clear it after any
 * answer). HR_NOTFOUND when it says nothing about a digest (kind NONE),
 * HR_INVALID when it is a digest's but malformed. */
hr_t digest_meta_read(hstr_t metadata, digest_meta_t *out);
void digest_meta_clear(digest_meta_t *m);

/* What the delivered notification shows. */
typedef struct digest_vals {
    int64_t count;
    const char *first_actor, *last_actor;
} digest_vals_t;

/* Appends text with each span replaced by its value (count, count - 1, the
 * first or the last actor). Spans outside text (a rendering cut at its
 * limit) or out of order are left alone. HR_AGAIN when out's limit cut it
 * (never inside a UTF-8 sequence). */
hr_t digest_splice(hstr_t text, const tmpl_spans_t *sp, const digest_vals_t *v, buf_t *out);

/* The flush token of a digest from the encoded record of the member that
 * opened it: the same record with notification_id = digest_id, attempt 1,
 * due_at_ms = the window's end and DIGEST_FLUSH metadata. Appends the
 * encoding to out. HR_INVALID when rec is not a member's record. */
hr_t digest_token_make(const void *rec, size_t rec_len, const char *digest_id, int64_t due_at_ms,
                       buf_t *out);

#endif
