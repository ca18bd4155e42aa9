/*
 * validate.h - field validators for user profiles and templates (the API
 * checks request bodies with them; quiet hours parse HH:MM with them).
 * Pure functions on NUL-terminated strings, any thread. Each checks the
 * whole rule, length included, so a caller needs nothing else.
 */
#ifndef HERALD_VALIDATE_H
#define HERALD_VALIDATE_H

#include <stdbool.h>

/* Field limits, in bytes. */
#define VALID_EMAIL_MAX 254     /* RFC 5321: the longest forward-path */
#define VALID_PHONE_MAX 16      /* E.164: '+' and at most 15 digits */
#define VALID_LOCALE_MAX 35     /* RFC 5646 4.4.1: tags up to 35 must be supported */
#define VALID_TIMEZONE_MAX 64   /* longest IANA zone name is about 30 */
#define VALID_URL_MAX 2048
#define VALID_HHMM_LEN 5        /* "HH:MM" */

/* local@domain.tld: one '@', something before it, a dot inside the domain
 * part, no spaces or tabs; at most VALID_EMAIL_MAX bytes. Deliverability
 * is the provider's business. */
bool valid_email(const char *s);
/* E.164: '+' then 7 to 15 digits, the first not 0. */
bool valid_phone(const char *s);
/* "HH:MM", 00:00 to 23:59. When valid and minute_of_day is not NULL, sets
 * it to HH * 60 + MM. */
bool valid_hhmm(const char *s, int *minute_of_day);
/* BCP 47-ish: 2..VALID_LOCALE_MAX letters, digits, '-' and '_', starting
 * with a letter ("en", "pt-BR"). */
bool valid_locale(const char *s);
/* An IANA time zone that exists in the tz database (ICU's): "UTC",
 * "Europe/Paris", "Etc/GMT+5"; at most VALID_TIMEZONE_MAX bytes of letters,
 * digits, '/', '_', '-', '+', not starting or ending with '/'. Links
 * ("US/Eastern") are accepted; "Mars/Olympus" and custom ids ("GMT+05:00")
 * are not. Thread-safe. */
bool valid_timezone(const char *s);
/* http:// or https:// with a host part, no spaces; at most VALID_URL_MAX. */
bool valid_url(const char *s);
/* For a valid_url(): does its host name a place inside the network rather
 * than on the internet - "localhost" (and *.localhost), or an IPv4 / IPv6
 * literal that is loopback, private (RFC 1918, fc00::/7), shared (CGNAT),
 * link-local (169.254/16 - cloud metadata - and fe80::/10), unspecified,
 * multicast or reserved? IPv4 literals count in every form a resolver
 * takes ("127.1", "0x7f.1", "2130706433"), IPv4-mapped IPv6 by their IPv4
 * part. Names are not resolved: a name that resolves to such an address
 * passes here. */
bool url_host_private(const char *url);

#endif
