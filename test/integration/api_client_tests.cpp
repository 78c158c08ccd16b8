// api_client: Bearer from the cache, one refresh for any number of 401s, 429 with Retry-After
// or a jittered backoff.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "api/api_client_impl.hpp"
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

// The waits `api`'s requests chose after their 429s: (rate-limit retries before, wait). A random
// wait cannot be timed by a test, so it is read where it is chosen. Construct it after `api` and
// before its requests.
class recorded_waits {
public:
    using wait = std::pair<unsigned, std::chrono::microseconds>;

    explicit recorded_waits(api_client& api) {
        detail::impl_of(api)->on_rate_limit_wait = [this](unsigned retries, std::chrono::microseconds w) {
            const std::lock_guard lock{mutex_};
            waits_.emplace_back(retries, w);
        };
    }
    std::vector<wait> taken() const {
        const std::lock_guard lock{mutex_};
        return waits_;
    }

private:
    mutable std::mutex mutex_;
    std::vector<wait> waits_;
};

bool within(std::chrono::microseconds w, std::chrono::microseconds low, std::chrono::microseconds high) {
    return low <= w && w <= high;
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

// A 401 whose challenge names another error than invalid_token is not the token's fault: a server
// that answers insufficient_scope with 401 (RFC 6750 says 403) would otherwise have the grant
// rotated on every request. It is returned as it is, with its error in the diagnostics; a 401
// that names invalid_token is answered with one refresh, as a plain one.
BOOST_AUTO_TEST_CASE(only_a_401_that_blames_the_token_is_answered_with_a_refresh) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache};
    seed(c, cache, "acme");
    const auto request_with_401 = [&](const std::string& challenge) {
        server.inject({.what = kind::http_status,
                       .where = emulator::route::api,
                       .status = 401,
                       .www_authenticate = challenge});
        diagnostics diag;
        const auto res = run([&]() -> awaitable<api_response> {
            co_return co_await api.async_request("acme", bulk_create(), diag, use_awaitable);
        });
        return std::pair{res.status, diag.error};
    };
    for (int i = 0; i < 3; ++i) {
        const auto [status, error] = request_with_401(R"(Bearer realm="Apollo", error="insufficient_scope")");
        BOOST_TEST(status == 401u);
        BOOST_TEST(error == "insufficient_scope");
    }
    BOOST_TEST(server.stats().api_requests == 3u);
    BOOST_TEST(server.stats().refresh_token_grants == 0u);
    // The Bearer challenge after another one, in the same field and in a field of its own.
    for (const char* challenge : {"Basic realm=\"Apollo\", Bearer error=\"insufficient_scope\"",
                                  "Basic realm=\"Apollo\"\nBearer "
                                  "error=\"insufficient_scope\""}) {
        const auto [status, error] = request_with_401(challenge);
        BOOST_TEST(status == 401u);
        BOOST_TEST(error == "insufficient_scope");
    }
    BOOST_TEST(server.stats().api_requests == 5u);
    BOOST_TEST(server.stats().refresh_token_grants == 0u);
    const auto [status, error] = request_with_401(R"(Bearer realm="Apollo", error="invalid_token")");
    BOOST_TEST(status == 200u);
    BOOST_TEST(server.stats().api_requests == 7u);
    BOOST_TEST(server.stats().refresh_token_grants == 1u);
}

// A Content-Type among the extra headers is the one sent: it used to be replaced by the
// `content_type` field's default, application/json, without a word. The emulator answers 415 to a
// body not labelled JSON, so the label that reached it shows in the status.
BOOST_AUTO_TEST_CASE(a_content_type_among_the_headers_is_the_one_sent) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache};
    seed(c, cache, "acme");
    const auto status_with = [&](header_list headers) {
        api_request request = bulk_create();
        request.headers = std::move(headers);
        return run([&]() -> awaitable<api_response> {
                   co_return co_await api.async_request("acme", request, use_awaitable);
               })
            .status;
    };
    BOOST_TEST(status_with({{"content-type", "text/plain"}}) == 415u);
    BOOST_TEST(status_with({{"Content-Type", "application/json; charset=utf-8"}}) == 200u);
    BOOST_TEST(status_with({}) == 200u);  // the field's default
}

BOOST_AUTO_TEST_CASE(a_429_is_waited_out_and_retried) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache};
    recorded_waits recorded{api};
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
    // The wait chosen: Retry-After, plus at most retry_after_spread (1 s by default).
    const auto waits = recorded.taken();
    BOOST_TEST_REQUIRE(waits.size() == 1u);
    BOOST_TEST(waits[0].first == 0u);
    BOOST_TEST(within(waits[0].second, std::chrono::seconds(1), std::chrono::seconds(2)));
}

// A 503 that says when to come back (Retry-After) is load, as a 429 is: waited out and retried
// from the same budget (DESIGN's transport rule; api_client_config::retry_unavailable_with_retry_after).
// Without a Retry-After, or with the option off, the 503 is the answer.
BOOST_AUTO_TEST_CASE(a_503_with_retry_after_is_retried_one_without_is_returned) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    seed(c, cache, "acme");
    const auto send = [&](api_client& api) {
        return run([&]() -> awaitable<api_response> {
            co_return co_await api.async_request("acme", bulk_create(), use_awaitable);
        });
    };
    api_client api{c, cache, {.retry_after_spread = std::chrono::milliseconds(0)}};
    recorded_waits recorded{api};

    const auto unavailable = [&](std::optional<std::chrono::seconds> retry_after) {
        server.inject({.what = kind::http_status,
                       .where = emulator::route::api,
                       .status = 503,
                       .retry_after = retry_after});
    };
    unavailable(std::chrono::seconds(0));
    const auto before = server.stats().api_requests;
    BOOST_TEST(send(api).status == 200u);
    BOOST_TEST(server.stats().api_requests - before == 2u);
    const auto waits = recorded.taken();
    BOOST_TEST_REQUIRE(waits.size() == 1u);
    BOOST_TEST(waits[0].first == 0u);
    BOOST_TEST(api.metrics().rate_limited == 0u);  // counts 429s only

    unavailable(std::nullopt);
    const auto middle = server.stats().api_requests;
    BOOST_TEST(send(api).status == 503u);
    BOOST_TEST(server.stats().api_requests - middle == 1u);

    api_client strict{c, cache, {.retry_unavailable_with_retry_after = false}};
    unavailable(std::chrono::seconds(0));
    const auto last = server.stats().api_requests;
    BOOST_TEST(send(strict).status == 503u);
    BOOST_TEST(server.stats().api_requests - last == 1u);
}

// Without a Retry-After: default_retry_after doubled per retry of the request, each wait between
// half of it and all of it (equal jitter).
BOOST_AUTO_TEST_CASE(without_retry_after_the_backoff_doubles_per_retry) {
    using std::chrono::milliseconds;
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache, {.max_rate_limit_retries = 3, .default_retry_after = milliseconds(4)}};
    recorded_waits recorded{api};
    seed(c, cache, "acme");
    server.inject({.what = kind::rate_limit, .where = emulator::route::api, .count = 3});  // no Retry-After
    const auto res = run([&]() -> awaitable<api_response> {
        co_return co_await api.async_request("acme", bulk_create(), use_awaitable);
    });
    BOOST_TEST(res.status == 200u);
    BOOST_TEST(server.stats().api_requests == 4u);
    const auto waits = recorded.taken();
    BOOST_TEST_REQUIRE(waits.size() == 3u);
    for (unsigned k = 0; k < 3; ++k) {
        const milliseconds backoff = milliseconds(4) * (1 << k);
        BOOST_TEST(waits[k].first == k);
        BOOST_TEST(within(waits[k].second, backoff / 2, backoff),
                   k << ": " << waits[k].second.count() << " us");
    }
}

// The synchronised retry storm: every request an account had in flight is told "Retry-After: 0"
// at once. They come back spread over retry_after_spread, not in the same instant (and never
// sooner than told). Two threads run the io_context: each draws from its own generator.
BOOST_AUTO_TEST_CASE(a_herd_told_retry_after_0_comes_back_spread_out) {
    using std::chrono::milliseconds;
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    // Retries enough that a request whose retry meets another's 429 still ends with a 200.
    api_client api{c, cache, {.max_rate_limit_retries = 50, .retry_after_spread = milliseconds(200)}};
    recorded_waits recorded{api};
    seed(c, cache, "acme");
    constexpr int herd = 40;
    server.inject({.what = kind::rate_limit,
                   .where = emulator::route::api,
                   .count = herd,
                   .retry_after = std::chrono::seconds(0)});
    std::atomic<int> ok{0};
    for (int i = 0; i < herd; ++i) {
        api.async_request("acme", bulk_create(),
                          [&](error_code ec, api_response res) { ok += !ec && res.status == 200u; });
    }
    std::thread second{[&] { ioc.run(); }};
    ioc.run();
    second.join();
    BOOST_TEST(ok.load() == herd);
    const auto waits = recorded.taken();
    BOOST_TEST_REQUIRE(waits.size() == std::size_t{herd});  // one per 429
    auto [shortest, longest] = std::minmax_element(
        waits.begin(), waits.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    BOOST_TEST(within(shortest->second, milliseconds(0), milliseconds(200)));
    BOOST_TEST(within(longest->second, milliseconds(0), milliseconds(200)));
    // 40 uniform draws all within half the spread: probability below 1e-10.
    BOOST_TEST((longest->second - shortest->second >= milliseconds(100)),
               shortest->second.count() << " to " << longest->second.count() << " us");
}

BOOST_AUTO_TEST_CASE(retry_after_spread_0_waits_exactly_retry_after) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache, {.retry_after_spread = std::chrono::milliseconds(0)}};
    recorded_waits recorded{api};
    seed(c, cache, "acme");
    server.inject({.what = kind::rate_limit,
                   .where = emulator::route::api,
                   .count = 2,
                   .retry_after = std::chrono::seconds(0)});
    const auto res = run([&]() -> awaitable<api_response> {
        co_return co_await api.async_request("acme", bulk_create(), use_awaitable);
    });
    BOOST_TEST(res.status == 200u);
    const auto waits = recorded.taken();
    BOOST_TEST_REQUIRE(waits.size() == 2u);
    for (const auto& [retries, wait] : waits) {
        BOOST_TEST(wait.count() == 0, retries);
    }
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

// Cancellation emitted on a thread that runs none of the op's steps (what `||` does on a
// multi-threaded io_context): the op relays it to its strand, so it reaches whichever step is
// pending without racing the step that is running (the TSan build checks the "without").
BOOST_AUTO_TEST_CASE(cancellation_from_another_thread_reaches_a_running_request) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache};
    seed(c, cache, "acme");
    constexpr int requests = 200;
    std::vector<asio::cancellation_signal> signals(requests);
    std::atomic<int> completed{0}, aborted{0}, succeeded{0};
    std::mutex mutex;
    std::vector<std::string> others;  // what a request neither cancelled nor served got
    for (auto& signal : signals) {
        api.async_request("acme", bulk_create(),
                          asio::bind_cancellation_slot(signal.slot(), [&](error_code ec, api_response res) {
                              ++completed;
                              aborted += ec == asio::error::operation_aborted;
                              succeeded += !ec && res.status == 200u;
                              if (ec != asio::error::operation_aborted && (ec || res.status != 200u)) {
                                  const std::lock_guard lock{mutex};
                                  others.push_back(ec.message() + " / " + ec.category().name() + " / " +
                                                   std::to_string(res.status));
                              }
                          }));
    }
    auto work = asio::make_work_guard(ioc);
    std::thread first{[&] { ioc.run(); }};
    std::thread second{[&] { ioc.run(); }};
    for (int i = 0; i < requests; i += 2) {
        signals[static_cast<std::size_t>(i)].emit(
            asio::cancellation_type::terminal);  // this thread, mid-flight
    }
    work.reset();  // run() returns once every request is done: nothing the op left behind holds work
    first.join();
    second.join();
    BOOST_TEST(completed.load() == requests);  // each exactly once (a second call would exceed it)
    BOOST_TEST(aborted.load() + succeeded.load() == requests);
    BOOST_TEST(succeeded.load() >= requests / 2);  // the ones never cancelled
    for (const auto& o : others) {
        BOOST_TEST_MESSAGE("neither cancelled nor served: " << o);
    }
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

BOOST_AUTO_TEST_CASE(diagnostics_hold_what_the_server_said_last) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache, {.max_retry_after = std::chrono::seconds(30)}};
    seed(c, cache, "acme");
    server.inject(
        {.what = kind::rate_limit, .where = emulator::route::api, .retry_after = std::chrono::hours(1)});
    diagnostics diag;
    diag.error = "stale";  // cleared at initiation
    const auto res = run([&]() -> awaitable<api_response> {
        co_return co_await api.async_request("acme", bulk_create(), diag, use_awaitable);
    });
    BOOST_TEST(res.status == 429u);
    BOOST_TEST(diag.http_status == 429u);
    BOOST_TEST(diag.error.empty());
    BOOST_TEST_REQUIRE(diag.retry_after.has_value());
    BOOST_TEST(diag.retry_after->count() == 3600);

    // A success after a 401 reports the last answer, not the first.
    server.inject({.what = kind::http_status, .where = emulator::route::api, .status = 401});
    const auto ok = run([&]() -> awaitable<api_response> {
        co_return co_await api.async_request("acme", bulk_create(), diag, use_awaitable);
    });
    BOOST_TEST(ok.status == 200u);
    BOOST_TEST(diag.http_status == 200u);
    BOOST_TEST(!diag.retry_after.has_value());
}

BOOST_AUTO_TEST_CASE(the_clients_api_request_reports_diagnostics_too) {
    client c{ioc.get_executor(), config()};
    const auto tokens = obtain_tokens(c);
    server.inject(
        {.what = kind::rate_limit, .where = emulator::route::api, .retry_after = std::chrono::seconds(7)});
    diagnostics diag;
    const auto res = run([&]() -> awaitable<api_response> {
        co_return co_await c.async_api_request(tokens.access_token, bulk_create(), diag, use_awaitable);
    });
    BOOST_TEST(res.status == 429u);
    BOOST_TEST(diag.http_status == 429u);
    BOOST_TEST_REQUIRE(diag.retry_after.has_value());
    BOOST_TEST(diag.retry_after->count() == 7);
}

BOOST_AUTO_TEST_CASE(metrics_count_requests_401_retries_429s_and_latency) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{
        c, cache, {.max_rate_limit_retries = 1, .default_retry_after = std::chrono::milliseconds(1)}};
    seed(c, cache, "acme");
    const auto before = api.metrics();
    BOOST_TEST(before.requests == 0u);
    BOOST_TEST(before.latency.count == 0u);

    server.inject({.what = kind::http_status, .where = emulator::route::api, .status = 401});
    run([&]() -> awaitable<api_response> {
        co_return co_await api.async_request("acme", bulk_create(), use_awaitable);
    });
    server.inject({.what = kind::rate_limit, .where = emulator::route::api, .count = 3});  // no Retry-After
    const auto limited = run([&]() -> awaitable<api_response> {
        co_return co_await api.async_request("acme", bulk_create(), use_awaitable);
    });
    BOOST_TEST(limited.status == 429u);  // one retry, then the second 429 is returned
    auto [ec, unused] = run([&]() -> awaitable<std::tuple<error_code, api_response>> {
        co_return co_await api.async_request("nobody", bulk_create(), asio::as_tuple(use_awaitable));
    });
    BOOST_TEST(ec == errc::unknown_account);

    const auto m = api.metrics();
    BOOST_TEST(m.requests == 3u);
    BOOST_TEST(m.retries_401 == 1u);
    BOOST_TEST(m.rate_limited == 2u);
    BOOST_TEST(m.latency.count == 3u);  // failures are timed too
    BOOST_TEST(m.latency.sum_seconds > 0.0);
    for (std::size_t i = 1; i < m.latency.cumulative.size(); ++i) {
        BOOST_TEST(m.latency.cumulative[i - 1] <= m.latency.cumulative[i]);
        BOOST_TEST(api_latency_histogram::bounds[i - 1] < api_latency_histogram::bounds[i]);
    }
    BOOST_TEST(m.latency.cumulative.back() <= m.latency.count);
}

BOOST_AUTO_TEST_CASE(metrics_are_read_while_requests_run_on_two_threads) {
    client c{ioc.get_executor(), config()};
    token_cache cache{c, store, cache_settings()};
    api_client api{c, cache};
    seed(c, cache, "acme");
    std::atomic<int> done{0};
    for (int i = 0; i < 200; ++i) {
        api.async_request("acme", bulk_create(), [&](error_code, api_response) {
            ++done;
            (void)api.metrics();  // a reader beside the writers, for TSan
        });
    }
    std::thread second{[&] { ioc.run(); }};
    ioc.run();
    second.join();
    const auto m = api.metrics();
    BOOST_TEST(done.load() == 200);
    BOOST_TEST(m.requests == 200u);
    BOOST_TEST(m.latency.count == 200u);
}

BOOST_AUTO_TEST_SUITE_END()
