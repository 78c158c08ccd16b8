// api_client: Bearer from the cache, one refresh for any number of 401s, 429 with Retry-After.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/test/unit_test.hpp>

#include <thread>

#include "cache_fixture.hpp"

using namespace apollo_oauth;
using apollo_oauth::test::cache_fixture;
namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using kind = emulator::fault::kind;

namespace {

api_request bulk_create() {
    return {.method = boost::beast::http::verb::post,
            .target = "/v1/tasks/bulk_create",
            .body = R"({"tasks":[{"type":"call"}]})"};
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(api_client_policies, cache_fixture)

BOOST_AUTO_TEST_CASE(a_thousand_calls_on_a_revoked_token_cause_one_refresh) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache};
    const auto original = seed(c, cache, "acme");
    server.revoke_access_token(std::string{original.access_token.reveal()});
    std::atomic<int> ok{0}, other{0};
    for (int i = 0; i < 1'000; ++i) {
        api.async_request("acme", bulk_create(), [&](error_code ec, api_response res) {
            (!ec && res.status == 200) ? ++ok : ++other;
        });
    }
    std::thread second{[&] { ioc.run(); }};
    ioc.run();
    second.join();
    BOOST_TEST(ok.load() == 1'000);
    BOOST_TEST(other.load() == 0);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
}

BOOST_AUTO_TEST_CASE(the_verb_target_body_headers_overload) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache};
    seed(c, cache, "acme");
    // Named locals: GCC 12 cannot pass string literals into a co_await full-expression here.
    const std::string account = "acme", target = "/v1/tasks/bulk_create", body = R"({"tasks":[]})";
    const header_list headers = {{"X-Request-Id", "42"}};
    const auto res = run([&]() -> awaitable<api_response> {
        co_return co_await api.async_request(account, boost::beast::http::verb::post, target, body, headers,
                                             use_awaitable);
    });
    BOOST_TEST(res.status == 200u);
}

BOOST_AUTO_TEST_CASE(a_second_401_is_returned_not_retried_forever) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache};
    seed(c, cache, "acme");
    server.inject({.what = kind::http_status, .where = emulator::route::api, .count = 2, .status = 401});
    const auto res = run([&]() -> awaitable<api_response> {
        co_return co_await api.async_request("acme", bulk_create(), use_awaitable);
    });
    BOOST_TEST(res.status == 401u);
    BOOST_TEST(server.stats().api_requests == 2u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
}

BOOST_AUTO_TEST_CASE(a_429_is_waited_out_and_retried) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache};
    seed(c, cache, "acme");
    server.inject(
        {.what = kind::rate_limit, .where = emulator::route::api, .retry_after = std::chrono::seconds(1)});
    const auto started = std::chrono::steady_clock::now();
    const auto res = run([&]() -> awaitable<api_response> {
        co_return co_await api.async_request("acme", bulk_create(), use_awaitable);
    });
    BOOST_TEST(res.status == 200u);
    BOOST_TEST(server.stats().api_requests == 2u);
    // Not a timing assertion on speed: only that the Retry-After was honoured at all.
    BOOST_TEST((std::chrono::steady_clock::now() - started >= std::chrono::seconds(1)));
}

BOOST_AUTO_TEST_CASE(rate_limit_retries_are_bounded) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{
        c, cache, {.max_rate_limit_retries = 2, .default_retry_after = std::chrono::milliseconds(1)}};
    seed(c, cache, "acme");
    server.inject({.what = kind::rate_limit, .where = emulator::route::api, .count = 5});  // no Retry-After
    const auto res = run([&]() -> awaitable<api_response> {
        co_return co_await api.async_request("acme", bulk_create(), use_awaitable);
    });
    BOOST_TEST(res.status == 429u);
    BOOST_TEST(server.stats().api_requests == 3u);
}

BOOST_AUTO_TEST_CASE(a_retry_after_past_the_bound_is_returned_at_once) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache, {.max_retry_after = std::chrono::seconds(30)}};
    seed(c, cache, "acme");
    server.inject(
        {.what = kind::rate_limit, .where = emulator::route::api, .retry_after = std::chrono::hours(1)});
    const auto res = run([&]() -> awaitable<api_response> {
        co_return co_await api.async_request("acme", bulk_create(), use_awaitable);
    });
    BOOST_TEST(res.status == 429u);
    BOOST_TEST(res.header("retry-after").value_or("") == "3600");
    BOOST_TEST(server.stats().api_requests == 1u);
}

BOOST_AUTO_TEST_CASE(waiting_for_retry_after_is_cancellable) {
    using namespace asio::experimental::awaitable_operators;
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache};
    seed(c, cache, "acme");
    server.inject(
        {.what = kind::rate_limit, .where = emulator::route::api, .retry_after = std::chrono::seconds(20)});
    const auto started = std::chrono::steady_clock::now();
    const bool timer_won = run([&]() -> awaitable<bool> {
        asio::steady_timer timer{co_await asio::this_coro::executor, std::chrono::milliseconds(300)};
        auto winner = co_await (api.async_request("acme", bulk_create(), use_awaitable) ||
                                timer.async_wait(use_awaitable));
        co_return winner.index() == 1;
    });
    BOOST_TEST(timer_won);
    BOOST_TEST((std::chrono::steady_clock::now() - started < std::chrono::seconds(20)));
}

BOOST_AUTO_TEST_CASE(other_statuses_pass_through) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache};
    seed(c, cache, "acme");
    server.inject({.what = kind::http_status, .where = emulator::route::api, .status = 502});
    const auto res = run([&]() -> awaitable<api_response> {
        co_return co_await api.async_request("acme", bulk_create(), use_awaitable);
    });
    BOOST_TEST(res.status == 502u);
    BOOST_TEST(server.stats().api_requests == 1u);
}

BOOST_AUTO_TEST_CASE(cache_errors_surface) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache};
    auto [ec, res] = run([&]() -> awaitable<std::tuple<error_code, api_response>> {
        co_return co_await api.async_request("nobody", bulk_create(), asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(ec == errc::unknown_account);
}

BOOST_AUTO_TEST_SUITE_END()
