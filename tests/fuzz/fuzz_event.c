/*
 * fuzz_event.c - libFuzzer target: event_parse() (the bodies producers POST)
 * and the template engine (tmpl_check, tmpl_render) on what parsed; the
 * binary event record (event_decode on the raw input, and every parsed
 * event through event_encode -> event_decode -> event_to_json ->
 * event_from_json, which must all succeed and agree). Encoding is
 * canonical: a decoded event encodes to the very record it came from, and
 * whatever the decoder accepts (forged input included) encodes to a record
 * it accepts again, which then re-encodes byte for byte; the JSON
 * rendition of a decoded record parses back and encodes to the same bytes
 * too. This is what lets fan-out dead-letter a record as JSON and redrive
 * it without changing the event.
 *
 * Input: the first line is a template, the rest an event document. Without a
 * newline the whole input is the event and a fixed template touching every
 * variable kind is rendered. Rendering goes into a small limited buffer so
 * the cut-at-the-limit path runs too.
 */
#include "core/buf.h"
#include "core/log.h"
#include "model/event.h"
#include "model/template.h"

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

static void render(const char *tmpl, const event_t *ev)
{
    tmpl_ctx_t ctx = {.ev = ev, .user_id = "u", .locale = "en"};
    buf_t b;
    buf_init(&b, 512);
    hr_t r = tmpl_render(tmpl, &ctx, &b);
    if (r != HR_OK && r != HR_AGAIN) abort();
    if (b.len > 512) abort();
    buf_release(&b);
}

static bool same(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

/* d (decoded from rec) encodes to a record that decodes and encodes to
 * the same bytes; its JSON rendition (the DLQ's) parses and encodes to
 * them too. exact: rec itself is canonical (made by event_encode). */
static void canonical(const event_t *d, const void *rec, size_t rec_len, bool exact)
{
    buf_t a, b;
    buf_init(&a, 0);
    buf_init(&b, 0);
    if (event_encode(d, &a) != HR_OK) abort();
    if (exact && (a.len != rec_len || memcmp(a.data, rec, rec_len) != 0)) abort();
    event_t e;
    problem_t pb;
    if (event_decode(a.data, a.len, &e, &pb) != HR_OK) abort();
    if (event_encode(&e, &b) != HR_OK) abort();
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) abort();
    event_clear(&e);
    /* through JSON: the rendition keeps every field of the record */
    json_t *j = event_to_json(d);
    event_t back;
    if (event_from_json(j, &back, &pb) != HR_OK) abort();
    buf_reset(&b);
    if (event_encode(&back, &b) != HR_OK) abort();
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) abort();
    event_clear(&back);
    json_decref(j);
    buf_release(&a);
    buf_release(&b);
}

/* ev (parsed) as a record and back: the same event. */
static void round_trip(const event_t *ev, const char *tmpl)
{
    buf_t rec;
    buf_init(&rec, 0);
    if (event_encode(ev, &rec) != HR_OK) abort();
    event_t d;
    problem_t pb;
    if (event_decode(rec.data, rec.len, &d, &pb) != HR_OK) abort();
    if (!same(d.event_id, ev->event_id) || !same(d.type, ev->type) || !same(d.actor, ev->actor) ||
        !same(d.tenant, ev->tenant) || !same(d.category, ev->category) ||
        d.audience != ev->audience || d.audience_n != ev->audience_n ||
        d.channels_mask != ev->channels_mask || d.content_mask != ev->content_mask ||
        d.priority != ev->priority || d.send_at_ms != ev->send_at_ms ||
        strcmp(d.traceparent, ev->traceparent) != 0)
        abort();
    event_users_t a, b;
    event_users_begin(ev, &a);
    event_users_begin(&d, &b);
    for (const char *x; (x = event_users_next(&a));)
        if (!same(x, event_users_next(&b))) abort();
    if ((event_data(&d) != NULL) != (event_data(ev) != NULL)) abort();
    render(tmpl, &d);
    canonical(&d, rec.data, rec.len, true);
    json_t *j = event_to_json(&d);
    event_t back;
    if (event_from_json(j, &back, &pb) != HR_OK) abort();
    if (!same(back.event_id, ev->event_id) || back.audience_n != ev->audience_n) abort();
    event_clear(&back);
    json_decref(j);
    event_clear(&d);
    buf_release(&rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char fixed[] = "{{actor}} {{ data.a.b }} {{data.0}} {{{x}}} {{user.locale}} {{type";
    const char *text = (const char *)data;
    const char *nl = memchr(text, '\n', size);
    char *tmpl = nl ? xstrndup(text, (size_t)(nl - text)) : xstrdup(fixed);
    const char *doc = nl ? nl + 1 : text;
    size_t doc_len = nl ? size - (size_t)(nl + 1 - text) : size;

    char why[256];
    (void)tmpl_check(tmpl, why, sizeof(why));

    event_t ev;
    problem_t pb;
    if (event_parse(doc, doc_len, &ev, &pb) == HR_OK) {
        render(tmpl, &ev);
        round_trip(&ev, tmpl);
        event_clear(&ev);
    }
    /* the same bytes as a record (the magic byte may be forged) */
    char *copy = xmalloc(doc_len + 1);
    memcpy(copy, doc, doc_len);
    if (doc_len) copy[0] = (char)EVENT_REC_MAGIC;
    if (event_decode(copy, doc_len, &ev, &pb) == HR_OK) {
        render(tmpl, &ev);
        canonical(&ev, copy, doc_len, false);
        event_clear(&ev);
    }
    free(copy);
    free(tmpl);
    return 0;
}
