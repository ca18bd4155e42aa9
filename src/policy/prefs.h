/*
 * prefs.h - preference evaluation: may a notification of a category go out
 * on a channel, given the user's preferences (as store_prefs_get and
 * store_users_get_batch read them)?
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

#endif
