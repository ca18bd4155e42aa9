/*
 * hash.h - hashes with fixed, documented outputs.
 *
 * murmur2() is the exact function Kafka's Java client uses for keyed
 * partitioning (seed 0x9747b28c), so herald and Java producers agree on the
 * partition of a key: partition = (murmur2(key) & 0x7fffffff) % partitions.
 */
#ifndef HERALD_HASH_H
#define HERALD_HASH_H

#include <stddef.h>
#include <stdint.h>

uint32_t murmur2(const void *key, size_t len);
int32_t murmur2_partition(const void *key, size_t len, int32_t partitions);

/* 64-bit FNV-1a, for in-process hash tables. */
uint64_t fnv1a64(const void *data, size_t len);

#endif
