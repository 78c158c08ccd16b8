// The token cache's decisions (sans-io): serve, refresh ahead, join, back off, fail.
#include "sansio/refresh_policy.hpp"

#include <boost/test/unit_test.hpp>

#include <ostream>

using namespace apollo_oauth::sansio;
using namespace std::chrono_literals;

namespace apollo_oauth::sansio {
inline std::ostream& boost_test_print_type(std::ostream& os, get_action a) {
    return os << static_cast<int>(a);
}
}  // namespace apollo_oauth::sansio

namespace {

const sys_time t0 = sys_time{} + std::chrono::hours(24 * 365 * 50);

entry_snapshot valid_entry() {
    entry_snapshot e;
    e.has_tokens = true;
    e.usable_until = t0 + 100s;
    e.refresh_at = t0 + 75s;
    return e;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(refresh_policy)

BOOST_AUTO_TEST_CASE(a_valid_token_is_served) {
    BOOST_TEST(decide_get(valid_entry(), t0) == get_action::serve);
}

BOOST_AUTO_TEST_CASE(past_the_refresh_point_it_is_served_and_refreshed_ahead_once) {
    auto e = valid_entry();
    BOOST_TEST(decide_get(e, t0 + 80s) == get_action::serve_and_refresh_ahead);
    e.refreshing = true;
    BOOST_TEST(decide_get(e, t0 + 80s) == get_action::serve);
}

BOOST_AUTO_TEST_CASE(refresh_ahead_waits_out_a_backoff) {
    auto e = valid_entry();
    e.retry_not_before = t0 + 90s;
    BOOST_TEST(decide_get(e, t0 + 80s) == get_action::serve);
    BOOST_TEST(decide_get(e, t0 + 95s) == get_action::serve_and_refresh_ahead);
}

BOOST_AUTO_TEST_CASE(an_expired_token_starts_or_joins_a_refresh) {
    auto e = valid_entry();
    BOOST_TEST(decide_get(e, t0 + 100s) == get_action::start_refresh);
    e.refreshing = true;
    BOOST_TEST(decide_get(e, t0 + 100s) == get_action::join_refresh);
}

BOOST_AUTO_TEST_CASE(an_invalidated_token_is_not_served) {
    auto e = valid_entry();
    e.invalidated = true;
    BOOST_TEST(decide_get(e, t0) == get_action::start_refresh);
    e.refreshing = true;
    BOOST_TEST(decide_get(e, t0) == get_action::join_refresh);
}

BOOST_AUTO_TEST_CASE(within_a_backoff_an_expired_token_fails_at_once) {
    auto e = valid_entry();
    e.retry_not_before = t0 + 200s;
    BOOST_TEST(decide_get(e, t0 + 150s) == get_action::fail_backoff);
    BOOST_TEST(decide_get(e, t0 + 200s) == get_action::start_refresh);
}

BOOST_AUTO_TEST_CASE(nothing_in_memory_loads_or_joins_the_load) {
    entry_snapshot e;
    BOOST_TEST(decide_get(e, t0) == get_action::start_load);
    e.loading = true;
    BOOST_TEST(decide_get(e, t0) == get_action::join_load);
}

BOOST_AUTO_TEST_CASE(a_lost_grant_fails_whatever_else_holds) {
    auto e = valid_entry();
    e.reauth_required = true;
    BOOST_TEST(decide_get(e, t0) == get_action::fail_reauthorization);
}

BOOST_AUTO_TEST_CASE(the_margin_is_at_most_a_quarter_of_the_lifetime) {
    BOOST_TEST(effective_margin(60s, 2'592'000s).count() == 60);
    BOOST_TEST(effective_margin(60s, 40s).count() == 10);
    BOOST_TEST(effective_margin(60s, 0s).count() == 0);
}

BOOST_AUTO_TEST_CASE(refresh_ahead_point_with_jitter) {
    const auto lifetime = 1000s;
    BOOST_TEST((refresh_ahead_point(t0, lifetime, 0.75, 0.05, 0.0) == t0 + 750s));
    BOOST_TEST((refresh_ahead_point(t0, lifetime, 0.75, 0.05, 1.0) == t0 + 800s));
    BOOST_TEST((refresh_ahead_point(t0, lifetime, 0.75, 0.05, -1.0) == t0 + 700s));
    BOOST_TEST((refresh_ahead_point(t0, lifetime, 0.98, 0.05, 1.0) == t0 + 1000s));  // clamped
    BOOST_TEST((refresh_ahead_point(t0, lifetime, 0.75, 0.05, 7.0) == t0 + 800s));   // u clamped
}

BOOST_AUTO_TEST_CASE(backoff_doubles_up_to_the_cap) {
    BOOST_TEST(backoff_after(0, 1000ms, 60000ms).count() == 0);
    BOOST_TEST(backoff_after(1, 1000ms, 60000ms).count() == 1000);
    BOOST_TEST(backoff_after(2, 1000ms, 60000ms).count() == 2000);
    BOOST_TEST(backoff_after(4, 1000ms, 60000ms).count() == 8000);
    BOOST_TEST(backoff_after(40, 1000ms, 60000ms).count() == 60000);
}

BOOST_AUTO_TEST_SUITE_END()
