/*
 * HTTP server tests: HTTPS on the listener (http.tls_cert_file and
 * http.tls_key_file). A self-signed certificate for 127.0.0.1 is made
 * here; a client that trusts it gets answers over TLS 1.2+, a plain HTTP
 * client gets none, and bad settings stop the server from starting.
 * Real server, bus and store (api_fixture.h).
 */
#include "api_fixture.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char cert_path[128], key_path[128];

/* A self-signed P-256 certificate for IP 127.0.0.1, valid for a day. */
static void make_cert(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    X509 *x = X509_new();
    X509_set_version(x, X509_VERSION_3); /* extensions need v3 (GnuTLS refuses v1 with them) */
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
    assert_non_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);

    snprintf(cert_path, sizeof(cert_path), "%s/tls-cert.pem", F.dir);
    snprintf(key_path, sizeof(key_path), "%s/tls-key.pem", F.dir);
    FILE *f = fopen(cert_path, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void set_tls(const char *cert, const char *key)
{
    free(F.cfg.http_tls_cert_file);
    free(F.cfg.http_tls_key_file);
    F.cfg.http_tls_cert_file = strdup(cert);
    F.cfg.http_tls_key_file = strdup(key);
}

/* GET url with curl trusting our certificate (ca NULL: curl's default);
 * the curl result; *status the HTTP status, *tls_ver the TLS version. */
static CURLcode get(const char *url, const char *ca, long *status, char **body)
{
    CURL *c = curl_easy_init();
    hresp_t r;
    memset(&r, 0, sizeof(r));
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (ca) curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    *body = r.body;
    return rc;
}

static void test_https_answers(void **state)
{
    (void)state;
    make_cert();
    set_tls(cert_path, key_path);
    http_server_t *s = NULL;
    assert_int_equal(http_start(&F.app, "127.0.0.1:0", &s), HR_OK);
    char url[128];
    long status;
    char *body = NULL;

    /* A client trusting the certificate gets the answer over TLS. */
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/healthz", http_port(s));
    assert_int_equal(get(url, cert_path, &status, &body), CURLE_OK);
    assert_int_equal(status, 200);
    free(body);
    /* A problem answer works the same over TLS. */
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/nothing-here", http_port(s));
    assert_int_equal(get(url, cert_path, &status, &body), CURLE_OK);
    assert_int_equal(status, 404);
    assert_non_null(body);
    assert_non_null(strstr(body, "\"status\""));
    free(body);
    /* One that does not trust it refuses the handshake. */
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/healthz", http_port(s));
    assert_int_not_equal(get(url, "/dev/null", &status, &body), CURLE_OK);
    free(body);
    /* Plain HTTP to the TLS port gets no HTTP answer. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", http_port(s));
    get(url, NULL, &status, &body);
    assert_int_not_equal(status, 200);
    free(body);
    http_stop(s);
    set_tls("", "");
}

static void test_bad_settings_refused(void **state)
{
    (void)state;
    http_server_t *s = NULL;
    set_tls(cert_path, ""); /* one without the other */
    assert_int_equal(http_start(&F.app, "127.0.0.1:0", &s), HR_INVALID);
    assert_null(s);
    set_tls(cert_path, "/nonexistent/key.pem");
    assert_int_equal(http_start(&F.app, "127.0.0.1:0", &s), HR_INVALID);
    assert_null(s);
    char junk[160];
    snprintf(junk, sizeof(junk), "%s/junk.pem", F.dir);
    FILE *f = fopen(junk, "w");
    fputs("not a pem file\n", f);
    fclose(f);
    set_tls(cert_path, junk);
    assert_int_equal(http_start(&F.app, "127.0.0.1:0", &s), HR_INVALID);
    assert_null(s);
    /* A PEM that is not the certificate's key: the daemon refuses it. */
    set_tls(key_path, cert_path);
    assert_int_not_equal(http_start(&F.app, "127.0.0.1:0", &s), HR_OK);
    assert_null(s);
    set_tls("", "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_https_answers),
        cmocka_unit_test(test_bad_settings_refused),
    };
    return cmocka_run_group_tests(tests, api_setup, api_teardown);
}
