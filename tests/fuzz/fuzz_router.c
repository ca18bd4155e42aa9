/*
 * fuzz_router.c - libFuzzer target: request paths, which arrive undecoded
 * from the network. Runs the percent-decoder (both modes) with an
 * encode/decode round trip, the id and text validators, and the router's
 * match against the API's real route table.
 *
 * Input: the first byte picks the method and the decoding mode; the rest is
 * the raw path.
 */
#include "core/buf.h"
#include "core/log.h"
#include "http/http_int.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    hlog_set_level(HLOG_OFF);
    return 0;
}

static void check_decode(const char *s, size_t n, bool plus_space)
{
    char *d = NULL;
    size_t dlen = 0;
    if (!http_pct_decode(s, n, plus_space, &d, &dlen)) return;
    if (dlen > n || d[dlen] != '\0') abort();
    if (strlen(d) == dlen) { /* no NUL inside: encode and decode again */
        buf_t b;
        buf_init(&b, 0);
        http_pct_encode(&b, d);
        char *again = NULL;
        size_t alen = 0;
        if (!http_pct_decode(b.data, b.len, false, &again, &alen)) abort();
        if (alen != dlen || memcmp(again, d, dlen) != 0) abort();
        free(again);
        buf_release(&b);
    }
    (void)http_id_valid(d, dlen);
    free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned methods[] = {HM_GET, HM_HEAD, HM_POST, HM_PUT, HM_DELETE, HM_OPTIONS, HM_OTHER};
    if (size == 0) return 0;
    unsigned sel = data[0];
    const char *raw = (const char *)data + 1;
    size_t n = size - 1;

    check_decode(raw, n, sel & 0x80);
    (void)http_text_printable(raw, n);

    char *path = xstrndup(raw, n); /* the server hands the router a C string */
    /* the router reads the table from the server: the real route table */
    static http_server_t srv;
    srv.routes = http_routes;
    srv.nroutes = http_nroutes;
    http_req_t rq;
    memset(&rq, 0, sizeof(rq));
    rq.srv = &srv;
    rq.method = methods[sel % ARRAY_LEN(methods)];
    rq.path = path;
    unsigned allow = 0;
    problem_t pb;
    memset(&pb, 0, sizeof(pb));
    hr_t r = router_match(&rq, &allow, &pb);
    if (r == HR_OK && !rq.route) abort();
    if (rq.nparams > HTTP_MAX_PARAMS) abort();
    for (int i = 0; i < rq.nparams; i++) {
        if (!http_id_valid(rq.params[i], strlen(rq.params[i]))) abort();
        free(rq.params[i]);
    }
    char allow_text[64];
    router_allow_str(allow, allow_text, sizeof(allow_text));
    free(path);
    return 0;
}
