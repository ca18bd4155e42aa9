/*
 * digest.h - dispatch's side of digests (model/digest.h has the design):
 * adds the members of a batch to the store's digest state and turns a
 * digest's flush token into the notification that is delivered.
 *
 * The state is owned by the dispatcher of the user's partition: members and
 * tokens travel on notifications-<channel> keyed by user_id, so one worker
 * sees all of a user's, in order. A member is added to the store (one
 * transaction for the batch's members) before the batch's statuses are
 * produced, so before its input offset can be stored: a crash repeats the
 * add, which counts a member once (by notification id). Its status is
 * `digested`, its error "into <digest id>".
 *
 * Threads: a digest_stage_t belongs to one dispatcher thread.
 */
#ifndef HERALD_STAGE_DIGEST_H
#define HERALD_STAGE_DIGEST_H

#include "app.h"
#include "bus/bus.h"

typedef struct digest_stage digest_stage_t;

/* For a dispatcher of channel ch with batches of at most cap records. */
digest_stage_t *digest_stage_new(app_t *app, channel_t ch, int cap);
void digest_stage_free(digest_stage_t *ds);

/* What digest_stage_take made of a record. */
typedef enum digest_take {
    DIGEST_TAKE_SEND = 0,       /* an ordinary notification, or a flush made into
                                 * the digest's notification: send it */
    DIGEST_TAKE_HELD,           /* a member, queued: not sent */
    DIGEST_TAKE_DROP,           /* a token of a digest the store no longer has */
} digest_take_t;

/* Starts a batch (forgets the previous one's texts). */
void digest_stage_begin(digest_stage_t *ds);
/* Looks at x (decoded from m, which stays valid through the batch), after
 * the "already sent" checks and the due-time deferral. A member is queued
 * (HELD). A flush token first adds the members queued so far, then closes
 * its digest and rewrites x into the delivered notification (its title and
 * body spliced with count and actors, its metadata dropped; the strings
 * live until the next begin): SEND. */
hr_t digest_stage_take(digest_stage_t *ds, notif_t *x, const bus_msg_t *m, int64_t now,
                       bus_batch_t *batch, digest_take_t *what);
/* Adds the queued members to the store and produces their `digested`
 * statuses with batch. Call before the batch ends. */
hr_t digest_stage_end(digest_stage_t *ds, int64_t now, bus_batch_t *batch);

#endif
