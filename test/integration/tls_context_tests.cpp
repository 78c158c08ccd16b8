// Which connections cleanse what they read: the one that reads a token response (its plaintext
// holds new tokens) while it reads it, and no other (cleansing every API answer costs throughput;
// the heap scans token_response_heap_scan_* check that nothing of a token response survives).
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/test/unit_test.hpp>

#include <openssl/ssl.h>

#include <apollo_oauth/emulator/client_config.hpp>
#include <apollo_oauth/emulator/server.hpp>

#include <memory>
#include <optional>
#include <string>

#include "http/connection_pool.hpp"
#include "http/exchange.hpp"
#include "http/tls_context.hpp"

using namespace apollo_oauth;
namespace asio = boost::asio;

namespace {

struct pool_to_the_emulator {
    emulator::server server;
    client_config config = emulator::client_config_for(server);
    asio::io_context ioc;
    std::shared_ptr<http::connection_pool> pool = std::make_shared<http::connection_pool>(
        ioc.get_executor(), std::make_shared<asio::ssl::context>(http::make_client_tls_context(config.tls)),
        http::origin{"127.0.0.1", std::to_string(server.port())}, pool_config{.max_connections_per_host = 1});

    /// A refresh with an unknown refresh token: answered 400 invalid_grant, keep-alive.
    unsigned exchange(bool secret_body) {
        http::request req{boost::beast::http::verb::post, "/api/v1/oauth/token", 11};
        req.set(boost::beast::http::field::content_type, "application/x-www-form-urlencoded");
        req.body() = "grant_type=refresh_token&refresh_token=unknown&client_id=" + config.client_id +
                     "&client_secret=" + std::string(config.client_secret.reveal());
        http::prepare_request(pool->where(), req);
        std::optional<unsigned> status;
        http::start_exchange(pool, std::move(req), {.secret_body = secret_body}, config.timeouts, 8192, {},
                             ioc.get_executor(), [&](error_code ec, http::response res) {
                                 BOOST_TEST(!ec);
                                 status = res.result_int();
                             });
        ioc.restart();
        ioc.run();
        BOOST_REQUIRE(status);
        return *status;
    }

    /// The pool's one connection, idle again: whether it cleanses what it reads.
    bool pooled_connection_cleanses() {
        auto no_handler = [](error_code, std::shared_ptr<http::connection>) {};
        auto conn = pool->acquire_or_queue(false, this, no_handler);
        BOOST_REQUIRE(conn);
        BOOST_REQUIRE(conn->established);
        const bool cleanses = (SSL_get_options(conn->stream.native_handle()) & SSL_OP_CLEANSE_PLAINTEXT) != 0;
        pool->release(std::move(conn), true);
        return cleanses;
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(tls_context)

// That the token answer is cleansed while it is read is the heap scans' part
// (token_response_heap_scan_served fails without the option): this checks the rest, that no
// connection goes on cleansing the API answers it reads afterwards.
BOOST_FIXTURE_TEST_CASE(a_connection_goes_back_to_the_pool_without_cleansing, pool_to_the_emulator) {
    auto ctx = http::make_client_tls_context(config.tls);
    BOOST_TEST((SSL_CTX_get_options(ctx.native_handle()) & SSL_OP_CLEANSE_PLAINTEXT) == 0u);

    BOOST_TEST(exchange(/*secret_body=*/false) == 400u);
    BOOST_TEST(!pooled_connection_cleanses());
    // The token answer was read with the option on; the connection goes back to the pool with it
    // off again, for the API answers it reads next.
    BOOST_TEST(exchange(/*secret_body=*/true) == 400u);
    BOOST_TEST(!pooled_connection_cleanses());
}

// The pool's check for bytes a server sent beyond a response (connection_pool.cpp) looks in the
// buffer, OpenSSL and the BIO pair, not in Asio's own 17 KiB input buffer, which it cannot see.
// That buffer is empty after every read only because OpenSSL asks for input once the pair is
// empty, and not sooner: with SSL_MODE_AUTO_RETRY (OpenSSL's default since 1.1.1). Should a
// context ever clear it, bytes could stay in Asio's buffer, unseen, and be read as the next
// request's response.
BOOST_AUTO_TEST_CASE(the_client_context_keeps_auto_retry) {
    auto ctx = http::make_client_tls_context(client_config{}.tls);
    BOOST_TEST((SSL_CTX_get_mode(ctx.native_handle()) & SSL_MODE_AUTO_RETRY) != 0u);
}

BOOST_AUTO_TEST_SUITE_END()
