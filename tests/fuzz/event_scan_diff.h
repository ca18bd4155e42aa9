/*
 * event_scan_diff.h - the fast path against jansson (model/event.h,
 * event_scan_batch): whatever the fast path takes, jansson and
 * event_from_json must take too, event for event, and event_encode must
 * write the same bytes for both. Used by fuzz_event_scan and
 * tests/unit/model/test_event_scan.c.
 */
#ifndef HERALD_EVENT_SCAN_DIFF_H
#define HERALD_EVENT_SCAN_DIFF_H

#include "core/buf.h"
#include "model/event.h"
#include "model/template.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* Renders "{{data.<path>}}" of ev, in place (event_data_find) or, with
 * tree, through jansson's tree of the same text. */
static inline void scan_render(const event_t *ev, const char *path, bool tree, buf_t *out)
{
    event_t e = *ev;
    if (tree) {
        e.data_checked = true; /* not in place: event_data() parses it */
        e.data_simple = false;
        e.data = NULL;
        e.data_tried = false;
    }
    char t[300];
    snprintf(t, sizeof(t), "<{{data.%s}}>", path);
    tmpl_ctx_t ctx = {.ev = &e, .user_id = "u", .locale = "en"};
    buf_reset(out);
    (void)tmpl_render(t, &ctx, out);
    if (tree) json_decref(e.data);
}

/* Every path into v (keys without dots, indices), and one missing under
 * each object, rendered both ways; NULL when they agree. */
static inline const char *scan_paths(const event_t *ev, json_t *v, char *path, size_t at, int depth)
{
    if (depth > 4 || at > 200) return NULL;
    buf_t a, b;
    buf_init(&a, 0);
    buf_init(&b, 0);
    const char *why = NULL;
    scan_render(ev, path, false, &a);
    scan_render(ev, path, true, &b);
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) why = "{{data.x}} renders differently in place";
    buf_release(&a);
    buf_release(&b);
    if (why) return why;
    size_t n = at ? at + 1 : 0;
    if (at) path[at] = '.';
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        snprintf(path + n, 256 - n, "%s", "no-such-key");
        if ((why = scan_paths(ev, NULL, path, n + 11, depth + 1))) return why;
        json_object_foreach(v, k, c) {
            if (strchr(k, '.') || !*k || strlen(k) + n > 240) continue;
            snprintf(path + n, 256 - n, "%s", k);
            if ((why = scan_paths(ev, c, path, n + strlen(k), depth + 1))) return why;
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i <= json_array_size(v) && i < 20; i++) {
            int w = snprintf(path + n, 256 - n, "%zu", i);
            if ((why = scan_paths(ev, json_array_get(v, i), path, n + (size_t)w, depth + 1))) return why;
        }
    }
    path[at] = '\0';
    return NULL;
}

/* NULL when the two agree or the fast path declined (*took says which);
 * else what differs. */
static inline const char *scan_diff(const char *text, size_t len, bool *took)
{
    buf_t strings, a, b;
    buf_init(&strings, 0);
    buf_init(&a, 0);
    buf_init(&b, 0);
    event_t *fast = NULL;
    int n = 0;
    bool array = false;
    const char *why = NULL;
    *took = event_scan_batch(text, len, 1000, &strings, &fast, &n, &array) == HR_OK;
    if (!*took) goto out;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    if (!doc) {
        why = "jansson refuses a body the fast path took";
    } else if (json_is_array(doc) != array || (array ? json_array_size(doc) : 1) != (size_t)n) {
        why = "the fast path counts the events differently";
    } else {
        for (int i = 0; i < n && !why; i++) {
            event_t slow;
            problem_t pb;
            if (event_from_json(array ? json_array_get(doc, (size_t)i) : doc, &slow, &pb) != HR_OK) {
                why = "event_from_json refuses an event the fast path took";
                break;
            }
            slow.accepted_at_us = fast[i].accepted_at_us = 1700000000000000;
            buf_reset(&a);
            buf_reset(&b);
            if (event_encode(&slow, &a) != HR_OK || event_encode(&fast[i], &b) != HR_OK)
                why = "an event does not encode";
            else if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
                why = "the records differ";
            if (!why && slow.data) {
                char path[256];
                size_t at = 0;
                json_t *top = slow.data;
                const char *k;
                json_t *c;
                json_object_foreach(top, k, c) {
                    if (strchr(k, '.') || !*k || strlen(k) > 200) continue;
                    at = (size_t)snprintf(path, sizeof(path), "%s", k);
                    if ((why = scan_paths(&fast[i], c, path, at, 1))) break;
                }
                if (!why) {
                    snprintf(path, sizeof(path), "missing");
                    why = scan_paths(&fast[i], NULL, path, 7, 1);
                }
            }
            event_clear(&slow);
        }
    }
    json_decref(doc);
out:
    for (int i = 0; i < n; i++) event_clear(&fast[i]);
    free(fast);
    buf_release(&strings);
    buf_release(&a);
    buf_release(&b);
    return why;
}

#endif
