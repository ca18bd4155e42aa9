/*
 * prov_fixture.h - shared helpers for provider tests: a config with
 * provider settings, notifications with distinct ids, and a completion
 * recorder that checks each submit completes exactly once.
 */
#ifndef PROV_FIXTURE_H
#define PROV_FIXTURE_H

#include "config/config.h"
#include "model/notif.h"
#include "provider/provider.h"

#define FX_MAX 256

typedef struct fx {
    config_t cfg;
    notif_t n[FX_MAX];
    char ids[FX_MAX][40];
    send_result_t res[FX_MAX];
    int completions[FX_MAX];    /* per cookie */
    int done;
} fx_t;

/* config_init plus key=value pairs (NULL-terminated); asserts each is accepted. */
void fx_init(fx_t *f, ...);
void fx_release(fx_t *f);
/* Notification i: id "n-<i>", channel ch, the given title and platform. */
notif_t *fx_notif(fx_t *f, int i, channel_t ch, const char *title, const char *platform);
/* The completion callback (ud = fx_t). */
void fx_done(void *ud, send_result_t *res, void *cookie);
/* Submits n[0..count) (polling while full), then polls until all have
 * completed; asserts provider_set_in_flight never exceeds max_in_flight. */
void fx_deliver(fx_t *f, provider_set_t *s, int count, int max_in_flight);

#endif
