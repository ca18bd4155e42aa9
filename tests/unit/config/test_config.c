#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "config/config.h"
#include "core/common.h"

static void test_defaults(void **st)
{
    (void)st;
    config_t c;
    config_init(&c);
    assert_string_equal(c.data_dir, "./var");
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_string_equal(c.bus_backend, "embedded");
    assert_int_equal(c.bus_partitions, 4);
    assert_int_equal(c.retention_raw_ms, 3600000);
    assert_int_equal(c.retention_dlq_ms, 14LL * 24 * 3600 * 1000);
    config_release(&c);
}

static void test_set_validates_and_names_key(void **st)
{
    (void)st;
    config_t c;
    char why[256];
    config_init(&c);
    assert_int_equal(config_set(&c, "bus.fsync", "always", why, sizeof(why)), 0);
    assert_string_equal(c.bus_fsync, "always");
    assert_int_not_equal(config_set(&c, "bus.fsync", "sometimes", why, sizeof(why)), 0);
    assert_non_null(strstr(why, "bus.fsync"));
    assert_string_equal(c.bus_fsync, "always");
    assert_int_not_equal(config_set(&c, "bus.partitions", "0", why, sizeof(why)), 0);
    assert_non_null(strstr(why, "bus.partitions"));
    assert_int_not_equal(config_set(&c, "bus.partitions", "many", why, sizeof(why)), 0);
    assert_int_not_equal(config_set(&c, "no.such.key", "1", why, sizeof(why)), 0);
    assert_non_null(strstr(why, "no.such.key"));
    assert_int_equal(config_set(&c, "topics.retention.raw_ms", "2h", why, sizeof(why)), 0);
    assert_int_equal(c.retention_raw_ms, 2 * 3600000);
    config_release(&c);
}

static void test_kafka_passthrough(void **st)
{
    (void)st;
    config_t c;
    char why[256];
    config_init(&c);
    assert_int_equal(config_set(&c, "kafka.security.protocol", "SASL_SSL", why, sizeof(why)), 0);
    assert_int_equal(config_set(&c, "kafka.security.protocol", "SSL", why, sizeof(why)), 0);
    assert_int_equal(config_set(&c, "kafka.bootstrap.servers", "h:1", why, sizeof(why)), 0);
    assert_string_equal(c.kafka_brokers, "h:1");
    const char *const *kv = config_kafka_kv(&c);
    assert_string_equal(kv[0], "security.protocol");
    assert_string_equal(kv[1], "SSL");
    assert_null(kv[2]);
    config_release(&c);
}

static void test_file_and_env(void **st)
{
    (void)st;
    char path[] = "/tmp/herald-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "data_dir = /srv/herald\n[bus]\nfsync = never\npartitions = 8\n"
                       "[kafka]\nsasl.mechanism = PLAIN\n";
    assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);

    config_t c;
    char why[256];
    config_init(&c);
    assert_int_equal(config_load_file(&c, path, why, sizeof(why)), 0);
    assert_string_equal(c.data_dir, "/srv/herald");
    assert_string_equal(c.bus_fsync, "never");
    assert_int_equal(c.bus_partitions, 8);
    assert_string_equal(config_kafka_kv(&c)[0], "sasl.mechanism");

    setenv("HERALD_BUS_PARTITIONS", "12", 1);
    setenv("HERALD_KAFKA_CLIENT_ID", "herald-test", 1);
    assert_int_equal(config_load_env(&c, why, sizeof(why)), 0);
    assert_int_equal(c.bus_partitions, 12);
    assert_string_equal(config_kafka_kv(&c)[2], "client.id");
    assert_string_equal(config_kafka_kv(&c)[3], "herald-test");
    setenv("HERALD_BUS_FSYNC", "bogus", 1);
    assert_int_not_equal(config_load_env(&c, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "bus.fsync"));
    unsetenv("HERALD_BUS_FSYNC");
    unsetenv("HERALD_BUS_PARTITIONS");
    unsetenv("HERALD_KAFKA_CLIENT_ID");
    config_release(&c);

    /* A bad key in the file is named. */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    const char *bad = "[bus]\nfsinc = never\n";
    assert_int_equal(write(fd, bad, strlen(bad)), (int)strlen(bad));
    close(fd);
    config_init(&c);
    assert_int_not_equal(config_load_file(&c, path, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "bus.fsinc"));
    config_release(&c);
    unlink(path);
}

static void test_unit_suffixes_and_overflow(void **st)
{
    (void)st;
    config_t c;
    char why[256];
    config_init(&c);
    assert_int_equal(config_set(&c, "bus.segment_bytes", "64MiB", why, sizeof(why)), HR_OK);
    assert_int_equal(c.bus_segment_bytes, 64LL << 20);
    assert_int_equal(config_set(&c, "topics.retention.dlq_ms", "14d", why, sizeof(why)), HR_OK);
    assert_int_equal(c.retention_dlq_ms, 14LL * 86400000);
    assert_int_equal(config_set(&c, "topics.retention.raw_ms", "-1", why, sizeof(why)), HR_OK);
    assert_int_equal(c.retention_raw_ms, -1);
    /* 2^62 ms fits; times a day it does not, and must not wrap into range */
    assert_int_equal(config_set(&c, "topics.retention.raw_ms", "4611686018427387904", why, sizeof(why)), HR_OK);
    assert_int_not_equal(config_set(&c, "topics.retention.raw_ms", "4611686018427387904d", why, sizeof(why)), HR_OK);
    assert_non_null(strstr(why, "topics.retention.raw_ms"));
    /* 2^64 / 1024 wraps to 0 in 64 bits: refused, not accepted as 0 */
    assert_int_not_equal(config_set(&c, "topics.retention.raw_ms", "18014398509481984k", why, sizeof(why)), HR_OK);
    assert_int_not_equal(config_set(&c, "topics.retention.raw_ms", "-9223372036854775807d", why, sizeof(why)), HR_OK);
    assert_int_equal(c.retention_raw_ms, INT64_C(4611686018427387904));
    assert_int_not_equal(config_set(&c, "bus.segment_bytes", "1X", why, sizeof(why)), HR_OK);
    assert_int_not_equal(config_set(&c, "bus.segment_bytes", "99999999999999999999", why, sizeof(why)), HR_OK);
    config_release(&c);
}

/* Absurd HTTP limits are refused by name, never clamped into range. */
static void test_http_limits_refused(void **st)
{
    (void)st;
    static const struct {
        const char *key, *value;
    } bad[] = {
        {"http.max_body", "0"},
        {"http.max_body", "-1"},
        {"http.max_body", "1023"},
        {"http.max_body", "99999999999999999999"},
        {"http.max_body", "18014398509481984k"},
        {"http.max_body", "2048M"},
        {"http.max_body", "1G"},
        {"http.max_body", "1e9"},
        {"http.per_client_connections", "0"},
        {"http.header_timeout_ms", "0"},
        {"http.body_timeout_ms", "5d"},
        {"api.allow_private_webhook_urls", "2"},
    };
    config_t c;
    char why[256];
    config_init(&c);
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        why[0] = '\0';
        if (config_set(&c, bad[i].key, bad[i].value, why, sizeof(why)) != HR_INVALID)
            fail_msg("%s = %s accepted", bad[i].key, bad[i].value);
        if (!strstr(why, bad[i].key)) fail_msg("%s = %s: '%s' does not name it", bad[i].key,
                                               bad[i].value, why);
    }
    assert_int_equal(c.http_max_body, 1048576);
    assert_int_equal(c.http_per_client_connections, 64);
    assert_int_equal(c.http_header_timeout_ms, 10000);
    assert_int_equal(c.http_body_timeout_ms, 30000);
    assert_int_equal(c.api_allow_private_webhook_urls, 0);
    assert_int_equal(config_set(&c, "http.max_body", "1GiB", why, sizeof(why)), HR_INVALID);
    assert_int_equal(config_set(&c, "http.max_body", "1024M", why, sizeof(why)), HR_OK);
    assert_int_equal(c.http_max_body, INT64_C(1) << 30);
    config_release(&c);
}

static void test_knobs(void **st)
{
    (void)st;
    config_t c;
    char why[256];
    config_init(&c);
    assert_int_equal(c.http_connection_limit, 1024);
    assert_int_equal(c.bus_embedded_max_pending, 1LL << 20);
    assert_int_equal(c.pipeline_depth, 4);
    assert_int_equal(c.ingest_ack_timeout_ms, 10000);
    assert_int_equal(c.fanout_cache_bytes, 128LL << 20);
    assert_int_equal(c.status_gather, 16384);
    assert_int_equal(config_set(&c, "bus.embedded.max_pending_bytes", "1MiB", why, sizeof(why)), HR_OK);
    assert_int_equal(c.bus_embedded_max_pending, 1 << 20);
    assert_int_not_equal(config_set(&c, "pipeline.depth", "0", why, sizeof(why)), HR_OK);
    assert_non_null(strstr(why, "pipeline.depth"));
    assert_int_equal(config_set(&c, "ingest.ack_timeout_ms", "2s", why, sizeof(why)), HR_OK);
    assert_int_equal(c.ingest_ack_timeout_ms, 2000);
    assert_int_equal(config_set(&c, "roles", "ingest,dispatch:sms", why, sizeof(why)), HR_OK);
    assert_int_not_equal(config_set(&c, "roles", "ingest,dispatch:fax", why, sizeof(why)), HR_OK);
    assert_non_null(strstr(why, "'dispatch:fax'"));
    assert_string_equal(c.roles, "ingest,dispatch:sms");
    /* embedded settings are not kafka passthrough */
    assert_null(config_kafka_kv(&c)[0]);
    config_release(&c);
}

static void test_required_categories(void **st)
{
    (void)st;
    config_t c;
    char why[256];
    config_init(&c);
    assert_string_equal(c.required_categories, "security,otp");
    assert_int_equal(config_set(&c, "policy.required_categories", "security, 2fa", why, sizeof(why)),
                     HR_OK);
    assert_string_equal(c.required_categories, "security, 2fa");
    assert_int_equal(config_set(&c, "policy.required_categories", "", why, sizeof(why)), HR_OK);
    assert_int_not_equal(config_set(&c, "policy.required_categories", "otp;drop", why, sizeof(why)),
                         HR_OK);
    assert_non_null(strstr(why, "policy.required_categories"));
    assert_string_equal(c.required_categories, ""); /* unchanged */
    config_release(&c);
}

static void test_env_kafka_underscore(void **st)
{
    (void)st;
    config_t c;
    char why[256];
    config_init(&c);
    setenv("HERALD_KAFKA_SASL_OAUTHBEARER_CLIENT__ID", "me", 1);
    setenv("HERALD_BUS_EMBEDDED_MAX_PENDING_BYTES", "8192", 1);
    assert_int_equal(config_load_env(&c, why, sizeof(why)), HR_OK);
    const char *const *kv = config_kafka_kv(&c);
    assert_string_equal(kv[0], "sasl.oauthbearer.client_id");
    assert_string_equal(kv[1], "me");
    assert_null(kv[2]);
    assert_int_equal(c.bus_embedded_max_pending, 8192);
    unsetenv("HERALD_KAFKA_SASL_OAUTHBEARER_CLIENT__ID");
    unsetenv("HERALD_BUS_EMBEDDED_MAX_PENDING_BYTES");
    config_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_set_validates_and_names_key),
        cmocka_unit_test(test_kafka_passthrough),
        cmocka_unit_test(test_file_and_env),
        cmocka_unit_test(test_unit_suffixes_and_overflow),
        cmocka_unit_test(test_knobs),
        cmocka_unit_test(test_required_categories),
        cmocka_unit_test(test_http_limits_refused),
        cmocka_unit_test(test_env_kafka_underscore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
