/* Unit tests for the JWT signer (src/provider/jwt.c): tokens verify with
 * the public half of keys generated here, in the JWS form (ES256 raw r||s),
 * and bad keys are refused without echoing key material. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/base64.h"
#include "provider/jwt.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static EVP_PKEY *gen(const char *type, const char *param)
{
    EVP_PKEY *k = strcmp(type, "EC") == 0 ? EVP_EC_gen(param) : EVP_RSA_gen(2048);
    assert_non_null(k);
    return k;
}

/* PKCS#8 PEM ("BEGIN PRIVATE KEY"), as an APNs .p8 or a service account
 * holds it; caller frees. */
static char *pkcs8(EVP_PKEY *k, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PKCS8PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *out = malloc((size_t)n + 1);
    memcpy(out, p, (size_t)n);
    out[n] = '\0';
    *len = (size_t)n;
    BIO_free(b);
    return out;
}

/* Verifies token's signature with k; checks the decoded header and claims. */
static void verify(EVP_PKEY *k, const char *token, const char *want_header, const char *want_claims,
                   bool es256)
{
    const char *d1 = strchr(token, '.');
    assert_non_null(d1);
    const char *d2 = strchr(d1 + 1, '.');
    assert_non_null(d2);
    assert_null(strchr(d2 + 1, '.'));
    size_t hl, cl, sl;
    char *h = base64url_decode(token, (size_t)(d1 - token), &hl);
    char *c = base64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &cl);
    char *s = base64url_decode(d2 + 1, strlen(d2 + 1), &sl);
    assert_non_null(h);
    assert_non_null(c);
    assert_non_null(s);
    assert_string_equal(h, want_header);
    assert_string_equal(c, want_claims);

    unsigned char der[80];
    const unsigned char *sig = (const unsigned char *)s;
    size_t siglen = sl;
    if (es256) {
        assert_int_equal(sl, 64); /* JWS wants r||s, not DER */
        ECDSA_SIG *es = ECDSA_SIG_new();
        ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
        unsigned char *p = der;
        int n = i2d_ECDSA_SIG(es, &p);
        ECDSA_SIG_free(es);
        assert_true(n > 0 && n <= (int)sizeof(der));
        sig = der;
        siglen = (size_t)n;
    } else {
        assert_int_equal(sl, 256);
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestVerify(md, sig, siglen, (const unsigned char *)token,
                                      (size_t)(d2 - token)),
                     1);
    /* One flipped byte of the signed part must not verify. */
    char *bad = strdup(token);
    bad[3] ^= 1;
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_not_equal(EVP_DigestVerify(md, sig, siglen, (const unsigned char *)bad,
                                          (size_t)(d2 - token)),
                         1);
    free(bad);
    EVP_MD_CTX_free(md);
    free(h);
    free(c);
    free(s);
}

static void test_es256_verifies(void **st)
{
    (void)st;
    EVP_PKEY *k = gen("EC", "P-256");
    size_t n;
    char *pem = pkcs8(k, &n);
    char path[] = "/tmp/herald-jwt-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, pem, n), (ssize_t)n);
    close(fd);

    jwt_key_t *jk = NULL;
    char why[256] = "";
    assert_int_equal(jwt_key_load(path, &jk, why, sizeof(why)), HR_OK);
    assert_int_equal(jwt_key_alg(jk), JWT_ES256);
    const char *hdr = "{\"alg\":\"ES256\",\"kid\":\"ABC123DEFG\"}";
    const char *cl = "{\"iss\":\"DEF123GHIJ\",\"iat\":1764460800}";
    for (int i = 0; i < 20; i++) { /* ECDSA is randomised: every one must verify */
        buf_t out;
        buf_init(&out, 0);
        assert_int_equal(buf_append_str(&out, "bearer "), HR_OK);
        assert_int_equal(jwt_sign(jk, hdr, cl, &out), HR_OK);
        buf_cstr(&out);
        assert_memory_equal(out.data, "bearer ", 7);
        verify(k, out.data + 7, hdr, cl, true);
        buf_release(&out);
    }
    jwt_key_free(jk);
    unlink(path);
    free(pem);
    EVP_PKEY_free(k);
}

static void test_rs256_verifies(void **st)
{
    (void)st;
    EVP_PKEY *k = gen("RSA", NULL);
    size_t n;
    char *pem = pkcs8(k, &n);
    jwt_key_t *jk = NULL;
    char why[256] = "";
    assert_int_equal(jwt_key_from_pem(pem, n, &jk, why, sizeof(why)), HR_OK);
    assert_int_equal(jwt_key_alg(jk), JWT_RS256);
    const char *hdr = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
    const char *cl = "{\"iss\":\"svc@example.iam.gserviceaccount.com\",\"exp\":1764464400}";
    buf_t out;
    buf_init(&out, 0);
    assert_int_equal(jwt_sign(jk, hdr, cl, &out), HR_OK);
    buf_cstr(&out);
    verify(k, out.data, hdr, cl, false);
    buf_release(&out);
    jwt_key_free(jk);
    free(pem);
    EVP_PKEY_free(k);
}

static void test_bad_keys_refused(void **st)
{
    (void)st;
    jwt_key_t *jk = NULL;
    char why[256];
    const char *junk = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LW1hdGVyaWFs\n-----END PRIVATE KEY-----\n";
    assert_int_equal(jwt_key_from_pem(junk, strlen(junk), &jk, why, sizeof(why)), HR_INVALID);
    assert_null(jk);
    assert_null(strstr(why, "c2VjcmV0")); /* never the key material */
    assert_int_equal(jwt_key_from_pem("", 0, &jk, why, sizeof(why)), HR_INVALID);

    EVP_PKEY *k = gen("EC", "P-384");
    size_t n;
    char *pem = pkcs8(k, &n);
    assert_int_equal(jwt_key_from_pem(pem, n, &jk, why, sizeof(why)), HR_INVALID);
    assert_non_null(strstr(why, "P-256"));
    free(pem);
    EVP_PKEY_free(k);

    assert_int_equal(jwt_key_load("/nonexistent/key.p8", &jk, why, sizeof(why)), HR_INVALID);
    assert_non_null(strstr(why, "/nonexistent/key.p8"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_es256_verifies),
        cmocka_unit_test(test_rs256_verifies),
        cmocka_unit_test(test_bad_keys_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
