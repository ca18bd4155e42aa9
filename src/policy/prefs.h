/*
 * prefs.h - preference evaluation: may a notification of a category go out
 * on a channel, given the user's preferences (as store_prefs_get and
 * store_users_get_batch read them), the category's standing and the event's
 * priority?
 *
 * The rules (docs/design.md §1, issue "dispatch policy"):
 *  - A category may be REQUIRED (policy.required_categories, e.g. security
 *    alerts and one-time codes): users cannot opt out of it. A preference
 *    turning a required category off is ignored (one turning it on counts,
 *    as for any category); the channel switch (category "", "no SMS at
 *    all") still applies to a required notification unless it is critical,
 *    so a required alert reaches the user on the channels they keep on.
 *  - `critical` priority overrides preferences ONLY for required categories:
 *    a critical notification of a required category ignores every
 *    preference; a critical notification of any other category honours them
 *    like any other priority. (Critical also bypasses quiet hours and rate
 *    limits; the dispatcher decides that from the record's priority.)
 * Preferences that opt out of a required category are stored as given
 * (accepted by the API, which would otherwise refuse preferences that were
 * valid when written each time the setting changes); they have no effect
 * while the category is required.
 *
 * Pure: no I/O, no state; any thread.
 */
#ifndef HERALD_POLICY_PREFS_H
#define HERALD_POLICY_PREFS_H

#include "store/store.h"

/* Is channel ch allowed for (user, category)? A rule for exactly
 * (category, ch) wins; then the channel switch (category ""); otherwise
 * the channel is allowed. category NULL or "" matches only the switch. */
bool prefs_allowed(const pref_t *p, int n, const char *category, channel_t ch);

/* The set of required categories, parsed from a comma list ("security,otp";
 * blanks around names are ignored, empty names skipped). Owns its strings:
 * free with prefs_required_clear. */
typedef struct prefs_required {
    char **names;
    int n;
} prefs_required_t;

/* Parses list (NULL or "" = none) into *out. HR_INVALID, with *out empty,
 * when a name is longer than PREFS_CATEGORY_MAX or has a character other
 * than letters, digits, '_', '-', '.', ':'. */
#define PREFS_CATEGORY_MAX 128
hr_t prefs_required_parse(const char *list, prefs_required_t *out);
void prefs_required_clear(prefs_required_t *r);
/* Is category (NULL = none) one of the required ones? Exact match. */
bool prefs_required_has(const prefs_required_t *r, const char *category);

/* The whole decision for one notification: may it go out on ch? required
 * says whether its category is required (prefs_required_has). */
bool prefs_deliver(const pref_t *p, int n, const char *category, channel_t ch, priority_t prio,
                   bool required);

#endif
