/*
 * crc32c.h - CRC-32C (Castagnoli, iSCSI / RFC 3720, polynomial 0x1EDC6F41,
 * reflected; the CRC of "123456789" is 0xE3069283).
 *
 * Why our own: zlib only has CRC-32 (IEEE), and CRC-32C is the one x86
 * computes in hardware (SSE4.2 `crc32`, 8 bytes an instruction), several
 * times cheaper than zlib's table code on the embedded bus's records. A
 * library for it (Google's crc32c) would be one more build dependency for
 * the forty lines below.
 *
 * crc32c() picks the implementation once, at the first call: SSE4.2 when the
 * CPU has it, else a portable slicing-by-8 table. Both give the same result;
 * chain calls as with zlib's crc32(): crc32c(crc32c(0, a, n), b, m) equals
 * the CRC of a followed by b. Any thread.
 */
#ifndef HERALD_CRC32C_H
#define HERALD_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* The portable implementation (always available; tests compare the two). */
uint32_t crc32c_portable(uint32_t crc, const void *data, size_t len);
/* The hardware implementation, or NULL when this CPU or build has none. */
typedef uint32_t (*crc32c_fn)(uint32_t crc, const void *data, size_t len);
crc32c_fn crc32c_hardware(void);
/* "sse4.2" or "table": what crc32c() uses. */
const char *crc32c_impl(void);

#endif
