/*
 * pullfan.h - pull fan-out for the in-app channel (issue 15 item 5).
 *
 * Writing one inbox row per follower of an actor with millions of followers
 * costs millions of writes for items most followers never open. For an
 * event to the followers of an actor with at least fanout.pull_threshold
 * followers (counted only once the audience passed
 * fanout.chunk_threshold, so ordinary events pay nothing), the in-app item
 * is stored once in the store's actor feed (rendered in the default locale
 * "en" without a user), and the chunk tasks carry CHUNK_F_PULL: their
 * expansion produces push, e-mail, SMS and webhook notifications as before
 * but no in-app one. The followers fanned out directly before the chunks
 * (up to the feed item's after_key) got their own inbox items.
 *
 * The inbox API reads through the pull_inbox_* calls below: a follower's
 * listing and counts merge its inbox items with the feed items of the
 * actors it follows (respecting its preferences for the item's category on
 * the in-app channel), in one order (newest first) with the inbox's
 * cursors; marks and deletes of a feed item make the follower's state row
 * then. On a backend without the feed (HR_DECLINED) they are the plain
 * store_inbox_* calls.
 *
 * Threads: any; state lives in the store.
 */
#ifndef HERALD_PULLFAN_H
#define HERALD_PULLFAN_H

#include "app.h"
#include "model/event.h"

/* fan-out (chunks.c): decides whether the in-app item of ev (followers of
 * actor, qualified; eid and type qualified) goes by pull and if so stores
 * it once, for the followers after after_key. *pull: chosen. */
hr_t pull_fan_event(app_t *app, const event_t *ev, const char *eid, const char *type,
                    const char *actor, const char *after_key, bool *pull);

/* The feed item's notification id for (event, actor) into out[33]. */
void pull_feed_id(int64_t accepted_at_us, const char *eid, const char *actor, char out[33]);

/* The inbox as a follower sees it (store.h "in-app inbox" for the
 * arguments and results). */
hr_t pull_inbox_list(app_t *app, const char *user_id, inbox_filter_t f, const char *cursor,
                     int limit, inbox_item_t **items, int *n, char **next_cursor);
hr_t pull_inbox_counts(app_t *app, const char *user_id, int64_t *unread, int64_t *unseen);
hr_t pull_inbox_mark(app_t *app, const char *user_id, const char *notification_id,
                     inbox_mark_t m, int64_t at_ms);
hr_t pull_inbox_mark_all(app_t *app, const char *user_id, inbox_mark_t m, int64_t at_ms,
                         int64_t *changed);
hr_t pull_inbox_del(app_t *app, const char *user_id, const char *notification_id);

#endif
