/*
 * json_write.h - the one JSON string escaper, and a small writer that
 * appends JSON text to a buf_t in a single pass.
 *
 * Hand-written rather than built through jansson because it runs once per
 * delivered notification (sandbox lines, DLQ records, provider request
 * bodies): building a json_t tree and dumping it costs a few microseconds
 * per record (DESIGN §9), while this is one pass over the bytes.
 *
 * The output is valid JSON for ANY input bytes: '"', '\' and control
 * characters are escaped, and bytes that are not well-formed UTF-8
 * (overlongs, surrogates, values above U+10FFFF, truncated sequences) are
 * replaced with U+FFFD, one replacement per bad byte.
 *
 * Usage: jw_t w = JW_INIT(&buf); jw_lit(&w, "{"); jw_key_str(&w, JW_KEY0("id"),
 * s, n); ...; jw_lit(&w, "}"); then check w.r once (the writer remembers
 * the first failure, e.g. the buffer's limit, and writes nothing after it).
 * Strings are (pointer, length) pairs and need not be NUL-terminated.
 *
 * Threads: no shared state; a jw_t belongs to its caller.
 */
#ifndef HERALD_JSON_WRITE_H
#define HERALD_JSON_WRITE_H

#include "core/buf.h"
#include "core/common.h"

typedef struct jw {
    buf_t *b;
    hr_t r;                     /* first failure; HR_OK while all is well */
} jw_t;

#define JW_INIT(buf) ((jw_t){(buf), HR_OK})

/* Key prefixes for the jw_key_* calls: JW_KEY("a") is `,"a":` (a member
 * after the first), JW_KEY0("a") is `"a":` (the first member). Each expands
 * to the two arguments (text, length). */
#define JW_KEY(name) ",\"" name "\":", sizeof(",\"" name "\":") - 1
#define JW_KEY0(name) "\"" name "\":", sizeof("\"" name "\":") - 1

/* Appends n raw bytes (already JSON). */
void jw_raw(jw_t *w, const void *p, size_t n);
#define jw_lit(w, s) jw_raw((w), (s), sizeof(s) - 1)

/* Appends s as a quoted, escaped JSON string. */
void jw_str(jw_t *w, const char *s, size_t n);
/* Appends the key prefix (see JW_KEY) and s as a JSON string. */
void jw_key_str(jw_t *w, const char *key, size_t kn, const char *s, size_t n);
/* Appends the key prefix and v as a JSON integer. */
void jw_key_int(jw_t *w, const char *key, size_t kn, int64_t v);

#endif
