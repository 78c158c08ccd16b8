#include "emulator/certificates.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace apollo_oauth::emulator::detail {
namespace {

template <class T, void (*Free)(T*)>
struct openssl_deleter {
    void operator()(T* p) const noexcept { Free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY, EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509, X509_free>>;
using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO, BIO_free_all>>;
using ext_ptr = std::unique_ptr<X509_EXTENSION, openssl_deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using bn_ptr = std::unique_ptr<BIGNUM, openssl_deleter<BIGNUM, BN_free>>;

void check(bool ok, const char* what) {
    if (!ok) {
        throw std::runtime_error(std::string("emulator certificates: ") + what + " failed");
    }
}

pkey_ptr make_p256_key() {
    pkey_ptr key(EVP_EC_gen("P-256"));
    check(key != nullptr, "EVP_EC_gen");
    return key;
}

void set_common_name(X509_NAME* name, const char* cn) {
    check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>("apollo_oauth emulator"), -1, -1,
                                     0) == 1,
          "X509_NAME_add_entry_by_txt");
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1,
                                     -1, 0) == 1,
          "X509_NAME_add_entry_by_txt");
}

void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
    ext_ptr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
    check(ext != nullptr, "X509V3_EXT_conf_nid");
    check(X509_add_ext(cert, ext.get(), -1) == 1, "X509_add_ext");
}

// Seconds relative to now.
struct validity {
    long not_before = -3600;  // an hour of slack tolerates clock skew between the test and TLS
    long not_after = 24 * 3600;
};

// A certificate with everything but the extensions and the signature. A random 127-bit serial
// keeps two emulators' certificates apart in any client-side session cache.
x509_ptr make_certificate(EVP_PKEY* subject_key, const char* common_name, X509_NAME* issuer,
                          validity valid = {}) {
    x509_ptr cert(X509_new());
    check(cert != nullptr, "X509_new");
    check(X509_set_version(cert.get(), X509_VERSION_3) == 1, "X509_set_version");

    bn_ptr serial(BN_new());
    check(serial != nullptr && BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1,
          "BN_rand");
    check(BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) != nullptr,
          "BN_to_ASN1_INTEGER");

    check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), valid.not_before) != nullptr, "X509_gmtime_adj");
    check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), valid.not_after) != nullptr, "X509_gmtime_adj");

    set_common_name(X509_get_subject_name(cert.get()), common_name);
    check(
        X509_set_issuer_name(cert.get(), issuer != nullptr ? issuer : X509_get_subject_name(cert.get())) == 1,
        "X509_set_issuer_name");
    check(X509_set_pubkey(cert.get(), subject_key) == 1, "X509_set_pubkey");
    return cert;
}

std::string to_pem(X509* cert) {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    check(bio != nullptr && PEM_write_bio_X509(bio.get(), cert) == 1, "PEM_write_bio_X509");
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

std::string to_pem(EVP_PKEY* key) {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    check(bio != nullptr &&
              PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
          "PEM_write_bio_PrivateKey");
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

}  // namespace

certificate_chain make_certificate_chain(const std::string& listen_address) {
    const pkey_ptr ca_key = make_p256_key();
    const x509_ptr ca = make_certificate(ca_key.get(), "apollo_oauth emulator CA", nullptr);
    {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, ca.get(), ca.get(), nullptr, nullptr, 0);
        add_extension(ca.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
        add_extension(ca.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
        add_extension(ca.get(), &ctx, NID_subject_key_identifier, "hash");
        check(X509_sign(ca.get(), ca_key.get(), EVP_sha256()) > 0, "X509_sign");
    }

    const pkey_ptr leaf_key = make_p256_key();
    const auto make_leaf = [&](const char* common_name, const char* names, validity valid) {
        x509_ptr leaf = make_certificate(leaf_key.get(), common_name, X509_get_subject_name(ca.get()), valid);
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, ca.get(), leaf.get(), nullptr, nullptr, 0);
        add_extension(leaf.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
        add_extension(leaf.get(), &ctx, NID_key_usage, "critical,digitalSignature");
        add_extension(leaf.get(), &ctx, NID_ext_key_usage, "serverAuth");
        add_extension(leaf.get(), &ctx, NID_subject_alt_name, names);
        add_extension(leaf.get(), &ctx, NID_subject_key_identifier, "hash");
        add_extension(leaf.get(), &ctx, NID_authority_key_identifier, "keyid:always");
        check(X509_sign(leaf.get(), ca_key.get(), EVP_sha256()) > 0, "X509_sign");
        return leaf;
    };
    std::string names = "IP:127.0.0.1,DNS:localhost";
    if (listen_address != "127.0.0.1") {
        names += ",IP:" + listen_address;
    }
    const char* const loopback_names = names.c_str();
    const x509_ptr leaf = make_leaf("127.0.0.1", loopback_names, {});
    const x509_ptr wrong_name = make_leaf("other.example.com", "DNS:other.example.com", {});
    const x509_ptr expired = make_leaf("127.0.0.1", loopback_names, {-3 * 24 * 3600, -24 * 3600});

    return {to_pem(ca.get()), to_pem(leaf.get()), to_pem(leaf_key.get()), to_pem(wrong_name.get()),
            to_pem(expired.get())};
}

}  // namespace apollo_oauth::emulator::detail
