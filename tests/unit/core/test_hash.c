/*
 * test_hash.c - murmur2 must match Kafka's Java client bit for bit, so that
 * herald and Java producers put a key on the same partition.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/hash.h"

/* Expected values from Kafka's UtilsTest (Utils.murmur2 returns a Java int). */
static const struct {
    const char *key;
    int32_t hash;
} kafka_vectors[] = {
    {"21", -973932308},
    {"foobar", -790332482},
    {"a-little-bit-long-string", -985981536},
    {"a-little-bit-longer-string", -1486304829},
    {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
    {"abc", 479470107},
    /* one to five bytes: every tail length */
    {"1", -1993445489},
    {"12", 126087238},
    {"123", -267702483},
    {"1234", -1614185708},
    {"12345", -1188365604},
    /* librdkafka's rdmurmur2 unit test vectors (same function) */
    {"kafka", (int32_t)0xd067cf64},
    {"giberish123456789", (int32_t)0x8f552b0c},
    {"PreAmbleWillBeRemoved,ThePrePartThatIs", (int32_t)0x78424f1c},
    {"", (int32_t)0x106e08d9},
};

static void test_murmur2_kafka_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(kafka_vectors) / sizeof(kafka_vectors[0]); i++) {
        const char *k = kafka_vectors[i].key;
        uint32_t h = murmur2(k, strlen(k));
        assert_int_equal((int32_t)h, kafka_vectors[i].hash);
    }
}

static void test_murmur2_partition_rule(void **state)
{
    (void)state;
    /* partition = (h & 0x7fffffff) % n, Kafka's toPositive() rule */
    for (size_t i = 0; i < sizeof(kafka_vectors) / sizeof(kafka_vectors[0]); i++) {
        const char *k = kafka_vectors[i].key;
        uint32_t positive = (uint32_t)kafka_vectors[i].hash & 0x7fffffffu;
        for (int32_t n = 1; n <= 64; n++)
            assert_int_equal(murmur2_partition(k, strlen(k), n), (int32_t)(positive % (uint32_t)n));
    }
    /* a negative hash is masked, not negated */
    assert_int_equal(murmur2_partition("21", 2, 1000), (int32_t)((uint32_t)-973932308 & 0x7fffffffu) % 1000);
    assert_int_equal(murmur2_partition("21", 2, 1000), 340);
}

static void test_murmur2_binary_key(void **state)
{
    (void)state;
    /* bytes are hashed as unsigned, NUL included: must differ from the prefix */
    const unsigned char k[] = {0x00, 0xff, 0x80, 0x7f, 0x01};
    assert_int_not_equal(murmur2(k, sizeof(k)), murmur2(k, 1));
    assert_int_not_equal(murmur2("ab\0", 3), murmur2("ab", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_murmur2_kafka_vectors),
        cmocka_unit_test(test_murmur2_partition_rule),
        cmocka_unit_test(test_murmur2_binary_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
