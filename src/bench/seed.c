/*
 * seed.c - the benchmark's users and templates, written straight into the
 * SQLite store before `herald serve` starts (the API would take minutes for
 * a million users; the rows are the same).
 */
#include "bench/bench_int.h"

#include "core/log.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEED_BATCH 10000

hr_t seed_store(const char *path, int64_t users, const char *platform, double *seconds)
{
    store_t *st = NULL;
    double t0 = now_s();
    hr_t r = store_open("sqlite", path, &st);
    if (r != HR_OK) return r;

    static const channel_t chans[] = {CH_PUSH, CH_INAPP, CH_EMAIL, CH_SMS};
    for (size_t i = 0; i < ARRAY_LEN(chans) && r == HR_OK; i++) {
        template_rec_t t = {
            .event_type = (char *)WL_EVENT_TYPE,
            .channel = chans[i],
            .locale = (char *)"en",
            .title = (char *)wl_template_title,
            .body = (char *)wl_template_body,
        };
        r = store_template_put(st, &t);
    }

    user_t *batch = xcalloc(SEED_BATCH, sizeof(*batch));
    char (*ids)[WL_USER_ID_LEN + 1] = xcalloc(SEED_BATCH, sizeof(*ids));
    char (*emails)[48] = xcalloc(SEED_BATCH, sizeof(*emails));
    char (*phones)[32] = xcalloc(SEED_BATCH, sizeof(*phones));
    char (*tokens)[80] = xcalloc(SEED_BATCH, sizeof(*tokens));
    bool apns = strcmp(platform, "apns") == 0;
    int64_t now = hclock_now_ms();
    for (int64_t base = 0; base < users && r == HR_OK; base += SEED_BATCH) {
        int n = users - base < SEED_BATCH ? (int)(users - base) : SEED_BATCH;
        for (int i = 0; i < n; i++) {
            int64_t k = base + i;
            user_t *u = &batch[i];
            memset(u, 0, sizeof(*u));
            workload_user_id(k, ids[i]);
            snprintf(emails[i], sizeof(emails[i]), "%s@example.com", ids[i]);
            snprintf(phones[i], sizeof(phones[i]), "+1555%07lld", (long long)k);
            /* an FCM registration token is ~150 bytes; 64 keeps the store
             * small. An APNs device token is 32 bytes in hex. */
            if (apns)
                snprintf(tokens[i], sizeof(tokens[i]), "%016llx%016llx%016llx%016llx",
                         (unsigned long long)(k * 0x9e3779b97f4a7c15ull),
                         (unsigned long long)(k * 0xbf58476d1ce4e5b9ull),
                         (unsigned long long)(k * 0x94d049bb133111ebull), (unsigned long long)k);
            else
                snprintf(tokens[i], sizeof(tokens[i]), "fcm-%016llx%016llx%016llx",
                         (unsigned long long)(k * 0x9e3779b97f4a7c15ull),
                         (unsigned long long)(k * 0xbf58476d1ce4e5b9ull),
                         (unsigned long long)(k * 0x94d049bb133111ebull));
            u->user_id = ids[i];
            u->email = emails[i];
            u->phone = phones[i];
            u->locale = (char *)"en";
            u->timezone = (char *)"UTC";
            u->ndevices = 1;
            u->devices[0].platform = (char *)platform;
            u->devices[0].token = tokens[i];
            u->updated_at_ms = now;
        }
        r = store_user_put_batch(st, batch, n);
    }
    free(batch);
    free(ids);
    free(emails);
    free(phones);
    free(tokens);
    store_close(st);
    if (seconds) *seconds = now_s() - t0;
    if (r != HR_OK) log_error("bench", "seeding the store failed: %s", hr_str(r));
    return r;
}
