/*
 * jwt.h - JSON Web Tokens (RFC 7519) signed with ES256 (APNs provider
 * tokens, from a .p8 key) or RS256 (the FCM service account's OAuth2
 * assertion), on OpenSSL's libcrypto.
 *
 * DESIGN. Only signing is needed in herald (verification lives in tests);
 * the token is base64url(header) "." base64url(claims) "." base64url(sig).
 * The algorithm follows the key: an EC P-256 key signs ES256 (the raw
 * 64-byte r||s form JWS requires, not DER), an RSA key RS256. Our own
 * 100 lines rather than libjwt: its Debian version brings jansson-based
 * claims handling we do not need, and the crypto is OpenSSL's either way.
 *
 * Threads: a key may be used from one thread at a time.
 */
#ifndef HERALD_PROVIDER_JWT_H
#define HERALD_PROVIDER_JWT_H

#include "core/buf.h"
#include "core/common.h"

typedef struct jwt_key jwt_key_t;

typedef enum jwt_alg { JWT_ES256 = 1, JWT_RS256 = 2 } jwt_alg_t;

/* Loads a PEM private key (PKCS#8 "BEGIN PRIVATE KEY" as in an APNs .p8
 * or a service account's private_key; also "BEGIN EC/RSA PRIVATE KEY")
 * from memory. EC keys must be P-256. HR_INVALID with why (never the key
 * material) otherwise. */
hr_t jwt_key_from_pem(const char *pem, size_t len, jwt_key_t **out, char *why, size_t why_len);
/* The same from a file; why names the path. */
hr_t jwt_key_load(const char *path, jwt_key_t **out, char *why, size_t why_len);
void jwt_key_free(jwt_key_t *k);
jwt_alg_t jwt_key_alg(const jwt_key_t *k);

/* Appends the signed token to out. header_json and claims_json are the
 * JSON object texts to encode as they are (the caller writes "alg" in the
 * header; jwt_sign does not check it). HR_ERR if signing fails. */
hr_t jwt_sign(jwt_key_t *k, const char *header_json, const char *claims_json, buf_t *out);

#endif
