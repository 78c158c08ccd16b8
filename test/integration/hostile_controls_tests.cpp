// Controls for the hostile-server matrix: each new emulator misbehaviour really is what its cells
// say, checked with clients other than the library. Without these, a cell could pass because
// the emulator failed in some other way (an untrusted chain rather than a wrong name, say).
#include <apollo_oauth/emulator/server.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/test/unit_test.hpp>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <functional>
#include <limits>

#include "raw_https.hpp"

using namespace apollo_oauth;
namespace asio = boost::asio;
namespace ssl = asio::ssl;
using kind = emulator::fault::kind;
using boost::system::error_code;

namespace {

struct handshake_result {
    error_code ec;
    int version = 0;  ///< the negotiated protocol (TLS1_1_VERSION, ...)
};

// A TLS handshake with the emulator, trusting its CA, checking the certificate for `name` (an IP
// literal or a DNS name), with `configure` applied to the client context first.
handshake_result handshake_with(const emulator::server& server, const std::string& name,
                                const std::function<void(SSL_CTX*)>& configure) {
    ssl::context tls{ssl::context::tls_client};
    tls.add_certificate_authority(asio::buffer(server.ca_pem()));
    tls.set_verify_mode(ssl::verify_peer);
    configure(tls.native_handle());
    asio::io_context ioc;
    ssl::stream<asio::ip::tcp::socket> stream{ioc, tls};
    X509_VERIFY_PARAM* param = SSL_get0_param(stream.native_handle());
    if (name == "127.0.0.1") {
        X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
    } else {
        X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    }
    handshake_result out;
    stream.next_layer().connect({asio::ip::make_address("127.0.0.1"), server.port()}, out.ec);
    if (!out.ec) {
        stream.handshake(ssl::stream_base::client, out.ec);
    }
    out.version = SSL_version(stream.native_handle());
    return out;
}

const auto no_change = [](SSL_CTX*) {};

test::raw_request profile_request() {
    test::raw_request req;
    req.target = "/api/v1/users/api_profile";
    return req;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(hostile_controls)

BOOST_AUTO_TEST_CASE(the_wrong_name_certificate_is_trusted_and_valid_for_its_own_name) {
    emulator::server server;
    server.inject({.what = kind::wrong_name_certificate, .count = 2});
    BOOST_TEST(!handshake_with(server, "other.example.com", no_change).ec);
    BOOST_TEST(handshake_with(server, "127.0.0.1", no_change).ec.failed());
}

BOOST_AUTO_TEST_CASE(the_expired_certificate_is_wrong_only_in_its_dates) {
    emulator::server server;
    server.inject({.what = kind::expired_certificate, .count = 2});
    BOOST_TEST(handshake_with(server, "127.0.0.1", no_change).ec.failed());
    const auto ignore_time = [](SSL_CTX* ctx) {
        X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_NO_CHECK_TIME);
    };
    BOOST_TEST(!handshake_with(server, "127.0.0.1", ignore_time).ec);
}

BOOST_AUTO_TEST_CASE(the_tls_1_1_server_speaks_tls_1_1_to_a_client_that_allows_it) {
    emulator::server server;
    server.inject({.what = kind::tls_1_1_only});
    const auto allow_tls_1_1 = [](SSL_CTX* ctx) {
        SSL_CTX_set_security_level(ctx, 0);
        SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
        SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
        SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION);
    };
    const auto result = handshake_with(server, "127.0.0.1", allow_tls_1_1);
    BOOST_TEST(!result.ec);
    BOOST_TEST(result.version == TLS1_1_VERSION);
}

BOOST_AUTO_TEST_CASE(connection_faults_are_used_up_per_connection) {
    emulator::server server;
    server.inject({.what = kind::tls_1_1_only});
    BOOST_TEST(handshake_with(server, "127.0.0.1", no_change).ec.failed());
    const auto result = handshake_with(server, "127.0.0.1", no_change);
    BOOST_TEST(!result.ec);
    BOOST_TEST(result.version >= TLS1_2_VERSION);
}

BOOST_AUTO_TEST_CASE(reset_before_request_comes_after_the_handshake_and_reads_nothing) {
    emulator::server server;
    server.inject({.what = kind::reset_before_request});
    test::raw_https_client raw{"127.0.0.1", server.port(), server.ca_pem()};
    BOOST_TEST(!raw.try_connect());
    const auto result =
        raw.try_send(test::form_post("/api/v1/oauth/token", {{"grant_type", "refresh_token"}}));
    BOOST_TEST((result.ec == asio::error::connection_reset));
    BOOST_TEST(server.stats().token_requests == 0u);
}

BOOST_AUTO_TEST_CASE(the_chunked_body_goes_on_past_any_limit) {
    emulator::server server;
    server.inject({.what = kind::endless_chunked});
    test::raw_https_client raw{"127.0.0.1", server.port(), server.ca_pem()};
    raw.set_body_limit(4 * 1024 * 1024);
    const auto result = raw.try_send(profile_request());
    BOOST_TEST(result.header_received);
    BOOST_TEST(result.response.header("transfer-encoding").value_or("") == "chunked");
    BOOST_TEST((result.ec == boost::beast::http::error::body_limit));
}

BOOST_AUTO_TEST_CASE(the_huge_content_length_is_claimed_then_one_byte_sent) {
    emulator::server server;
    server.inject({.what = kind::huge_content_length});
    test::raw_https_client raw{"127.0.0.1", server.port(), server.ca_pem()};
    raw.set_body_limit(std::numeric_limits<std::size_t>::max());
    raw.set_timeout(std::chrono::milliseconds(300));
    const auto result = raw.try_send(profile_request());
    BOOST_TEST(result.header_received);
    BOOST_TEST(result.response.header("content-length").value_or("") == "8589934592");
    BOOST_TEST(result.response.body == "{");
    BOOST_TEST((result.ec == boost::beast::error::timeout));
}

BOOST_AUTO_TEST_SUITE_END()
