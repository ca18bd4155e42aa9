/*
 * fuzz_decode.c - libFuzzer target for the two parsers that take bytes from
 * outside: notif_decode (internal topics) and event_parse (producers).
 * Not part of the default build. To build and run with clang:
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang \
 *         -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link,address,undefined
 *   cmake --build build-fuzz --target herald_lib
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *         tests/fuzz/fuzz_decode.c build-fuzz/libherald_lib.a \
 *         $(pkg-config --libs jansson libmicrohttpd sqlite3 rdkafka zlib inih libcrypto) \
 *         -lpthread -lm -o fuzz_decode
 *   ./fuzz_decode -max_len=4096 corpus/
 *
 * The first input byte picks the parser; the rest is its input. Whatever
 * decodes is re-encoded and must decode to the same record.
 */
#include "model/event.h"
#include "model/notif.h"
#include "model/template.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_notif(const uint8_t *data, size_t size)
{
    notif_t n, again;
    if (notif_decode(data, size, &n) != HR_OK) return;

    buf_t b;
    buf_init(&b, 0);
    if (notif_encode(&n, &b) != HR_OK) abort();
    /* A record of the current version has one encoding: re-encoding
     * reproduces the input (an older version is re-encoded as the current). */
    if (data[1] == NOTIF_VERSION && (b.len != size || memcmp(b.data, data, size) != 0)) abort();
    if (notif_decode(b.data, b.len, &again) != HR_OK) abort();
    buf_reset(&b);
    if (notif_to_json(&n, &b) != HR_OK) abort();
    json_t *doc = json_loadb(b.data, b.len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(doc)) abort();
    json_decref(doc);
    buf_release(&b);
}

static void check_event(const uint8_t *data, size_t size)
{
    event_t ev;
    problem_t pb;
    if (event_parse((const char *)data, size, &ev, &pb) != HR_OK) return;
    /* Render a template touching every variable kind against what parsed. */
    tmpl_ctx_t ctx = {.ev = &ev, .user_id = "u", .locale = "en"};
    buf_t b;
    buf_init(&b, 1 << 16);
    (void)tmpl_render("{{actor}} {{ data.a.b }} {{data.0}} {{{x}}} {{type", &ctx, &b);
    buf_release(&b);
    event_clear(&ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    if (data[0] & 1)
        check_notif(data + 1, size - 1);
    else
        check_event(data + 1, size - 1);
    return 0;
}
