/*
 * lifecycle.h - the notification lifecycle: the one table of statuses
 * (name, rank, final) and the one transition function that fan-out,
 * dispatch and the store use.
 *
 * DESIGN §4 lists the statuses. The store keeps one row per notification;
 * statuses of one notification can arrive out of order (a re-processed
 * batch, a redrive), so a stored row moves only by the rank rule:
 *
 *   a row whose status has rank 0 takes any status; a row whose status has
 *   rank > 0 takes only a status of higher rank.
 *
 * Ranks: dead 1 < sent 2 = digested 2 < delivered = undelivered = bounced 3,
 * everything else 0. digested (collapsed into a digest, model/digest.h)
 * ranks with sent: the digest delivered it, so nothing sends it again. dead < sent so that a dead-lettered notification redriven
 * successfully becomes sent. The three of rank 3 are what a provider
 * reports after accepting it (delivery callbacks, src/http/api_callbacks.c);
 * being equal, the first report to arrive stays (a late "bounced" never
 * replaces "delivered"). A provider's final failure is `undelivered`, not
 * `failed`: failed has rank 0 (herald's own "will try again"), so it would
 * let any later record move the row and a re-processed `sent` overwrite it.
 * The store's SQL is generated from the same table (lifecycle_rank_sql), so
 * the rule is written once.
 *
 * Threads: the table is constant; every function is pure except
 * lifecycle_transition, which writes only the given record (and a debug
 * log line).
 */
#ifndef HERALD_LIFECYCLE_H
#define HERALD_LIFECYCLE_H

#include "model/notif.h"

#include <stdbool.h>

/* X(status, name, rank, final): the one table. `final` means no stage will
 * produce a later status for the notification on its own (a redrive may). */
#define LIFECYCLE_STATUSES(X)                         \
    X(ST_PENDING, "pending", 0, false)                \
    X(ST_SENT, "sent", 2, true)                       \
    X(ST_DELIVERED, "delivered", 3, true)             \
    X(ST_FAILED, "failed", 0, false)                  \
    X(ST_SUPPRESSED, "suppressed", 0, true)           \
    X(ST_RATE_LIMITED, "rate_limited", 0, false)      \
    X(ST_DEFERRED, "deferred", 0, false)              \
    X(ST_DEAD, "dead", 1, true)                       \
    X(ST_UNDELIVERED, "undelivered", 3, true)         \
    X(ST_BOUNCED, "bounced", 3, true)                 \
    X(ST_DIGESTED, "digested", 2, true)

/* Rank for the replacement rule; 0 for unknown values. */
int lifecycle_rank(notif_status_t s);
/* True for statuses no stage moves on from by itself. */
bool lifecycle_is_final(notif_status_t s);
/* The rank rule: may a stored row in `from` take `to`? */
bool lifecycle_may_replace(notif_status_t from, notif_status_t to);

/* Did a provider accept the notification (sent, or a report after it:
 * rank >= 2)? Dispatch must not send it again. */
bool lifecycle_was_sent(notif_status_t s);

/* SQL expression giving the rank of the integer status column `col`,
 * generated from the table: "(CASE col WHEN 7 THEN 1 ... ELSE 0 END)".
 * Writes into out (NUL-terminated); returns out. cap >= 160 is enough. */
const char *lifecycle_rank_sql(const char *col, char *out, size_t cap);

/* The one transition: turns n into the status record (kind REC_STATUS) for
 * status `to` at at_ms, with `detail` as the error (failed, dead,
 * suppressed, ...) or the provider's message id (sent, delivered). `by`
 * names the stage for the debug trace line. Strings are borrowed: detail
 * must outlive the encoding of n. */
void lifecycle_transition(notif_t *n, notif_status_t to, int64_t at_ms, hstr_t detail,
                          const char *by);

#endif
