/*
 * provider.h - delivery providers behind one vtable: sandbox now; APNs,
 * FCM, Twilio, SendGrid, SMTP and webhooks later. A provider sends a batch of
 * notifications of one channel and classifies each outcome exactly once
 * (its classifier decides retriable vs permanent; dispatch branches on the
 * class, never on raw protocol codes).
 *
 * Threads: a provider_t is used by one dispatcher thread at a time.
 */
#ifndef HERALD_PROVIDER_H
#define HERALD_PROVIDER_H

#include "core/common.h"
#include "model/notif.h"

typedef enum send_class {
    SEND_OK = 0,        /* accepted by the provider */
    SEND_RETRY,         /* 5xx, timeout, 429: try again later */
    SEND_PERMANENT,     /* bad token, bad number: never retry */
} send_class_t;

typedef struct send_result {
    send_class_t cls;
    char msg_id[96];    /* provider's message id on success */
    char error[160];    /* reason otherwise */
} send_result_t;

typedef struct provider provider_t;

typedef struct provider_ops {
    const char *name;
    /* Sends n notifications; fills res[i] for each. HR_OK unless the
     * provider itself is broken (then every result is SEND_RETRY). */
    hr_t (*send)(provider_t *p, const notif_t *const *n, int count, send_result_t *res);
    void (*free)(provider_t *p);
} provider_ops_t;

struct provider {
    const provider_ops_t *ops;
};

/* Sandbox: appends one JSON line per delivery (notification_id, event_id,
 * user_id, channel, address, title, body, attempt) to
 * <dir>/<channel>.jsonl, written before send() returns. null_mode records
 * nothing (benchmarks). Several dispatcher threads may share the file: lines
 * are written whole with O_APPEND. */
hr_t sandbox_provider_new(const char *dir, channel_t ch, bool null_mode, provider_t **out);

static inline hr_t provider_send(provider_t *p, const notif_t *const *n, int count,
                                 send_result_t *res)
{
    return p->ops->send(p, n, count, res);
}

static inline void provider_free(provider_t *p)
{
    if (p) p->ops->free(p);
}

#endif
