// The API client's answer to a 429 (sans-io): return it, or retry after how long.
#include "sansio/rate_limit_policy.hpp"
#include "sansio/token_protocol.hpp"

#include <boost/test/unit_test.hpp>

#include <climits>
#include <cmath>
#include <limits>

using namespace apollo_oauth::sansio;
using namespace std::chrono;
using namespace std::chrono_literals;

namespace {

// api_client_config's defaults: 2 retries, max_retry_after 30 s, default_retry_after 1 s, spread 1 s.
const rate_limit_settings defaults{};

rate_limit_settings retrying(unsigned times, rate_limit_settings s = defaults) {
    s.max_rate_limit_retries = times;
    return s;
}

// The wait in microseconds (bad_optional_access, an error of the case, when the 429 is returned).
long long wait_us(unsigned retries, std::optional<seconds> retry_after, double u,
                  const rate_limit_settings& s = defaults) {
    return rate_limit_wait(retries, retry_after, s, u).value().count();
}

bool returned(unsigned retries, std::optional<seconds> retry_after, const rate_limit_settings& s = defaults) {
    return !rate_limit_wait(retries, retry_after, s, 0.5).has_value();
}

constexpr long long second = 1'000'000;  // in microseconds
const long long a_year = duration_cast<microseconds>(max_retry_after).count();

}  // namespace

BOOST_AUTO_TEST_SUITE(rate_limit_policy)

BOOST_AUTO_TEST_CASE(the_429_is_returned_once_the_retries_are_spent) {
    for (const auto retry_after : {std::optional<seconds>{}, std::optional<seconds>{1s}}) {
        BOOST_TEST(!returned(0, retry_after));
        BOOST_TEST(!returned(1, retry_after));
        BOOST_TEST(returned(2, retry_after));
        BOOST_TEST(returned(0, retry_after, retrying(0)));
    }
}

// Equal jitter: between half of default_retry_after and all of it.
BOOST_AUTO_TEST_CASE(without_retry_after_the_first_wait_is_half_to_all_of_default_retry_after) {
    BOOST_TEST(wait_us(0, std::nullopt, 0.0) == second / 2);
    BOOST_TEST(wait_us(0, std::nullopt, 0.5) == 3 * second / 4);
    BOOST_TEST(wait_us(0, std::nullopt, 1.0) == second);
}

BOOST_AUTO_TEST_CASE(without_retry_after_the_backoff_doubles_per_retry) {
    const auto s = retrying(10);
    for (unsigned k = 0; k < 5; ++k) {
        BOOST_TEST(wait_us(k, std::nullopt, 0.0, s) == (second << k) / 2, k);
        BOOST_TEST(wait_us(k, std::nullopt, 1.0, s) == second << k, k);
    }
}

BOOST_AUTO_TEST_CASE(the_backoff_stops_doubling_at_max_retry_after) {
    const auto s = retrying(UINT_MAX);
    BOOST_TEST(wait_us(4, std::nullopt, 1.0, s) == 16 * second);
    BOOST_TEST(wait_us(5, std::nullopt, 1.0, s) == 30 * second);  // not 32
    BOOST_TEST(wait_us(5, std::nullopt, 0.0, s) == 15 * second);
    BOOST_TEST(wait_us(UINT_MAX - 1, std::nullopt, 1.0, s) == 30 * second);
    // A default_retry_after above max_retry_after is not waited for, as a Retry-After that long
    // is not: the 429 is returned (max_retry_after 0 has always meant "never wait").
    auto above = s;
    above.default_retry_after = 31s;
    BOOST_TEST(returned(0, std::nullopt, above));
    above.max_retry_after = 0s;
    above.default_retry_after = 1ms;
    BOOST_TEST(returned(0, std::nullopt, above));
    above.default_retry_after = 30s;
    above.max_retry_after = 30s;
    BOOST_TEST(wait_us(0, std::nullopt, 1.0, above) == 30 * second);  // equal to it: waited
}

// RFC 9110 §10.2.3: never sooner than the server named; later by up to retry_after_spread. The
// backoff's doubling is not applied to it.
BOOST_AUTO_TEST_CASE(a_retry_after_is_waited_plus_a_random_part_of_the_spread) {
    for (unsigned retries : {0u, 1u}) {
        BOOST_TEST(wait_us(retries, 5s, 0.0) == 5 * second);
        BOOST_TEST(wait_us(retries, 5s, 0.5) == 5 * second + second / 2);
        BOOST_TEST(wait_us(retries, 5s, 1.0) == 6 * second);
    }
}

BOOST_AUTO_TEST_CASE(a_retry_after_of_0_is_spread_too) {
    BOOST_TEST(wait_us(0, 0s, 0.0) == 0);
    BOOST_TEST(wait_us(0, 0s, 0.25) == second / 4);
    BOOST_TEST(wait_us(0, 0s, 1.0) == second);
}

BOOST_AUTO_TEST_CASE(an_http_date_in_the_past_is_spread_like_0) {
    const auto past = parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", system_clock::now());
    BOOST_TEST_REQUIRE(past.has_value());
    BOOST_TEST(wait_us(0, past, 0.0) == 0);
    BOOST_TEST(wait_us(0, past, 0.75) == 3 * second / 4);
}

BOOST_AUTO_TEST_CASE(a_retry_after_above_max_retry_after_returns_the_429) {
    BOOST_TEST(returned(0, 31s));
    BOOST_TEST(returned(0, 1h));
    BOOST_TEST(returned(0, max_retry_after));
    BOOST_TEST(wait_us(0, 30s, 0.0) == 30 * second);  // the bound itself is waited for
    BOOST_TEST(wait_us(0, 30s, 1.0) == 31 * second);  // with its spread
}

BOOST_AUTO_TEST_CASE(spread_0_waits_exactly_retry_after) {
    auto s = defaults;
    s.retry_after_spread = 0ms;
    for (double u : {0.0, 0.5, 1.0}) {
        BOOST_TEST(wait_us(0, 0s, u, s) == 0);
        BOOST_TEST(wait_us(0, 7s, u, s) == 7 * second);
    }
    BOOST_TEST(wait_us(0, std::nullopt, 0.0, s) == second / 2);  // the backoff keeps its jitter
}

BOOST_AUTO_TEST_CASE(the_jitter_stays_within_its_bounds) {
    const auto s = retrying(10);
    for (unsigned k = 0; k < 8; ++k) {
        const long long backoff = std::min(second << k, 30 * second);
        long long before = 0;
        for (int i = 0; i <= 1000; ++i) {
            const double u = i / 1000.0;
            const long long w = wait_us(k, std::nullopt, u, s);
            BOOST_TEST((w >= backoff / 2 && w <= backoff && w >= before), k << ' ' << u << ' ' << w);
            before = w;
            const long long h = wait_us(k, 3s, u, s);
            BOOST_TEST((h >= 3 * second && h <= 4 * second), k << ' ' << u << ' ' << h);
        }
    }
}

BOOST_AUTO_TEST_CASE(a_draw_outside_0_1_is_clamped_into_it) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    for (double low : {-1.0, -inf, nan}) {
        BOOST_TEST(wait_us(0, std::nullopt, low) == second / 2);
        BOOST_TEST(wait_us(0, 2s, low) == 2 * second);
    }
    for (double high : {2.0, inf}) {
        BOOST_TEST(wait_us(0, std::nullopt, high) == second);
        BOOST_TEST(wait_us(0, 2s, high) == 3 * second);
    }
}

BOOST_AUTO_TEST_CASE(extreme_settings_do_not_overflow) {
    auto s = retrying(UINT_MAX);
    s.default_retry_after = 0ms;  // retried at once, however many retries came before
    BOOST_TEST(wait_us(0, std::nullopt, 1.0, s) == 0);
    BOOST_TEST(wait_us(40, std::nullopt, 1.0, s) == 0);
    s.default_retry_after = -5s;
    s.retry_after_spread = -5s;
    BOOST_TEST(wait_us(3, std::nullopt, 1.0, s) == 0);
    BOOST_TEST(wait_us(3, 2s, 1.0, s) == 2 * second);
    BOOST_TEST(wait_us(0, -2s, 1.0, s) == 0);

    s.max_retry_after = -1s;  // as 0: only a Retry-After of 0 is waited for
    BOOST_TEST(returned(0, 1s, s));
    BOOST_TEST(wait_us(0, 0s, 1.0, s) == 0);

    // Everything at its largest: at most a year each, whatever the retries.
    s.max_retry_after = seconds::max();
    s.default_retry_after = milliseconds::max();
    s.retry_after_spread = milliseconds::max();
    BOOST_TEST(wait_us(UINT_MAX - 1, std::nullopt, 1.0, s) == a_year);
    BOOST_TEST(wait_us(0, max_retry_after, 1.0, s) == 2 * a_year);
    BOOST_TEST(returned(0, max_retry_after + 1s, s));
}

BOOST_AUTO_TEST_SUITE_END()
