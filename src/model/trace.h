/*
 * trace.h - W3C Trace Context (level 1) `traceparent` values: strict
 * parsing and the one form herald writes (DESIGN §6, "Tracing").
 *
 *   traceparent = version "-" trace-id "-" parent-id "-" trace-flags
 *   version 00:   "00-" 32 lowercase hex "-" 16 lowercase hex "-" 2 lowercase hex
 *                 (55 characters exactly)
 *
 * Rules kept (W3C Trace Context, section 3.2):
 *  - every hex digit is lowercase; trace-id and parent-id must not be all
 *    zeros; version ff is invalid;
 *  - version 00 is exactly 55 characters;
 *  - a higher version (01..fe) may be longer: it is read as version 00's
 *    fields in the first 55 characters, and what follows must start with
 *    "-"; only the sampled bit of its flags is kept.
 * herald writes what it accepted in version 00 form (trace_normalize), so
 * every record carries one format. It does not mint span ids: the
 * parent-id travels unchanged through every hop (DESIGN §6 says why).
 *
 * Pure functions, any thread.
 */
#ifndef HERALD_TRACE_H
#define HERALD_TRACE_H

#include "core/common.h"

#include <stddef.h>
#include <stdint.h>

#define TRACEPARENT_LEN 55      /* a version 00 value, without NUL */
#define TRACE_FLAG_SAMPLED 0x01

typedef struct trace_ctx {
    uint8_t version;
    uint8_t trace_id[16];
    uint8_t parent_id[8];
    uint8_t flags;
} trace_ctx_t;

/* Parses s[0..n) strictly; HR_INVALID with a short reason in *why (a static
 * string; why may be NULL) when it is not a valid traceparent. */
hr_t trace_parse(const char *s, size_t n, trace_ctx_t *out, const char **why);
/* Writes t in version 00 form: 55 characters and a NUL. Flags other than
 * sampled are kept only when t->version is 00. */
void trace_format(const trace_ctx_t *t, char out[TRACEPARENT_LEN + 1]);
/* Parses s[0..n) and writes it in version 00 form into out (HR_INVALID,
 * with *why, when malformed; out is then ""). */
hr_t trace_normalize(const char *s, size_t n, char out[TRACEPARENT_LEN + 1], const char **why);
/* Is s[0..n) exactly a valid version 00 traceparent (what herald writes)?
 * For the places that put a record's value on the wire (HTTP headers). */
bool trace_is_v00(const char *s, size_t n);

#endif
