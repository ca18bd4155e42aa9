/*
 * fuzz_segment.c - libFuzzer target: the embedded bus's segment scanner
 * (emb_seg_scan), which reads segment files back from disk on open,
 * skips damaged ranges and decides where a torn tail begins. The input is the file.
 *
 * Checks: the valid prefix lies within the file and ends on a record
 * boundary that a second, record-by-record scan (emb_scan_next, and
 * emb_scan_resync over each damaged range) agrees on; the damaged ranges
 * (holes) are ordered and each is followed by a valid record;
 * the sparse index is ordered and points inside the valid prefix; the end
 * offset follows the last valid record.
 */
#include "bus/bus_embedded_int.h"
#include "core/log.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    hlog_set_level(HLOG_OFF);
    fd = memfd_create("segment", MFD_CLOEXEC);
    if (fd < 0) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ftruncate(fd, 0) != 0) abort();
    if (size && pwrite(fd, data, size, 0) != (ssize_t)size) abort();
    const int64_t base = 0;

    seg_info_t si;
    emb_seg_scan(fd, (int64_t)size, base, &si);
    if (si.valid < 0 || si.valid > (int64_t)size) abort();
    if (si.end < base) abort();
    for (size_t i = 0; i < si.nidx; i++) {
        if (si.idx[i].pos < 0 || si.idx[i].pos >= si.valid) abort();
        if (i && (si.idx[i].pos <= si.idx[i - 1].pos || si.idx[i].off <= si.idx[i - 1].off)) abort();
    }

    /* holes are ordered, inside the valid prefix, and each one is followed
     * by a valid record */
    for (size_t i = 0; i < si.nholes; i++) {
        if (si.holes[i].pos >= si.holes[i].end || si.holes[i].end >= si.valid) abort();
        if (i && si.holes[i].pos < si.holes[i - 1].end) abort();
        if (si.holes[i].recs < 0) abort();
    }

    scan_t sc;
    const char *rec;
    uint32_t len;
    int64_t last = base - 1;
    size_t h = 0;
    emb_scan_init(&sc, fd, (int64_t)size, base);
    for (;;) {
        int k = emb_scan_next(&sc, &rec, &len);
        if (k == 0) break;
        if (k < 0) {
            /* a hole starts here, or the valid prefix ends */
            if (h < si.nholes && si.holes[h].pos == sc.pos) {
                if (emb_scan_resync(&sc) != 1 || sc.pos != si.holes[h].end) abort();
                h++;
                continue;
            }
            break;
        }
        if (len < REC_HDR || sc.pos + len > si.valid) abort();
        int64_t off = le_get64(rec + 8);
        if (off <= last) abort();
        last = off;
        sc.pos += len;
    }
    if (h != si.nholes) abort();
    if (sc.pos != si.valid) abort();
    if (si.end != (last >= base ? last + 1 : base)) abort();
    emb_scan_release(&sc);
    free(si.idx);
    free(si.holes);
    return 0;
}
