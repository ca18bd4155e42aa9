/* prov_fixture.c - see prov_fixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "prov_fixture.h"

#include <stdio.h>
#include <string.h>

void fx_init(fx_t *f, ...)
{
    memset(f, 0, sizeof(*f));
    config_init(&f->cfg);
    va_list ap;
    va_start(ap, f);
    const char *k;
    char why[256];
    while ((k = va_arg(ap, const char *))) {
        const char *v = va_arg(ap, const char *);
        if (config_set(&f->cfg, k, v, why, sizeof(why)) != HR_OK) fail_msg("%s", why);
    }
    va_end(ap);
}

void fx_release(fx_t *f) { config_release(&f->cfg); }

notif_t *fx_notif(fx_t *f, int i, channel_t ch, const char *title, const char *platform)
{
    notif_t *n = &f->n[i];
    memset(n, 0, sizeof(*n));
    snprintf(f->ids[i], sizeof(f->ids[i]), "n-%d", i);
    n->kind = REC_NOTIFICATION;
    n->channel = ch;
    n->notification_id = HSTR(f->ids[i]);
    n->event_id = HSTR("ev-1");
    n->user_id = HSTR("alice");
    n->title = HSTR(title);
    n->body = HSTR("body");
    n->address = HSTR("addr");
    n->platform = HSTR(platform);
    return n;
}

void fx_done(void *ud, send_result_t *res, void *cookie)
{
    fx_t *f = ud;
    int i = (int)(intptr_t)cookie;
    assert_true(i >= 0 && i < FX_MAX);
    assert_ptr_equal(res, &f->res[i]); /* the caller's slot is the one filled */
    f->completions[i]++;
    f->done++;
}

void fx_deliver(fx_t *f, provider_set_t *s, int count, int max_in_flight)
{
    int target = f->done + count;
    for (int i = 0; i < count; i++) {
        hr_t r;
        while ((r = provider_set_submit(s, &f->n[i], &f->res[i], (void *)(intptr_t)i)) == HR_AGAIN) {
            assert_int_equal(provider_set_in_flight(s), max_in_flight);
            provider_set_poll(s, 100);
        }
        assert_int_equal(r, HR_OK);
        assert_true(provider_set_in_flight(s) <= max_in_flight);
    }
    for (int spins = 0; f->done < target; spins++) {
        assert_true(spins < 1000); /* 100 s */
        provider_set_poll(s, 100);
    }
    assert_int_equal(provider_set_in_flight(s), 0);
    for (int i = 0; i < count; i++) assert_int_equal(f->completions[i], 1);
}
