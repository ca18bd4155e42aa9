/*
 * api_fixture.h - what the HTTP tests (tests/unit/http/test_*.c) share:
 * one fixture per test executable (api_setup/api_teardown as the cmocka
 * group setup) holding a real server on an ephemeral port, backed by a real
 * embedded bus and a real SQLite store in a temporary directory; a libcurl
 * client, a raw-socket client for exact bytes on the wire, and a reader of
 * the raw-events topic.
 */
#ifndef HERALD_TEST_API_FIXTURE_H
#define HERALD_TEST_API_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "app.h"
#include "auth/auth.h"
#include "http/http.h"

#include <curl/curl.h>
#include <jansson.h>

#define MAX_BODY (64 * 1024)   /* cfg.http_max_body of the fixture's server */
#define RAW_PARTITIONS 3

typedef struct fixture {
    char dir[64];
    config_t cfg;
    app_t app;
    http_server_t *srv;
    bus_consumer_t *raw;    /* group "api-test" on raw-events */
    int assigned;
    int port;
    char key[APIKEY_LEN + 1];   /* an admin key of tenant "default" */
    const char *use_key;        /* what requests send: F.key unless a test changes it;
                                 * NULL = no key */
    const char *extra_headers[4]; /* header lines every request adds ("Name: value"),
                                   * up to the first NULL; a test sets and clears them */
} fixture_t;

extern fixture_t F;

/* Group setup/teardown: builds and tears down F. */
int api_setup(void **state);
int api_teardown(void **state);

/* One HTTP answer, as the client saw it. */
typedef struct hresp {
    long status;
    char ctype[128];
    char allow[128];
    char retry_after[32];
    char location[512];
    char *body;
    size_t len;
    json_t *json;           /* the body parsed, when it is JSON */
} hresp_t;

/* Sends one request to 127.0.0.1:port; body NULL = none; ctype NULL with a
 * body = JSON. Fails the test when the exchange fails. */
void hreq_at(int port, hresp_t *r, const char *method, const char *path, const char *ctype,
             const char *body);
/* The same to the fixture's server. */
void hreq_ct(hresp_t *r, const char *method, const char *path, const char *ctype,
             const char *body);
void hreq(hresp_t *r, const char *method, const char *path, const char *body);
void hresp_clear(hresp_t *r);
/* Appends the "Authorization: Bearer <F.use_key>" header (when a key is in
 * use) to h; for tests that build their own curl requests. */
struct curl_slist *auth_header(struct curl_slist *h);
/* libcurl write callback appending to an hresp_t's body. */
size_t on_body(char *p, size_t sz, size_t n, void *ud);

/* Asserts an RFC 9457 problem with this status and (if given) field. */
void assert_problem(const hresp_t *r, long status, const char *field);
/* Asserts a JSON answer with this status. */
void assert_ok_json(const hresp_t *r, long status);
/* A string member of o, or NULL. */
const char *jstr(json_t *o, const char *key);

/* Sends raw bytes to the fixture's server and returns what came back before
 * it closed or went quiet for timeout_ms (caller frees). */
char *raw_exchange(const char *req, size_t len, int timeout_ms);

/* Reads raw-events until `want` records arrived (then extra_ms longer, to
 * see any extra); returns the event_ids seen as a JSON array. */
json_t *drain_raw(int want, int extra_ms);
/* The same, returning the records themselves (parsed JSON objects). */
json_t *drain_raw_docs(int want, int extra_ms);
bool ids_has(json_t *ids, const char *id);

#endif
