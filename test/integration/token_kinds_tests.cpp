// Every client operation with every completion-token kind, against the emulator.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/mp11/algorithm.hpp>
#include <boost/mp11/list.hpp>
#include <boost/test/unit_test.hpp>

#include <thread>

#include "fixture.hpp"

using namespace apollo_oauth;
using apollo_oauth::test::emulator_fixture;
namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;

namespace {

// One operation, started with a token: `start(c, tokens, grant, token)`. The result type is what
// the handler receives after the error code.
struct exchange_op {
    using result = token_set;
    template <class Token>
    static auto start(client& c, const token_set&, const authorization_grant& grant, Token&& token) {
        return c.async_exchange_code(grant, std::forward<Token>(token));
    }
};
struct refresh_op {
    using result = token_set;
    template <class Token>
    static auto start(client& c, const token_set& tokens, const authorization_grant&, Token&& token) {
        return c.async_refresh(tokens.refresh_token, {}, std::forward<Token>(token));
    }
};
struct profile_op {
    using result = user_profile;
    template <class Token>
    static auto start(client& c, const token_set& tokens, const authorization_grant&, Token&& token) {
        return c.async_get_profile(tokens.access_token, std::forward<Token>(token));
    }
};
struct api_op {
    using result = api_response;
    template <class Token>
    static auto start(client& c, const token_set& tokens, const authorization_grant&, Token&& token) {
        api_request req{
            .method = boost::beast::http::verb::post, .target = "/v1/tasks/bulk_create", .body = "{}"};
        return c.async_api_request(tokens.access_token, std::move(req), std::forward<Token>(token));
    }
};

using operations = boost::mp11::mp_list<exchange_op, refresh_op, profile_op, api_op>;

// What each operation needs: a pair of tokens and a fresh authorization code.
struct prepared {
    token_set tokens;
    authorization_grant grant;
};

struct kinds_fixture : emulator_fixture {
    prepared prepare(client& c) {
        authorization_flow flow{c.config()};
        prepared p;
        p.tokens = obtain_tokens(c);
        p.grant = authorize(flow);
        return p;
    }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(completion_token_kinds, kinds_fixture)

BOOST_AUTO_TEST_CASE_TEMPLATE(callback, Op, operations) {
    client c{ioc.get_executor(), config()};
    auto p = prepare(c);
    error_code result = asio::error::would_block;
    Op::start(c, p.tokens, p.grant, [&](error_code ec, typename Op::result) { result = ec; });
    ioc.run();
    BOOST_TEST(!result);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(use_awaitable_token, Op, operations) {
    client c{ioc.get_executor(), config()};
    auto p = prepare(c);
    run([&]() -> awaitable<typename Op::result> {
        co_return co_await Op::start(c, p.tokens, p.grant, use_awaitable);
    });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(as_tuple_token, Op, operations) {
    client c{ioc.get_executor(), config()};
    auto p = prepare(c);
    auto [ec, result] = run([&]() -> awaitable<std::tuple<error_code, typename Op::result>> {
        co_return co_await Op::start(c, p.tokens, p.grant, asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(!ec);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(redirect_error_token, Op, operations) {
    client c{ioc.get_executor(), config()};
    auto p = prepare(c);
    error_code ec = asio::error::would_block;
    run([&]() -> awaitable<typename Op::result> {
        co_return co_await Op::start(c, p.tokens, p.grant, asio::redirect_error(use_awaitable, ec));
    });
    BOOST_TEST(!ec);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(deferred_token, Op, operations) {
    client c{ioc.get_executor(), config()};
    auto p = prepare(c);
    auto op = Op::start(c, p.tokens, p.grant, asio::deferred);  // nothing happens until it is started
    run([&]() -> awaitable<typename Op::result> { co_return co_await std::move(op)(use_awaitable); });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(use_future_token, Op, operations) {
    client c{ioc.get_executor(), config()};
    auto p = prepare(c);
    auto work = asio::make_work_guard(ioc);
    std::thread runner{[&] { ioc.run(); }};
    auto future = Op::start(c, p.tokens, p.grant, asio::use_future);
    BOOST_CHECK_NO_THROW(future.get());
    work.reset();
    runner.join();
}

BOOST_AUTO_TEST_SUITE_END()
