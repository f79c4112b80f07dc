#ifndef GATEWAY_COPENSSL_SHIM_H
#define GATEWAY_COPENSSL_SHIM_H
// libcrypto (OpenSSL 3, Debian's libssl-dev): HMAC and SHA-256 for consistency tokens and
// identity hashing; public-key signature checks for JWTs (module JWT). Every primitive is
// OpenSSL's: the helpers below only move key material and signatures into its formats.
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

/// A public key of `type` ("RSA", "EC") from the parameters in `builder` (freed here); NULL when
/// they do not make one.
static inline EVP_PKEY *gw_public_key_from_params(const char *type, OSSL_PARAM_BLD *builder) {
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = builder ? OSSL_PARAM_BLD_to_param(builder) : NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1
        && EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        pkey = NULL;
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(builder);
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return pkey;
}

/// An RSA public key from its big-endian modulus and exponent (a JWK's `n` and `e`).
static inline EVP_PKEY *gw_rsa_public_key(const unsigned char *n, size_t n_len, const unsigned char *e, size_t e_len) {
    BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL);
    BIGNUM *bn_e = BN_bin2bn(e, (int)e_len, NULL);
    OSSL_PARAM_BLD *builder = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    if (bn_n && bn_e && builder
        && OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_N, bn_n)
        && OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_E, bn_e)) {
        pkey = gw_public_key_from_params("RSA", builder);
        builder = NULL;
    }
    OSSL_PARAM_BLD_free(builder);
    BN_free(bn_n);
    BN_free(bn_e);
    return pkey;
}

/// An EC public key on `group` ("prime256v1", "secp384r1", "secp521r1") from its uncompressed
/// point (0x04 || x || y, a JWK's `x` and `y`); NULL when the point is not on the curve.
static inline EVP_PKEY *gw_ec_public_key(const char *group, const unsigned char *point, size_t point_len) {
    OSSL_PARAM_BLD *builder = OSSL_PARAM_BLD_new();
    if (builder
        && OSSL_PARAM_BLD_push_utf8_string(builder, OSSL_PKEY_PARAM_GROUP_NAME, group, 0)
        && OSSL_PARAM_BLD_push_octet_string(builder, OSSL_PKEY_PARAM_PUB_KEY, point, point_len)) {
        return gw_public_key_from_params("EC", builder);
    }
    OSSL_PARAM_BLD_free(builder);
    return NULL;
}

/// The EC group name of `pkey` ("prime256v1", ...) into `name`; 0 when it has none.
static inline int gw_ec_group_name(EVP_PKEY *pkey, char *name, size_t size) {
    size_t length = 0;
    int ok = EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, size, &length);
    ERR_clear_error();
    return ok;
}

/// A public key from PEM text: a SubjectPublicKeyInfo ("BEGIN PUBLIC KEY") or a certificate's.
static inline EVP_PKEY *gw_pem_public_key(const char *pem, size_t length) {
    BIO *bio = BIO_new_mem_buf(pem, (int)length);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!pkey) {
        bio = BIO_new_mem_buf(pem, (int)length);
        X509 *certificate = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
        if (certificate) {
            pkey = X509_get_pubkey(certificate);
            X509_free(certificate);
        }
        BIO_free(bio);
    }
    ERR_clear_error();
    return pkey;
}

/// 1 when `signature` is `pkey`'s signature of `data`. `md` is NULL for Ed25519; `pss` selects
/// RSASSA-PSS (salt as long as the digest, as JWS's PS256/384/512 use); `ecdsa_size` > 0 says
/// the signature is JWS's fixed-size r || s (each that many bytes), made DER for OpenSSL.
static inline int gw_verify(EVP_PKEY *pkey, const EVP_MD *md, int pss, int ecdsa_size,
                            const unsigned char *signature, size_t signature_length,
                            const unsigned char *data, size_t data_length) {
    unsigned char *der = NULL;
    if (ecdsa_size > 0) {
        if (signature_length != 2 * (size_t)ecdsa_size) return 0;
        ECDSA_SIG *pair = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(signature, ecdsa_size, NULL);
        BIGNUM *s = BN_bin2bn(signature + ecdsa_size, ecdsa_size, NULL);
        if (!pair || !r || !s || ECDSA_SIG_set0(pair, r, s) != 1) {
            ECDSA_SIG_free(pair);
            BN_free(r);
            BN_free(s);
            return 0;
        }
        int der_length = i2d_ECDSA_SIG(pair, &der);
        ECDSA_SIG_free(pair);
        if (der_length <= 0) return 0;
        signature = der;
        signature_length = (size_t)der_length;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = ctx && EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pkey) == 1;
    if (ok && pss) {
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1
            && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    }
    if (ok) ok = EVP_DigestVerify(ctx, signature, signature_length, data, data_length) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ERR_clear_error();
    return ok;
}

/// 1 when `mac` is the HMAC of `data` under `key` (compared in constant time).
static inline int gw_hmac_verify(const EVP_MD *md, const unsigned char *key, size_t key_length,
                                 const unsigned char *data, size_t data_length,
                                 const unsigned char *mac, size_t mac_length) {
    unsigned char expected[EVP_MAX_MD_SIZE];
    unsigned int expected_length = 0;
    static const unsigned char empty = 0;
    if (!HMAC(md, key_length ? key : &empty, (int)key_length, data, data_length, expected, &expected_length)) return 0;
    return expected_length == mac_length && CRYPTO_memcmp(expected, mac, mac_length) == 0;
}

static inline const EVP_MD *gw_sha256(void) { return EVP_sha256(); }
static inline const EVP_MD *gw_sha384(void) { return EVP_sha384(); }
static inline const EVP_MD *gw_sha512(void) { return EVP_sha512(); }
#endif
