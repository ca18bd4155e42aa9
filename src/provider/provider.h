/*
 * provider.h - delivery providers behind one vtable, a registry of them by
 * name, and the set of providers one dispatcher thread uses.
 *
 * A provider accepts notifications asynchronously and completes each one
 * exactly once with a classed result (send_result_t): submit() hands it a
 * notification, and the completion arrives later through the done callback
 * given when the provider was opened. Providers that speak HTTP run their
 * requests on the dispatcher thread's libcurl multi engine (http.h): one
 * thread drives hundreds of HTTP/2 streams. Each such provider is a pure
 * request builder plus a pure response classifier (tested on fixtures);
 * the classifier is the only place that looks at the provider's raw codes,
 * and dispatch branches on the class. docs/internals/provider.md says how
 * to add one.
 *
 * Ownership and completion:
 *  - submit() borrows the notification and the result slot. Both (and the
 *    bytes the notification's strings point into) stay valid until the
 *    completion for that submit has been delivered.
 *  - submit() returns HR_OK (accepted: exactly one completion follows) or
 *    HR_AGAIN (the provider has max_in_flight requests in flight: not
 *    accepted, no completion; poll for completions and submit again).
 *    A failure of one notification (a request that cannot be built) is its
 *    completion, never a submit error.
 *  - Completions are delivered only from provider_set_poll() and
 *    provider_set_close(), on the caller's thread, never from inside
 *    submit(): the callback may submit again.
 *  - At close every request still in flight is completed (with SEND_RETRY
 *    "shutdown" unless the provider can finish it without waiting) and
 *    the number is logged. Dispatch waits for its batch's
 *    completions before returning, so normally none are left.
 *
 * The vtable, the base struct and the helpers providers use are in
 * provider_int.h; callers (dispatch) use only this header.
 *
 * Threads: a provider and a provider set belong to one dispatcher thread.
 * The registry table is constant.
 */
#ifndef HERALD_PROVIDER_H
#define HERALD_PROVIDER_H

#include "config/config.h"
#include "core/common.h"
#include "model/notif.h"

/* The result classes. Dispatch acts on the class only. */
typedef enum send_class {
    SEND_OK = 0,        /* accepted by the provider; msg_id is its id */
    SEND_RETRY,         /* transient: 5xx, timeout, connection lost; retry_after_ms hint */
    SEND_THROTTLED,     /* the provider asks us to slow down (429); retry_after_ms hint */
    SEND_PERMANENT,     /* this notification will never go through (bad token, 4xx) */
    SEND_FATAL,         /* the provider itself is misconfigured (401/403): pause the
                         * channel, dead-letter nothing */
    SEND__COUNT
} send_class_t;

const char *send_class_name(send_class_t c);

typedef struct send_result {
    send_class_t cls;
    bool address_invalid;       /* PERMANENT: the address (token, number) is dead */
    int64_t retry_after_ms;     /* RETRY / THROTTLED: the provider's hint; 0 = none */
    int code;                   /* the provider's own code (HTTP status); 0 = none */
    char msg_id[96];            /* provider's message id (OK) */
    char error[160];            /* provider's code and reason otherwise ("HTTP 503 ...") */
} send_result_t;

/* Completion of one accepted submit: res (the caller's slot) is filled.
 * Runs on the thread that polls. */
typedef void (*provider_done_fn)(void *ud, send_result_t *res, void *cookie);

/* Fills res as a failure of class cls with printf-style error text. */
void send_result_set(send_result_t *res, send_class_t cls, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------ registry */

/* Checks every provider.* and channel.* setting: channels name known
 * channels and configured providers, each provider's type exists and its
 * keys are ones it accepts. HR_INVALID with why naming the key. Run at
 * startup so a typo stops the process instead of a dispatcher. */
hr_t provider_config_check(const config_t *cfg, char *why, size_t why_len);

/* ------------------------------------------------------------ the set */

/* The providers of one dispatcher (one channel, one thread), with the
 * thread's HTTP engine. Routing: channel.<channel>.providers lists
 * instance names (default "sandbox"; "inapp" for the in-app channel); a notification goes to the listed
 * provider whose name equals its platform field (push: apns | fcm), else
 * to the first listed. */
typedef struct provider_set provider_set_t;

struct app;
/* app: the process's services for providers that need them (the in-app
 * provider: store, SSE hub); may be NULL (tests). Borrowed. */
hr_t provider_set_open(const config_t *cfg, struct app *app, channel_t ch, provider_done_fn done,
                       void *ud, provider_set_t **out, char *why, size_t why_len);
/* Routes n and submits it: HR_OK (one completion follows) or HR_AGAIN
 * (that provider is full: poll, then submit n again). */
hr_t provider_set_submit(provider_set_t *s, const notif_t *n, send_result_t *res, void *cookie);
/* Delivers completions; waits up to timeout_ms for the first one when
 * nothing is ready yet. Returns the number delivered. */
int provider_set_poll(provider_set_t *s, int timeout_ms);
/* Requests accepted and not yet completed, over all providers. */
int provider_set_in_flight(const provider_set_t *s);
/* Per-instance policy state, owned by the set (one dispatcher thread):
 * the instance a notification goes to (index 0..count), its token bucket
 * (provider.<name>.rate/burst, shared by pipeline.workers; policy/bucket.h)
 * and its circuit breaker (provider.<name>.breaker_*; policy/breaker.h). */
struct bucket;
struct breaker;
int provider_set_count(const provider_set_t *s);
int provider_set_route(const provider_set_t *s, const notif_t *n);
struct bucket *provider_set_bucket(provider_set_t *s, int i);
struct breaker *provider_set_breaker(provider_set_t *s, int i);
/* Completes what is left (see the top), logs how many, frees. */
void provider_set_close(provider_set_t *s);

#endif
