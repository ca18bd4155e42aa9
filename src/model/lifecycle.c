/*
 * lifecycle.c - the status table and the one transition function.
 */
#include "model/lifecycle.h"

#include "core/log.h"

#include <stdio.h>

typedef struct status_row {
    int rank;
    bool final;
} status_row_t;

static const status_row_t rows[ST__COUNT] = {
#define ROW(st, name, rank, fin) [st] = {rank, fin},
    LIFECYCLE_STATUSES(ROW)
#undef ROW
};

/* The names in notif.c and the table here must agree. */
#define CHECK_NAME(st, name, rank, fin) _Static_assert(st < ST__COUNT, name);
LIFECYCLE_STATUSES(CHECK_NAME)
#undef CHECK_NAME

int lifecycle_rank(notif_status_t s)
{
    return (unsigned)s < ST__COUNT ? rows[s].rank : 0;
}

bool lifecycle_is_final(notif_status_t s)
{
    return (unsigned)s < ST__COUNT && rows[s].final;
}

bool lifecycle_may_replace(notif_status_t from, notif_status_t to)
{
    int rf = lifecycle_rank(from);
    return rf == 0 || lifecycle_rank(to) > rf;
}

bool lifecycle_was_sent(notif_status_t s)
{
    return lifecycle_rank(s) >= 2;
}

const char *lifecycle_rank_sql(const char *col, char *out, size_t cap)
{
    size_t len = 0;
    int w = snprintf(out, cap, "(CASE %s", col);
    if (w > 0) len = (size_t)w;
    for (int s = 0; s < ST__COUNT && len < cap; s++) {
        if (rows[s].rank == 0) continue;
        w = snprintf(out + len, cap - len, " WHEN %d THEN %d", s, rows[s].rank);
        if (w > 0) len += (size_t)w;
    }
    if (len < cap) snprintf(out + len, cap - len, " ELSE 0 END)");
    return out;
}

void lifecycle_transition(notif_t *n, notif_status_t to, int64_t at_ms, hstr_t detail,
                          const char *by)
{
    notif_status_t from = n->kind == REC_STATUS ? n->status : ST_PENDING;
    n->kind = REC_STATUS;
    n->status = to;
    n->status_at_ms = at_ms;
    if (to == ST_SENT || to == ST_DELIVERED) {
        n->channel_msg_id = detail;
        n->error = (hstr_t){NULL, 0};
    } else {
        n->error = detail;
    }
    log_debug(by ? by : "lifecycle", "%.*s %s -> %s%s%.*s", (int)n->notification_id.n,
              n->notification_id.p ? n->notification_id.p : "", status_name(from),
              status_name(to), detail.n ? ": " : "", (int)detail.n, detail.p ? detail.p : "");
}
