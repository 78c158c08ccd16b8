#include "http/tls_context.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace apollo_oauth::http {

namespace ssl = boost::asio::ssl;

namespace {

// OpenSSL 3.0 fills a certificate's cached extension data (key identifiers, flags) on first use,
// and two threads verifying against the same trusted certificate at once can both write it while
// the other reads it (openssl/openssl#32609; ThreadSanitizer caught it in the soak, in
// ASN1_STRING_cmp, on the first concurrent handshakes). Filling it now, while the context is still
// private to this thread, leaves nothing for the handshakes to write. Certificates the system
// store loads on demand during a verification are not covered.
void cache_trusted_certificate_extensions(SSL_CTX* ctx) {
    STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
    for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
        if (X509* cert = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i))) {
            X509_check_purpose(cert, -1, 0);  // -1: only fill the cache
        }
    }
}

}  // namespace

ssl::context make_client_tls_context(const tls_config& config) {
    ssl::context ctx{ssl::context::tls_client};
    // TLS 1.0/1.1 are deprecated (RFC 8996); OAuth 2.0 requires TLS (RFC 6749 §1.6).
    if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1) {
        throw boost::system::system_error(
            error_code(static_cast<int>(::ERR_get_error()), boost::asio::error::get_ssl_category()),
            "cannot require TLS 1.2");
    }
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_compression);
    // No SSL_OP_CLEANSE_PLAINTEXT here: an exchange whose answer holds secrets turns it on for
    // its own connection (exchange.cpp), since it costs ~6% of API throughput on every read.
    ctx.set_verify_mode(ssl::verify_peer);
    if (config.use_system_trust_store) {
        ctx.set_default_verify_paths();
    }
    if (!config.ca_file.empty()) {
        error_code ec;
        ctx.load_verify_file(config.ca_file, ec);
        if (ec) {
            throw boost::system::system_error(ec, "cannot load tls.ca_file");
        }
    }
    if (!config.ca_pem.empty()) {
        error_code ec;
        ctx.add_certificate_authority(boost::asio::buffer(config.ca_pem), ec);
        if (ec) {
            throw boost::system::system_error(ec, "cannot load tls.ca_pem");
        }
    }
    cache_trusted_certificate_extensions(ctx.native_handle());
    return ctx;
}

error_code prepare_tls_peer(::SSL* ssl, const std::string& host) {
    // OpenSSL's own host check (X509_VERIFY_PARAM) runs inside the chain verification, so a
    // mismatch fails the handshake exactly like an untrusted chain does.
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    error_code ec;
    boost::asio::ip::make_address(host, ec);
    const bool is_ip_literal = !ec;
    int ok = 0;
    if (is_ip_literal) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
    } else {
        // SNI carries names only (RFC 6066 §3 forbids IP literals).
        ok = X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size()) &&
             SSL_set_tlsext_host_name(ssl, host.c_str());
    }
    if (ok != 1) {
        return {static_cast<int>(::ERR_get_error()), boost::asio::error::get_ssl_category()};
    }
    return {};
}

}  // namespace apollo_oauth::http
