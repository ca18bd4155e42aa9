/*
 * prefs.c - preference evaluation (see prefs.h).
 */
#include "policy/prefs.h"

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
