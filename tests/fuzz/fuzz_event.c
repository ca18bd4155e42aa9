/*
 * fuzz_event.c - libFuzzer target: event_parse() (the bodies producers POST)
 * and the template engine (tmpl_check, tmpl_render) on what parsed.
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
        tmpl_ctx_t ctx = {.ev = &ev, .user_id = "u", .locale = "en"};
        buf_t b;
        buf_init(&b, 512);
        hr_t r = tmpl_render(tmpl, &ctx, &b);
        if (r != HR_OK && r != HR_AGAIN) abort();
        if (b.len > 512) abort();
        buf_release(&b);
        event_clear(&ev);
    }
    free(tmpl);
    return 0;
}
