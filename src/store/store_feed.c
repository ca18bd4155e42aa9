/*
 * store_feed.c - pull fan-out's actor feed (store.h "pull fan-out"): the
 * argument checks in front of the backends. A backend without it answers
 * HR_DECLINED, never a NULL call.
 */
#include "store/store_int.h"

#include <limits.h>
#include <stdlib.h>

static bool set(const char *s) { return s && s[0]; }

static bool mark_ok(inbox_mark_t m)
{
    return m == INBOX_MARK_SEEN || m == INBOX_MARK_READ || m == INBOX_MARK_ARCHIVED;
}

hr_t store_feed_put(store_t *s, const char *actor, const char *after_key, int priority,
                    const inbox_item_t *it, bool *created)
{
    bool dummy;
    if (!created) created = &dummy;
    *created = false;
    if (!s->ops->feed_put) return HR_DECLINED;
    if (!set(actor) || !after_key || !it || !set(it->notification_id) || it->created_at_ms <= 0)
        return HR_INVALID;
    return s->ops->feed_put(s, actor, after_key, priority, it, created);
}

hr_t store_followers_count(store_t *s, const char *actor, int64_t limit, int64_t *n)
{
    *n = 0;
    if (!s->ops->followers_count) return HR_DECLINED;
    if (!set(actor) || limit < 0) return HR_INVALID;
    return s->ops->followers_count(s, actor, limit, n);
}

hr_t store_feed_list(store_t *s, const char *user_id, inbox_filter_t f, int64_t after_ms,
                     const char *after_id, int limit, inbox_item_t **items, int **prio, int *n,
                     bool *more)
{
    *items = NULL;
    if (prio) *prio = NULL;
    *n = 0;
    *more = false;
    if (!s->ops->feed_list) return HR_DECLINED;
    if (!set(user_id) || limit <= 0 || limit == INT_MAX || (unsigned)f >= INBOX_FILTER__COUNT)
        return HR_INVALID;
    return s->ops->feed_list(s, user_id, f, after_ms, after_id, limit, items, prio, n, more);
}

hr_t store_feed_mark(store_t *s, const char *user_id, const char *notification_id,
                     inbox_mark_t m, int64_t at_ms, int64_t *changed)
{
    int64_t dummy;
    if (!changed) changed = &dummy;
    *changed = 0;
    if (!s->ops->feed_mark) return HR_DECLINED;
    if (!set(user_id) || (notification_id && !notification_id[0]) || !mark_ok(m) || at_ms <= 0)
        return HR_INVALID;
    return s->ops->feed_mark(s, user_id, notification_id, m, at_ms, changed);
}

hr_t store_feed_del(store_t *s, const char *user_id, const char *notification_id)
{
    if (!s->ops->feed_del) return HR_DECLINED;
    if (!set(user_id) || !set(notification_id)) return HR_INVALID;
    return s->ops->feed_del(s, user_id, notification_id);
}
