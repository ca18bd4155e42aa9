/*
 * jwt.c - ES256 / RS256 JSON Web Tokens on libcrypto (jwt.h).
 */
#include "provider/jwt.h"

#include "core/base64.h"
#include "core/file.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEM_MAX (64 * 1024)

struct jwt_key {
    EVP_PKEY *pkey;
    jwt_alg_t alg;
};

hr_t jwt_key_from_pem(const char *pem, size_t len, jwt_key_t **out, char *why, size_t why_len)
{
    *out = NULL;
    if (len > PEM_MAX || len > INT32_MAX) {
        snprintf(why, why_len, "the key is over %d bytes", PEM_MAX);
        return HR_INVALID;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio) return HR_ERR;
    /* No passphrase callback: an encrypted key fails instead of prompting. */
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
    BIO_free(bio);
    if (!pk) {
        snprintf(why, why_len, "not a PEM private key (PKCS#8, EC or RSA)");
        return HR_INVALID;
    }
    jwt_alg_t alg = 0;
    if (EVP_PKEY_is_a(pk, "EC")) {
        char group[64] = "";
        size_t gl = 0;
        if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                           &gl) != 1 ||
            (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
            snprintf(why, why_len, "an EC key must be on curve P-256 (ES256), not %s",
                     group[0] ? group : "an unknown curve");
            EVP_PKEY_free(pk);
            return HR_INVALID;
        }
        alg = JWT_ES256;
    } else if (EVP_PKEY_is_a(pk, "RSA")) {
        if (EVP_PKEY_get_bits(pk) < 2048) {
            snprintf(why, why_len, "an RSA key must have at least 2048 bits");
            EVP_PKEY_free(pk);
            return HR_INVALID;
        }
        alg = JWT_RS256;
    } else {
        snprintf(why, why_len, "the key is neither EC P-256 nor RSA");
        EVP_PKEY_free(pk);
        return HR_INVALID;
    }
    jwt_key_t *k = xcalloc(1, sizeof(*k));
    k->pkey = pk;
    k->alg = alg;
    *out = k;
    return HR_OK;
}

hr_t jwt_key_load(const char *path, jwt_key_t **out, char *why, size_t why_len)
{
    *out = NULL;
    char *pem = NULL;
    size_t n = 0;
    hr_t r = file_read_small(path, PEM_MAX, &pem, &n, why, why_len);
    if (r != HR_OK) return r == HR_NOTFOUND ? HR_INVALID : r;
    char inner[200];
    r = jwt_key_from_pem(pem, n, out, inner, sizeof(inner));
    if (r != HR_OK) snprintf(why, why_len, "%s: %s", path, inner);
    file_secret_free(pem, n); /* it held key material */
    return r;
}

void jwt_key_free(jwt_key_t *k)
{
    if (!k) return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

jwt_alg_t jwt_key_alg(const jwt_key_t *k) { return k->alg; }

static hr_t append_b64(buf_t *out, const void *p, size_t n)
{
    char *s = base64url_encode(p, n);
    hr_t r = buf_append_str(out, s);
    free(s);
    return r;
}

/* A DER ECDSA-Sig-Value to the fixed 64-byte r||s JWS wants (RFC 7518 §3.4). */
static bool der_to_raw(const unsigned char *der, size_t len, unsigned char raw[64])
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (!sig) return false;
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(sig, &r, &s);
    bool ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;
    ECDSA_SIG_free(sig);
    return ok;
}

hr_t jwt_sign(jwt_key_t *k, const char *header_json, const char *claims_json, buf_t *out)
{
    size_t start = out->len;
    hr_t r = append_b64(out, header_json, strlen(header_json));
    if (r == HR_OK) r = buf_append(out, ".", 1);
    if (r == HR_OK) r = append_b64(out, claims_json, strlen(claims_json));
    if (r != HR_OK) return r;

    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *sig = NULL;
    size_t siglen = 0;
    hr_t rc = HR_ERR;
    if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->pkey) != 1 ||
        EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)out->data + start,
                       out->len - start) != 1)
        goto done;
    sig = xmalloc(siglen);
    if (EVP_DigestSign(md, sig, &siglen, (const unsigned char *)out->data + start,
                       out->len - start) != 1)
        goto done;
    if (buf_append(out, ".", 1) != HR_OK) goto done;
    if (k->alg == JWT_ES256) {
        unsigned char raw[64];
        if (!der_to_raw(sig, siglen, raw)) goto done;
        rc = append_b64(out, raw, sizeof(raw));
    } else {
        rc = append_b64(out, sig, siglen);
    }
done:
    free(sig);
    EVP_MD_CTX_free(md);
    if (rc != HR_OK) out->len = start;
    return rc;
}
