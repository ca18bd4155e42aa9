/*
 * fuzz_event_scan.c - libFuzzer target: the fast path for POST /v1/events
 * bodies (event_scan_batch) against jansson + event_from_json
 * (event_scan_diff.h): anything the fast path takes must parse and encode
 * to the same records the slow path makes. The input is the body.
 */
#include "core/log.h"
#include "event_scan_diff.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    hlog_set_level(HLOG_OFF);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool took;
    const char *why = scan_diff((const char *)data, size, &took);
    if (why) {
        fprintf(stderr, "fuzz_event_scan: %s\n", why);
        abort();
    }
    return 0;
}
