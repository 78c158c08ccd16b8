// The client's TLS context, checked without a connection: every connection made from it cleanses
// the plaintext it receives (token responses) from OpenSSL's buffers.
#include <boost/test/unit_test.hpp>

#include <openssl/ssl.h>

#include "http/tls_context.hpp"

using namespace apollo_oauth;

BOOST_AUTO_TEST_SUITE(tls_context)

BOOST_AUTO_TEST_CASE(connections_cleanse_received_plaintext) {
    auto ctx = http::make_client_tls_context(tls_config{.use_system_trust_store = false});
    BOOST_TEST((SSL_CTX_get_options(ctx.native_handle()) & SSL_OP_CLEANSE_PLAINTEXT) != 0u);
    // What a connection inherits, as the pool's streams do.
    SSL* ssl = SSL_new(ctx.native_handle());
    BOOST_REQUIRE(ssl != nullptr);
    BOOST_TEST((SSL_get_options(ssl) & SSL_OP_CLEANSE_PLAINTEXT) != 0u);
    SSL_free(ssl);
}

BOOST_AUTO_TEST_SUITE_END()
