/*
 * names.c - the names table (names.h).
 */
#include "model/names.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

const int64_t retry_tier_delay_ms[RETRY_TIERS] = {30000, 300000, 1800000};

#define CHANNEL_NAMES(ch)                                                                      \
    {                                                                                          \
        "notifications-" ch, "dispatch-" ch, "dispatch:" ch,                                   \
        {ch "-retry-30s", ch "-retry-5m", ch "-retry-30m"},                                    \
        {"retry:" ch ":30s", "retry:" ch ":5m", "retry:" ch ":30m"},                           \
    }

static const channel_names_t channel_table[CH__COUNT] = {
    [CH_PUSH] = CHANNEL_NAMES("push"),   [CH_SMS] = CHANNEL_NAMES("sms"),
    [CH_EMAIL] = CHANNEL_NAMES("email"), [CH_INAPP] = CHANNEL_NAMES("inapp"),
    [CH_WEBHOOK] = CHANNEL_NAMES("webhook"),
};

const channel_names_t *names_for_channel(int channel)
{
    if (channel < 0 || channel >= CH__COUNT) return NULL;
    return &channel_table[channel];
}

const char *topic_for_channel(int channel)
{
    const channel_names_t *n = names_for_channel(channel);
    return n ? n->topic : NULL;
}

const char *names_group_topic(const char *group)
{
    if (strcmp(group, GROUP_FANOUT) == 0) return TOPIC_RAW;
    if (strcmp(group, GROUP_STATUS) == 0) return TOPIC_STATUS;
    if (strcmp(group, GROUP_CHUNKS) == 0) return TOPIC_CHUNKS;
    for (int ch = 0; ch < CH__COUNT; ch++)
        if (strcmp(group, channel_table[ch].group) == 0) return channel_table[ch].topic;
    for (int ch = 0; ch < CH__COUNT; ch++)
        for (int t = 0; t < RETRY_TIERS; t++)
            if (strcmp(group, channel_table[ch].retry_topic[t]) == 0) return channel_table[ch].retry_topic[t];
    return NULL;
}

/* One role name (n bytes at s) into r. */
static bool role_add(roles_t *r, const char *s, size_t n)
{
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(s, lit, n) == 0)
    if (IS(ROLE_INGEST)) return r->ingest = true;
    if (IS(STAGE_FANOUT)) return r->fanout = true;
    if (IS(STAGE_STATUS)) return r->status = true;
    if (IS(ROLE_DISPATCH)) {
        for (int ch = 0; ch < CH__COUNT; ch++) r->dispatch[ch] = true;
        return true;
    }
#undef IS
    for (int ch = 0; ch < CH__COUNT; ch++) {
        const char *st = channel_table[ch].stage;
        if (strlen(st) == n && memcmp(st, s, n) == 0) return r->dispatch[ch] = true;
    }
    return false;
}

hr_t roles_parse(const char *text, roles_t *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof(*out));
    const char *p = text;
    while (isspace((unsigned char)*p)) p++;
    if (strncmp(p, ROLE_ALL, 3) == 0) {
        const char *q = p + 3;
        while (isspace((unsigned char)*q)) q++;
        if (!*q) {
            out->ingest = out->fanout = out->status = true;
            for (int ch = 0; ch < CH__COUNT; ch++) out->dispatch[ch] = true;
            return HR_OK;
        }
    }
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (!role_add(out, a, (size_t)(b - a))) {
            snprintf(why, why_len,
                     "roles: '%.*s' is not a role (all, or a comma list of ingest, fanout, "
                     "dispatch, dispatch:<channel>, status)",
                     (int)(b - a), a);
            return HR_INVALID;
        }
        if (!comma) break;
        p = comma + 1;
    }
    return HR_OK;
}

bool roles_has_stage(const roles_t *r, const char *stage)
{
    if (strcmp(stage, STAGE_FANOUT) == 0) return r->fanout;
    if (strcmp(stage, STAGE_STATUS) == 0) return r->status;
    if (strcmp(stage, STAGE_CHUNKS) == 0) return r->fanout;
    for (int ch = 0; ch < CH__COUNT; ch++)
        if (strcmp(stage, channel_table[ch].stage) == 0) return r->dispatch[ch];
    return false;
}
