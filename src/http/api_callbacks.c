/*
 * api_callbacks.c - delivery callbacks: providers report what became of a
 * message herald handed them, and the notification moves from sent to
 * delivered, undelivered or bounced.
 *
 *   POST /v1/callbacks/twilio/{provider}?nid=<notification id>
 *        Twilio's status callback (form-encoded MessageSid, MessageStatus,
 *        ErrorCode), signed with X-Twilio-Signature
 *   POST /v1/callbacks/sendgrid/{provider}
 *        SendGrid's event webhook (a JSON array of events carrying the
 *        custom argument herald_notification_id), optionally signed
 *        (X-Twilio-Email-Event-Webhook-Signature / -Timestamp)
 *   -> 204 once recorded (or when there is nothing to record); 400 a body
 *      that cannot be read, naming the field; 403 a signature that does
 *      not verify; 404 no such provider instance of that type; 503 with
 *      Retry-After when the bus or the store failed (the provider retries).
 *
 * DESIGN. Providers cannot send our API keys, so these paths take none;
 * the signature is the protection (Twilio: HMAC-SHA1 with the account's
 * auth token over the public URL and the sorted parameters; SendGrid:
 * ECDSA with the key SendGrid shows when signing is enabled). The public
 * URL is provider.<name>.status_callback_url + the request target, since
 * herald may sit behind a proxy that changes scheme and host.
 *
 * A report is recorded the way every stage records a status: a REC_STATUS
 * record made by lifecycle_transition() from the notification's stored
 * row (user, channel, address), produced to notification-status keyed by
 * the user, and answered 2xx only once the bus acknowledged it; the status
 * sink applies the rank rule, so a report never moves a delivered
 * notification back and the first of delivered / undelivered / bounced
 * stays. This works on Kafka with any number of herald processes. A
 * report for a notification the store does not know (pruned, or its sent
 * status not stored yet while the sink lags: looked up again for up to
 * CB_SINK_WAIT_MS first) is counted and answered 204:
 * an error would only make the provider retry a report herald cannot use.
 * Dead addresses (Twilio 30003/30005/30006, an e-mail hard bounce) are
 * invalidated in the store once the record is acknowledged.
 */
#include "http/api_int.h"

#include "core/log.h"
#include "metrics/metrics.h"
#include "model/lifecycle.h"
#include "provider/sendgrid.h"
#include "provider/settings.h"
#include "provider/twilio.h"
#include "stage/stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CB_STAGE "callbacks"
#define TWILIO_PARAMS_MAX 64
#define DETAIL_MAX 200

/* One report to record. */
typedef struct report {
    notif_row_t row;            /* the notification as stored */
    notif_status_t to;
    char detail[DETAIL_MAX + 1];/* error text, or the provider's message id (delivered) */
    bool invalidate;            /* the address is dead */
    int outcome;                /* METRIC_CB_* */
} report_t;

static void count(int provider, int outcome, int n)
{
    METRIC_ADD_AT(callback_events, METRIC_CB_AT(provider, outcome), n);
}

/* The instance {provider} if it is configured with this type; else answers
 * 404 and returns NULL. */
static const char *instance_of(http_req_t *rq, http_resp_t *rs, const char *type)
{
    const char *name = rq->params[0];
    const config_t *cfg = rq->app->cfg;
    char prefix[256];
    int w = snprintf(prefix, sizeof(prefix), "provider.%s.", name);
    bool configured = false;
    if (w > 0 && (size_t)w < sizeof(prefix))
        for (const char *const *kv = config_provider_kv(cfg); kv[0] && !configured; kv += 2)
            configured = strncmp(kv[0], prefix, (size_t)w) == 0;
    if (!configured || strcmp(provider_instance_type(cfg, name), type) != 0) {
        resp_problem(rs, 404, NULL, "provider", "no %s provider named '%s' is configured", type, name);
        return NULL;
    }
    return name;
}

typedef struct setting_ctx {
    const config_t *cfg;
    const char *instance;
} setting_ctx_t;

static const char *setting_get(const void *ctx, const char *key)
{
    const setting_ctx_t *c = ctx;
    return provider_setting(c->cfg, c->instance, key);
}

/* The stored row of notification id into rp->row. HR_OK, HR_NOTFOUND, or
 * the store's error. */
/* A report can outrun the sink: the provider may call back before the
 * status sink (which waits up to status.linger_ms for fuller transactions,
 * and lags under load) has stored the notification's sent status. A report
 * for an id the store does not know yet is looked up again until this long
 * after the request's first such miss; then it is counted unknown. */
#define CB_SINK_WAIT_MS 2000
#define CB_SINK_POLL_MS 20

/* *until: the request's wait deadline (0 = none yet), shared by its reports
 * so that a request never waits more than CB_SINK_WAIT_MS in all. */
static hr_t load_row(http_req_t *rq, const char *id, report_t *rp, int64_t *until)
{
    for (;;) {
        memset(&rp->row, 0, sizeof(rp->row));
        hr_t r = store_notif_get(rq->app->store, id, &rp->row, NULL, NULL);
        if (r != HR_NOTFOUND) return r;
        notif_row_clear(&rp->row);
        int64_t now = hclock_mono_ns() / 1000000;
        if (!*until) *until = now + CB_SINK_WAIT_MS;
        if (now >= *until || atomic_load(&rq->app->stopping)) return r;
        usleep(CB_SINK_POLL_MS * 1000);
    }
}

static void reports_free(report_t *rp, int n)
{
    for (int i = 0; i < n; i++) notif_row_clear(&rp[i].row);
    free(rp);
}

/* Produces the status records of rp[0..n), waits for the bus, then
 * invalidates dead addresses and answers 204; 503 when the bus did not
 * acknowledge. Counts every report's outcome. */
static void record(http_req_t *rq, http_resp_t *rs, int provider, report_t *rp, int n)
{
    app_t *app = rq->app;
    bus_batch_t *batch = bus_batch_new();
    buf_t enc;
    buf_init(&enc, 0);
    hr_t r = HR_OK;
    int64_t now = hclock_now_ms();
    for (int i = 0; i < n && r == HR_OK; i++) {
        notif_row_t *w = &rp[i].row;
        notif_t x;
        memset(&x, 0, sizeof(x));
        x.kind = REC_STATUS;
        x.channel = w->channel;
        x.priority = PRIO_NORMAL;
        x.status = w->status;
        x.attempt = (uint16_t)(w->attempt > 0 ? w->attempt : 0);
        x.created_at_ms = w->created_at_ms;
        x.notification_id = HSTR(w->notification_id);
        x.event_id = HSTR(w->event_id);
        x.user_id = HSTR(w->user_id);
        x.category = HSTR(w->category);
        x.title = HSTR(w->title);
        x.body = HSTR(w->body);
        x.address = HSTR(w->address);
        x.traceparent = HSTR(w->traceparent);
        x.quiet_start_min = x.quiet_end_min = NOTIF_QUIET_NONE;
        lifecycle_transition(&x, rp[i].to, now, HSTR(rp[i].detail), CB_STAGE);
        buf_reset(&enc);
        /* the stored row holds the content: a report carries none */
        r = notif_encode_status(&x, false, &enc);
        if (r == HR_OK)
            r = stage_produce(app, TOPIC_STATUS, -1, x.user_id.p, x.user_id.n, enc.data, enc.len, batch);
    }
    buf_release(&enc);
    hr_t acked = bus_batch_wait(app->bus, batch, app->cfg->ingest_ack_timeout_ms);
    if (acked == HR_TIMEOUT) bus_batch_abandon(batch);
    else bus_batch_free(batch);
    if (r == HR_OK) r = acked;
    if (r != HR_OK) {
        log_warn(CB_STAGE, "recording %d delivery report(s) failed: %s", n, hr_str(r));
        count(provider, METRIC_CB_UNAVAILABLE, 1);
        resp_header(rs, "Retry-After", "%d", RETRY_AFTER_S);
        resp_problem(rs, 503, PROBLEM_UNAVAILABLE, NULL, "the report could not be recorded now: %s",
                     hr_str(r));
        return;
    }
    for (int i = 0; i < n; i++) {
        count(provider, rp[i].outcome, 1);
        notif_row_t *w = &rp[i].row;
        if (!rp[i].invalidate || !w->user_id || !w->address || !*w->address) continue;
        hr_t v = store_address_invalidate(app->store, w->user_id, w->channel, w->address, rp[i].detail);
        if (v != HR_OK && v != HR_NOTFOUND)
            log_warn(CB_STAGE, "cannot mark %s's address invalid: %s", w->user_id, hr_str(v));
        else
            METRIC_INC(addresses_invalidated);
    }
    resp_text(rs, 204, NULL, NULL, 0);
}

/* ------------------------------------------------------------- Twilio */

/* The media type of the request body, without parameters. */
static bool media_is(http_req_t *rq, const char *want)
{
    const char *ct = req_header(rq, "Content-Type");
    if (!ct) return false;
    while (*ct == ' ' || *ct == '\t') ct++;
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
    return n == strlen(want) && strncasecmp(ct, want, n) == 0;
}

/* Splits an application/x-www-form-urlencoded body into decoded
 * parameters (kept with the request). False with *bad naming the problem. */
static bool form_parse(http_req_t *rq, twilio_param_t *out, int *n, const char **bad)
{
    const char *p = rq->body.data ? rq->body.data : "", *end = p + rq->body.len;
    *n = 0;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if (e > p) {
            const char *eq = memchr(p, '=', (size_t)(e - p));
            const char *ve = eq ? eq : e;
            char *name = NULL, *value = NULL;
            size_t nl = 0, vl = 0;
            if (*n == TWILIO_PARAMS_MAX) {
                *bad = "more parameters than a status callback has";
                return false;
            }
            if (!http_pct_decode(p, (size_t)(ve - p), true, &name, &nl) ||
                !http_pct_decode(eq ? eq + 1 : e, eq ? (size_t)(e - eq - 1) : 0, true, &value, &vl)) {
                free(name);
                *bad = "malformed percent-encoding";
                return false;
            }
            req_keep(rq, name);
            req_keep(rq, value);
            if (nl == 0 || strlen(name) != nl || strlen(value) != vl) {
                *bad = "an empty parameter name or a NUL byte";
                return false;
            }
            out[*n].name = name;
            out[*n].value = value;
            (*n)++;
        }
        p = amp ? amp + 1 : end;
    }
    return true;
}

static const char *param(const twilio_param_t *ps, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(ps[i].name, name) == 0) return ps[i].value;
    return NULL;
}

/* The URL Twilio called: status_callback_url (or http://<Host>) + the
 * request target. Kept with the request. */
static const char *public_url(http_req_t *rq, const char *base)
{
    buf_t b;
    buf_init(&b, 0);
    if (base && *base) {
        size_t n = strlen(base);
        while (n && base[n - 1] == '/') n--;
        buf_append(&b, base, n);
    } else {
        const char *host = req_header(rq, "Host");
        buf_printf(&b, "http://%s", host ? host : "");
    }
    buf_append_str(&b, rq->target_copy ? rq->target_copy : "");
    return req_keep(rq, (char *)buf_cstr(&b));
}

void api_cb_twilio(http_req_t *rq, http_resp_t *rs)
{
    const int P = METRIC_CB_TWILIO;
    const char *inst = instance_of(rq, rs, "twilio");
    if (!inst) return;
    if (!media_is(rq, "application/x-www-form-urlencoded")) {
        count(P, METRIC_CB_MALFORMED, 1);
        resp_header(rs, "Accept", "application/x-www-form-urlencoded");
        resp_problem(rs, 415, NULL, "Content-Type", "Content-Type must be application/x-www-form-urlencoded");
        return;
    }
    twilio_param_t ps[TWILIO_PARAMS_MAX];
    int np = 0;
    const char *bad = NULL;
    if (!form_parse(rq, ps, &np, &bad)) {
        count(P, METRIC_CB_MALFORMED, 1);
        resp_problem(rs, 400, PROBLEM_MALFORMED, "body", "the form body is unreadable: %s", bad);
        return;
    }
    /* the signature first: nothing about the request is trusted before */
    const config_t *cfg = rq->app->cfg;
    setting_ctx_t sc = {cfg, inst};
    char *token = NULL, why[256];
    if (provider_secret(setting_get, &sc, inst, "auth_token_file", "auth_token", &token, why,
                        sizeof(why)) != HR_OK) {
        log_error(CB_STAGE, "%s", why);
        count(P, METRIC_CB_UNAVAILABLE, 1);
        resp_header(rs, "Retry-After", "%d", RETRY_AFTER_S);
        resp_problem(rs, 503, PROBLEM_UNAVAILABLE, NULL, "the provider's auth token cannot be read");
        return;
    }
    if (token) {
        const char *url = public_url(rq, provider_setting(cfg, inst, "status_callback_url"));
        bool ok = twilio_signature_ok(token, url, ps, np, req_header(rq, "X-Twilio-Signature"));
        provider_secret_free(token);
        if (!ok) {
            count(P, METRIC_CB_FORBIDDEN, 1);
            resp_problem(rs, 403, NULL, "X-Twilio-Signature", "the request's signature does not verify");
            return;
        }
    }
    bool qbad = false;
    const char *nid = req_query(rq, "nid", &qbad);
    if (qbad || !nid || !http_id_valid(nid, strlen(nid))) {
        count(P, METRIC_CB_MALFORMED, 1);
        resp_problem(rs, 400, PROBLEM_PARAM, "nid", "the query must carry nid, the notification id");
        return;
    }
    const char *status = param(ps, np, "MessageStatus");
    if (!status || !*status) {
        count(P, METRIC_CB_MALFORMED, 1);
        resp_problem(rs, 400, PROBLEM_MALFORMED, "MessageStatus", "MessageStatus is required");
        return;
    }
    bool delivered = strcmp(status, "delivered") == 0;
    if (!delivered && strcmp(status, "undelivered") != 0 && strcmp(status, "failed") != 0) {
        count(P, METRIC_CB_IGNORED, 1); /* queued, sending, sent, accepted, read, ... */
        resp_text(rs, 204, NULL, NULL, 0);
        return;
    }
    const char *code = param(ps, np, "ErrorCode");
    if (code && !*code) code = NULL; /* sent empty with no error */
    if (code && (strspn(code, "0123456789") != strlen(code) || strlen(code) > 9)) {
        count(P, METRIC_CB_MALFORMED, 1);
        resp_problem(rs, 400, PROBLEM_MALFORMED, "ErrorCode", "ErrorCode must be a number");
        return;
    }
    report_t *rp = xcalloc(1, sizeof(*rp));
    int64_t until = 0;
    hr_t r = load_row(rq, nid, rp, &until);
    if (r == HR_NOTFOUND) {
        count(P, METRIC_CB_UNKNOWN, 1);
        resp_text(rs, 204, NULL, NULL, 0);
    } else if (r != HR_OK) {
        count(P, METRIC_CB_UNAVAILABLE, 1);
        api_answer_backend(rs, r, "reading the notification");
    } else {
        const char *sid = param(ps, np, "MessageSid");
        if (delivered) {
            rp->to = ST_DELIVERED;
            rp->outcome = METRIC_CB_DELIVERED;
            snprintf(rp->detail, sizeof(rp->detail), "%s", sid ? sid : "");
        } else {
            rp->to = ST_UNDELIVERED;
            rp->outcome = METRIC_CB_UNDELIVERED;
            /* 30003 unreachable, 30005 unknown, 30006 landline: the number is dead for SMS */
            rp->invalidate = code && (!strcmp(code, "30003") || !strcmp(code, "30005") ||
                                      !strcmp(code, "30006"));
            snprintf(rp->detail, sizeof(rp->detail), "twilio %s%s%s", status,
                     code ? ": error " : "", code ? code : "");
        }
        record(rq, rs, P, rp, 1);
    }
    reports_free(rp, 1);
}

/* ------------------------------------------------------------ SendGrid */

/* An optional string member: absent or null -> NULL; another type -> bad. */
static bool opt_str(json_t *o, const char *key, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = json_string_value(v);
    return !v || json_is_null(v) || json_is_string(v);
}

void api_cb_sendgrid(http_req_t *rq, http_resp_t *rs)
{
    const int P = METRIC_CB_SENDGRID;
    const char *inst = instance_of(rq, rs, "sendgrid");
    if (!inst) return;
    const char *key = provider_setting(rq->app->cfg, inst, "event_public_key");
    if (key && *key) {
        hr_t v = sendgrid_event_verify(key, req_header(rq, "X-Twilio-Email-Event-Webhook-Timestamp"),
                                       rq->body.data ? rq->body.data : "", rq->body.len,
                                       req_header(rq, "X-Twilio-Email-Event-Webhook-Signature"));
        if (v == HR_DECLINED) {
            log_error(CB_STAGE, "provider.%s.event_public_key is not a base64 DER EC public key", inst);
            count(P, METRIC_CB_UNAVAILABLE, 1);
            resp_problem(rs, 500, NULL, NULL, "the provider's event verification key is unusable");
            return;
        }
        if (v != HR_OK) {
            count(P, METRIC_CB_FORBIDDEN, 1);
            resp_problem(rs, 403, NULL, "X-Twilio-Email-Event-Webhook-Signature",
                         "the request's signature does not verify");
            return;
        }
    } else {
        /* Unsigned events could mark any notification delivered or bounced
         * (and a bounce invalidates the address): refused unless the
         * operator says the path is protected some other way. */
        const char *open = provider_setting(rq->app->cfg, inst, "accept_unsigned_events");
        if (!open || strcmp(open, "true") != 0) {
            count(P, METRIC_CB_FORBIDDEN, 1);
            resp_problem(rs, 403, NULL, "X-Twilio-Email-Event-Webhook-Signature",
                         "provider.%s has no event_public_key: set it (SendGrid's signed event "
                         "webhook) or accept_unsigned_events = true",
                         inst);
            return;
        }
    }
    json_t *doc = api_body_json(rq, rs);
    if (!doc) {
        count(P, METRIC_CB_MALFORMED, 1);
        return;
    }
    report_t *rp = NULL;
    int n = 0, ignored = 0, no_id = 0, unknown = 0;
    int64_t until = 0;
    size_t nev = json_array_size(doc);
    if (!json_is_array(doc)) {
        count(P, METRIC_CB_MALFORMED, 1);
        resp_problem(rs, 400, PROBLEM_MALFORMED, "body", "the body must be a JSON array of events");
        goto out;
    }
    /* validate every event before anything is recorded */
    for (size_t i = 0; i < nev; i++) {
        json_t *e = json_array_get(doc, i);
        const char *ev, *s;
        char f[64];
        const char *bad = NULL;
        if (!json_is_object(e)) bad = "";
        else if (!opt_str(e, "event", &ev) || !ev) bad = ".event";
        else if (!opt_str(e, SENDGRID_ID_ARG, &s)) bad = "." SENDGRID_ID_ARG;
        else if (!opt_str(e, "type", &s)) bad = ".type";
        else if (!opt_str(e, "sg_message_id", &s)) bad = ".sg_message_id";
        else if (!opt_str(e, "reason", &s)) bad = ".reason";
        if (bad) {
            snprintf(f, sizeof(f), "[%zu]%s", i, bad);
            count(P, METRIC_CB_MALFORMED, 1);
            resp_problem(rs, 400, PROBLEM_MALFORMED, f, "%s",
                         *bad ? "must be a string" : "each event must be a JSON object");
            goto out;
        }
    }
    rp = xcalloc(nev ? nev : 1, sizeof(*rp));
    for (size_t i = 0; i < nev; i++) {
        json_t *e = json_array_get(doc, i);
        const char *ev = json_string_value(json_object_get(e, "event"));
        const char *id = json_string_value(json_object_get(e, SENDGRID_ID_ARG));
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *reason = json_string_value(json_object_get(e, "reason"));
        const char *msgid = json_string_value(json_object_get(e, "sg_message_id"));
        report_t *p = &rp[n];
        if (!strcmp(ev, "delivered")) {
            p->to = ST_DELIVERED;
            p->outcome = METRIC_CB_DELIVERED;
            snprintf(p->detail, sizeof(p->detail), "%s", msgid ? msgid : "");
        } else if (!strcmp(ev, "bounce") && (!type || !strcmp(type, "bounce"))) {
            p->to = ST_BOUNCED; /* a hard bounce: the address is dead */
            p->outcome = METRIC_CB_BOUNCED;
            p->invalidate = true;
            snprintf(p->detail, sizeof(p->detail), "sendgrid bounce: %.180s", reason ? reason : "");
        } else if (!strcmp(ev, "dropped") || !strcmp(ev, "bounce")) {
            p->to = ST_UNDELIVERED; /* dropped, or a bounce of type blocked */
            p->outcome = METRIC_CB_UNDELIVERED;
            snprintf(p->detail, sizeof(p->detail), "sendgrid %s: %.180s",
                     !strcmp(ev, "dropped") ? "dropped" : "blocked", reason ? reason : "");
        } else {
            ignored++; /* processed, deferred, open, click, ... */
            continue;
        }
        if (!id || !*id) {
            no_id++;
            continue;
        }
        hr_t r = http_id_valid(id, strlen(id)) ? load_row(rq, id, p, &until) : HR_NOTFOUND;
        if (r == HR_NOTFOUND) {
            notif_row_clear(&p->row);
            unknown++;
            continue;
        }
        if (r != HR_OK) {
            notif_row_clear(&p->row);
            count(P, METRIC_CB_UNAVAILABLE, 1);
            api_answer_backend(rs, r, "reading the notification");
            goto out;
        }
        n++;
    }
    count(P, METRIC_CB_IGNORED, ignored);
    count(P, METRIC_CB_NO_ID, no_id);
    count(P, METRIC_CB_UNKNOWN, unknown);
    if (n) record(rq, rs, P, rp, n);
    else resp_text(rs, 204, NULL, NULL, 0);
out:
    if (rp) reports_free(rp, n);
    json_decref(doc);
}
