// The integration tests' fixture: an emulator on loopback, an io_context, a client configured
// for the emulator (trusting only its CA), and helpers to run coroutines to completion.
#pragma once

#include <apollo_oauth/authorization.hpp>
#include <apollo_oauth/client.hpp>
#include <apollo_oauth/emulator/client_config.hpp>
#include <apollo_oauth/emulator/server.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/test/unit_test.hpp>

#include <exception>
#include <optional>
#include <string>

#include "secret_log.hpp"

// Let BOOST_TEST print error enums that appear as operands of a failed comparison.
namespace apollo_oauth {
inline std::ostream& boost_test_print_type(std::ostream& os, errc e) {
    return os << make_error_code(e);
}
}  // namespace apollo_oauth
namespace boost::beast::http {
inline std::ostream& boost_test_print_type(std::ostream& os, error e) {
    return os << make_error_code(e);
}
}  // namespace boost::beast::http
namespace boost::asio::error {
inline std::ostream& boost_test_print_type(std::ostream& os, basic_errors e) {
    return os << make_error_code(e);
}
inline std::ostream& boost_test_print_type(std::ostream& os, misc_errors e) {
    return os << make_error_code(e);
}
}  // namespace boost::asio::error

namespace apollo_oauth::test {

namespace asio = boost::asio;

/// A second redirect URI is registered so that mismatches can be tested.
inline emulator::server_config two_redirect_uris() {
    emulator::server_config config;
    config.clients.front().redirect_uris = {"https://app.example.com/oauth/callback",
                                            "https://app.example.com/oauth/other"};
    return config;
}

struct emulator_fixture {
    emulator::server server{two_redirect_uris()};
    asio::io_context ioc;

    ~emulator_fixture() { secret_log::record_all(server.issued_secrets()); }

    client_config config() const {
        auto c = emulator::client_config_for(server);
        // Short deadlines keep fault tests quick; generous enough for sanitizer builds.
        c.timeouts.response_header = std::chrono::seconds(5);
        c.timeouts.response_body = std::chrono::seconds(5);
        return c;
    }

    /// Runs `make()`'s awaitable on ioc until the io_context has no work left, and returns its
    /// value. Rethrows what the coroutine threw. run() returning proves nothing was left pending.
    template <class Factory>
    auto run(Factory make) {
        using value_type = typename decltype(make())::value_type;
        std::optional<value_type> result;
        std::exception_ptr failure;
        asio::co_spawn(ioc, make(), [&](std::exception_ptr e, value_type v) {
            failure = e;
            if (!e) {
                result.emplace(std::move(v));
            }
        });
        ioc.run();
        ioc.restart();
        if (failure) {
            std::rethrow_exception(failure);
        }
        BOOST_REQUIRE_MESSAGE(result.has_value(), "the io_context ran dry with the coroutine still waiting");
        return std::move(*result);
    }

    /// The browser dance against the emulator: URL, consent, callback verified.
    authorization_grant authorize(authorization_flow& flow, authorization_request request = {}) {
        request.any_browser = request.session.empty();  // the emulator's consent is the only browser
        auto url = flow.make_authorization_url(std::move(request));
        BOOST_REQUIRE(url.has_value());
        auto location = server.consent(url->url);
        auto grant = flow.verify_callback(location);
        BOOST_REQUIRE(grant.has_value());
        return std::move(*grant);
    }

    /// Authorizes and exchanges the code: a fresh token pair.
    token_set obtain_tokens(client& c, authorization_request request = {}) {
        authorization_flow flow{c.config()};
        auto grant = authorize(flow, std::move(request));
        return run([&]() -> asio::awaitable<token_set> {
            co_return co_await c.async_exchange_code(std::move(grant), asio::use_awaitable);
        });
    }
};

}  // namespace apollo_oauth::test
