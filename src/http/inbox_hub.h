/*
 * inbox_hub.h - the in-process hub of live inbox streams: who is watching
 * which user's inbox, and the bounded queue of events waiting for each
 * watcher (GET /v1/users/{user_id}/inbox/stream, api_inbox_stream.c).
 *
 * Producers publish an event for a user (the inapp provider when it stored a
 * new item, from its dispatcher thread; the inbox API after a mark or a
 * delete); the hub copies it to the queue of every stream of that user. A
 * pump (its own thread, or inbox_hub_pump() called by a test) hands queued
 * events to each stream's sink as Server-Sent Events text and writes a
 * heartbeat comment to a stream idle for heartbeat_ms.
 *
 * Bounded: at most queue_max events wait per stream. A stream whose queue is
 * full when an event arrives (its client reads too slowly, so the sink said
 * "again" and events piled up) is dropped: its queue freed, its sink closed,
 * METRIC inbox_stream_dropped counted. The client reconnects with
 * Last-Event-ID and gets what it missed from the store. At most max_streams
 * streams in total and max_per_user per user; more are refused at join.
 *
 * Event ids: an item event's id is its position in the user's inbox,
 * "<created_at_ms>:<notification_id>" (the store's order). Other events
 * (counts, marks) carry the id of the newest item the stream has sent, so
 * that the id a client resumes from is always a position in the inbox.
 *
 * Ownership: the hub owns each stream from inbox_hub_join() to its end and
 * closes its sink exactly once (sink ops close()). The joiner may write to
 * the sink itself until it calls inbox_hub_release() (the replay), never
 * after.
 *
 * Threads: every function is safe from any thread (one mutex); sink writes
 * happen under it and must not block (http_stream_write does not).
 */
#ifndef HERALD_INBOX_HUB_H
#define HERALD_INBOX_HUB_H

#include "core/common.h"
#include "store/store.h"

typedef struct inbox_hub inbox_hub_t;
typedef struct inbox_sub inbox_sub_t;

typedef struct inbox_hub_opts {
    int max_streams;            /* in total */
    int max_per_user;
    int queue_max;              /* events waiting per stream */
    int64_t heartbeat_ms;       /* a comment line after this long without a write */
    bool thread;                /* run the pump on a thread of its own */
    int64_t (*now_ms)(void);    /* NULL = a monotonic clock; tests inject one */
    /* A user's unread and unseen counts for the "counts" events of
     * inbox_hub_new_item (the inbox merged with pulled feed items);
     * NULL = store_inbox_counts. */
    hr_t (*counts)(void *ctx, const char *user_id, int64_t *unread, int64_t *unseen);
    void *counts_ctx;
} inbox_hub_opts_t;

/* Where a stream's text goes (an http_stream_t in the server). write:
 * HR_OK, HR_AGAIN (no room now: try again later, nothing taken), HR_CLOSED
 * (the client has gone). gone: has the client gone (checked on every pump
 * pass; NULL = only writes tell). close: the hub is done with the sink. */
typedef struct inbox_sink_ops {
    hr_t (*write)(void *sink, const void *data, size_t len);
    bool (*gone)(void *sink);
    void (*close)(void *sink);
} inbox_sink_ops_t;

inbox_hub_t *inbox_hub_new(const inbox_hub_opts_t *o);
/* Stops the pump and closes every stream's sink. NULL is a no-op. */
void inbox_hub_free(inbox_hub_t *h);

/* Adds a stream of user_id (the stored, tenant-qualified id) writing to
 * sink. It starts held: events queue but none is written until
 * inbox_hub_release(). HR_AGAIN when a limit is reached (*per_user says
 * which): nothing is kept and the caller still owns sink. */
hr_t inbox_hub_join(inbox_hub_t *h, const char *user_id, const inbox_sink_ops_t *ops, void *sink,
                    bool *per_user, inbox_sub_t **out);
/* Ends the hold once the joiner has written its replay: events queued since
 * the join are written, except items at or before position (after_ms,
 * after_nid) (the replay sent them); last_id is the id counts events carry
 * until the next item. sub must not be used after. */
void inbox_hub_release(inbox_hub_t *h, inbox_sub_t *sub, int64_t after_ms, const char *after_nid,
                       const char *last_id);
/* Ends a held stream (the joiner failed before release): its sink is closed. */
void inbox_hub_leave(inbox_hub_t *h, inbox_sub_t *sub);

/* Does anyone watch user_id? (Lets producers skip building events.) */
bool inbox_hub_watched(inbox_hub_t *h, const char *user_id);
/* The users watched now, each once, into *users (allocated; free each and
 * the array). Returns how many. (Pull fan-out: which of them see a new
 * feed item is the store's to say.) */
int inbox_hub_users(inbox_hub_t *h, char ***users);
/* Queues an event for every stream of user_id. data: one line of JSON.
 * An item event gives its position (item_ms > 0, item_nid); others 0, NULL. */
void inbox_hub_publish(inbox_hub_t *h, const char *user_id, const char *event, const char *data,
                       int64_t item_ms, const char *item_nid);

/* A new item was stored (the inapp provider, on its dispatcher thread, or
 * pull fan-out for a watched follower): when its user is watched,
 * publishes it ("item") and the user's counts ("counts": opts.counts, else
 * read from store). */
void inbox_hub_new_item(inbox_hub_t *h, store_t *store, const inbox_item_t *it);
/* Publishes a "counts" event {"unread","unseen"}. */
void inbox_hub_counts(inbox_hub_t *h, const char *user_id, int64_t unread, int64_t unseen);

/* One pass of the pump: writes what waits, heartbeats, ends what has gone.
 * Returns the events written. (The pump thread calls it; tests without the
 * thread call it themselves.) */
int inbox_hub_pump(inbox_hub_t *h);
/* Streams open now (held ones included). */
int inbox_hub_streams(inbox_hub_t *h);

/* An event id "<ms>:<nid>" into its parts; false when malformed. *nid
 * points into id. "0" or "" mean the start (ms 0, nid ""). */
bool inbox_event_id_parse(const char *id, int64_t *ms, const char **nid);

#endif
