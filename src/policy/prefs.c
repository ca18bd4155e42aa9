/*
 * prefs.c - preference evaluation (see prefs.h).
 */
#include "policy/prefs.h"

#include <stdlib.h>
#include <string.h>

bool prefs_allowed(const pref_t *p, int n, const char *category, channel_t ch)
{
    int channel_rule = -1;
    bool has_category = category && category[0];
    for (int i = 0; i < n; i++) {
        if (p[i].channel != ch) continue;
        const char *c = p[i].category ? p[i].category : "";
        if (has_category && strcmp(c, category) == 0) return p[i].enabled;
        if (c[0] == '\0') channel_rule = p[i].enabled;
    }
    return channel_rule != 0;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':';
}

hr_t prefs_required_parse(const char *list, prefs_required_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *p = list ? list : "";
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        const char *start = p;
        while (*p && *p != ',') p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t')) end--;
        size_t len = (size_t)(end - start);
        if (*p == ',') p++;
        if (len == 0) continue;
        bool ok = len <= PREFS_CATEGORY_MAX;
        for (size_t i = 0; i < len && ok; i++) ok = name_char(start[i]);
        if (!ok) {
            prefs_required_clear(out);
            return HR_INVALID;
        }
        out->names = xrealloc(out->names, (size_t)(out->n + 1) * sizeof(*out->names));
        out->names[out->n++] = xstrndup(start, len);
    }
    return HR_OK;
}

void prefs_required_clear(prefs_required_t *r)
{
    for (int i = 0; i < r->n; i++) free(r->names[i]);
    free(r->names);
    memset(r, 0, sizeof(*r));
}

bool prefs_required_has(const prefs_required_t *r, const char *category)
{
    if (!category) return false;
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->names[i], category) == 0) return true;
    return false;
}

bool prefs_deliver(const pref_t *p, int n, const char *category, channel_t ch, priority_t prio,
                   bool required)
{
    if (!required) return prefs_allowed(p, n, category, ch);
    if (prio == PRIO_CRITICAL) return true;
    /* An opt-out of the category does not count; an opt-in does (it beats
     * the switch as for any category); otherwise the channel switch. */
    if (category && category[0])
        for (int i = 0; i < n; i++)
            if (p[i].channel == ch && p[i].enabled && p[i].category && strcmp(p[i].category, category) == 0)
                return true;
    return prefs_allowed(p, n, NULL, ch);
}
