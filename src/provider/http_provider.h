/*
 * http_provider.h - the part every HTTP provider shares: in-flight slots,
 * each with its reused transfer, submit / poll / close, and one log line
 * when the provider starts and stops refusing us. A provider type
 * (webhook, apns, fcm, twilio, sendgrid) supplies a pure builder and a
 * pure classifier through hprov_ops_t and keeps its own state after the
 * hprov_t it starts with.
 *
 * Use: the type's open() parses its keys, allocates its struct (hprov_t
 * first), calls hprov_init(), and sets its provider_ops_t's submit, poll
 * and close to hprov_submit, hprov_poll and hprov_close.
 *
 * Threads: one dispatcher thread, like every provider.
 */
#ifndef HERALD_PROVIDER_HTTP_PROVIDER_H
#define HERALD_PROVIDER_HTTP_PROVIDER_H

#include "provider/http.h"
#include "provider/provider_int.h"

typedef struct hprov hprov_t;

typedef struct hprov_ops {
    /* Builds the request for n into req (already reset). HR_OK starts it;
     * anything else completes n with res, which build must have filled
     * (send_result_set) - e.g. PERMANENT for a notification that cannot
     * be expressed, RETRY for credentials not available yet. */
    hr_t (*build)(hprov_t *hp, const notif_t *n, prov_http_req_t *req, send_result_t *res);
    /* Classes the response into res. msg_id left empty on OK becomes the
     * notification id. */
    void (*classify)(hprov_t *hp, const prov_http_resp_t *resp, send_result_t *res);
    /* Frees what the type added after the hprov_t (not the struct itself);
     * may be NULL. */
    void (*destroy)(hprov_t *hp);
} hprov_ops_t;

typedef struct hprov_slot hprov_slot_t;

struct hprov {
    provider_t base;
    const hprov_ops_t *hops;
    http_engine_t *engine;
    const char *target;         /* what logs name ("https://api.push.apple.com") */
    prov_http_req_t req;        /* scratch for the builder */
    hprov_slot_t *slots;
    int *free_slots;            /* stack of free slot indexes */
    int nfree, cap;
    int nfailed;                /* slots whose request never started */
    bool refusing;              /* the last verdict was FATAL */
};

/* Completions: the type's verdict as it is, except that address_invalid is
 * dropped for a push address that lists several devices ("platform:token"
 * comma separated: invalidating it would remove all of the user's devices
 * for one dead token). */

/* Sets up hp (already zeroed, e.g. by xcalloc) with cap slots. target is
 * borrowed (the config value). */
void hprov_init(hprov_t *hp, const provider_env_t *env, const hprov_ops_t *ops, const char *target,
                int cap);

hr_t hprov_submit(provider_t *p, const notif_t *n, send_result_t *res, void *cookie);
int hprov_poll(provider_t *p);
/* Completes what is left (running transfers as RETRY "shutdown"), calls
 * destroy, frees the struct. */
void hprov_close(provider_t *p);

/* The classes every HTTP provider agrees on for transport failures (no
 * response: timeout, connect, shutdown, dropped): RETRY with the reason.
 * True when it classed resp (result != HTTP_DONE). */
bool hprov_classify_transport(const prov_http_resp_t *resp, send_result_t *res);

/* The Retry-After header of resp in ms (0 when absent). */
int64_t hprov_retry_after(const prov_http_resp_t *resp);

/* "max_in_flight" of env within [1, 100000], default def. */
hr_t hprov_conf_cap(const provider_env_t *env, int64_t def, int *cap, char *why, size_t why_len);

#endif
