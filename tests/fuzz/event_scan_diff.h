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

#include <jansson.h>
#include <string.h>

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
