/*
 * api_users_import.c - POST /v1/users/import: bulk load of users from
 * NDJSON (application/x-ndjson), one user per line in the shape PUT
 * /v1/users/{user_id} takes, with its user_id.
 *
 * DESIGN: the body is streamed (http_body_stream_t, server.c), never held
 * whole: each piece is cut into lines as it arrives, each line validated
 * like a PUT body, and the good users are written IMPORT_BATCH at a time
 * with store_user_put_batch (one transaction each). Memory is one line
 * (at most IMPORT_LINE_MAX) plus one batch, whatever the body's size. A bad
 * line never stops the import: it is counted and reported with its number
 * (1-based, blank lines counted), the field and the problem; the first
 * IMPORT_ERRORS_MAX are listed. A later line for the same user_id replaces
 * an earlier one, as a second PUT would. A store failure stops the import
 * where it is: the answer is the store's problem (503, 507, 500) carrying
 * the report so far, and lines from stopped_at_line on were not imported,
 * so a client resends from there (a repeated line is harmless).
 *
 * Threads: the connection's thread of the request (feed and answer).
 */
#include "http/api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT_BATCH 1000           /* users per store transaction */
#define IMPORT_LINE_MAX (256 * 1024) /* a user with 16 devices of 4 KiB tokens fits */
#define IMPORT_ERRORS_MAX 1000      /* bad lines listed in the report */

typedef struct import {
    http_req_t *rq;
    buf_t line;                 /* the current line so far (limit IMPORT_LINE_MAX) */
    bool skipping;              /* the current line went over the limit: drop to its end */
    int64_t lineno;             /* lines ended so far */
    int64_t lines, imported, failed; /* non-blank lines, users written, bad lines */
    user_t batch[IMPORT_BATCH];
    int64_t batch_first;        /* line of batch[0] */
    int nbatch;
    json_t *errors;             /* [{line, user_id, field, detail}] */
    bool errors_truncated;
    hr_t failure;               /* a store write failed: HR_OK until then */
    int64_t stopped_at;         /* the first line not imported because of it */
} import_t;

static void import_error(import_t *im, const char *user_id, const char *field, const char *detail)
{
    im->failed++;
    if (json_array_size(im->errors) >= IMPORT_ERRORS_MAX) {
        im->errors_truncated = true;
        return;
    }
    json_array_append_new(im->errors,
                          json_pack("{s:I,s:o,s:o,s:o}", "line", (json_int_t)im->lineno, "user_id",
                                    api_json_str_or_null(user_id), "field",
                                    api_json_str_or_null(field && *field ? field : NULL),
                                    "detail", api_json_str_or_null(detail)));
}

static void import_line_too_long(import_t *im)
{
    char d[96];
    snprintf(d, sizeof(d), "the line is longer than the limit of %d bytes", IMPORT_LINE_MAX);
    im->lineno++;
    im->lines++;
    import_error(im, NULL, NULL, d);
}

/* Writes the batch; false when the store failed (the import stops). */
static bool import_flush(import_t *im)
{
    if (!im->nbatch) return true;
    hr_t r = store_user_put_batch(im->rq->app->store, im->batch, im->nbatch);
    if (r == HR_OK) im->imported += im->nbatch;
    for (int i = 0; i < im->nbatch; i++) user_clear(&im->batch[i]);
    im->nbatch = 0;
    if (r == HR_OK) return true;
    im->failure = r;
    im->stopped_at = im->batch_first;
    return false;
}

/* One complete line (without its '\n'). false when the import must stop. */
static bool import_line(import_t *im, const char *p, size_t n)
{
    problem_t pb = {{0}, {0}};
    json_error_t jerr;
    const char *id = NULL;
    user_t u;

    im->lineno++;
    if (n && p[n - 1] == '\r') n--;
    size_t k = 0;
    while (k < n && (p[k] == ' ' || p[k] == '\t')) k++;
    if (k == n) return true; /* blank */
    im->lines++;
    json_t *doc = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        char d[200];
        snprintf(d, sizeof(d), "not JSON: %s (column %d)", jerr.text, jerr.column);
        import_error(im, NULL, NULL, d);
        return true;
    }
    if (!json_is_object(doc)) {
        import_error(im, NULL, NULL, "must be a JSON object (one user per line)");
        goto out;
    }
    if (!api_body_id(doc, "user_id", &id, &pb)) {
        import_error(im, NULL, pb.field, pb.detail);
        goto out;
    }
    if (!api_user_from_json(doc, id, &u, &pb) || !api_user_webhook_ok(im->rq, &u, &pb)) {
        import_error(im, id, pb.field, pb.detail);
        user_clear(&u);
        goto out;
    }
    const char *ref = api_user_ref(im->rq, id);
    if (ref != id) {
        free(u.user_id);
        u.user_id = xstrdup(ref);
    }
    if (!im->nbatch) im->batch_first = im->lineno;
    im->batch[im->nbatch++] = u;
    if (im->nbatch == IMPORT_BATCH && !import_flush(im)) {
        json_decref(doc);
        return false;
    }
out:
    json_decref(doc);
    return true;
}

static void *import_start(http_req_t *rq)
{
    import_t *im = xcalloc(1, sizeof(*im));
    im->rq = rq;
    buf_init(&im->line, IMPORT_LINE_MAX);
    im->errors = json_array();
    return im;
}

static bool import_feed(http_req_t *rq, void *state, const char *data, size_t n)
{
    import_t *im = state;
    while (n) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        if (!im->skipping && buf_append(&im->line, data, take) != HR_OK) {
            im->skipping = true;
            buf_reset(&im->line);
        }
        data += take;
        n -= take;
        if (!nl) break;
        data++; /* the '\n' */
        n--;
        bool go = true;
        if (im->skipping) {
            import_line_too_long(im);
            im->skipping = false;
        } else {
            go = import_line(im, im->line.data ? im->line.data : "", im->line.len);
        }
        buf_reset(&im->line);
        if (!go) return false;
    }
    return true;
}

static void import_release(void *state)
{
    import_t *im = state;
    for (int i = 0; i < im->nbatch; i++) user_clear(&im->batch[i]);
    buf_release(&im->line);
    json_decref(im->errors);
    free(im);
}

static int64_t import_limit(const config_t *cfg) { return cfg->api_import_max_bytes; }

const http_body_stream_t api_users_import_body = {
    .media = "application/x-ndjson",
    .limit = import_limit,
    .start = import_start,
    .feed = import_feed,
    .release = import_release,
};

static json_t *import_report(import_t *im)
{
    json_t *doc = json_pack("{s:I,s:I,s:I,s:O,s:b}", "lines", (json_int_t)im->lines, "imported",
                            (json_int_t)im->imported, "failed", (json_int_t)im->failed, "errors",
                            im->errors, "errors_truncated", im->errors_truncated);
    if (im->failure != HR_OK)
        json_object_set_new(doc, "stopped_at_line", json_integer((json_int_t)im->stopped_at));
    return doc;
}

void api_users_import(http_req_t *rq, http_resp_t *rs)
{
    import_t *im = rq->sink;
    if (!im) {
        resp_problem(rs, 500, NULL, NULL, "the import did not start");
        return;
    }
    if (rq->too_large) {
        /* the lines before the limit were imported; the one cut is not */
        if (im->failure == HR_OK) import_flush(im);
        resp_problem_ext(rs, 413, NULL, "body", import_report(im),
                         "the body is over the limit of %zu bytes (api.import_max_bytes); the "
                         "lines before it were processed, see imported",
                         rq->body.limit);
        return;
    }
    if (im->failure == HR_OK && !im->skipping && im->line.len) /* a last line without '\n' */
        import_line(im, im->line.data, im->line.len);
    else if (im->failure == HR_OK && im->skipping)
        import_line_too_long(im);
    if (im->failure == HR_OK) import_flush(im);
    if (im->failure != HR_OK) {
        api_answer_backend_ext(rs, im->failure, "importing users", import_report(im));
        return;
    }
    resp_json(rs, 200, import_report(im));
}
