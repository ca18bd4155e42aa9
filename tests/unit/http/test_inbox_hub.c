/*
 * Tests for the live inbox hub (http/inbox_hub.h) without a server: fake
 * sinks that take bytes or say "again", an injected clock, the pump called
 * by the test. Held streams, delivery with ids, the bounded queue and the
 * drop of a slow client, the skip of replayed items on release, heartbeats,
 * the limits, a sink whose client has gone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "http/inbox_hub.h"
#include "metrics/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fake {
    char out[8192];
    size_t len;
    bool full;      /* write says HR_AGAIN */
    bool gone;
    int closed;
} fake_t;

static hr_t fake_write(void *p, const void *data, size_t len)
{
    fake_t *f = p;
    if (f->gone) return HR_CLOSED;
    if (f->full) return HR_AGAIN;
    assert_true(f->len + len < sizeof(f->out));
    memcpy(f->out + f->len, data, len);
    f->len += len;
    f->out[f->len] = '\0';
    return HR_OK;
}

static bool fake_gone(void *p) { return ((fake_t *)p)->gone; }
static void fake_close(void *p) { ((fake_t *)p)->closed++; }

static const inbox_sink_ops_t ops = {fake_write, fake_gone, fake_close};

static int64_t now_ms;
static int64_t clock_fn(void) { return now_ms; }

static inbox_hub_t *hub_new(int queue_max)
{
    inbox_hub_opts_t o = {.max_streams = 3, .max_per_user = 2, .queue_max = queue_max,
                          .heartbeat_ms = 1000, .thread = false, .now_ms = clock_fn};
    now_ms = 5000;
    return inbox_hub_new(&o);
}

static inbox_sub_t *join(inbox_hub_t *h, const char *user, fake_t *f)
{
    inbox_sub_t *s = NULL;
    bool per_user;
    assert_int_equal(inbox_hub_join(h, user, &ops, f, &per_user, &s), HR_OK);
    return s;
}

static void test_held_then_delivered_with_ids(void **state)
{
    (void)state;
    inbox_hub_t *h = hub_new(8);
    fake_t f = {0};
    inbox_sub_t *s = join(h, "default:u1", &f);
    assert_true(inbox_hub_watched(h, "default:u1"));
    assert_false(inbox_hub_watched(h, "default:u2"));
    inbox_hub_publish(h, "default:u1", "item", "{\"a\":1}", 100, "n1");
    inbox_hub_publish(h, "default:u2", "item", "{\"other\":1}", 100, "x");
    assert_int_equal(inbox_hub_pump(h), 0); /* held: the joiner writes its replay */
    assert_int_equal(f.len, 0);
    inbox_hub_release(h, s, 0, NULL, "50:n0");
    inbox_hub_counts(h, "default:u1", 3, 2);
    assert_int_equal(inbox_hub_pump(h), 2);
    /* the item carries its position; counts carry the newest position sent */
    assert_string_equal(f.out, "id: 100:n1\nevent: item\ndata: {\"a\":1}\n\n"
                               "id: 100:n1\nevent: counts\ndata: {\"unread\":3,\"unseen\":2}\n\n");
    inbox_hub_free(h);
    assert_int_equal(f.closed, 1);
}

static void test_counts_before_any_item_carry_release_id(void **state)
{
    (void)state;
    inbox_hub_t *h = hub_new(8);
    fake_t f = {0};
    inbox_sub_t *s = join(h, "t:u", &f);
    inbox_hub_release(h, s, 0, NULL, "7:abc");
    inbox_hub_counts(h, "t:u", 0, 0);
    inbox_hub_pump(h);
    assert_non_null(strstr(f.out, "id: 7:abc\nevent: counts\n"));
    inbox_hub_free(h);
}

static void test_slow_client_dropped_bounded(void **state)
{
    (void)state;
    inbox_hub_t *h = hub_new(4);
    fake_t slow = {0}, fast = {0};
    inbox_sub_t *a = join(h, "u", &slow);
    inbox_sub_t *b = join(h, "u", &fast);
    inbox_hub_release(h, a, 0, NULL, "0");
    inbox_hub_release(h, b, 0, NULL, "0");
    slow.full = true; /* the client reads nothing */
    int64_t dropped0 = METRIC_VALUE(inbox_stream_dropped);
    char nid[16];
    for (int i = 1; i <= 4; i++) {
        snprintf(nid, sizeof(nid), "n%d", i);
        inbox_hub_publish(h, "u", "item", "{}", i, nid);
        inbox_hub_pump(h); /* fast drains; slow keeps its queue */
    }
    assert_int_equal(inbox_hub_streams(h), 2);
    assert_int_equal(slow.closed, 0);
    assert_int_equal(METRIC_VALUE(inbox_stream_dropped), dropped0);
    /* the fifth finds slow's queue full: it is dropped, not grown */
    inbox_hub_publish(h, "u", "item", "{}", 5, "n5");
    assert_int_equal(METRIC_VALUE(inbox_stream_dropped), dropped0 + 1);
    inbox_hub_pump(h);
    assert_int_equal(slow.closed, 1);
    assert_int_equal(slow.len, 0);
    assert_int_equal(inbox_hub_streams(h), 1);
    assert_false(inbox_hub_watched(h, "x"));
    assert_non_null(strstr(fast.out, "id: 5:n5\n"));
    /* the slow one freed its slot: the user may reconnect */
    fake_t again = {0};
    inbox_sub_t *c = join(h, "u", &again);
    inbox_hub_release(h, c, 0, NULL, "5:n5");
    inbox_hub_free(h);
    assert_int_equal(slow.closed, 1);
    assert_int_equal(fast.closed, 1);
    assert_int_equal(again.closed, 1);
}

static void test_release_skips_replayed_items(void **state)
{
    (void)state;
    inbox_hub_t *h = hub_new(8);
    fake_t f = {0};
    inbox_sub_t *s = join(h, "u", &f);
    /* published while the joiner read the store: n2 was in its replay */
    inbox_hub_publish(h, "u", "item", "{\"n\":1}", 10, "n1");
    inbox_hub_publish(h, "u", "item", "{\"n\":2}", 20, "n2");
    inbox_hub_publish(h, "u", "item", "{\"n\":3}", 20, "n3");
    inbox_hub_publish(h, "u", "item", "{\"n\":4}", 30, "n0");
    inbox_hub_release(h, s, 20, "n2", "20:n2");
    assert_int_equal(inbox_hub_pump(h), 2);
    assert_null(strstr(f.out, "\"n\":1"));
    assert_null(strstr(f.out, "\"n\":2"));
    assert_non_null(strstr(f.out, "id: 20:n3\n"));
    assert_non_null(strstr(f.out, "id: 30:n0\n"));
    inbox_hub_free(h);
}

static void test_heartbeat_on_idle(void **state)
{
    (void)state;
    inbox_hub_t *h = hub_new(8);
    fake_t f = {0};
    inbox_sub_t *s = join(h, "u", &f);
    inbox_hub_release(h, s, 0, NULL, "0");
    now_ms += 999;
    inbox_hub_pump(h);
    assert_int_equal(f.len, 0);
    now_ms += 1;
    inbox_hub_pump(h);
    assert_string_equal(f.out, ": heartbeat\n\n");
    inbox_hub_pump(h); /* not again until another interval */
    assert_string_equal(f.out, ": heartbeat\n\n");
    inbox_hub_publish(h, "u", "counts", "{}", 0, NULL);
    now_ms += 500;
    inbox_hub_pump(h); /* an event resets the idle time */
    now_ms += 999;
    inbox_hub_pump(h);
    assert_null(strstr(strstr(f.out, "counts"), "heartbeat"));
    inbox_hub_free(h);
}

static void test_limits(void **state)
{
    (void)state;
    inbox_hub_t *h = hub_new(8);
    static fake_t f[4];
    memset(f, 0, sizeof(f));
    inbox_sub_t *s[4];
    bool per_user = false;
    s[0] = join(h, "a", &f[0]);
    s[1] = join(h, "a", &f[1]);
    int64_t refused = METRIC_VALUE(inbox_stream_refused);
    assert_int_equal(inbox_hub_join(h, "a", &ops, &f[2], &per_user, &s[2]), HR_AGAIN);
    assert_true(per_user);
    assert_null(s[2]);
    s[2] = join(h, "b", &f[2]);
    assert_int_equal(inbox_hub_join(h, "c", &ops, &f[3], &per_user, &s[3]), HR_AGAIN);
    assert_false(per_user); /* the total */
    assert_int_equal(METRIC_VALUE(inbox_stream_refused), refused + 2);
    assert_int_equal(f[3].closed, 0); /* a refused sink stays the caller's */
    inbox_hub_leave(h, s[0]);
    assert_int_equal(f[0].closed, 1);
    s[3] = join(h, "c", &f[3]);
    inbox_hub_free(h);
}

static void test_gone_client_ends(void **state)
{
    (void)state;
    inbox_hub_t *h = hub_new(8);
    fake_t f = {0};
    inbox_sub_t *s = join(h, "u", &f);
    inbox_hub_release(h, s, 0, NULL, "0");
    f.gone = true;
    inbox_hub_pump(h);
    assert_int_equal(f.closed, 1);
    assert_int_equal(inbox_hub_streams(h), 0);
    inbox_hub_free(h);
    assert_int_equal(f.closed, 1);
}

static void test_event_id_parse(void **state)
{
    (void)state;
    int64_t ms;
    const char *nid;
    assert_true(inbox_event_id_parse("123:01a22ba998c303b7cc07066833a36586", &ms, &nid));
    assert_int_equal(ms, 123);
    assert_string_equal(nid, "01a22ba998c303b7cc07066833a36586");
    /* only an id like the store's after the colon (lowercase letters and
     * digits, at most 64): the stream echoes it back */
    assert_false(inbox_event_id_parse("123:abc:d", &ms, &nid));
    assert_false(inbox_event_id_parse("1:%00", &ms, &nid));
    assert_false(inbox_event_id_parse("1:01A22BA998C303B7CC07066833A36586", &ms, &nid));
    char longer[80] = "1:";
    memset(longer + 2, 'a', 65);
    assert_false(inbox_event_id_parse(longer, &ms, &nid));
    assert_true(inbox_event_id_parse("0", &ms, &nid));
    assert_int_equal(ms, 0);
    assert_string_equal(nid, "");
    assert_false(inbox_event_id_parse("abc", &ms, &nid));
    assert_false(inbox_event_id_parse("12:", &ms, &nid));
    assert_false(inbox_event_id_parse(":x", &ms, &nid));
    assert_false(inbox_event_id_parse("99999999999999999999:x", &ms, &nid));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_held_then_delivered_with_ids),
        cmocka_unit_test(test_counts_before_any_item_carry_release_id),
        cmocka_unit_test(test_slow_client_dropped_bounded),
        cmocka_unit_test(test_release_skips_replayed_items),
        cmocka_unit_test(test_heartbeat_on_idle),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_gone_client_ends),
        cmocka_unit_test(test_event_id_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
