/*
 * api_inbox_stream.c - a user's inbox, live: Server-Sent Events.
 *
 *   GET /v1/users/{user_id}/inbox/stream     text/event-stream
 *
 * Events (data: one line of JSON):
 *   item    a new item, as GET .../inbox lists it; id: its position
 *   counts  {"unread","unseen"}: first on connecting, then after each change
 *   mark    {"notification_id" (null: all), "mark": "read"|"seen"|"archive"}
 *   delete  {"notification_id"}
 *   reset   {}: more was missed than a resume replays; reload the list
 * and a comment line (": heartbeat") after inbox.stream_heartbeat_ms idle.
 *
 * Resume: a client reconnecting with Last-Event-ID (EventSource does it by
 * itself; or ?last_event_id=) first gets the items stored after that
 * position, oldest first, at most inbox.stream_replay of them (more: one
 * reset event instead), then the counts. Without it, it gets the counts
 * and whatever arrives from then on. Positions follow the store's order
 * (created_at, notification id): an item whose notification was created
 * before the position but stored after it (a late delivery) is not
 * replayed, only listed.
 *
 * The live part comes from the hub (inbox_hub.h), which the inapp provider
 * and the inbox API publish to. 429 when inbox.stream_max or
 * inbox.stream_max_per_user streams are open; 503 without a hub.
 */
#include "http/api_int.h"
#include "stage/pullfan.h" /* counts include pulled feed items */

#include "http/inbox_hub.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Bytes one stream's connection queue holds (the replay must fit in it). */
#define STREAM_BYTES (64u * 1024u)

/* The hub's sink: the connection's stream, set once the hub said yes. */
typedef struct sink {
    http_stream_t *st;
} sink_t;

static hr_t sink_write(void *p, const void *data, size_t len)
{
    return http_stream_write(((sink_t *)p)->st, data, len);
}

static bool sink_gone(void *p) { return http_stream_gone(((sink_t *)p)->st); }

static void sink_close(void *p)
{
    if (((sink_t *)p)->st) http_stream_close(((sink_t *)p)->st);
    free(p);
}

static const inbox_sink_ops_t sink_ops = {sink_write, sink_gone, sink_close};

/* The replay and the first counts into b; *pos_* the position they leave
 * the client at. false after a store failure (nothing to send). */
static bool build_start(http_req_t *rq, const char *user_id, bool resume, int64_t last_ms,
                        const char *last_nid, buf_t *b, int64_t *pos_ms, char **pos_nid,
                        char **pos_id)
{
    const config_t *cfg = rq->app->cfg;
    inbox_item_t *items = NULL;
    char *next = NULL;
    int n = 0;
    int want = resume ? cfg->inbox_stream_replay : 1;
    /* the inbox as the user sees it: pulled feed items too */
    hr_t r = pull_inbox_list(rq->app, user_id, INBOX_ACTIVE, NULL, want, &items, &n, &next);
    if (r != HR_OK) return false;
    *pos_ms = last_ms;
    *pos_nid = xstrdup(last_nid);
    buf_append_str(b, "retry: 1000\n\n");
    bool reset = false;
    int newer = 0; /* items[0..newer) are after the client's position */
    if (resume)
        while (newer < n && (items[newer].created_at_ms > last_ms ||
                             (items[newer].created_at_ms == last_ms &&
                              strcmp(items[newer].notification_id, last_nid) > 0)))
            newer++;
    if (resume && newer == n && next) {
        /* more missed than the replay carries: the position moves to the newest */
        reset = true;
        free(*pos_nid);
        *pos_ms = items[0].created_at_ms;
        *pos_nid = xstrdup(items[0].notification_id);
    } else if (resume) {
        for (int i = newer - 1; i >= 0; i--) {
            json_t *doc = inbox_item_json(&items[i]);
            char *data = json_dumps(doc, JSON_COMPACT);
            json_decref(doc);
            if (!data) continue;
            buf_printf(b, "id: %" PRId64 ":%s\nevent: item\ndata: %s\n\n", items[i].created_at_ms,
                        items[i].notification_id, data);
            free(data);
        }
        if (newer) {
            free(*pos_nid);
            *pos_ms = items[0].created_at_ms;
            *pos_nid = xstrdup(items[0].notification_id);
        }
    } else if (n) {
        free(*pos_nid);
        *pos_ms = items[0].created_at_ms;
        *pos_nid = xstrdup(items[0].notification_id);
    }
    inbox_items_free(items, n);
    free(next);
    *pos_id = *pos_ms > 0 ? xasprintf("%" PRId64 ":%s", *pos_ms, *pos_nid) : xstrdup("0");
    if (reset) buf_printf(b, "id: %s\nevent: reset\ndata: {}\n\n", *pos_id);
    int64_t unread = 0, unseen = 0;
    if (pull_inbox_counts(rq->app, user_id, &unread, &unseen) != HR_OK) return false;
    buf_printf(b, "id: %s\nevent: counts\ndata: {\"unread\":%" PRId64 ",\"unseen\":%" PRId64 "}\n\n",
                *pos_id, unread, unseen);
    return true;
}

void api_inbox_stream(http_req_t *rq, http_resp_t *rs)
{
    inbox_hub_t *hub = rq->app->inbox_hub;
    if (!hub) {
        resp_problem(rs, 503, PROBLEM_UNAVAILABLE, NULL, "this process serves no live streams");
        return;
    }
    bool bad = false;
    const char *last = req_header(rq, "Last-Event-ID");
    const char *field = "Last-Event-ID";
    if (!last) {
        last = req_query(rq, "last_event_id", &bad);
        field = "last_event_id";
    }
    int64_t last_ms = 0;
    const char *last_nid = "";
    if (bad || (last && !inbox_event_id_parse(last, &last_ms, &last_nid))) {
        resp_problem(rs, 400, PROBLEM_PARAM, field,
                     "must be an id this stream sent (<created_ms>:<notification_id>)");
        return;
    }
    const char *user_id = api_user_ref(rq, rq->params[0]);
    sink_t *sink = xcalloc(1, sizeof(*sink));
    inbox_sub_t *sub = NULL;
    bool per_user = false;
    if (inbox_hub_join(hub, user_id, &sink_ops, sink, &per_user, &sub) != HR_OK) {
        free(sink);
        resp_header(rs, "Retry-After", "%d", 5);
        resp_problem(rs, 429, NULL, NULL, "too many live streams are open %s (%s)",
                     per_user ? "for this user" : "on this server",
                     per_user ? "inbox.stream_max_per_user" : "inbox.stream_max");
        return;
    }
    /* joined first, so nothing published from here on is missed */
    buf_t b;
    buf_init(&b, 0); /* bounded by inbox.stream_replay items */
    int64_t pos_ms = 0;
    char *pos_nid = NULL, *pos_id = NULL;
    if (!build_start(rq, user_id, last != NULL, last_ms, last_nid, &b, &pos_ms, &pos_nid,
                     &pos_id)) {
        buf_release(&b);
        free(pos_nid);
        free(pos_id);
        inbox_hub_leave(hub, sub); /* closes nothing: no stream yet */
        api_answer_backend(rs, HR_ERR, "the inbox");
        return;
    }
    resp_header(rs, "X-Accel-Buffering", "no");
    sink->st = resp_stream(rq, rs, 200, "text/event-stream; charset=utf-8", STREAM_BYTES);
    if (b.len && http_stream_write(sink->st, b.data, b.len) != HR_OK) {
        /* the replay alone fills the queue: tell the client to reload instead */
        char *reset = xasprintf("retry: 1000\n\nid: %s\nevent: reset\ndata: {}\n\n", pos_id);
        http_stream_write(sink->st, reset, strlen(reset));
        free(reset);
    }
    buf_release(&b);
    /* a live item at or before the replayed position was in the replay */
    inbox_hub_release(hub, sub, last ? pos_ms : 0, pos_nid, pos_id);
    free(pos_nid);
    free(pos_id);
}
