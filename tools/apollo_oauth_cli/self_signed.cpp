// A throw-away certificate for login's loopback listener (OpenSSL 3).
#include "self_signed.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <type_traits>

namespace apollo_oauth::cli {
namespace {

// Owns an OpenSSL object with its own free function: owned<X509, X509_free>.
template <class T, auto Free>
using owned = std::unique_ptr<T, std::integral_constant<decltype(Free), Free>>;

// Throws with OpenSSL's reason when a call failed (0, or a null pointer).
template <class Result>
Result ensure(Result result, const char* call) {
    if (!result) {
        char reason[256] = "";
        ERR_error_string_n(ERR_get_error(), reason, sizeof reason);
        throw std::runtime_error(std::string("login certificate: ") + call + ": " + reason);
    }
    return result;
}

std::string pem_of(const owned<BIO, BIO_free_all>& bio) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

void add_extension(X509* cert, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    const owned<X509_EXTENSION, X509_EXTENSION_free> ext(
        ensure(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value), "X509V3_EXT_conf_nid"));
    ensure(X509_add_ext(cert, ext.get(), -1), "X509_add_ext");
}

std::string fingerprint_of(X509* cert) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    ensure(X509_digest(cert, EVP_sha256(), digest, &size), "X509_digest");
    char* hex = ensure(OPENSSL_buf2hexstr(digest, size), "OPENSSL_buf2hexstr");
    std::string out(hex);  // "AB:CD:...", as browsers show it
    OPENSSL_free(hex);
    return out;
}

}  // namespace

listener_certificate make_self_signed_certificate() {
    const owned<EVP_PKEY, EVP_PKEY_free> key(ensure(EVP_EC_gen("P-256"), "EVP_EC_gen"));
    const owned<X509, X509_free> cert(ensure(X509_new(), "X509_new"));
    ensure(X509_set_version(cert.get(), X509_VERSION_3), "X509_set_version");
    unsigned char serial[16];
    ensure(RAND_bytes(serial, sizeof serial), "RAND_bytes");
    serial[0] &= 0x7f;  // positive
    const owned<BIGNUM, BN_free> bn(ensure(BN_bin2bn(serial, sizeof serial, nullptr), "BN_bin2bn"));
    ensure(BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())), "BN_to_ASN1_INTEGER");
    ensure(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600), "X509_gmtime_adj");
    ensure(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600), "X509_gmtime_adj");
    X509_NAME* name = X509_get_subject_name(cert.get());
    const unsigned char cn[] = "apollo-oauth login (127.0.0.1)";
    ensure(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, cn, -1, -1, 0), "X509_NAME_add_entry_by_txt");
    ensure(X509_set_issuer_name(cert.get(), name), "X509_set_issuer_name");
    ensure(X509_set_pubkey(cert.get(), key.get()), "X509_set_pubkey");
    add_extension(cert.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), NID_key_usage, "critical,digitalSignature");
    add_extension(cert.get(), NID_ext_key_usage, "serverAuth");
    add_extension(cert.get(), NID_subject_alt_name, "IP:127.0.0.1,IP:::1,DNS:localhost");
    add_extension(cert.get(), NID_subject_key_identifier, "hash");
    ensure(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "X509_sign");

    const owned<BIO, BIO_free_all> cert_bio(ensure(BIO_new(BIO_s_mem()), "BIO_new"));
    ensure(PEM_write_bio_X509(cert_bio.get(), cert.get()), "PEM_write_bio_X509");
    const owned<BIO, BIO_free_all> key_bio(ensure(BIO_new(BIO_s_mem()), "BIO_new"));
    ensure(PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr),
           "PEM_write_bio_PrivateKey");
    return {pem_of(cert_bio), pem_of(key_bio), fingerprint_of(cert.get())};
}

std::string certificate_fingerprint(const std::string& cert_pem) {
    const owned<BIO, BIO_free_all> bio(
        ensure(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())), "BIO_new_mem_buf"));
    const owned<X509, X509_free> cert(
        ensure(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), "reading the certificate"));
    return fingerprint_of(cert.get());
}

}  // namespace apollo_oauth::cli
