/*
 * fuzz_notif.c - libFuzzer target: notif_decode(), the codec of the records
 * on the internal topics (any bytes may sit in a topic). Whatever decodes
 * is re-encoded and must give back the input; its JSON form must parse.
 * The same bytes are also read as a record's digest metadata (a dispatcher
 * reads it from any record on a channel topic), and the spans it names are
 * spliced into a fixed text through a limited buffer: out-of-range or
 * overlapping spans must be left alone, never read or written past.
 *
 * Built with -DHERALD_FUZZ=ON (clang); `make fuzz` runs every target.
 */
#include "core/buf.h"
#include "core/log.h"
#include "model/digest.h"
#include "model/notif.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    hlog_set_level(HLOG_OFF);
    return 0;
}

static void digest_meta_fuzz(const uint8_t *data, size_t size)
{
    digest_meta_t m;
    hr_t r = digest_meta_read((hstr_t){(const char *)data, size}, &m);
    if (r == HR_OK) {
        static const char text[] = "{{digest.count}} likes, the latest by {{digest.last_actor}}";
        digest_vals_t v = {.count = 20, .first_actor = "a01", .last_actor = "a20"};
        buf_t out;
        buf_init(&out, 64); /* a limit, so the cut path runs too */
        hr_t s = digest_splice((hstr_t){text, sizeof(text) - 1}, &m.title, &v, &out);
        if ((s != HR_OK && s != HR_AGAIN) || out.len > 64) abort();
        buf_reset(&out);
        (void)digest_splice((hstr_t){text, sizeof(text) - 1}, &m.body, &v, &out);
        buf_release(&out);
    }
    digest_meta_clear(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    digest_meta_fuzz(data, size);
    notif_t n, again;
    if (notif_decode(data, size, &n) != HR_OK) return 0;

    buf_t b;
    buf_init(&b, 0);
    if (notif_encode(&n, &b) != HR_OK) abort();
    /* A record of the current version has one encoding: re-encoding
     * reproduces the input (an older version is re-encoded as the current). */
    if (data[1] == NOTIF_VERSION && (b.len != size || memcmp(b.data, data, size) != 0)) abort();
    if (notif_decode(b.data, b.len, &again) != HR_OK) abort();
    if (data[0] == STATUS_REC_MAGIC) {
        /* a compact status record: written again in its own form, it reads
         * back the same (varints may have had longer forms: bytes can differ) */
        buf_reset(&b);
        if (notif_encode_status(&n, !n.no_content, &b) != HR_OK) abort();
        if (notif_decode(b.data, b.len, &again) != HR_OK || again.no_content != n.no_content ||
            again.status_at_ms != n.status_at_ms || again.created_at_ms != n.created_at_ms ||
            again.attempt != n.attempt || again.title.n != n.title.n || again.user_id.n != n.user_id.n)
            abort();
    }
    buf_reset(&b);
    if (notif_to_json(&n, &b) != HR_OK) abort();
    json_t *doc = json_loadb(b.data, b.len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(doc)) abort();
    json_decref(doc);
    buf_release(&b);
    return 0;
}
